import { crashPoint } from "@ln/crash";
/*~ Record intake: the channel service's sealed revocation records, taken from the tower's
 * JetStream stream through the durable consumer every replica shares, and stored as they came
 * (encrypted; the tower cannot read one before its breach). Idempotent by (locator, blob): a
 * re-delivered record is a no-op. */
import { decodeSealedRecord, RecordError, type SealedRecord } from "@ln/justice";
import { createHash } from "node:crypto";
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg, type NatsConnection } from "nats";
import { asError, message, type TowerContext } from "../context.js";
import { ensureRecordsStream } from "../streams.js";

/** Where records come from: the channel service's subject, captured by the tower's stream. */
export interface RecordsSource {
  nc: NatsConnection;
  stream: string;
  subject: string;
  /** Durable consumer name, the same for every replica (they share the work). */
  durable: string;
}

const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();

/** Records inserted per statement (3 parameters each, far below Postgres's 65535). */
const INGEST_BATCH = 500;
/**
 * Messages the consumer pulls ahead; JetStream's max_ack_pending (1000 by default) also caps
 * what is delivered and not yet acked, so at most that many wait in memory.
 */
const INGEST_PULL = 1000;

export class RecordIntake {
  private messages: ConsumerMessages | undefined;
  private source: RecordsSource | undefined;
  private loop: Promise<void> | undefined;

  constructor(private readonly ctx: TowerContext) {}

  /**
   * Stores one record as received on NATS. Returns false for a payload that does not decode
   * (counted and logged; the caller drops it), true once the row is committed (new or not).
   */
  async storeRecord(payload: Uint8Array): Promise<boolean> {
    const sealed = this.decodeRecord(payload);
    if (sealed === undefined) return false;
    await this.insertRecords([sealed]);
    return true;
  }

  /** The record in a NATS payload; undefined (counted and logged) for one that does not decode. */
  private decodeRecord(payload: Uint8Array): SealedRecord | undefined {
    try {
      return decodeSealedRecord(payload);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      this.ctx.metrics?.recordsRejected.inc({ reason: "malformed" });
      this.ctx.log.warn("dropping a revocation record that does not decode", { code: e.code, err: e });
      return undefined;
    }
  }

  /** One INSERT, so one round trip and one commit for the lot; only new rows are counted. */
  private async insertRecords(records: readonly SealedRecord[]): Promise<void> {
    const params: Buffer[] = [];
    const values: string[] = [];
    for (const r of records) {
      const k = params.push(r.locator, sha256(r.blob), r.blob);
      values.push(`($${k - 2}, $${k - 1}, $${k})`);
    }
    // A record in the batch twice conflicts with its own first row: DO NOTHING covers that too.
    const r = await this.ctx.pool.query(
      `INSERT INTO ${this.ctx.table("tower_records")} (locator, blob_hash, blob) VALUES ${values.join(", ")} ON CONFLICT DO NOTHING`,
      params,
    );
    if (r.rowCount !== null && r.rowCount > 0) this.ctx.metrics?.recordsStored.inc(r.rowCount);
  }

  /**
   * Takes records from the stream through the durable consumer every replica shares, in batches
   * of what has arrived (up to INGEST_BATCH): each batch is one INSERT, and its messages are acked
   * only after the commit (a failed insert naks them all for redelivery; one that does not
   * decode is terminated at once). Creates the stream if missing.
   */
  async consume(src: RecordsSource): Promise<void> {
    const jsm = await src.nc.jetstreamManager();
    await ensureRecordsStream(jsm, src.stream, src.subject);
    await jsm.consumers.add(src.stream, {
      durable_name: src.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: src.subject,
    });
    const consumer = await src.nc.jetstream().consumers.get(src.stream, src.durable);
    const queue: JsMsg[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    // The callback form: messages are queued as they arrive while the previous batch is inserted.
    const messages = await consumer.consume({
      max_messages: INGEST_PULL,
      callback: (m) => {
        queue.push(m);
        wake?.();
      },
    });
    void messages.closed().then(() => {
      closed = true;
      wake?.();
    });
    this.messages = messages;
    this.source = src;
    this.loop = (async () => {
      while (!closed) {
        if (queue.length === 0) {
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
          continue;
        }
        await this.storeBatch(queue.splice(0, INGEST_BATCH));
      }
      // Received but not stored: back to the stream now rather than after the ack wait.
      for (const m of queue.splice(0)) m.nak();
    })().catch((e: unknown) =>
      this.ctx.log.alert("storing revocation records stopped; restart the tower", { err: asError(e) }),
    );
  }

  private async storeBatch(batch: readonly JsMsg[]): Promise<void> {
    const good: JsMsg[] = [];
    const records: SealedRecord[] = [];
    for (const m of batch) {
      const sealed = this.decodeRecord(m.data);
      if (sealed === undefined)
        m.term(); // never decodes: not redelivered, whatever the others do
      else {
        good.push(m);
        records.push(sealed);
      }
    }
    if (records.length === 0) return;
    try {
      await this.insertRecords(records);
    } catch (e) {
      this.ctx.log.warn(`could not store ${records.length} revocation records; they will be redelivered`, {
        err: asError(e),
      });
      for (const m of good) m.nak(2000);
      return;
    }
    crashPoint("tower.records.stored");
    for (const m of good) m.ack(); // after the commit: an acked record is stored
  }

  /**
   * How many records published so far are not stored yet (0 when consuming nothing), or
   * undefined when JetStream cannot say (logged).
   */
  async pending(): Promise<number | undefined> {
    const src = this.source;
    if (src === undefined) return 0;
    try {
      const info = await (await src.nc.jetstreamManager()).consumers.info(src.stream, src.durable);
      return info.num_pending + info.num_ack_pending;
    } catch (e) {
      this.ctx.log.warn(`cannot ask JetStream about the records consumer (${message(e)}); retrying`, {
        err: asError(e),
      });
      return undefined;
    }
  }

  /** Stops consuming; resolves once the last batch is stored or handed back. */
  async stop(): Promise<void> {
    await this.messages?.close();
    await this.loop;
  }
}
