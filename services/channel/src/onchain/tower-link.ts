import { crashPoint } from "@ln/crash";
import { encodeSealedRecord } from "@ln/justice";
import type { JetStreamClient } from "nats";
import type { ChannelStore } from "../channels/store.js";

/** The subject the watchtower takes revocation records from (its stream captures it). */
export const towerRecordsSubject = (prefix: string): string => `${prefix}.tower.records`;

/**
 * Hands the watchtower its revocation records (DESIGN.md 7). Each record was written with the
 * state that received the peer's revocation; here it is published on JetStream with its locator
 * as the message id (a re-publish after a crash is dropped as a duplicate) and marked published
 * only once JetStream acknowledged it. Until then every round tries again.
 */
export class TowerLink {
  #round: Promise<number> | undefined;

  constructor(
    private readonly o: {
      js: JetStreamClient;
      store: ChannelStore;
      subject: string;
    },
  ) {}

  /**
   * Publishes every unacknowledged record; returns how many were published. One round at a time:
   * a call during a round waits for it and starts another, so nothing written before the call is
   * left for later.
   */
  async publishPending(): Promise<number> {
    const previous = this.#round;
    const round = (async () => {
      await previous?.catch(() => undefined);
      return this.#publishAll();
    })();
    this.#round = round;
    try {
      return await round;
    } finally {
      if (this.#round === round) this.#round = undefined;
    }
  }

  async #publishAll(): Promise<number> {
    let published = 0;
    for (;;) {
      const batch = await this.o.store.unpublishedRecords();
      for (const r of batch) {
        await this.o.js.publish(this.o.subject, encodeSealedRecord({ locator: r.locator, blob: r.blob }), {
          msgID: r.locator.toString("hex"),
        });
        crashPoint("channel.tower_record.published");
        await this.o.store.markRecordPublished(r.channelId, r.number);
        published++;
      }
      if (batch.length === 0) return published;
    }
  }
}
