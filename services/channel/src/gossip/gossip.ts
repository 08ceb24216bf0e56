/**
 * Gossip in the channel service (DESIGN.md 10), the shell around rules.ts and @ln/gossip: received
 * gossip is rate-limited per peer, verified (signatures; an announcement's anchor on chain through
 * the chain watcher), stored in the graph (graph-store.ts) and relayed once to every other
 * connected peer; our own channels are announced (the half exchange of rules.ts), with our
 * channel_update from their forwarding policy, disabled while the peer is gone and refreshed; our
 * node_announcement; a new peer gets what we know; a channel whose anchor is spent leaves the graph.
 * Bad gossip is dropped and counted by reason; it never reaches a channel.
 */
import { msat, shortChannelIdFromBigint, shortChannelIdToBigint } from "@ln/bitcoin";
import {
  channelAnnouncementDigest,
  checkAnchor,
  checkTimestamp,
  decodeChannelUpdate,
  encodeChannelUpdate,
  GossipError,
  GossipRateLimiter,
  verifyChannelAnnouncement,
  verifyChannelUpdate,
  verifyNodeAnnouncement,
  verifySignature,
  type ChannelAnnouncement,
  type ChannelUpdate,
  type NodeAnnouncement,
} from "@ln/gossip";
import { quoteSchema } from "@ln/postgres";
import { decodePkt, encodePkt, type PktOf } from "@ln/proto";
import type pg from "pg";
import type { Report } from "../channels/errors.js";
import type { LogLine, PeerControl } from "../channels/ports.js";
import type { ChannelRegistry } from "../channels/registry.js";
import type { ChannelStore } from "../channels/store.js";
import type { ForwardingPolicies } from "../forwarding/policy.js";
import type { ChainTip } from "../onchain/tip.js";
import { GraphStore } from "./graph-store.js";
import {
  announceable,
  combineHalves,
  defaultAlias,
  halfAnnouncement,
  halfSignedBy,
  isHalf,
  nextTimestamp,
  ourDirection,
  recheckSlice,
  updateDue,
  updateFromPolicy,
  type UpdateFields,
} from "./rules.js";

export type GossipPkt = PktOf<"channel_announcement"> | PktOf<"channel_update"> | PktOf<"node_announcement">;

/** Applies a channel_update carried in a BOLT #4 failure if valid and newer (contracts.md). */
export interface ChannelUpdateSink {
  apply(update: Buffer): Promise<boolean>;
}

/** The signer's gossip RPCs (allowed to the channel role only). */
export interface GossipSigner {
  signChannelAnnouncement(p: {
    signerChannel: number;
    shortChannelId: bigint;
    peerNodeId: Buffer;
    peerCommitKey: Buffer;
  }): Promise<{ nodeSig: Buffer; commitSig: Buffer }>;
  signChannelUpdate(u: UpdateFields): Promise<Buffer>;
  signNodeAnnouncement(n: { timestamp: number; alias: string; addresses: string[] }): Promise<Buffer>;
}

/** The chain watcher's `anchor_output` (chain-requests.ts). */
export type AnchorLookup = (p: { height: number; txIndex: number; outputIndex: number }) => Promise<{
  found: boolean;
  txid: string;
  script: Buffer;
  valueSat: bigint;
  unspent: boolean;
}>;

/** The counters (metrics.ts registers them as ln_gossip_dropped_total{reason}, ln_gossip_accepted_total{kind}). */
export interface GossipCounters {
  dropped(reason: string): void;
  accepted(kind: string): void;
}

export interface GossipSettings {
  /** Blocks deep an anchor must be before we announce its channel (GOSSIP_ANNOUNCE_DEPTH, 6). */
  announceDepth: number;
  /** Our node_announcement's alias (GOSSIP_ALIAS; default from the node id). */
  alias?: string | undefined;
  /** Our node_announcement's addresses, "host:port" (GOSSIP_ADDRESSES). */
  addresses: string[];
  /** Our channel_updates are made anew after this long even unchanged (GOSSIP_REFRESH_S, 1 day). */
  refreshSeconds: number;
  /** Per-peer token bucket (GOSSIP_RATE_BURST, GOSSIP_RATE_PER_S). */
  rateBurst: number;
  ratePerSecond: number;
  /** Graph channels whose anchor is rechecked per new tip (GOSSIP_RECHECK_PER_BLOCK). */
  recheckPerBlock: number;
  /** Messages a new peer gets at most (GOSSIP_SYNC_MAX). */
  syncMax: number;
  /** How often our own announcements are looked at without a reason (default 5000 ms). */
  roundMs?: number;
  /**
   * A peer gone this long before our channel_update says disabled (GOSSIP_DISABLE_AFTER_S,
   * default 0): meanwhile the forwarder refuses HTLCs to it (temporary_channel_failure) and
   * payers learn that from the failure, as they would of a brief absence.
   */
  disableAfterSeconds?: number;
}

export const DEFAULT_GOSSIP_SETTINGS: GossipSettings = {
  announceDepth: 6,
  addresses: [],
  refreshSeconds: 86_400,
  rateBurst: 200,
  ratePerSecond: 20,
  recheckPerBlock: 50,
  syncMax: 20_000,
};

export interface GossipOptions {
  pool: pg.Pool;
  schema: string;
  store: ChannelStore;
  registry: ChannelRegistry;
  policies: ForwardingPolicies;
  tip: ChainTip;
  nodeId: Buffer;
  signer: GossipSigner;
  anchors: AnchorLookup;
  /** A gossip pkt to a peer, outside any channel's numbering (peer-link.ts sendGossip). */
  send: (peer: string, bytes: Uint8Array) => void;
  peers: PeerControl;
  settings: GossipSettings;
  counters?: GossipCounters | undefined;
  log: LogLine;
  report: Report;
  /** The clock in milliseconds (tests). */
  now?: () => number;
}

/** Messages sent to a new peer before a pause, and the pause. */
const SYNC_BATCH = 100;
const SYNC_PAUSE_MS = 20;
/** A half announcement is sent again after this long while the channel is not in the graph. */
const HALF_EVERY_MS = 10_000;
/** Unchanged channel_updates made anew per round at most (GOSSIP_REFRESH_S). */
const REFRESHES_PER_ROUND = 20;
/** New peers remembered (each one makes our node_announcement anew once). */
const MAX_SEEN_PEERS = 10_000;
/** The connected peers are asked from the gateway again after this long. */
const PEERS_EVERY_MS = 30_000;

const hex = (b: Buffer): string => b.toString("hex");

export class Gossip implements ChannelUpdateSink {
  readonly graph: GraphStore;
  private readonly limiter: GossipRateLimiter;
  private readonly now: () => number;
  private readonly ours: string;
  private readonly channels: string;
  /** Peers with a live connection (the gateway's list, then its events). */
  private readonly connected = new Set<string>();
  private readonly startedAt: number;
  /** Peers a sync (the graph for a new connection) is running for. */
  private readonly syncing = new Set<string>();
  /** whenConnected's waiters, per peer. */
  private readonly connectWaiters = new Map<string, Set<(up: boolean) => void>>();
  private peersKnownAt = 0;
  /** Each peer's last connection event (kept against an older answer of the gateway's list). */
  private readonly peerEvents = new Map<string, { at: number; up: boolean }>();
  /** Since when each peer has been seen gone (GOSSIP_DISABLE_AFTER_S). */
  private readonly goneSince = new Map<string, number>();
  private readonly halfSentAt = new Map<string, number>();
  private recheckCursor: bigint | undefined;
  private readonly droppedLoggedAt = new Map<string, number>();
  private nodeDue = true;
  private refreshesLeft = 0;
  private rechecking = false;
  /** Peers this process has seen connect: a new one is a reason for a new node_announcement. */
  private readonly seenPeers = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private working: Promise<void> | undefined;
  private again = false;
  private stopped = false;

  constructor(private readonly o: GossipOptions) {
    this.graph = new GraphStore(o.pool, o.schema);
    this.now = o.now ?? Date.now;
    this.startedAt = this.now();
    this.limiter = new GossipRateLimiter({
      burst: o.settings.rateBurst,
      perSecond: o.settings.ratePerSecond,
      now: this.now,
    });
    this.ours = hex(o.nodeId);
    this.channels = `${quoteSchema(o.schema)}.channels`;
  }

  start(): void {
    this.stopped = false;
    this.timer = setInterval(() => this.poke(), this.o.settings.roundMs ?? 5000);
    this.poke();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.working;
  }

  /** Whether the peer has a connection; true while we do not know (the gateway did not answer yet). */
  isConnected(peer: string): boolean {
    return this.peersKnownAt === 0 || this.connected.has(peer);
  }

  /**
   * Whether the peer is connected, or connects before it has been gone `graceMs` (since it went,
   * or since we started): a connection is dropped and made again when either end's channel
   * service restarts (its resync), which must not fail an HTLC; a peer gone longer is answered at
   * once.
   */
  whenConnected(peer: string, graceMs: number): Promise<boolean> {
    if (this.isConnected(peer)) return Promise.resolve(true);
    const ms = graceMs - (this.now() - (this.goneSince.get(peer) ?? this.startedAt));
    if (ms <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (up: boolean): void => {
        clearTimeout(timer);
        this.connectWaiters.get(peer)?.delete(done);
        resolve(up);
      };
      const timer = setTimeout(() => done(this.isConnected(peer)), ms);
      const waiting = this.connectWaiters.get(peer) ?? new Set();
      waiting.add(done);
      this.connectWaiters.set(peer, waiting);
    });
  }

  /** Our latest channel_update of a channel (the bare message, for BOLT #4 failures), if any. */
  async latestUpdate(scid: bigint, peer: string): Promise<Buffer | undefined> {
    const p = await this.graph.policy(scid, ourDirection(this.o.nodeId, Buffer.from(peer, "hex")));
    if (!p) return undefined;
    const pkt = decodePkt(p.channelUpdate);
    if (pkt.kind !== "channel_update") return undefined;
    const { kind: _kind, ...u } = pkt;
    return encodeChannelUpdate(u);
  }

  // ------------------------------------------------------------ receiving

  /**
   * Takes a gossip pkt of a peer into its budget, synchronously (a flood never queues): false
   * when it is dropped for the rate limit.
   */
  admit(peer: string): boolean {
    if (this.limiter.take(peer)) return true;
    this.drop("RATE_LIMITED", peer, "gossip", "over the peer's rate limit");
    return false;
  }

  /** A gossip pkt of a peer, admitted: verified, stored, relayed; or dropped and counted. */
  async receive(peer: string, pkt: GossipPkt): Promise<void> {
    switch (pkt.kind) {
      case "channel_announcement": {
        const { kind: _k, ...a } = pkt;
        if (isHalf(a)) return this.receiveHalf(peer, a);
        await this.acceptAnnouncement(a, peer);
        return;
      }
      case "channel_update": {
        const { kind: _k, ...u } = pkt;
        await this.acceptUpdate(u, peer, true);
        return;
      }
      case "node_announcement": {
        const { kind: _k, ...n } = pkt;
        await this.acceptNode(n, peer);
        return;
      }
    }
  }

  /** ChannelUpdateSink: a channel_update carried in a failure, stored if valid and newer. */
  async apply(update: Buffer): Promise<boolean> {
    let u: ChannelUpdate;
    try {
      u = decodeChannelUpdate(update);
    } catch (e) {
      if (!(e instanceof GossipError)) throw e;
      this.drop(e.code, undefined, "channel_update", e.problem);
      return false;
    }
    return this.acceptUpdate(u, undefined, false);
  }

  private drop(reason: string, peer: string | undefined, kind: string, problem: string): false {
    this.o.counters?.dropped(reason);
    // Logged at most once per reason every 10 s: a flood is counted, not written out line by line.
    const now = this.now();
    if (now - (this.droppedLoggedAt.get(reason) ?? -Infinity) < 10_000) return false;
    this.droppedLoggedAt.set(reason, now);
    this.o.log.info(
      `gossip: dropped a ${kind}${peer ? ` of ${peer.slice(0, 16)}…` : ""} (${reason}): ${problem}`,
      {
        reason,
      },
    );
    return false;
  }

  private async acceptAnnouncement(a: ChannelAnnouncement, from: string | undefined): Promise<boolean> {
    const kind = "channel_announcement";
    if (await this.graph.channel(a.shortChannelId))
      return this.drop("DUPLICATE", from, kind, "the channel is in the graph already");
    const v = verifyChannelAnnouncement(a);
    if (!v.ok) return this.drop(v.code, from, kind, v.problem);
    let place;
    try {
      place = shortChannelIdFromBigint(a.shortChannelId);
    } catch {
      return this.drop("MALFORMED", from, kind, "short_channel_id out of range");
    }
    const out = await this.o.anchors(place);
    const anchor = checkAnchor(out, a.commitKey1, a.commitKey2);
    if (!anchor.ok) return this.drop(anchor.code, from, kind, anchor.problem);
    const bytes = encodePkt({ kind, ...a });
    const added = await this.graph.addChannel({
      shortChannelId: a.shortChannelId,
      node1: hex(a.nodeId1),
      node2: hex(a.nodeId2),
      commitKey1: hex(a.commitKey1),
      commitKey2: hex(a.commitKey2),
      anchorTxid: out.txid,
      anchorVout: place.outputIndex,
      capacitySat: out.valueSat,
      announcement: bytes,
    });
    if (!added) return this.drop("DUPLICATE", from, kind, "another replica stored it first");
    this.o.counters?.accepted(kind);
    this.o.log.info(
      `gossip: channel ${a.shortChannelId} of ${hex(a.nodeId1).slice(0, 16)}… and ${hex(a.nodeId2).slice(0, 16)}… in the graph`,
    );
    this.relay(bytes, from);
    if (hex(a.nodeId1) === this.ours || hex(a.nodeId2) === this.ours) {
      // Our node_announcement is taken by others only once they know a channel of ours.
      this.nodeDue = true;
      this.poke();
    }
    return true;
  }

  /** A peer's half of the announcement of our channel with it: completed with ours. */
  private async receiveHalf(peer: string, a: ChannelAnnouncement): Promise<void> {
    const kind = "channel_announcement";
    const by = halfSignedBy(a);
    const signer = by === 1 ? a.nodeId1 : by === 2 ? a.nodeId2 : undefined;
    const other = by === 1 ? a.nodeId2 : a.nodeId1;
    if (!signer || hex(signer) !== peer || hex(other) !== this.ours) {
      this.drop("MALFORMED", peer, kind, "a half announcement not of a channel between the sender and us");
      return;
    }
    if (await this.graph.channel(a.shortChannelId)) {
      this.drop("DUPLICATE", peer, kind, "the channel is in the graph already");
      return;
    }
    let digest: Buffer;
    try {
      digest = channelAnnouncementDigest(a);
    } catch (e) {
      if (!(e instanceof GossipError)) throw e;
      this.drop(e.code, peer, kind, e.problem);
      return;
    }
    const [nodeSig, commitSig, commitKey] =
      by === 1 ? [a.nodeSig1, a.commitSig1, a.commitKey1] : [a.nodeSig2, a.commitSig2, a.commitKey2];
    if (!verifySignature(digest, signer, nodeSig) || !verifySignature(digest, commitKey, commitSig)) {
      this.drop("BAD_SIGNATURE", peer, kind, "the half's signatures do not sign it");
      return;
    }
    const ours = await this.ownHalf(a.shortChannelId, peer);
    if (!ours) {
      this.drop(
        "UNKNOWN_CHANNEL",
        peer,
        kind,
        "no public channel of ours at that short_channel_id with the sender",
      );
      return;
    }
    const full = combineHalves(ours, a);
    if (!full) {
      this.drop("ANCHOR_MISMATCH", peer, kind, "the half does not announce our channel's keys");
      return;
    }
    await this.acceptAnnouncement(full, undefined);
  }

  /** Our half of the announcement of our channel at `scid` with `peer`, if we announce it. */
  private async ownHalf(scid: bigint, peer: string): Promise<ChannelAnnouncement | undefined> {
    const row = await this.o.store.channelByShortId(scid);
    if (!row || row.peerNodeId !== peer || row.signerChannel === undefined) return undefined;
    if (!(await this.isPublic(row.id))) return undefined;
    const state = await this.o.store.load(row.id);
    if (!state?.remote || state.phase !== "normal") return undefined;
    const peerNodeId = Buffer.from(peer, "hex");
    const peerCommitKey = Buffer.from(state.remote.commitKey, "hex");
    const sigs = await this.o.signer.signChannelAnnouncement({
      signerChannel: row.signerChannel,
      shortChannelId: scid,
      peerNodeId,
      peerCommitKey,
    });
    return halfAnnouncement({
      shortChannelId: scid,
      ourNodeId: this.o.nodeId,
      peerNodeId,
      ourCommitKey: Buffer.from(state.local.commitKey, "hex"),
      peerCommitKey,
      ...sigs,
    });
  }

  private async isPublic(channelId: string): Promise<boolean> {
    const r = await this.o.pool.query<{ private: boolean }>(
      `SELECT private FROM ${this.channels} WHERE id = $1`,
      [channelId],
    );
    return r.rows[0]?.private === false;
  }

  private async acceptUpdate(u: ChannelUpdate, from: string | undefined, relay: boolean): Promise<boolean> {
    const kind = "channel_update";
    const ch = await this.graph.channel(u.shortChannelId);
    if (!ch) return this.drop("UNKNOWN_CHANNEL", from, kind, `no channel ${u.shortChannelId} in the graph`);
    const v = verifyChannelUpdate(u, Buffer.from(u.direction === 0 ? ch.node1 : ch.node2, "hex"));
    if (!v.ok) return this.drop(v.code, from, kind, v.problem);
    const t = checkTimestamp(u.timestamp, { nowSeconds: Math.floor(this.now() / 1000) });
    if (!t.ok) return this.drop(t.code, from, kind, t.problem);
    const bytes = encodePkt({ kind, ...u });
    const put = await this.graph.putPolicy({ ...u, channelUpdate: bytes });
    if (put === "unknown") return this.drop("UNKNOWN_CHANNEL", from, kind, "the channel left the graph");
    if (put === "stale")
      return this.drop("STALE_TIMESTAMP", from, kind, `not newer than ours (${u.timestamp})`);
    this.o.counters?.accepted(kind);
    if (relay) this.relay(bytes, from);
    return true;
  }

  private async acceptNode(n: NodeAnnouncement, from: string | undefined): Promise<boolean> {
    const kind = "node_announcement";
    const v = verifyNodeAnnouncement(n);
    if (!v.ok) return this.drop(v.code, from, kind, v.problem);
    const t = checkTimestamp(n.timestamp, { nowSeconds: Math.floor(this.now() / 1000) });
    if (!t.ok) return this.drop(t.code, from, kind, t.problem);
    const bytes = encodePkt({ kind, ...n });
    const put = await this.graph.putNode({ ...n, nodeId: hex(n.nodeId), nodeAnnouncement: bytes });
    if (put === "unknown")
      return this.drop("UNKNOWN_NODE", from, kind, "no channel of that node in the graph");
    if (put === "stale")
      return this.drop("STALE_TIMESTAMP", from, kind, `not newer than ours (${n.timestamp})`);
    this.o.counters?.accepted(kind);
    this.relay(bytes, from);
    return true;
  }

  /** Once to every connected peer but the one it came from. */
  private relay(bytes: Buffer, from: string | undefined): void {
    for (const peer of this.connected) if (peer !== from) this.o.send(peer, bytes);
  }

  // ------------------------------------------------------------ peers and the chain

  /** A new connection: the peer gets what we know (bounded, paced); our updates are looked at. */
  onConnected(peer: string): void {
    this.connected.add(peer);
    for (const done of this.connectWaiters.get(peer) ?? []) done(true);
    this.connectWaiters.delete(peer);
    if (!this.seenPeers.has(peer) && this.seenPeers.size < MAX_SEEN_PEERS) {
      this.seenPeers.add(peer);
      this.nodeDue = true;
    }
    this.peerEvents.set(peer, { at: this.now(), up: true });
    this.goneSince.delete(peer);
    this.poke();
    // One sync per peer at a time: reconnecting must not start another copy of the graph.
    if (this.syncing.has(peer)) return;
    this.syncing.add(peer);
    void this.sync(peer)
      .catch((e: unknown) => this.o.report(`gossip sync to ${peer.slice(0, 16)}`, e))
      .finally(() => this.syncing.delete(peer));
  }

  onDisconnected(peer: string): void {
    this.connected.delete(peer);
    this.peerEvents.set(peer, { at: this.now(), up: false });
    // Bounded: throwaway node ids must not grow it (our channels' peers are also set by disabledFor).
    if (!this.goneSince.has(peer) && this.goneSince.size < MAX_SEEN_PEERS)
      this.goneSince.set(peer, this.now());
    // The peer's bucket is kept: a reconnection must not buy a fresh burst (the limiter is bounded).
    this.poke();
  }

  private async sync(peer: string): Promise<void> {
    const all = await this.graph.everything(this.o.settings.syncMax);
    for (let i = 0; i < all.length; i += SYNC_BATCH) {
      if (this.stopped || !this.connected.has(peer)) return;
      for (const b of all.slice(i, i + SYNC_BATCH)) this.o.send(peer, b);
      await new Promise((r) => setTimeout(r, SYNC_PAUSE_MS));
    }
  }

  /** A new tip: a bounded slice of the graph's anchors rechecked, spent ones removed. */
  async onTip(): Promise<void> {
    this.poke();
    // One recheck at a time: blocks that come during one are covered by the next slices.
    if (this.rechecking) return;
    this.rechecking = true;
    try {
      await this.recheck();
    } finally {
      this.rechecking = false;
    }
  }

  private async recheck(): Promise<void> {
    const { slice, cursor } = recheckSlice(
      await this.graph.channelIds(),
      this.recheckCursor,
      this.o.settings.recheckPerBlock,
    );
    this.recheckCursor = cursor;
    for (const scid of slice) {
      const out = await this.o.anchors(shortChannelIdFromBigint(scid));
      if (out.found && out.unspent) continue;
      if (await this.graph.removeChannel(scid))
        this.o.log.info(
          `gossip: channel ${scid} left the graph (its anchor is ${out.found ? "spent" : "gone"})`,
        );
    }
  }

  /** Our own announcements looked at now (a policy change, a connection, a block), or after the running round. */
  poke(): void {
    if (this.stopped) return;
    if (this.working) {
      this.again = true;
      return;
    }
    this.working = (async () => {
      try {
        do {
          this.again = false;
          await this.round();
        } while (this.again && !this.stopped);
      } catch (e) {
        this.o.report("gossip round", e);
      } finally {
        this.working = undefined;
      }
    })();
  }

  // ------------------------------------------------------------ our own

  private async round(): Promise<void> {
    const now = this.now();
    this.refreshesLeft = REFRESHES_PER_ROUND;
    if (now - this.peersKnownAt >= PEERS_EVERY_MS) {
      try {
        const asked = this.now();
        const list = await this.o.peers.list();
        // Events since the question are newer than its answer.
        const after = [...this.peerEvents].filter(([, e]) => e.at >= asked);
        this.connected.clear();
        for (const p of list) this.connected.add(p.nodeId);
        for (const [peer, e] of after)
          if (e.up) this.connected.add(peer);
          else this.connected.delete(peer);
        this.peersKnownAt = now;
        for (const [peer, e] of this.peerEvents)
          if (e.at < asked - PEERS_EVERY_MS) this.peerEvents.delete(peer);
      } catch (e) {
        this.o.log.warn(`gossip: the gateway's peers: ${e instanceof Error ? e.message : String(e)}`);
      }
    }
    const r = await this.o.pool.query<{ id: string; private: boolean }>(
      `SELECT id, private FROM ${this.channels} WHERE phase = 'normal' AND short_channel_id IS NOT NULL`,
    );
    for (const { id, private: priv } of r.rows) {
      if (!this.o.registry.holds(id)) continue;
      try {
        await this.announceOwn(id, priv, now);
      } catch (e) {
        this.o.report(`gossip: channel ${id}`, e);
      }
    }
    if (this.nodeDue) await this.announceNode(now);
  }

  private async announceOwn(id: string, priv: boolean, now: number): Promise<void> {
    const row = await this.o.store.row(id);
    if (!row?.peerNodeId || row.shortChannelId === undefined) return;
    const scid = shortChannelIdToBigint(row.shortChannelId);
    if (
      !announceable(
        { phase: row.phase, shortChannelId: scid, private: priv },
        this.o.tip.height,
        this.o.settings.announceDepth,
      )
    )
      return;
    const peer = row.peerNodeId;
    if (!(await this.graph.channel(scid))) {
      if (!this.isConnected(peer) || now - (this.halfSentAt.get(id) ?? 0) < HALF_EVERY_MS) return;
      // The anchor's creator starts the exchange (only it knows whether the channel is private); the
      // acceptor answers a half it receives with the full announcement (receiveHalf).
      if ((await this.o.store.load(id))?.role !== "creator") return;
      const half = await this.ownHalf(scid, peer);
      if (!half) return;
      this.halfSentAt.set(id, now);
      this.o.send(peer, encodePkt({ kind: "channel_announcement", ...half }));
      this.o.log.info(`gossip: sent our half of channel ${scid}'s announcement`, { channelId: id });
      return;
    }
    const state = await this.o.store.load(id);
    if (!state?.anchor) return;
    const direction = ourDirection(this.o.nodeId, Buffer.from(peer, "hex"));
    const stored = await this.graph.policy(scid, direction);
    const wanted = updateFromPolicy({
      shortChannelId: scid,
      direction,
      timestamp: 0,
      disabled: this.disabledFor(peer, now),
      policy: await this.o.policies.get(id),
      htlcMaximumMsat: msat(state.anchor.amount * 1000n),
    });
    const nowS = Math.floor(now / 1000);
    const due = updateDue(stored, wanted, nowS, this.o.settings.refreshSeconds);
    if (!due) return;
    // Unchanged updates made anew are bounded per round; the rest wait for the next one.
    if (due === "refresh" && this.refreshesLeft-- <= 0) return;
    const timestamp = nextTimestamp(nowS, stored?.timestamp);
    if (timestamp === undefined) return;
    const fields: UpdateFields = { ...wanted, timestamp };
    const sig = await this.o.signer.signChannelUpdate(fields);
    const bytes = encodePkt({ kind: "channel_update", ...fields, sig });
    if ((await this.graph.putPolicy({ ...fields, channelUpdate: bytes })) !== "stored") return;
    this.o.log.info(
      `gossip: our channel_update of ${scid} (${wanted.disabled ? "disabled" : "enabled"}, timestamp ${fields.timestamp})`,
      { channelId: id },
    );
    this.relay(bytes, undefined);
  }

  /** Our channel_update towards `peer` says disabled once it has been gone disableAfterSeconds. */
  private disabledFor(peer: string, now: number): boolean {
    if (this.isConnected(peer)) {
      this.goneSince.delete(peer);
      return false;
    }
    const since = this.goneSince.get(peer) ?? now;
    this.goneSince.set(peer, since);
    return now - since >= (this.o.settings.disableAfterSeconds ?? 0) * 1000;
  }

  private async announceNode(now: number): Promise<void> {
    const last = await this.graph.nodeTimestamp(this.ours);
    const timestamp = nextTimestamp(Math.floor(now / 1000), last);
    if (timestamp === undefined) return; // still due: the next round
    const n = {
      nodeId: this.o.nodeId,
      timestamp,
      alias: this.o.settings.alias ?? defaultAlias(this.ours),
      addresses: this.o.settings.addresses,
    };
    const sig = await this.o.signer.signNodeAnnouncement(n);
    const bytes = encodePkt({ kind: "node_announcement", ...n, sig });
    const put = await this.graph.putNode({ ...n, nodeId: this.ours, nodeAnnouncement: bytes });
    // Not stored: no channel of ours in the graph yet; made again when one is.
    this.nodeDue = false;
    if (put !== "stored") return;
    this.o.log.info(`gossip: our node_announcement (alias ${n.alias}, timestamp ${n.timestamp})`);
    this.relay(bytes, undefined);
  }
}
