/*~ Publishes the status event log on NATS after commit: a follower of the log (feed.ts) that puts
 * each event on JetStream, subject `<prefix>.events.<kind>`, message id = its seq, one at a time
 * and in order, and moves its durable cursor (`event_relay`) only after JetStream acknowledged.
 * A crash between the ack and the cursor re-publishes a few events, which JetStream drops as
 * duplicates (same id within the duplicate window). With several replicas, one relays at a time:
 * it holds a session advisory lock on its own connection, and writes the cursor through that
 * connection, so a relay that lost the lock (its connection) cannot move the cursor and stops. */
import { setTimeout as wait } from "node:timers/promises";
import type { Log } from "@ln/log";
import { createHash } from "node:crypto";
import { quoteSchema } from "@ln/postgres";
import {
  JSONCodec,
  type JetStreamManager,
  type NatsConnection,
  type StreamConfig,
  type StreamInfo,
} from "nats";
import pg from "pg";
import { statusEventJson } from "./event-json.js";
import type { EventKind } from "./event-log.js";
import type { EventFeed } from "./feed.js";

/** The subject of one kind of status event. */
export const eventSubject = (prefix: string, kind: EventKind): string => `${prefix}.events.${kind}`;
/** What the events stream captures: every kind, present and future. */
export const eventSubjectsFilter = (prefix: string): string => `${prefix}.events.>`;

/** How long JetStream remembers message ids: a relay restarted within it never repeats an event. */
export const EVENTS_DUPLICATE_WINDOW_NS = 24 * 60 * 60 * 1_000_000_000;

/**
 * Creates the events stream, or brings an existing one to this subject and duplicate window
 * (other settings an operator changed, such as limits or replicas, are kept). Idempotent.
 */
export async function ensureEventsStream(
  jsm: JetStreamManager,
  stream: string,
  prefix: string,
): Promise<StreamInfo> {
  const wanted: Partial<StreamConfig> = {
    subjects: [eventSubjectsFilter(prefix)],
    duplicate_window: EVENTS_DUPLICATE_WINDOW_NS,
  };
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(stream);
  } catch (e) {
    if (!isStreamNotFound(e)) throw e;
  }
  if (info === undefined) {
    try {
      return await jsm.streams.add({ name: stream, ...wanted });
    } catch (e) {
      // Another replica created it meanwhile.
      info = await jsm.streams.info(stream).catch(() => {
        throw e;
      });
    }
  }
  const c = info.config;
  if (
    c.duplicate_window === EVENTS_DUPLICATE_WINDOW_NS &&
    c.subjects.length === 1 &&
    c.subjects[0] === eventSubjectsFilter(prefix)
  )
    return info;
  return jsm.streams.update(stream, { ...c, ...wanted });
}

function isStreamNotFound(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const api = (e as { api_error?: { err_code?: number } }).api_error;
  return api?.err_code === 10059;
}

export interface EventRelayOptions {
  pool: pg.Pool;
  schema: string;
  feed: EventFeed;
  nc: NatsConnection;
  /** LN_PREFIX: subjects `<prefix>.events.<kind>`. */
  prefix: string;
  /** The JetStream stream (created if missing); also the cursor's key. */
  stream: string;
  /** How often a replica not relaying tries to take over, ms. Default 5000. */
  standbyMs?: number;
  /** Events per cursor write. Default 100. */
  batch?: number;
  /** The lock's connection; default a pg.Client with the pool's settings. */
  lockClient?: () => pg.Client;
  log?: Log;
}

/** The advisory lock of the relaying replica: class "LNER", object from the schema and stream. */
const LOCK_CLASS = 0x4c4e4552;
const lockObject = (schema: string, stream: string): number =>
  createHash("sha256").update(`${schema}\0${stream}`).digest().readUInt32BE(0) & 0x7fffffff;

const codec = JSONCodec();

export class EventRelay {
  private readonly stopping = new AbortController();
  private running: Promise<void> | undefined;
  private readonly table: string;
  /** Whether this replica holds the lock now (for tests and metrics). */
  relaying = false;

  constructor(private readonly o: EventRelayOptions) {
    this.table = `${quoteSchema(o.schema)}.event_relay`;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops relaying (after the event in flight) and frees the lock. */
  async stop(): Promise<void> {
    this.stopping.abort();
    await this.running;
  }

  /** The cursor stored for this stream: the last event JetStream acknowledged (0: none). */
  async cursor(): Promise<bigint> {
    const r = await this.o.pool.query<{ cursor: string }>(
      `SELECT cursor::text AS cursor FROM ${this.table} WHERE stream = $1`,
      [this.o.stream],
    );
    return BigInt(r.rows[0]?.cursor ?? "0");
  }

  private async loop(): Promise<void> {
    const signal = this.stopping.signal;
    let backoff = 200;
    while (!signal.aborted) {
      try {
        const relayed = await this.relayWhileLeader(signal);
        backoff = 200;
        if (!relayed) await sleep(this.o.standbyMs ?? 5000, signal);
      } catch (e) {
        this.o.log?.warn(`status events relay: ${e instanceof Error ? e.message : String(e)}; retrying`);
        await sleep(backoff, signal);
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  /** Relays while holding the lock; false if another replica holds it. */
  private async relayWhileLeader(stop: AbortSignal): Promise<boolean> {
    const lock = this.o.lockClient?.() ?? new pg.Client(this.o.pool.options);
    const lost = new AbortController();
    const onStop = (): void => lost.abort();
    stop.addEventListener("abort", onStop, { once: true });
    lock.on("error", () => lost.abort());
    lock.on("end", () => lost.abort());
    try {
      await lock.connect();
      const got = await lock.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1, $2) AS ok", [
        LOCK_CLASS,
        lockObject(this.o.schema, this.o.stream),
      ]);
      if (got.rows[0]?.ok !== true) return false;
      this.relaying = true;
      await ensureEventsStream(await this.o.nc.jetstreamManager(), this.o.stream, this.o.prefix);
      await lock.query(`INSERT INTO ${this.table} (stream) VALUES ($1) ON CONFLICT DO NOTHING`, [
        this.o.stream,
      ]);
      const r = await lock.query<{ cursor: string }>(
        `SELECT cursor::text AS cursor FROM ${this.table} WHERE stream = $1`,
        [this.o.stream],
      );
      const js = this.o.nc.jetstream();
      const follower = this.o.feed.follow(BigInt(r.rows[0]?.cursor ?? "0"), lost.signal, this.o.batch ?? 100);
      for (;;) {
        const batch = await follower.next();
        if (!batch) break;
        for (const e of batch) {
          // In order, each acknowledged before the next: a failure leaves nothing published after a gap.
          await js.publish(eventSubject(this.o.prefix, e.kind), codec.encode(statusEventJson(e)), {
            msgID: e.seq.toString(),
          });
        }
        const last = batch[batch.length - 1]?.seq;
        if (last === undefined) continue;
        // Through the lock's connection: if it is gone, so is the lock, and this fails.
        await lock.query(
          `UPDATE ${this.table} SET cursor = GREATEST(cursor, $2::bigint), updated_at = now() WHERE stream = $1`,
          [this.o.stream, last.toString()],
        );
      }
      if (stop.aborted) return true;
      // The process is closing its feed: nothing more to relay here.
      if (this.o.feed.isClosed) {
        await sleep(this.o.standbyMs ?? 5000, stop);
        return true;
      }
      throw new Error("lost the relay lock's connection");
    } finally {
      this.relaying = false;
      stop.removeEventListener("abort", onStop);
      await lock.end().catch(() => undefined);
    }
  }
}

/** Waits `ms`, or less if `signal` aborts (the abort is the only way it rejects). */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  wait(ms, undefined, { signal }).catch(() => undefined);
