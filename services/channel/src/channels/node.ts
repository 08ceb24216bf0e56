import type { Sat } from "@ln/bitcoin";
import { crashPoint } from "@ln/crash";
import { signerAhead, type Command, type Input, type Output } from "@ln/channel-core";
import type { ChainEvent } from "@ln/proto";
import type { SignerClient } from "@ln/signer-client";
import type { NatsConnection } from "nats";
import type pg from "pg";
import { ChainEvents } from "../onchain/chain-events.js";
import { Revocations } from "../onchain/revocations.js";
import { ChainTip } from "../onchain/tip.js";
import type { Ledger } from "../payments/ledger.js";
import { Forwarder } from "../forwarding/forwarder.js";
import {
  Gossip,
  type AnchorLookup,
  type GossipCounters,
  type GossipSettings,
  type GossipSigner,
} from "../gossip/gossip.js";
import type { ForwardingPolicies } from "../forwarding/policy.js";
import { Payee } from "../payments/payee.js";
import type { InboundOpeningLimits } from "../peers/inbound-openings.js";
import { NatsPeerLink } from "../peers/peer-link.js";
import { reconnectRound, RECONNECT_EVERY_MS } from "../peers/reconnect.js";
import { PeerRouter } from "../peers/router.js";
import { behindRefusal, signerStatus, signerStatuses } from "./data-loss.js";
import { ChannelEffects } from "./effects.js";
import { NodeError, reporter, type Report } from "./errors.js";
import { Leases } from "./leases.js";
import { Openings } from "./openings.js";
import type {
  ChainPort,
  LocalTerms,
  LogLine,
  PeerControl,
  ResolutionPort,
  TowerPort,
  WalletPort,
} from "./ports.js";
import { ChannelRegistry, LIVE } from "./registry.js";
import { Retries } from "./retries.js";
import { ChannelRunner } from "./runner.js";
import { grpcCoreSigner } from "./signer-adapter.js";
import { StoreError, type ChannelStore, type WithinTransition } from "./store.js";

export interface ChannelNodeOptions {
  store: ChannelStore;
  ledger: Ledger;
  signer: SignerClient;
  nodeId: Buffer;
  nc: NatsConnection;
  /** The peer gateway's subject prefix (`<LN_PREFIX>.peer`). */
  peerPrefix: string;
  chain: ChainPort;
  wallet: WalletPort;
  peers: PeerControl;
  tower: TowerPort;
  resolution: ResolutionPort;
  replicaId: string;
  /** Lease length; renewed every third of it. */
  leaseMs: number;
  terms: LocalTerms;
  /** Bounds on the channels peers open to us (default DEFAULT_INBOUND_OPENING_LIMITS). */
  inboundOpenings?: InboundOpeningLimits;
  /**
   * Messages of one peer queued here, not yet processed (default 1000): beyond, they are dropped
   * with the connection, and the next connection retransmits them (draft 1.2).
   */
  maxPeerBacklog?: number;
  /** How often dropped peers of live channels are redialed (default RECONNECT_EVERY_MS). */
  reconnectMs?: number;
  /** A commitment round completed (the channel_commitment_round_seconds histogram). */
  onCommitRound?: (seconds: number) => void;
  /** We sent an update_commit covering `updates` updates (runner.ts onCommitSent). */
  onCommitSent?: (updates: number) => void;
  /** Forwarding (DESIGN.md 10): the channels' policies, and the node's subject prefix for notices. */
  forwarding: { pool: pg.Pool; policies: ForwardingPolicies; prefix: string; roundMs?: number };
  /** Gossip (gossip/gossip.ts): none, none is received nor sent (gossip pkts are then dropped). */
  gossip?: {
    settings: GossipSettings;
    signer: GossipSigner;
    anchors: AnchorLookup;
    counters?: GossipCounters | undefined;
  };
  log: LogLine;
}

/**
 * The coordinator of the channels this replica runs. Each job is its own part, composed here:
 * the runner (persist, then send), the peer router and its acks (peers/router.ts) over the one
 * send path (peers/peer-link.ts), openings, the core's effects (effects.ts), the payee
 * (payments/payee.ts), leases and takeover (leases.ts), chain events (onchain/chain-events.ts),
 * the peer's revocations (onchain/revocations.ts), and retries with an alert (retries.ts). Every
 * input to a channel goes through `input`, which checks the signer's records at a resume, then
 * has the payee settle and a failure retried.
 */
export class ChannelNode {
  readonly runner: ChannelRunner;
  private readonly registry = new ChannelRegistry();
  private readonly tip = new ChainTip();
  private readonly retries: Retries;
  /** Channels whose state was compared with the signer's records since this process started. */
  private readonly signerChecked = new Set<string>();
  private readonly report: Report;
  private readonly router: PeerRouter;
  private readonly openings: Openings;
  private readonly payee: Payee;
  readonly forwarder: Forwarder;
  /** Gossip and the graph (gossip/gossip.ts), the ChannelUpdateSink of contracts.md. */
  readonly gossip: Gossip | undefined;
  private readonly leases: Leases;
  private readonly chainEvents: ChainEvents;
  private readonly revocations: Revocations;
  private timers: NodeJS.Timeout[] = [];
  private retrying = false;

  constructor(private readonly o: ChannelNodeOptions) {
    const { registry, tip } = this;
    const feed = (id: string, input: Input): Promise<Output[]> => this.input(id, input);
    const log = o.log;
    const report = (this.report = reporter(log));
    this.retries = new Retries(log);
    const link = new NatsPeerLink(o.nc, o.peerPrefix, registry);
    this.revocations = new Revocations({
      store: o.store,
      signer: o.signer,
      registry,
      tower: o.tower,
      report,
    });
    const effects = new ChannelEffects({
      store: o.store,
      ledger: o.ledger,
      signer: o.signer,
      registry,
      chain: o.chain,
      wallet: o.wallet,
      peers: o.peers,
      revocations: this.revocations,
      replicaId: o.replicaId,
      feed,
      unhold: (id) => this.unhold(id),
      log,
      report,
    });
    this.runner = new ChannelRunner(
      o.store,
      o.replicaId,
      grpcCoreSigner(o.signer, (id) => registry.signerChannel(id)),
      link,
      effects.sink,
      {
        ...(o.onCommitRound ? { onCommitRound: o.onCommitRound } : {}),
        ...(o.onCommitSent ? { onCommitSent: o.onCommitSent } : {}),
      },
    );
    this.openings = new Openings({
      store: o.store,
      signer: o.signer,
      registry,
      link,
      chain: o.chain,
      wallet: o.wallet,
      peers: o.peers,
      tip,
      replicaId: o.replicaId,
      leaseMs: o.leaseMs,
      terms: o.terms,
      log,
    });
    const g = o.gossip;
    this.gossip = g
      ? new Gossip({
          pool: o.forwarding.pool,
          schema: o.store.schema,
          store: o.store,
          registry,
          policies: o.forwarding.policies,
          tip,
          nodeId: o.nodeId,
          signer: g.signer,
          anchors: g.anchors,
          send: (peer, bytes) => link.sendGossip(peer, bytes),
          peers: o.peers,
          settings: g.settings,
          counters: g.counters,
          log,
          report,
        })
      : undefined;
    this.router = new PeerRouter({
      nc: o.nc,
      peerPrefix: o.peerPrefix,
      store: o.store,
      registry,
      link,
      peers: o.peers,
      feed,
      accept: (peer) => this.openings.createChannel(peer, "acceptor", undefined),
      inboundOpenings: o.inboundOpenings,
      maxPeerBacklog: o.maxPeerBacklog,
      gossip: this.gossip,
      log,
      report,
    });
    this.forwarder = new Forwarder({
      pool: o.forwarding.pool,
      schema: o.store.schema,
      store: o.store,
      signer: o.signer,
      registry,
      tip,
      policies: o.forwarding.policies,
      nc: o.nc,
      prefix: o.forwarding.prefix,
      feed,
      ...(this.gossip ? { gossip: this.gossip } : {}),
      ...(o.forwarding.roundMs ? { roundMs: o.forwarding.roundMs } : {}),
      log,
      report,
    });
    this.payee = new Payee({
      store: o.store,
      ledger: o.ledger,
      signer: o.signer,
      registry,
      tip,
      forwarder: this.forwarder,
      feed,
      noteFailure: (id, e) => this.retries.noteFailure(id, e),
      report,
    });
    this.leases = new Leases({
      store: o.store,
      registry,
      peers: o.peers,
      replicaId: o.replicaId,
      leaseMs: o.leaseMs,
      feed,
      signerStatuses: (channels) => signerStatuses(o.signer, channels),
      signerChecked: (id) => this.signerChecked.add(id),
      log,
      report,
    });
    this.chainEvents = new ChainEvents({
      ledger: o.ledger,
      store: o.store,
      registry,
      resolution: o.resolution,
      tip,
      feed,
      report,
    });
  }

  // ------------------------------------------------------------ lifecycle

  /** Takes the leases it can, subscribes to the peer gateway, and starts its timers. */
  async start(): Promise<void> {
    const tip = await this.o.ledger.tip();
    if (tip) this.tip.set(tip.height, tip.time);
    await this.leases.leaseRound();
    this.router.start();
    this.forwarder.start();
    this.gossip?.start();
    this.timers.push(
      setInterval(
        () => void this.leases.leaseRound().catch((e: unknown) => this.report("lease round", e)),
        this.o.leaseMs / 3,
      ),
      setInterval(() => void this.retryRound(), 500),
      setInterval(
        () =>
          void reconnectRound({
            store: this.o.store,
            ledger: this.o.ledger,
            registry: this.registry,
            peers: this.o.peers,
            log: this.o.log,
            report: this.report,
          }).catch((e: unknown) => this.report("reconnecting", e)),
        this.o.reconnectMs ?? RECONNECT_EVERY_MS,
      ),
    );
  }

  /** Stops timers and subscriptions and releases our leases, so another replica takes over at once. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.gossip?.stop();
    await this.forwarder.stop();
    await this.router.stop();
    await this.leases.releaseAll();
  }

  holds(id: string): boolean {
    return this.registry.holds(id);
  }

  get height(): number {
    return this.tip.height;
  }

  // ------------------------------------------------------------ operator commands

  /** Connects to a peer through the gateway, and remembers where, to reconnect after a drop. */
  async connect(p: { host: string; port: number; nodeId: string }): Promise<void> {
    await this.o.peers.connect(p);
    await this.o.ledger.rememberPeer(p.nodeId, p.host, p.port);
  }

  /** Opens a channel to a connected peer, funding the anchor from our wallet. */
  open(peerNodeId: string, fundingSat: Sat): Promise<string> {
    return this.openings.open(peerNodeId, fundingSat);
  }

  /** An operator command on a channel this replica runs; a rejection names its reason. */
  async command(channelId: string, command: Command, within?: WithinTransition): Promise<Output[]> {
    if (!this.registry.holds(channelId)) {
      const row = await this.o.store.row(channelId);
      if (!row) throw new NodeError("NOT_FOUND", `no channel ${channelId}`);
      throw new NodeError(
        "UNAVAILABLE",
        `channel ${channelId} is run by replica ${row.leaseOwner ?? "(none yet)"}; retry in a few seconds or send the request to that replica`,
      );
    }
    const outputs = await this.input(channelId, { type: "command", command }, within);
    const rejected = outputs.find((x) => x.type === "command_rejected");
    if (rejected?.type === "command_rejected") throw new NodeError(rejected.code, rejected.problem);
    return outputs;
  }

  /** Feeds one input to a channel, then settles incoming HTLCs; failures are retried with backoff. */
  async input(channelId: string, input: Input, within?: WithinTransition): Promise<Output[]> {
    try {
      // A restored database: the signer's records show a later state than ours (DESIGN.md 6).
      if (input.type === "resume" && !this.signerChecked.has(channelId)) {
        const behind = await this.signerBehind(channelId);
        this.signerChecked.add(channelId);
        if (behind !== undefined) return await this.input(channelId, { type: "behind", problem: behind });
      }
      const { state, outputs } = await this.runner.input(channelId, input, within);
      // The peer's live channel is looked up again (peers/router.ts): this one takes no more.
      if (!LIVE(state.phase) || state.phase === "behind") this.registry.ended();
      // Only a resume proves the awaited signer request was answered: another input succeeds
      // while merely deferred behind that request, and must not cancel the retry.
      if (input.type === "resume") this.retries.clear(channelId);
      // Incoming HTLCs become committed on both sides only in steps that send something; a
      // resume (a retry, a takeover, a restart) also finishes payee work left half done.
      if (outputs.length > 0 || input.type === "resume") void this.payee.settleIncoming(channelId, state);
      // An HTLC we offered is resolved: if it continues a forward, the incoming channel's holder
      // answers upstream now (forwarding/forwarder.ts).
      if (outputs.some((x) => x.type === "htlc_result" && x.offerer === "local")) {
        if (
          outputs.some(
            (x) => x.type === "htlc_result" && x.offerer === "local" && x.result.kind === "fulfilled",
          )
        )
          crashPoint("channel.forward.r_downstream");
        this.forwarder.notify();
      }
      return outputs;
    } catch (e) {
      const refused = behindRefusal(e);
      if (e instanceof StoreError && e.code === "LEASE_NOT_HELD") this.registry.release(channelId);
      else if (e instanceof StoreError && e.code === "NO_SUCH_CHANNEL") this.unhold(channelId);
      else if (refused !== undefined && input.type !== "behind") {
        // The signer refuses our commitment (or the one we would revoke into) as revoked: our
        // state is behind its records. Asking again cannot help; the channel stops.
        this.retries.clear(channelId);
        return this.input(channelId, { type: "behind", problem: `the signer refused: ${refused}` });
      } else {
        this.retries.noteFailure(channelId, e);
        // The state may have moved before an effect failed (the runner commits each step first).
        void this.payee.settleIncoming(channelId);
      }
      throw e;
    }
  }

  // ------------------------------------------------------------ chain events

  /** One event from the chain watcher's stream; the wallet's kinds are handled by the caller. */
  async onChainEvent(ev: ChainEvent): Promise<void> {
    await this.chainEvents.onChainEvent(ev);
    // A new tip: the graph's anchors rechecked (a slice), our channels perhaps deep enough now.
    if (ev.kind === "block_connected")
      void this.gossip?.onTip().catch((e: unknown) => this.report("gossip: the graph's anchors", e));
  }

  // ------------------------------------------------------------ internals

  /** Stops running a channel here (it was deleted, or another replica runs it). */
  private unhold(id: string): void {
    this.registry.forget(id);
    this.retries.clear(id);
    this.signerChecked.delete(id);
  }

  /**
   * Why the signer's records show a later state than the channel's, if they do. The signer's
   * first: a step running meanwhile stores its state before it asks the signer, so the state read
   * after is never behind the records read before (unless it was restored).
   */
  private async signerBehind(id: string): Promise<string | undefined> {
    const status = await signerStatus(this.o.signer, this.registry.signerChannel(id));
    const state = await this.o.store.load(id);
    if (!state?.localCommit || (state.phase !== "normal" && state.phase !== "clearing")) return undefined;
    return signerAhead(state, status);
  }

  private async retryRound(): Promise<void> {
    if (this.retrying) return; // the previous round is still at work
    this.retrying = true;
    try {
      await this.retryOnce();
    } finally {
      this.retrying = false;
    }
  }

  private async retryOnce(): Promise<void> {
    const now = Date.now();
    await this.revocations.round(now);
    for (const id of this.retries.due(now, (x) => this.registry.holds(x)))
      await this.input(id, { type: "resume" }).catch(() => undefined);
  }
}
