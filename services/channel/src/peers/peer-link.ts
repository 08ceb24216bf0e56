import { encodePkt, OUT_SEQ_HEADER, peerSubjects } from "@ln/proto";
import { headers, type NatsConnection } from "nats";
import type { PeerLink } from "../channels/runner.js";
import type { ChannelRegistry } from "../channels/registry.js";
import type { OutboxMessage } from "../channels/store.js";

/**
 * The one way out to the peer gateway: every message to a peer, a channel's stored ones (numbered
 * for the gateway) and the `error`s sent outside any channel, is published here, on the peer's
 * `out` subject.
 */
export class NatsPeerLink implements PeerLink {
  constructor(
    private readonly nc: NatsConnection,
    /** The peer gateway's subject prefix (`<LN_PREFIX>.peer`). */
    private readonly peerPrefix: string,
    private readonly registry: ChannelRegistry,
  ) {}

  /** A stored message of a channel run here, to its peer (the runner's sends). */
  send(channelId: string, m: OutboxMessage): Promise<void> {
    return Promise.resolve(this.sendTo(this.registry.require(channelId).peer, m));
  }

  /** A stored message of a channel to its peer, numbered for the gateway (OUT_SEQ_HEADER). */
  sendTo(peer: string, m: OutboxMessage): void {
    const h = headers();
    h.set(OUT_SEQ_HEADER, String(m.seq));
    this.publish(peer, m.bytes, h);
  }

  /** A gossip pkt (DESIGN.md 10): without OUT_SEQ_HEADER, so neither counted by `ack` nor retransmitted. */
  sendGossip(peer: string, bytes: Uint8Array): void {
    this.publish(peer, bytes);
  }

  /** Fails the connection with a peer outside any channel: the gateway drops it after the error. */
  sendError(peer: string, problem: string): void {
    this.publish(peer, encodePkt({ kind: "error", problem }));
  }

  private publish(peer: string, bytes: Uint8Array, h?: ReturnType<typeof headers>): void {
    this.nc.publish(peerSubjects(this.peerPrefix, peer).out, bytes, h ? { headers: h } : undefined);
  }
}
