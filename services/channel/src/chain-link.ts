import type { Output } from "@ln/channel-core";
import { decodeChainEvent, encodeWatchAnchor, EventDecodeError, type ChainEvent } from "@ln/proto";
import { AckPolicy, DeliverPolicy, type NatsConnection, type Subscription } from "nats";
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

/**
 * Takes the chain watcher's events from its JetStream stream through a durable consumer of this
 * replica, in order, acknowledging each once handled: a restart resumes after the last handled
 * event. A failed event is redelivered after `retryMs`; one that does not decode is dropped and
 * reported. Waits (reporting it) until the watcher has created its stream.
 */
export async function consumeChainEvents(opts: {
  nc: NatsConnection;
  prefix: string;
  /** Durable consumer name: one per replica. */
  durable: string;
  handle: (event: ChainEvent) => Promise<void>;
  log: (line: string) => void;
  retryMs?: number;
}): Promise<{ stop: () => Promise<void> }> {
  const jsm = await opts.nc.jetstreamManager();
  const subject = `${opts.prefix}.block_connected`;
  let stream: string | undefined;
  for (let waited = 0; stream === undefined; waited++) {
    stream = await jsm.streams.find(subject).catch(() => undefined);
    if (stream === undefined) {
      if (waited % 10 === 0)
        opts.log(
          `waiting for the chain watcher's stream (subject ${subject}); start the watchtower for this node`,
        );
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  const durable = opts.durable.replace(/[^A-Za-z0-9_-]/g, "_");
  await jsm.consumers.add(stream, {
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: `${opts.prefix}.>`,
    max_ack_pending: 1,
  });
  const consumer = await opts.nc.jetstream().consumers.get(stream, durable);
  const messages = await consumer.consume();
  const done = (async () => {
    for await (const m of messages) {
      let event: ChainEvent;
      try {
        event = decodeChainEvent(m.data);
      } catch (e) {
        opts.log(`dropping a chain event that does not decode (${m.subject}): ${(e as Error).message}`);
        m.term();
        continue;
      }
      try {
        await opts.handle(event);
        m.ack();
      } catch (e) {
        opts.log(`chain event ${event.kind} failed, retrying: ${e instanceof Error ? e.message : String(e)}`);
        m.nak(opts.retryMs ?? 2000);
      }
    }
  })();
  return {
    stop: async () => {
      await messages.close();
      await done;
    },
  };
}
