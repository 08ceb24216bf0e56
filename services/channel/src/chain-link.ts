import type { Output } from "@ln/channel-core";
import { decodeChainEvent, encodeWatchAnchor, EventDecodeError, type ChainEvent } from "@ln/proto";
import type { NatsConnection, Subscription } from "nats";
import { serialWork } from "./serial.js";
import type { ChannelRunner } from "./runner.js";

/** Subjects of the chain watcher (services/watchtower) for one node: `<prefix>.<event kind>`, `<prefix>.watch`. */
export const chainSubjects = (prefix: string): { events: string; watch: string } => ({
  events: `${prefix}.*`,
  watch: `${prefix}.watch`,
});

/** Asks the chain watcher to follow an anchor: the core's `watch_anchor` output. */
export function requestWatch(
  nc: NatsConnection,
  prefix: string,
  channelId: string,
  o: Extract<Output, { type: "watch_anchor" }>,
): void {
  nc.publish(
    chainSubjects(prefix).watch,
    encodeWatchAnchor({ channelId, txid: o.outpoint.txid, vout: o.outpoint.vout, depth: o.depth }),
  );
}

/**
 * Feeds the chain watcher's events to the channels of this replica: anchor depth and anchor spent
 * to their channel, every new block to all of them (deadlines, opening timeouts). The events are
 * also kept on JetStream; this subscription takes them live.
 */
export function attachChain(opts: {
  nc: NatsConnection;
  prefix: string;
  runner: ChannelRunner;
  channels: () => readonly string[];
  /** Whether a spend of this channel's anchor is our own close or commitment. */
  isOurs?: (channelId: string, txid: string) => boolean;
  onError?: (e: Error) => void;
}): Subscription {
  // One chain of work, so pkts and events keep their order.
  const { report, enqueue } = serialWork(opts.onError);
  return opts.nc.subscribe(chainSubjects(opts.prefix).events, {
    callback: (err, msg) => {
      if (err) return report(err);
      if (msg.subject === chainSubjects(opts.prefix).watch) return;
      let event: ChainEvent;
      try {
        event = decodeChainEvent(msg.data);
      } catch (e) {
        if (e instanceof EventDecodeError) return report(e);
        throw e;
      }
      switch (event.kind) {
        case "anchor_depth":
          enqueue(() =>
            opts.runner.input(event.channelId, {
              type: "chain",
              event: { kind: "anchor_depth", depth: event.depth },
            }),
          );
          return;
        case "anchor_spent": {
          const ours = opts.isOurs?.(event.channelId, event.txid) ?? false;
          enqueue(() =>
            opts.runner.input(event.channelId, {
              type: "chain",
              event: { kind: "anchor_spent", txid: event.txid, ours },
            }),
          );
          return;
        }
        case "block_connected":
          for (const id of opts.channels())
            enqueue(() =>
              opts.runner.input(id, {
                type: "chain",
                event: { kind: "block", height: event.height, time: event.time },
              }),
            );
          return;
        case "block_disconnected":
          return;
      }
    },
  });
}
