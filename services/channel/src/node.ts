import { randomUUID } from "node:crypto";
import { crashPoint } from "@ln/crash";
import { MAX_ANCHOR_SAT, type OutPoint, type Sat } from "@ln/bitcoin";
import {
  ackFor,
  checkOpenChannel,
  createChannel,
  signerAhead,
  EXPIRY_TOO_SOON,
  htlcDeadlinePassed,
  DEFAULT_POLICY,
  type ChannelPolicy,
  type ChannelState,
  type Command,
  type Input,
  type Output,
} from "@ln/channel-core";
import {
  decodePeerEvent,
  decodePkt,
  encodePkt,
  OUT_SEQ_HEADER,
  peerSubjects,
  type ChainEvent,
  type Pkt,
  type PktOf,
} from "@ln/proto";
import type { SignerClient } from "@ln/signer-client";
import { Transaction } from "bitcoinjs-lib";
import { headers, type NatsConnection, type Subscription } from "nats";
import { signedBroadcast } from "./broadcast.js";
import { Ledger } from "./ledger.js";
import { ChannelRunner, type EffectSink } from "./runner.js";
import { fulfilledPreimages, grpcCoreSigner, recordPeerRevocation } from "./signer-adapter.js";
import { ChainRequestError } from "./chain-requests.js";
import { behindRefusal, signerStatus } from "./data-loss.js";
import {
  checkInboundOpening,
  DEFAULT_INBOUND_OPENING_LIMITS,
  type InboundOpeningLimits,
} from "./inbound-openings.js";
import { parseOutputWatchId } from "./resolution.js";
import { StoreError, type ChannelRow, type ChannelStore, type OutboxMessage } from "./store.js";

/** What the node needs from the chain watcher (chain-requests.ts over NATS in production). */
export interface ChainPort {
  broadcast(txHex: string): Promise<string>;
  /** The node's best block, asked when we have not seen a block event yet. */
  tip(): Promise<{ height: number; time: number }>;
  watchAnchor(channelId: string, o: Extract<Output, { type: "watch_anchor" }>): void;
}

/** What the node needs from its wallet (wallet.ts). */
export interface WalletPort {
  fundAnchor(p: {
    channelId: string;
    signerChannel: number;
    amount: Sat;
    commitKeys: [string, string];
  }): Promise<{ outpoint: OutPoint; amount: Sat; txid: string }>;
  anchorTx(channelId: string): Promise<string | undefined>;
  /** Watches the channel's final-key output (a close or their commitment pays it) to sweep it. */
  watchFinalKey(p: { channelId: string; signerChannel: number; finalPubkeyHex: string }): Promise<void>;
  /** Frees the coins of an anchor never handed out for broadcast (the opening failed). */
  releaseAnchor(channelId: string): Promise<boolean>;
}

/** The peer gateway's control requests (peer-requests.ts over NATS in production). */
export interface PeerControl {
  connect(p: { host: string; port: number; nodeId: string }): Promise<unknown>;
  list(): Promise<{ nodeId: string; host: string; port: number }[]>;
  /** Drop the connection with a peer so the next one retransmits what either side missed. */
  resync(nodeId: string): void;
}

/** The terms we open channels with (our side of open_channel). */
export interface LocalTerms {
  delayBlocks: number;
  minDepth: number;
  feeRate: number;
}

/** On-chain resolution of spent anchors (resolution.ts). */
export interface ResolutionPort {
  onAnchorSpent(channelId: string, spendHex: string, height: number): Promise<void>;
  onOutputSpent(channelId: string, vout: number, spenderHex: string, height: number): Promise<void>;
  onBlockDisconnected(height: number): Promise<void>;
  sweepReady(tip: { height: number; time: number }): Promise<void>;
}

/** Where the watchtower's revocation records go (tower-link.ts). */
export interface TowerPort {
  /** Publishes every record not yet acknowledged. */
  publishPending(): Promise<number>;
}

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
  log: (line: string) => void;
}

/** A failure the control API can name (see api/backend.ts BackendError). */
export class NodeError extends Error {
  override readonly name = "NodeError";
  constructor(
    readonly code: "NOT_FOUND" | "CONFLICT" | "INVALID" | "UNAVAILABLE",
    message: string,
  ) {
    super(message);
  }
}

const RETRY_MIN_MS = 1000;
/** The node's reasons for refusing a transaction whose input another one spent already. */
const ANCHOR_TAKEN = /txn-mempool-conflict|missingorspent|inputs-spent|missing-inputs/;
/** How often we check that the peers of our live channels are connected. */
const RECONNECT_EVERY_MS = 5000;
const RETRY_MAX_MS = 60_000;
/** Default ChannelNodeOptions.maxPeerBacklog. */
const MAX_PEER_BACKLOG = 1000;
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const LIVE = (phase: ChannelState["phase"]): boolean => phase !== "closed" && phase !== "failed";
/** The policy of every channel we run (the core's defaults otherwise). */
const CHANNEL_POLICY: Partial<ChannelPolicy> = { autoCommit: true };

/**
 * The channel service's shell around the runner: routes each peer's pkts and connection events to
 * its channel (creating the acceptor's channel on a peer's open_channel), feeds chain events to
 * the channels, carries out the core's effects (anchor funding, broadcasts, watches, payment
 * outcomes, peer revocations to the signer), settles incoming HTLCs against our invoices, holds and
 * renews the leases of the channels this replica runs and takes over channels whose lease expired,
 * and asks the signer again, with backoff, when a request failed.
 */
export class ChannelNode {
  readonly runner: ChannelRunner;
  private readonly held = new Set<string>();
  /**
   * Per channel run here: its peer, its signer index, and whether it waits for a new connection
   * before it takes the peer's messages (see createChannel).
   */
  private readonly meta = new Map<
    string,
    { peer: string; signerChannel: number; awaitingConnection: boolean }
  >();
  private readonly peerQueues = new Map<string, Promise<unknown>>();
  /** Per peer: its messages queued in peerQueues, not yet started. */
  private readonly backlog = new Map<string, number>();
  /** Peers whose messages we drop until their next connection (one was dropped: keep order). */
  private readonly shedding = new Set<string>();
  private readonly retries = new Map<string, { attempt: number; at: number; since: number }>();
  /** Channels whose state was compared with the signer's records since this process started. */
  private readonly signerChecked = new Set<string>();
  /** Incoming HTLCs we are settling (channel:id), so each is decided once. */
  private readonly settling = new Set<string>();
  private readonly subs: Subscription[] = [];
  private timers: NodeJS.Timeout[] = [];
  private tipHeight = 0;
  private nextRevocationRound = 0;
  private retrying = false;
  private tipTime = 0;

  constructor(private readonly o: ChannelNodeOptions) {
    const effects: EffectSink = (id, out, state) => this.effect(id, out, state);
    this.runner = new ChannelRunner(
      o.store,
      o.replicaId,
      grpcCoreSigner(o.signer, (id) => this.signerChannel(id)),
      { send: (id, m) => Promise.resolve(this.publishOut(this.subjects(id).out, m)) },
      effects,
    );
  }

  // ------------------------------------------------------------ lifecycle

  /** Takes the leases it can, subscribes to the peer gateway, and starts its timers. */
  async start(): Promise<void> {
    const tip = await this.o.ledger.tip();
    if (tip) [this.tipHeight, this.tipTime] = [tip.height, tip.time];
    await this.leaseRound();
    const p = this.o.peerPrefix;
    this.subs.push(
      this.o.nc.subscribe(`${p}.*.in`, {
        callback: (e, m) => !e && this.onPeerMessage(m.subject, "in", m.data),
      }),
      this.o.nc.subscribe(`${p}.*.events`, {
        callback: (e, m) => !e && this.onPeerMessage(m.subject, "events", m.data),
      }),
      this.o.nc.subscribe(`${p}.*.ack`, {
        callback: (e, m) => {
          if (e) return;
          const peer = m.subject.split(".").at(-2) ?? "";
          // Only the replica running the peer's channel answers; with none, the gateway uses 0.
          void this.forPeer(peer, async () => {
            const row = await this.o.store.liveWith(peer);
            // No channel with the peer: every replica agrees on 0 (nothing received).
            if (!row) return m.respond(Buffer.from("0"));
            if (!this.held.has(row.id)) return;
            const state = await this.o.store.load(row.id);
            m.respond(Buffer.from(String(state ? ackFor(state) : 0)));
          });
        },
      }),
    );
    this.timers.push(
      setInterval(
        () => void this.leaseRound().catch((e: unknown) => this.report("lease round", e)),
        this.o.leaseMs / 3,
      ),
      setInterval(() => void this.retryRound(), 500),
      setInterval(
        () => void this.reconnectRound().catch((e: unknown) => this.report("reconnecting", e)),
        RECONNECT_EVERY_MS,
      ),
    );
  }

  /** Stops timers and subscriptions and releases our leases, so another replica takes over at once. */
  async stop(): Promise<void> {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    for (const s of this.subs) s.unsubscribe();
    await Promise.allSettled([...this.peerQueues.values()]);
    for (const id of this.held) await this.o.store.releaseLease(id, this.o.replicaId).catch(() => undefined);
    this.held.clear();
  }

  holds(id: string): boolean {
    return this.held.has(id);
  }

  get height(): number {
    return this.tipHeight;
  }

  // ------------------------------------------------------------ operator commands

  /** Connects to a peer through the gateway, and remembers where, to reconnect after a drop. */
  async connect(p: { host: string; port: number; nodeId: string }): Promise<void> {
    await this.o.peers.connect(p);
    await this.o.ledger.rememberPeer(p.nodeId, p.host, p.port);
  }

  /** Opens a channel to a connected peer, funding the anchor from our wallet. */
  async open(peerNodeId: string, fundingSat: Sat): Promise<string> {
    if (fundingSat <= 0n || fundingSat > MAX_ANCHOR_SAT)
      throw new NodeError("INVALID", `fundingSat must be from 1 to ${MAX_ANCHOR_SAT} satoshi (draft 2.2)`);
    if (await this.o.store.liveWith(peerNodeId))
      throw new NodeError("CONFLICT", `there is already a live channel with ${peerNodeId}; close it first`);
    return this.createChannel(peerNodeId, "creator", fundingSat);
  }

  /** An operator command on a channel this replica runs; a rejection names its reason. */
  async command(channelId: string, command: Command): Promise<Output[]> {
    const row = await this.o.store.row(channelId);
    if (!row) throw new NodeError("NOT_FOUND", `no channel ${channelId}`);
    if (!this.held.has(channelId))
      throw new NodeError(
        "UNAVAILABLE",
        `channel ${channelId} is run by replica ${row.leaseOwner ?? "(none yet)"}; retry in a few seconds or send the request to that replica`,
      );
    const outputs = await this.input(channelId, { type: "command", command });
    const rejected = outputs.find((x) => x.type === "command_rejected");
    if (rejected) throw new NodeError("INVALID", rejected.problem);
    return outputs;
  }

  /** Feeds one input to a channel, then settles incoming HTLCs; failures are retried with backoff. */
  async input(channelId: string, input: Input): Promise<Output[]> {
    try {
      // A restored database: the signer's records show a later state than ours (DESIGN.md 6).
      if (input.type === "resume" && !this.signerChecked.has(channelId)) {
        const behind = await this.signerBehind(channelId);
        this.signerChecked.add(channelId);
        if (behind !== undefined) return await this.input(channelId, { type: "behind", problem: behind });
      }
      const { state, outputs } = await this.runner.input(channelId, input);
      // Only a resume proves the awaited signer request was answered: another input succeeds
      // while merely deferred behind that request, and must not cancel the retry.
      if (input.type === "resume") this.retries.delete(channelId);
      // Incoming HTLCs become committed on both sides only in steps that send something; a
      // resume (a retry, a takeover, a restart) also finishes payee work left half done.
      if (outputs.length > 0 || input.type === "resume") void this.settleIncoming(channelId, state);
      return outputs;
    } catch (e) {
      const refused = behindRefusal(e);
      if (e instanceof StoreError && e.code === "LEASE_NOT_HELD") this.held.delete(channelId);
      else if (e instanceof StoreError && e.code === "NO_SUCH_CHANNEL") this.unhold(channelId);
      else if (refused !== undefined && input.type !== "behind") {
        // The signer refuses our commitment (or the one we would revoke into) as revoked: our
        // state is behind its records. Asking again cannot help; the channel stops.
        this.retries.delete(channelId);
        return this.input(channelId, { type: "behind", problem: `the signer refused: ${refused}` });
      } else {
        this.noteFailure(channelId, e);
        // The state may have moved before an effect failed (the runner commits each step first).
        void this.settleIncoming(channelId);
      }
      throw e;
    }
  }

  // ------------------------------------------------------------ chain events

  /** One event from the chain watcher's stream; the wallet's kinds are handled by the caller. */
  async onChainEvent(ev: ChainEvent): Promise<void> {
    switch (ev.kind) {
      case "block_connected": {
        await this.o.ledger.setTip({ height: ev.height, hash: ev.hash, time: ev.time });
        [this.tipHeight, this.tipTime] = [ev.height, ev.time];
        const event = { kind: "block" as const, height: ev.height, time: ev.time };
        await this.eachHeld((id) => this.input(id, { type: "chain", event }));
        await this.o.resolution
          .sweepReady({ height: ev.height, time: ev.time })
          .catch((e: unknown) => this.report("sweeping claimed outputs", e));
        return;
      }
      case "block_disconnected":
        // Failing here redelivers the event: the resolution must not keep a spend that is gone.
        return this.o.resolution.onBlockDisconnected(ev.height);
      case "anchor_depth":
        if (this.held.has(ev.channelId))
          await this.input(ev.channelId, { type: "chain", event: { kind: "anchor_depth", depth: ev.depth } });
        return;
      case "anchor_spent": {
        const output = parseOutputWatchId(ev.channelId);
        if (output)
          return this.o.resolution.onOutputSpent(output.channelId, output.vout, ev.txHex, ev.height);
        if (this.held.has(ev.channelId)) {
          const ours = await this.o.ledger.isOurBroadcast(ev.channelId, ev.txid);
          await this.input(ev.channelId, {
            type: "chain",
            event: { kind: "anchor_spent", txid: ev.txid, ours },
          });
        }
        // Every replica records it (idempotent): the channel has failed, its lease may be gone.
        return this.o.resolution.onAnchorSpent(ev.channelId, ev.txHex, ev.height);
      }
      default:
        return;
    }
  }

  private async eachHeld(fn: (id: string) => Promise<unknown>): Promise<void> {
    const failures: unknown[] = [];
    for (const id of [...this.held]) await fn(id).catch((e: unknown) => failures.push(e));
    for (const e of failures) this.report("block", e);
  }

  // ------------------------------------------------------------ peers

  private subjects(channelId: string): ReturnType<typeof peerSubjects> {
    const m = this.meta.get(channelId);
    if (!m) throw new NodeError("NOT_FOUND", `channel ${channelId} is not run here`);
    return peerSubjects(this.o.peerPrefix, m.peer);
  }

  private signerChannel(channelId: string): number {
    const m = this.meta.get(channelId);
    if (!m) throw new NodeError("NOT_FOUND", `channel ${channelId} is not run here`);
    return m.signerChannel;
  }

  /** Work for one peer, in arrival order. */
  private forPeer(peer: string, work: () => Promise<unknown>): Promise<unknown> {
    const prev = this.peerQueues.get(peer) ?? Promise.resolve();
    const next = prev.then(work).catch((e: unknown) => this.report(`peer ${peer.slice(0, 16)}`, e));
    this.peerQueues.set(peer, next);
    // Forgotten once done: every node key that ever sent us something would stay otherwise.
    void next.then(() => this.peerQueues.get(peer) === next && this.peerQueues.delete(peer));
    return next;
  }

  private onPeerMessage(subject: string, kind: "in" | "events", data: Uint8Array): void {
    const peer = subject.split(".").at(-2) ?? "";
    // Decoded at once (the gateway checked it already): a bad one is reported, never queued.
    let pkt: Pkt | undefined;
    let connectedAck: number | undefined;
    try {
      if (kind === "in") pkt = decodePkt(data);
      else {
        const ev = decodePeerEvent(data);
        if (ev.type !== "connected") return;
        connectedAck = Number(ev.theirAck);
      }
    } catch (e) {
      this.report(`peer ${peer.slice(0, 16)}`, e);
      return;
    }
    if (connectedAck !== undefined) this.shedding.delete(peer); // a new connection resends from our ack
    if (pkt && !this.takeIntoBacklog(peer)) return;
    void this.forPeer(peer, async () => {
      if (pkt) this.leaveBacklog(peer);
      let row = await this.o.store.liveWith(peer);
      if (!row && pkt?.kind === "open_channel") {
        // A peer opens a channel to us: we are the acceptor, if its terms and our bounds allow.
        const refused = await this.refuseInbound(peer, pkt);
        // Another replica may have taken this opening meanwhile (it counted less): its channel wins.
        row = await this.o.store.liveWith(peer);
        if (!row && refused !== undefined) return this.sendError(peer, refused);
        if (!row) {
          await this.createChannel(peer, "acceptor", undefined).catch((e: unknown) => {
            if (!(e instanceof StoreError && e.code === "CHANNEL_EXISTS")) throw e;
          });
          row = await this.o.store.liveWith(peer);
        }
      }
      // A channel message from a peer we have no channel with fails the connection (draft 6.3);
      // an `error` is never answered with one.
      if (!row && pkt && pkt.kind !== "error")
        return this.sendError(peer, `${pkt.kind}: we have no channel with you`);
      if (!row || !this.held.has(row.id)) return;
      const m = this.meta.get(row.id);
      if (connectedAck !== undefined && m) m.awaitingConnection = false;
      if (pkt && m?.awaitingConnection) {
        this.o.log(`channel ${row.id}: dropping a ${pkt.kind} sent before its own connection`);
        return;
      }
      if (pkt) crashPoint("channel.peer.received");
      if (pkt) await this.input(row.id, { type: "pkt", pkt });
      else if (connectedAck !== undefined)
        await this.input(row.id, { type: "reconnected", theirAck: connectedAck });
    });
  }

  /**
   * Counts a message of the peer into its backlog; false when it must be dropped: the backlog is
   * full (the connection is dropped too, so the peer resends it) or an earlier one was dropped.
   */
  private takeIntoBacklog(peer: string): boolean {
    if (this.shedding.has(peer)) return false;
    const queued = this.backlog.get(peer) ?? 0;
    if (queued >= (this.o.maxPeerBacklog ?? MAX_PEER_BACKLOG)) {
      this.shedding.add(peer);
      this.o.log(`peer ${peer.slice(0, 16)}…: ${queued} messages waiting; dropping the connection`);
      this.o.peers.resync(peer);
      return false;
    }
    this.backlog.set(peer, queued + 1);
    return true;
  }

  private leaveBacklog(peer: string): void {
    const left = (this.backlog.get(peer) ?? 1) - 1;
    if (left > 0) this.backlog.set(peer, left);
    else this.backlog.delete(peer);
  }

  /**
   * Why we refuse a peer's open_channel, checked before anything is allocated for it: its terms
   * (the core's own checks), then our bounds on inbound openings; undefined when we accept it.
   */
  private async refuseInbound(peer: string, pkt: PktOf<"open_channel">): Promise<string | undefined> {
    const checked = checkOpenChannel(pkt, { ...DEFAULT_POLICY, ...CHANNEL_POLICY }, "acceptor");
    if (!checked.ok) return checked.problem;
    const limits = this.o.inboundOpenings ?? DEFAULT_INBOUND_OPENING_LIMITS;
    const admitted = checkInboundOpening(
      limits,
      await this.o.store.inboundOpeningStats(peer, limits.windowMs),
    );
    if (admitted.ok) return undefined;
    this.o.log(`refused an open_channel from ${peer.slice(0, 16)}… (${admitted.code})`);
    return admitted.problem;
  }

  /** A stored message of a channel to its peer, numbered for the gateway (OUT_SEQ_HEADER). */
  private publishOut(subject: string, m: OutboxMessage): void {
    const h = headers();
    h.set(OUT_SEQ_HEADER, String(m.seq));
    this.o.nc.publish(subject, m.bytes, { headers: h });
  }

  /** Fails the connection with a peer outside any channel: the gateway drops it after the error. */
  private sendError(peer: string, problem: string): void {
    this.o.nc.publish(peerSubjects(this.o.peerPrefix, peer).out, encodePkt({ kind: "error", problem }));
  }

  /** Stops running a channel here (it was deleted, or another replica runs it). */
  private unhold(id: string): void {
    this.held.delete(id);
    this.meta.delete(id);
    this.retries.delete(id);
    this.signerChecked.delete(id);
  }

  private async createChannel(
    peer: string,
    role: "creator" | "acceptor",
    fundingSat: Sat | undefined,
  ): Promise<string> {
    // The opening's deadlines count from this height: never from an unknown one.
    if (this.tipHeight === 0) {
      const tip = await this.o.chain.tip();
      [this.tipHeight, this.tipTime] = [tip.height, tip.time];
    }
    // The draft's messages name no channel: ones of an earlier channel with this peer may still
    // be on their way. A new channel we open starts on a new connection, and takes nothing before.
    const needsNewConnection =
      role === "creator" && (await this.o.store.rows()).some((r) => r.peerNodeId === peer);
    const keys = await this.o.signer.call("NewChannel", {});
    const id = randomUUID();
    const created = createChannel({
      role,
      local: {
        delay: { blocks: this.o.terms.delayBlocks },
        minDepth: this.o.terms.minDepth,
        initialFeeRate: this.o.terms.feeRate,
        commitKey: hex(keys.commit_pubkey),
        finalKey: hex(keys.final_pubkey),
        revocationHash: hex(keys.revocation_hash_0),
        nextRevocationHash: hex(keys.revocation_hash_1),
      },
      ...(fundingSat !== undefined ? { fundingSat } : {}),
      policy: CHANNEL_POLICY,
      chain: { height: this.tipHeight, time: this.tipTime },
    });
    // Whatever the channel ends with on our final key comes back to the wallet: watched before
    // the channel exists, so a chain watcher that is down fails the opening, not the channel.
    await this.o.wallet.watchFinalKey({
      channelId: id,
      signerChannel: keys.channel,
      finalPubkeyHex: hex(keys.final_pubkey),
    });
    const t = await this.o.store
      .create(id, created, {
        peerNodeId: peer,
        signerChannel: keys.channel,
        owner: this.o.replicaId,
        leaseMs: this.o.leaseMs,
      })
      .catch((e: unknown) => {
        if (e instanceof StoreError && e.code === "CHANNEL_EXISTS")
          throw new NodeError("CONFLICT", `there is already a live channel with ${peer}; close it first`);
        throw e;
      });
    this.held.add(id);
    this.meta.set(id, { peer, signerChannel: keys.channel, awaitingConnection: needsNewConnection });
    this.o.log(`channel ${id}: created as ${role} with ${peer.slice(0, 16)}…`);
    // Sent now if the peer is connected; otherwise on its next connection (retransmission), which
    // a channel after an earlier one with this peer asks for (the redial follows the drop).
    if (needsNewConnection) this.o.peers.resync(peer);
    else for (const m of t.sends) this.publishOut(peerSubjects(this.o.peerPrefix, peer).out, m);
    return id;
  }

  // ------------------------------------------------------------ effects

  private async effect(id: string, out: Parameters<EffectSink>[1], state: ChannelState): Promise<void> {
    const m = this.meta.get(id);
    if (!m) throw new NodeError("NOT_FOUND", `channel ${id} is not run here`);
    switch (out.type) {
      case "build_anchor": {
        const funded = await this.o.wallet.fundAnchor({
          channelId: id,
          signerChannel: m.signerChannel,
          amount: out.amount,
          commitKeys: out.commitKeys,
        });
        this.o.log(`channel ${id}: anchor ${funded.txid} built (not yet broadcast)`);
        // Not awaited: this runs inside the channel's current input.
        setImmediate(
          () =>
            void this.input(id, {
              type: "anchor_built",
              outpoint: funded.outpoint,
              amount: funded.amount,
            }).catch((e: unknown) => this.report(`channel ${id}`, e)),
        );
        return;
      }
      case "broadcast_anchor": {
        const txHex = await this.o.wallet.anchorTx(id);
        if (!txHex) throw new Error(`channel ${id}: no stored anchor transaction to broadcast`);
        const txid = await this.o.chain.broadcast(txHex);
        this.o.log(`channel ${id}: anchor ${txid} broadcast`);
        return;
      }
      case "watch_anchor":
        this.o.chain.watchAnchor(id, out);
        return;
      case "broadcast":
      case "closed": {
        const txHex = await signedBroadcast(
          this.o.signer,
          m.signerChannel,
          out.broadcast,
          fulfilledPreimages(state),
        );
        if (txHex === undefined) return;
        const txid = Transaction.fromHex(txHex).getId();
        await this.o.ledger.recordBroadcast(id, out.broadcast.tx, txid, txHex);
        try {
          await this.o.chain.broadcast(txHex);
        } catch (e) {
          // Something else spent the anchor first (the peer's commitment, or a close): retrying
          // cannot help; the spend that won is resolved on chain (resolution.ts).
          if (!(e instanceof ChainRequestError && e.code === "REJECTED" && ANCHOR_TAKEN.test(e.reason ?? "")))
            throw e;
          this.o.log(
            `channel ${id}: our ${out.broadcast.tx} ${txid} lost the anchor to another spend (${e.reason})`,
          );
          return;
        }
        this.o.log(`channel ${id}: ${out.broadcast.tx} ${txid} broadcast`);
        return;
      }
      case "htlc_added":
        if (out.offerer === "local") {
          const add = state.localLog.entries.find(
            (e) => e.update.kind === "add" && e.update.htlc.id === out.id,
          );
          if (add?.update.kind === "add")
            await this.o.ledger.addPayment({
              channelId: id,
              htlcId: out.id,
              rHash: add.update.htlc.rHash,
              amountMsat: add.update.htlc.amountMsat,
              expiry: add.update.htlc.expiry,
            });
        }
        return;
      case "htlc_result":
        if (out.offerer === "local")
          await this.o.ledger.settlePayment(
            id,
            out.id,
            // The core's reasons are hex (the wire bytes); the payment keeps the text.
            out.result.kind === "failed"
              ? { kind: "failed", reason: reasonText(out.result.reason) }
              : out.result,
          );
        return;
      case "revoked":
        await this.recordRevocations(id);
        void this.publishTowerRecords();
        return;
      case "opened":
        this.o.log(`channel ${id}: open`);
        return;
      case "behind":
        this.o.log(
          `ALERT channel ${id}: data loss suspected, our state is behind (${out.problem}). The channel is stopped and will never broadcast our commitment; the peer was asked to close with its latest one, and the wallet sweeps our output from it. See deploy/README.md, "Restoring from backups".`,
        );
        return;
      case "failed":
        this.o.log(`channel ${id}: failed (${out.code}): ${out.problem}`);
        if (await this.o.wallet.releaseAnchor(id))
          this.o.log(`channel ${id}: its unbroadcast anchor's coins are free again`);
        // A peer's opening that failed before we signed its anchor: nothing of ours is at stake,
        // and nothing is kept (its error is sent already: sends go before effects).
        if (await this.o.store.forgetFailedOpening(id, this.o.replicaId)) {
          this.unhold(id);
          this.o.log(`channel ${id}: forgotten (a peer's opening that failed before its anchor)`);
        }
        return;
      case "disconnect":
        // The channel takes no more of the peer's messages for now: a new connection resends them.
        this.o.log(`channel ${id}: dropping the connection (${out.problem})`);
        this.o.peers.resync(m.peer);
        return;
      case "command_rejected":
        return;
    }
  }

  // ------------------------------------------------------------ the payee

  /**
   * Settles the peer's HTLCs committed on both sides: fulfilled with R from the signer when they
   * pay one of our invoices in full with time to spare, failed otherwise.
   */
  private async settleIncoming(id: string, stored?: ChannelState): Promise<void> {
    if (!this.held.has(id)) return;
    const state = stored ?? (await this.o.store.load(id));
    if (
      !state?.localCommit ||
      !state.remoteCommit ||
      (state.phase !== "normal" && state.phase !== "clearing")
    )
      return;
    const inRemote = new Set(state.remoteCommit.htlcs.filter((h) => h.offerer === "remote").map((h) => h.id));
    const removing = new Set(
      state.localLog.entries.flatMap((e) =>
        e.update.kind === "fulfill" || e.update.kind === "fail" ? [e.update.id] : [],
      ),
    );
    for (const h of state.localCommit.htlcs) {
      const key = `${id}:${h.id}`;
      if (h.offerer !== "remote" || !inRemote.has(h.id) || removing.has(h.id) || this.settling.has(key))
        continue;
      this.settling.add(key);
      try {
        const invoice = await this.o.ledger.invoice(h.rHash);
        let command: Command;
        if (!invoice) command = { kind: "fail_htlc", id: h.id, reason: reasonHex("unknown payment hash") };
        else if (h.amountMsat < invoice.amountMsat)
          command = {
            kind: "fail_htlc",
            id: h.id,
            reason: reasonHex(`amount below the invoice's ${invoice.amountMsat} msat`),
          };
        // Draft 3.1: past its redemption deadline (the core's rule, at the later of its tip and
        // ours), R could no longer be claimed on chain before the peer's timeout.
        else if (htlcDeadlinePassed({ ...state, chain: this.laterTip(state.chain) }, h.expiry))
          command = { kind: "fail_htlc", id: h.id, reason: reasonHex(EXPIRY_TOO_SOON) };
        else {
          const { r } = await this.o.signer.call("RevealInvoice", { index: invoice.signerIndex });
          crashPoint("channel.payee.revealed");
          command = { kind: "fulfill_htlc", id: h.id, r: hex(r) };
        }
        await this.input(id, { type: "command", command });
        if (command.kind === "fulfill_htlc") await this.o.ledger.markInvoiceSettled(h.rHash);
      } catch (e) {
        this.report(`channel ${id}: settling HTLC ${h.id}`, e);
        // Retried by the retry round: its resume settles again (e.g. the signer was down).
        this.noteFailure(id, e);
      } finally {
        this.settling.delete(key);
      }
    }
  }

  private laterTip(chain: ChannelState["chain"]): ChannelState["chain"] {
    return { height: Math.max(chain.height, this.tipHeight), time: Math.max(chain.time, this.tipTime) };
  }

  // ------------------------------------------------------------ leases and retries

  /** Renews our leases and takes channels whose lease expired (a replica died or stopped). */
  private async leaseRound(): Promise<void> {
    for (const row of await this.o.store.rows()) {
      const ours = this.held.has(row.id);
      if (!ours && (!LIVE(row.phase) || (row.leaseHeld && row.leaseOwner !== this.o.replicaId))) continue;
      if (!(await this.o.store.acquireLease(row.id, this.o.replicaId, this.o.leaseMs))) {
        if (ours) this.o.log(`channel ${row.id}: lease lost to another replica`);
        this.held.delete(row.id);
        continue;
      }
      if (ours) continue;
      await this.adopt(row);
    }
  }

  private async adopt(row: ChannelRow): Promise<void> {
    if (row.peerNodeId === undefined || row.signerChannel === undefined) return;
    this.meta.set(row.id, {
      peer: row.peerNodeId,
      signerChannel: row.signerChannel,
      awaitingConnection: false,
    });
    this.held.add(row.id);
    // Compared with the signer's records again at every takeover (CONFORMANCE 12), not only once.
    this.signerChecked.delete(row.id);
    this.o.log(`channel ${row.id}: running it here (lease taken)`);
    // Messages the gateway relayed while nobody ran the channel are lost, and ones the last holder
    // stored may be unsent: a new connection's authenticate exchange retransmits both ways.
    this.o.peers.resync(row.peerNodeId);
    // Whatever the last holder left half done: the signer request the state awaits, payee work.
    await this.input(row.id, { type: "resume" }).catch((e: unknown) => this.report(`channel ${row.id}`, e));
  }

  /**
   * Redials the peers of the live channels we run whose connection dropped (a gateway restart, a
   * network fault), where the operator told us their address; the authenticate exchange then
   * retransmits what is missing (draft 1.2). Peers that connected to us redial by themselves.
   */
  private async reconnectRound(): Promise<void> {
    const live = (await this.o.store.rows()).filter((r) => this.held.has(r.id) && LIVE(r.phase));
    if (live.length === 0) return;
    const connected = new Set((await this.o.peers.list()).map((p) => p.nodeId));
    for (const row of live) {
      const peer = row.peerNodeId;
      if (peer === undefined || connected.has(peer)) continue;
      const at = await this.o.ledger.peerAddress(peer);
      if (!at) continue;
      await this.o.peers
        .connect({ ...at, nodeId: peer })
        .then(() => this.o.log(`reconnected to ${peer.slice(0, 16)}… at ${at.host}:${at.port}`))
        .catch((e: unknown) => this.report(`reconnecting to ${peer.slice(0, 16)}…`, e));
    }
  }

  private noteFailure(id: string, e: unknown): void {
    const now = Date.now();
    const prev = this.retries.get(id);
    const attempt = (prev?.attempt ?? 0) + 1;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (attempt - 1));
    this.retries.set(id, { attempt, at: now + delay, since: prev?.since ?? now });
    const down = Math.round((now - (prev?.since ?? now)) / 1000);
    this.o.log(
      `ALERT channel ${id}: ${message(e)} (attempt ${attempt}, failing for ${down} s); retrying in ${delay / 1000} s`,
    );
  }

  /**
   * Why the signer's records show a later state than the channel's, if they do. The signer's
   * first: a step running meanwhile stores its state before it asks the signer, so the state read
   * after is never behind the records read before (unless it was restored).
   */
  private async signerBehind(id: string): Promise<string | undefined> {
    const status = await signerStatus(this.o.signer, this.signerChannel(id));
    const state = await this.o.store.load(id);
    if (!state?.localCommit || (state.phase !== "normal" && state.phase !== "clearing")) return undefined;
    return signerAhead(state, status);
  }

  /**
   * Gives the signer every revocation of the peer the store kept for it (written with the state
   * that received it); a failure is retried on the next round, so none is lost to a crash.
   */
  private async recordRevocations(id: string): Promise<void> {
    const m = this.meta.get(id);
    if (!m) return;
    for (const r of await this.o.store.unrecordedRevocations(id)) {
      await recordPeerRevocation(this.o.signer, m.signerChannel, r);
      crashPoint("channel.revocation.recorded");
      await this.o.store.markRevocationRecorded(id, r.number);
    }
  }

  /**
   * Hands the watchtower the records written so far; a failure leaves them for the next round
   * (every few seconds). Until published, the tower cannot punish those revoked commitments.
   */
  private async publishTowerRecords(): Promise<void> {
    await this.o.tower
      .publishPending()
      .catch((e: unknown) =>
        this.report(
          "ALERT revocation records not handed to the watchtower yet (retrying; is it running?)",
          e,
        ),
      );
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
    if (now >= this.nextRevocationRound) {
      this.nextRevocationRound = now + RECONNECT_EVERY_MS;
      const pending = await this.o.store.channelsWithUnrecordedRevocations().catch((e: unknown) => {
        this.report("listing unrecorded revocations", e);
        return [];
      });
      for (const id of pending.filter((x) => this.held.has(x)))
        await this.recordRevocations(id).catch((e: unknown) =>
          this.report(`ALERT channel ${id}: recording the peer's revocations with the signer`, e),
        );
      await this.publishTowerRecords();
    }
    for (const [id, r] of this.retries) {
      if (r.at > now || !this.held.has(id)) continue;
      r.at = Number.POSITIVE_INFINITY; // until this attempt ends
      await this.input(id, { type: "resume" }).catch(() => undefined);
    }
  }

  private report(what: string, e: unknown): void {
    this.o.log(`${what}: ${message(e)}`);
  }
}

/** A failure reason as the core's fail_htlc wants it: the wire bytes in hex (UTF-8 text). */
const reasonHex = (text: string): string => Buffer.from(text, "utf8").toString("hex");
/** A peer's fail reason (hex of the wire bytes) as text for the payment record. */
const reasonText = (hex: string): string => Buffer.from(hex, "hex").toString("utf8");

const message = (e: unknown): string =>
  e instanceof AggregateError
    ? `${e.message}: ${e.errors.map(message).join("; ")}`
    : e instanceof Error
      ? e.message
      : String(e);
