import { crashPoint } from "@ln/crash";
import { ackFor, checkOpenChannel, DEFAULT_POLICY, type Input, type Output } from "@ln/channel-core";
import { decodePeerEvent, decodePkt, encodeAckReply, isGossipPkt, type Pkt, type PktOf } from "@ln/proto";
import type { NatsConnection, Subscription } from "nats";
import type { Report } from "../channels/errors.js";
import { CHANNEL_POLICY } from "../channels/openings.js";
import type { LogLine, PeerControl } from "../channels/ports.js";
import type { ChannelRegistry } from "../channels/registry.js";
import { StoreError, type ChannelRow, type ChannelStore } from "../channels/store.js";
import {
  checkInboundOpening,
  DEFAULT_INBOUND_OPENING_LIMITS,
  type InboundOpeningLimits,
} from "./inbound-openings.js";
import type { Gossip } from "../gossip/gossip.js";
import type { NatsPeerLink } from "./peer-link.js";

/** Default PeerRouterOptions.maxPeerBacklog. */
const MAX_PEER_BACKLOG = 1000;

export interface PeerRouterOptions {
  nc: NatsConnection;
  /** The peer gateway's subject prefix (`<LN_PREFIX>.peer`). */
  peerPrefix: string;
  store: ChannelStore;
  registry: ChannelRegistry;
  link: NatsPeerLink;
  peers: PeerControl;
  /** Feeds one input to a channel run here (the node's input). */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  /** Creates the acceptor's channel for a peer's open_channel (openings.ts). */
  accept: (peer: string) => Promise<string>;
  /** Bounds on the channels peers open to us (default DEFAULT_INBOUND_OPENING_LIMITS). */
  inboundOpenings?: InboundOpeningLimits | undefined;
  /**
   * Messages of one peer queued here, not yet processed (default 1000): beyond, they are dropped
   * with the connection, and the next connection retransmits them (draft 1.2).
   */
  maxPeerBacklog?: number | undefined;
  /** Gossip (gossip/gossip.ts): its pkts go there, never to a channel; it hears of connections. */
  gossip?: Gossip | undefined;
  log: LogLine;
  report: Report;
}

/**
 * The peer gateway's side of the node: decodes each peer's pkts and connection events and routes
 * them, in arrival order per peer, to that peer's channel (creating the acceptor's channel on an
 * open_channel we accept), and answers the gateway's authenticate-ack requests.
 */
export class PeerRouter {
  private readonly peerQueues = new Map<string, Promise<unknown>>();
  /** Per peer: its messages queued in peerQueues, not yet started. */
  private readonly backlog = new Map<string, number>();
  /**
   * Per peer: its messages handed to a channel's lane whose transaction has not ended yet. An ack
   * answer waits for them: one read before they commit would count them out, the peer would
   * resend them on the new connection, and the lane would process both copies.
   */
  private readonly fed = new Map<string, Set<Promise<unknown>>>();
  /** Peers whose messages we drop until their next connection (one was dropped: keep order). */
  private readonly shedding = new Set<string>();
  private readonly subs: Subscription[] = [];
  /** Per peer: its live channel's row as last read, valid while the registry's generation holds. */
  private readonly liveRows = new Map<string, { generation: number; row: ChannelRow | undefined }>();

  constructor(private readonly o: PeerRouterOptions) {}

  /** Subscribes to every peer's messages, connection events and ack requests. */
  start(): void {
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
            if (!row) return m.respond(encodeAckReply(0n));
            if (!this.o.registry.holds(row.id)) return;
            // Every message of the peer taken before this request is committed (or failed and
            // is not counted) before the count is read: the ack covers exactly what the channel
            // processed, and nothing the peer resends from it is processed twice (draft 1.2).
            await Promise.allSettled([...(this.fed.get(peer) ?? [])]);
            const state = await this.o.store.load(row.id);
            m.respond(encodeAckReply(BigInt(state ? ackFor(state) : 0)));
          });
        },
      }),
    );
  }

  /** Unsubscribes, then waits for the work queued so far. */
  async stop(): Promise<void> {
    for (const s of this.subs) s.unsubscribe();
    await Promise.allSettled([...this.peerQueues.values()]);
  }

  /** Work for one peer, in arrival order. */
  private forPeer(peer: string, work: () => Promise<unknown>): Promise<unknown> {
    const prev = this.peerQueues.get(peer) ?? Promise.resolve();
    const next = prev.then(work).catch((e: unknown) => this.o.report(`peer ${peer.slice(0, 16)}`, e));
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
        if (ev.type !== "connected") {
          this.o.gossip?.onDisconnected(peer);
          return;
        }
        connectedAck = Number(ev.theirAck);
        this.o.gossip?.onConnected(peer);
      }
    } catch (e) {
      this.o.report(`peer ${peer.slice(0, 16)}`, e);
      return;
    }
    // Gossip before any channel lookup: never fed to a channel, never answered with `error`; in
    // its own queue per peer, past its rate limit (taken here, so a flood never queues).
    if (pkt && isGossipPkt(pkt)) {
      const g = this.o.gossip;
      const gossip = pkt;
      if (g?.admit(peer)) void this.forPeer(`gossip:${peer}`, () => g.receive(peer, gossip));
      return;
    }
    if (connectedAck !== undefined) this.shedding.delete(peer); // a new connection resends from our ack
    if (pkt && !this.takeIntoBacklog(peer)) return;
    void this.forPeer(peer, async () => {
      if (pkt) this.leaveBacklog(peer);
      let row =
        pkt?.kind === "open_channel" || !pkt ? await this.liveWith(peer, true) : await this.liveWith(peer);
      if (!row && pkt?.kind === "open_channel") {
        // A peer opens a channel to us: we are the acceptor, if its terms and our bounds allow.
        const refused = await this.refuseInbound(peer, pkt);
        // Another replica may have taken this opening meanwhile (it counted less): its channel wins.
        row = await this.liveWith(peer, true);
        if (!row && refused !== undefined) return this.o.link.sendError(peer, refused);
        if (!row) {
          await this.o.accept(peer).catch((e: unknown) => {
            if (!(e instanceof StoreError && e.code === "CHANNEL_EXISTS")) throw e;
          });
          row = await this.liveWith(peer, true);
        }
      }
      // A channel message from a peer we have no channel with fails the connection (draft 6.3);
      // an `error` is never answered with one.
      if (!row && pkt && pkt.kind !== "error")
        return this.o.link.sendError(peer, `${pkt.kind}: we have no channel with you`);
      if (!row || !this.o.registry.holds(row.id)) return;
      const m = this.o.registry.metaOf(row.id);
      if (connectedAck !== undefined && m) m.awaitingConnection = false;
      if (pkt && m?.awaitingConnection) {
        this.o.log.warn(`channel ${row.id}: dropping a ${pkt.kind} sent before its own connection`, {
          channelId: row.id,
        });
        return;
      }
      if (pkt) crashPoint("channel.peer.received");
      // Queued in the channel's lane in arrival order, not awaited: the peer's next messages
      // join the same transaction (runner.ts); the backlog counts it again until it is processed.
      if (pkt) {
        this.backlog.set(peer, (this.backlog.get(peer) ?? 0) + 1);
        const fed = this.fed.get(peer) ?? new Set<Promise<unknown>>();
        this.fed.set(peer, fed);
        const done: Promise<unknown> = this.o
          .feed(row.id, { type: "pkt", pkt })
          .catch((e: unknown) => {
            this.o.report(`peer ${peer.slice(0, 16)}`, e);
            // The message may not be stored (a failed transaction): on this connection it is
            // lost, and the peer, which sent it, would wait for its answer for ever. Its next
            // messages are dropped too (their order must hold) and the connection with them:
            // the next one resends from the ack, which counts only what was stored (draft 1.2).
            this.shedding.add(peer);
            this.o.peers.resync(peer);
          })
          .finally(() => {
            this.leaveBacklog(peer);
            fed.delete(done);
            if (fed.size === 0 && this.fed.get(peer) === fed) this.fed.delete(peer);
          });
        fed.add(done);
      } else if (connectedAck !== undefined)
        await this.o.feed(row.id, { type: "reconnected", theirAck: connectedAck });
    });
  }

  /**
   * The peer's live channel: from the last read while no channel was held, forgotten or ended
   * since (the registry's generation), else (or with `fresh`) from the store.
   */
  private async liveWith(peer: string, fresh = false): Promise<ChannelRow | undefined> {
    const generation = this.o.registry.generation;
    const known = this.liveRows.get(peer);
    if (!fresh && known?.generation === generation && known.row && this.o.registry.holds(known.row.id))
      return known.row;
    const row = await this.o.store.liveWith(peer);
    if (row) this.liveRows.set(peer, { generation, row });
    else this.liveRows.delete(peer);
    return row;
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
      this.o.log.warn(`peer ${peer.slice(0, 16)}…: ${queued} messages waiting; dropping the connection`, {
        peer,
      });
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
    this.o.log.warn(`refused an open_channel from ${peer.slice(0, 16)}… (${admitted.code})`, {
      peer,
      code: admitted.code,
    });
    return admitted.problem;
  }
}
