/*~ The channel service's one composition root: the store, ledger, wallet, resolution, node and
 * control-API backend, wired to Postgres, NATS and the signer. main.ts (the process) and the
 * cross-service tests (test/cross/harness.ts) both build the service here; the tests replace only
 * what stands for the outside world (the anchor's funding, the gateway's control, the chain's tip). */
import type { Msat } from "@ln/bitcoin";
import type { SignerClient } from "@ln/signer-client";
import { networks, type Network } from "bitcoinjs-lib";
import type { NatsConnection } from "nats";
import type pg from "pg";
import { ChannelNodeBackend } from "./api/node-backend.js";
import { ChannelNode } from "./channels/node.js";
import type { ChainPort, LogLine, PeerControl, WalletPort } from "./channels/ports.js";
import { ChannelStore } from "./channels/store.js";
import type { Config } from "./config.js";
import { consumeChainEvents, requestOutputWatch, requestWatch } from "./onchain/chain-link.js";
import { anchorOutput, broadcastTx, chainTip, watchScripts } from "./onchain/chain-requests.js";
import {
  DEFAULT_GOSSIP_SETTINGS,
  type AnchorLookup,
  type Gossip,
  type GossipCounters,
  type GossipSettings,
  type GossipSigner,
} from "./gossip/gossip.js";
import { Resolver } from "./onchain/resolution.js";
import { TowerLink, towerRecordsSubject } from "./onchain/tower-link.js";
import { Wallet } from "./onchain/wallet.js";
import { Ledger } from "./payments/ledger.js";
import { Payer, type ChannelUpdateSink } from "./payments/payer.js";
import { reporter } from "./channels/errors.js";
import { decodeInvoice } from "@ln/invoice";
import { DEFAULT_POLICY } from "@ln/channel-core";
import { signInvoiceRequest } from "./payments/invoices.js";
import { defaultForwardingPolicy, ForwardingPolicies, type ForwardingPolicy } from "./forwarding/policy.js";
import type { InboundOpeningLimits } from "./peers/inbound-openings.js";
import { connectPeer, listPeers, resyncPeer } from "./peers/peer-requests.js";

/** The settings the service is built with (config.ts gives them in production). */
export type ChannelServiceSettings = Pick<
  Config,
  "databaseSchema" | "prefix" | "replicaId" | "leaseMs" | "network" | "terms" | "walletFeeRate"
> & {
  /** Bounds on the channels peers open to us (default DEFAULT_INBOUND_OPENING_LIMITS). */
  inboundOpenings?: InboundOpeningLimits | undefined;
  /** ChannelNodeOptions.reconnectMs (default RECONNECT_EVERY_MS). */
  reconnectMs?: number | undefined;
  /** ChannelNodeOptions.maxPeerBacklog (default 1000). */
  maxPeerBacklog?: number | undefined;
  /** The forwarding policy of channels without their own (default: defaultForwardingPolicy of terms.delayBlocks). */
  forwarding?: ForwardingPolicy | undefined;
  /** The version the control API reports. */
  version: string;
  /** Gossip (config.ts GOSSIP_*; default DEFAULT_GOSSIP_SETTINGS). */
  gossip?: GossipSettings | undefined;
};

/** Parts a test puts in place of the outside world; production passes none. */
export interface ChannelServiceStandIns {
  /** The books (a test may hold the payee's invoice lookups back). */
  ledger?: Ledger;
  /** The chain watcher as the node sees it (broadcasts, the tip, anchor watches). */
  chain?: ChainPort;
  /** The node's wallet (anchor funding); the Wallet still sweeps the resolution's claims. */
  anchors?: WalletPort;
  /** The peer gateway's control requests. */
  peers?: PeerControl;
  /** The durable consumer of chain events (default `channel-<prefix>-<replicaId>`). */
  durable?: string;
  /** false: chain events reach the node only, not the Wallet (its anchors are not ours). */
  walletFollowsChain?: boolean;
}

export interface ChannelServiceDeps {
  pool: pg.Pool;
  nc: NatsConnection;
  /** The signer, as this service's client (role channel). */
  signer: SignerClient;
  /** The node's id (the signer's node key). */
  nodeId: Buffer;
  settings: ChannelServiceSettings;
  log: LogLine;
  /** A commitment round completed (the channel_commitment_round_seconds histogram). */
  onCommitRound?: (seconds: number) => void;
  /** We sent an update_commit covering `updates` updates (the channel_commitment_updates histogram). */
  onCommitSent?: (updates: number) => void;
  /** Where a channel_update carried in a payment's failure goes (default: gossip, node.gossip). */
  channelUpdates?: ChannelUpdateSink;
  /** Gossip's drops and acceptances (metrics.ts registerGossipMetrics). */
  gossipCounters?: GossipCounters;
  standIns?: ChannelServiceStandIns;
}

export interface ChannelService {
  store: ChannelStore;
  ledger: Ledger;
  wallet: Wallet;
  resolution: Resolver;
  node: ChannelNode;
  peers: PeerControl;
  /** Each channel's forwarding policy (forwarding/policy.ts). */
  policies: ForwardingPolicies;
  /** Gossip and the graph (gossip/gossip.ts): `gossip.apply` is the ChannelUpdateSink, `gossip.graph` the store. */
  gossip: Gossip;
  /** What the control API calls. */
  backend: ChannelNodeBackend;
  /** Pays invoices: routes, attempts, retries (payments/payer.ts). */
  payer: Payer;
  /** Takes leases and subscribes to the gateway, then follows the chain watcher's events. */
  start(): Promise<void>;
  /** Stops following chain events, then the node (its leases released). */
  stop(): Promise<void>;
}

const NETWORKS: Record<ChannelServiceSettings["network"], Network> = {
  bitcoin: networks.bitcoin,
  testnet: networks.testnet,
  regtest: networks.regtest,
};

/**
 * What our invoices ask of a final HTLC's expiry beyond the tip: the payee fulfils only before the
 * HTLC's redemption deadline, expiry - delay - margin (draft 3.1), so the delay and margin plus
 * 12 blocks for the payment to arrive and settle.
 */
export const minFinalCltvExpiryDelta = (delayBlocks: number): number =>
  delayBlocks + DEFAULT_POLICY.deadlineMarginBlocks + 12;

/** Builds the channel service (its schema migrated); nothing runs until start(). */
export async function buildChannelService(deps: ChannelServiceDeps): Promise<ChannelService> {
  const { pool, nc, signer, nodeId, settings: s, log } = deps;
  const standIns = deps.standIns ?? {};
  const store = new ChannelStore(pool, s.databaseSchema);
  await store.migrate();
  const ledger = standIns.ledger ?? new Ledger(pool, s.databaseSchema);
  const policies = new ForwardingPolicies(
    pool,
    s.databaseSchema,
    s.forwarding ?? defaultForwardingPolicy(s.terms.delayBlocks),
  );
  const chainPrefix = `${s.prefix}.chain`;
  const peerPrefix = `${s.prefix}.peer`;
  const wallet = new Wallet({
    pool,
    schema: s.databaseSchema,
    signer,
    chain: {
      watchScripts: (scripts) => watchScripts(nc, chainPrefix, scripts),
      broadcast: (hex) => broadcastTx(nc, chainPrefix, hex),
    },
    network: NETWORKS[s.network],
    feeRatePerKvb: s.walletFeeRate,
  });
  const peers: PeerControl = standIns.peers ?? {
    connect: (p: { host: string; port: number; nodeId: string }) => connectPeer(nc, peerPrefix, p),
    list: () => listPeers(nc, peerPrefix),
    resync: (nodeId: string) => resyncPeer(nc, peerPrefix, nodeId),
  };
  const resolution = new Resolver({
    pool,
    schema: s.databaseSchema,
    store,
    ledger,
    signer,
    wallet,
    watchOutput: (id, txid, vout) => requestOutputWatch(nc, chainPrefix, id, txid, vout),
    feeRate: s.walletFeeRate,
    log,
  });
  const node = new ChannelNode({
    store,
    ledger,
    signer,
    nodeId,
    nc,
    peerPrefix,
    chain: standIns.chain ?? {
      broadcast: (hex) => broadcastTx(nc, chainPrefix, hex),
      tip: () => chainTip(nc, chainPrefix),
      watchAnchor: (id, o) => requestWatch(nc, chainPrefix, id, o),
    },
    wallet: standIns.anchors ?? wallet,
    peers,
    tower: new TowerLink({ js: nc.jetstream(), store, subject: towerRecordsSubject(s.prefix) }),
    resolution,
    replicaId: s.replicaId,
    leaseMs: s.leaseMs,
    terms: s.terms,
    ...(s.inboundOpenings ? { inboundOpenings: s.inboundOpenings } : {}),
    ...(s.maxPeerBacklog ? { maxPeerBacklog: s.maxPeerBacklog } : {}),
    ...(s.reconnectMs ? { reconnectMs: s.reconnectMs } : {}),
    ...(deps.onCommitRound ? { onCommitRound: deps.onCommitRound } : {}),
    ...(deps.onCommitSent ? { onCommitSent: deps.onCommitSent } : {}),
    forwarding: { pool, policies, prefix: s.prefix },
    gossip: {
      settings: s.gossip ?? DEFAULT_GOSSIP_SETTINGS,
      signer: gossipSigner(signer),
      anchors: anchorLookup(nc, chainPrefix),
      counters: deps.gossipCounters,
    },
    log,
  });
  // Built after the backend it sends through; the backend wakes it when a payment is asked for.
  const wakePayer = { notify: (): void => undefined };
  const backend = new ChannelNodeBackend({
    payer: { notify: () => wakePayer.notify() },
    node,
    resolution,
    store,
    ledger,
    wallet,
    peers,
    policies,
    pool,
    schema: s.databaseSchema,
    nodeId: nodeId.toString("hex"),
    network: s.network,
    version: s.version,
    invoiceHash: async (index: number, amountMsat: Msat) => {
      // The amount too: the signer then reveals R only for an HTLC paying at least it.
      const { r_hash } = await signer.call("InvoiceHash", { index, amount_msat: amountMsat });
      return r_hash.toString("hex");
    },
    signInvoice: async (index, fields) =>
      (await signer.call("SignInvoice", signInvoiceRequest(index, fields))).invoice,
    minFinalCltvExpiryDelta: minFinalCltvExpiryDelta(s.terms.delayBlocks),
  });

  const gossip = node.gossip;
  if (!gossip) throw new Error("the node was built without gossip");
  const invoicePayer = new Payer({
    pool,
    schema: s.databaseSchema,
    store,
    nc,
    prefix: s.prefix,
    nodeId: nodeId.toString("hex"),
    holds: (id) => node.holds(id),
    height: () => node.height,
    decode: decodeInvoice,
    send: (a) => backend.sendAttempt(a),
    updates: deps.channelUpdates ?? gossip,
    log,
    report: reporter(log),
  });
  wakePayer.notify = () => invoicePayer.notify();

  let chain: { stop(): Promise<void> } | undefined;
  const walletFollowsChain = standIns.walletFollowsChain ?? true;
  return {
    store,
    ledger,
    wallet,
    resolution,
    node,
    peers,
    policies,
    gossip,
    backend,
    payer: invoicePayer,
    async start() {
      await node.start();
      invoicePayer.start();
      chain = await consumeChainEvents({
        nc,
        prefix: chainPrefix,
        durable: standIns.durable ?? `channel-${s.prefix}-${s.replicaId}`,
        handle: async (ev) => {
          if (walletFollowsChain) await wallet.onChainEvent(ev);
          await node.onChainEvent(ev);
        },
        log,
      });
      void wallet
        .rebroadcastUnconfirmed()
        .then((n) => n > 0 && log.info(`re-broadcast ${n} unconfirmed wallet transaction(s)`))
        .catch((e: unknown) =>
          log.warn(`re-broadcasting wallet transactions: ${e instanceof Error ? e.message : String(e)}`),
        );
    },
    async stop() {
      await invoicePayer.stop();
      await chain?.stop();
      await node.stop();
    },
  };
}

/** The signer's gossip RPCs (channel role). */
export function gossipSigner(signer: SignerClient): GossipSigner {
  return {
    async signChannelAnnouncement(p) {
      const r = await signer.call("SignChannelAnnouncement", {
        channel: p.signerChannel,
        short_channel_id: p.shortChannelId.toString(),
        other_node_id: p.peerNodeId,
        other_commit_key: p.peerCommitKey,
      });
      return { nodeSig: Buffer.from(r.node_sig), commitSig: Buffer.from(r.commit_sig) };
    },
    async signChannelUpdate(u) {
      const r = await signer.call("SignChannelUpdate", {
        short_channel_id: u.shortChannelId.toString(),
        direction: u.direction,
        timestamp: u.timestamp,
        disabled: u.disabled,
        cltv_expiry_delta: u.cltvExpiryDelta,
        htlc_minimum_msat: u.htlcMinimumMsat.toString(),
        htlc_maximum_msat: u.htlcMaximumMsat.toString(),
        fee_base_msat: Number(u.feeBaseMsat),
        fee_proportional_millionths: Number(u.feeProportionalMillionths),
      });
      return Buffer.from(r.signature);
    },
    async signNodeAnnouncement(n) {
      const r = await signer.call("SignNodeAnnouncement", n);
      return Buffer.from(r.signature);
    },
  };
}

/** The chain watcher's anchor_output, "not found" as an empty output. */
export function anchorLookup(nc: NatsConnection, chainPrefix: string): AnchorLookup {
  return async (position) => {
    const r = await anchorOutput(nc, chainPrefix, position);
    return r.found ? r : { found: false, txid: "", script: Buffer.alloc(0), valueSat: 0n, unspent: false };
  };
}
