import { ackFor } from "@ln/channel-core";
import { decodePeerEvent, decodePkt, peerSubjects, PeerEventDecodeError, WireError } from "@ln/proto";
import type { NatsConnection, Subscription } from "nats";
import { serialWork } from "./serial.js";
import type { ChannelRunner, PeerLink } from "./runner.js";
import type { ChannelStore, OutboxMessage } from "./store.js";

/**
 * The channel service's end of the peer gateway's NATS subjects (services/peer): outbound pkts to
 * `<prefix>.<peer>.out`; inbound pkts, connection events and ack requests for one channel's peer.
 */
export class NatsPeerLink implements PeerLink {
  constructor(
    private readonly nc: NatsConnection,
    private readonly prefix: string,
    /** Which peer (node id hex) a channel is with. */
    private readonly peerOf: (channelId: string) => string,
  ) {}

  send(channelId: string, message: OutboxMessage): Promise<void> {
    this.nc.publish(peerSubjects(this.prefix, this.peerOf(channelId)).out, message.bytes);
    return Promise.resolve();
  }
}

/**
 * Feeds one channel from its peer's subjects: each pkt as an input (in order), each new
 * connection as `reconnected` with the peer's ack (the runner then retransmits from the outbox),
 * and answers the gateway's ack requests from the stored state. A pkt or event that does not
 * decode is reported and skipped; the gateway has already checked the pkt against the codec.
 */
export function attachPeer(opts: {
  nc: NatsConnection;
  prefix: string;
  peerNodeIdHex: string;
  channelId: string;
  runner: ChannelRunner;
  store: ChannelStore;
  onError?: (e: Error) => void;
}): Subscription[] {
  const s = peerSubjects(opts.prefix, opts.peerNodeIdHex);
  // One chain of work, so pkts and events keep their order.
  const { report, enqueue } = serialWork(opts.onError);
  const inbound = opts.nc.subscribe(s.in, {
    callback: (err, msg) => {
      if (err) return report(err);
      try {
        const pkt = decodePkt(msg.data);
        enqueue(() => opts.runner.input(opts.channelId, { type: "pkt", pkt }));
      } catch (e) {
        if (e instanceof WireError) report(e);
        else throw e;
      }
    },
  });
  const events = opts.nc.subscribe(s.events, {
    callback: (err, msg) => {
      if (err) return report(err);
      try {
        const ev = decodePeerEvent(msg.data);
        if (ev.type === "connected")
          enqueue(() =>
            opts.runner.input(opts.channelId, { type: "reconnected", theirAck: Number(ev.theirAck) }),
          );
      } catch (e) {
        if (e instanceof PeerEventDecodeError) report(e);
        else throw e;
      }
    },
  });
  const acks = opts.nc.subscribe(s.ack, {
    callback: (err, msg) => {
      if (err) return report(err);
      // After the pkts already queued, so the ack counts every message we will have processed.
      enqueue(async () => {
        const state = await opts.store.load(opts.channelId);
        msg.respond(Buffer.from(String(state ? ackFor(state) : 0)));
      });
    },
  });
  return [inbound, events, acks];
}
