import { crashPoint } from "@ln/crash";
import type { Log } from "@ln/log";
import type { Output } from "@ln/channel-core";
import { decodeChainEvent, encodeWatchAnchor, type ChainEvent } from "@ln/proto";
import { AckPolicy, DeliverPolicy, type NatsConnection } from "nats";

/** Asks the chain watcher to follow an anchor: the core's `watch_anchor` output. */
export function requestWatch(
  nc: NatsConnection,
  prefix: string,
  channelId: string,
  o: Extract<Output, { type: "watch_anchor" }>,
): void {
  nc.publish(
    `${prefix}.watch`,
    encodeWatchAnchor({ channelId, txid: o.outpoint.txid, vout: o.outpoint.vout, depth: o.depth }),
  );
}

/**
 * Asks the chain watcher to report the spend of one output (on-chain resolution): the anchor
 * watch with depth 1, under the id `watchId`, reported as `anchor_spent` with the spender.
 */
export function requestOutputWatch(
  nc: NatsConnection,
  prefix: string,
  watchId: string,
  txid: string,
  vout: number,
): void {
  nc.publish(`${prefix}.watch`, encodeWatchAnchor({ channelId: watchId, txid, vout, depth: 1 }));
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
  log: Log;
  retryMs?: number;
}): Promise<{ stop: () => Promise<void> }> {
  const jsm = await opts.nc.jetstreamManager();
  const subject = `${opts.prefix}.block_connected`;
  let stream: string | undefined;
  for (let waited = 0; stream === undefined; waited++) {
    stream = await jsm.streams.find(subject).catch(() => undefined);
    if (stream === undefined) {
      if (waited % 10 === 0)
        opts.log.warn(
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
        opts.log.warn(`dropping a chain event that does not decode (${m.subject}): ${(e as Error).message}`);
        m.term();
        continue;
      }
      try {
        await opts.handle(event);
        crashPoint("channel.chain_event.handled");
        m.ack();
      } catch (e) {
        opts.log.warn(
          `chain event ${event.kind} failed, retrying: ${e instanceof Error ? e.message : String(e)}`,
        );
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
