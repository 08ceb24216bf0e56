import type { Log } from "@ln/log";
import { quoteSchema } from "@ln/postgres";
import pg from "pg";
import { EventLog, eventsChannelName, type StatusEvent } from "./event-log.js";

/*~ The read side of the status event log for one process: ONE Postgres connection LISTENs on
 * `<schema>_events` (NOTIFY'd at each commit that appended) and wakes every follower; a periodic
 * look at the log covers a notification lost while that connection was down (it reconnects with
 * a backoff). A follower yields the events after its cursor in seq order, each once: the log only
 * hands out events no later commit can precede, and the cursor is the last seq yielded. */

export interface EventFeedOptions {
  pool: pg.Pool;
  schema: string;
  /** The safety-net look at the log when no notification came, ms. Default 5000. */
  pollMs?: number;
  /** The LISTEN connection; default a pg.Client with the pool's settings. */
  listenClient?: () => pg.Client;
  /** Problems with the LISTEN connection (never fatal: the poll carries on meanwhile). */
  log?: Log;
}

/** A wait for the next change, ended by `signal` (the follower's owner went away). */
export class FeedClosedError extends Error {
  override readonly name = "FeedClosedError";
}

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;
/** Committed events still held back by an older appender: look again this soon (doubling). */
const HELD_BACK_MIN_MS = 20;

export class EventFeed {
  readonly log: EventLog;
  private readonly pollMs: number;
  private readonly countQuery: string;
  /** Bumped at each look at the log; followers wait for it to move. */
  private generation = 0;
  /** The highest seq a reader may be given, as of the last look. */
  private visibleHead = 0n;
  private waiters = new Set<() => void>();
  private started = false;
  private closed = false;
  private listener: pg.Client | undefined;
  private reconnectMs = RECONNECT_MIN_MS;
  private pollTimer: NodeJS.Timeout | undefined;
  private heldBackMs = HELD_BACK_MIN_MS;
  private looking: Promise<void> | undefined;
  private lookAgain = false;

  constructor(private readonly o: EventFeedOptions) {
    this.log = new EventLog(o.pool, o.schema);
    this.pollMs = o.pollMs ?? 5000;
    this.countQuery = `SELECT max(seq)::text AS seq FROM ${quoteSchema(o.schema)}.events`;
  }

  /** Opens the LISTEN connection and the poll (once; `follow` calls it). */
  start(): void {
    if (this.started || this.closed) return;
    this.started = true;
    void this.listen();
    this.schedule(this.pollMs);
  }

  /** Ends the LISTEN connection and wakes every follower, which then ends. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.pollTimer);
    this.wakeAll();
    const l = this.listener;
    this.listener = undefined;
    await l?.end().catch(() => undefined);
    await this.looking?.catch(() => undefined);
  }

  /** The newest seq a new follower that wants only what comes next starts after. */
  head(): Promise<bigint> {
    return this.log.head();
  }

  /** Events after `cursor`, in order, each once; ends (returns) when `signal` aborts or the feed closes. */
  follow(cursor: bigint, signal: AbortSignal, batch = 500): Follower {
    this.start();
    return new Follower(this, cursor, signal, batch);
  }

  /** @internal The generation now and the head it saw. */
  snapshot(): { generation: number; head: bigint } {
    return { generation: this.generation, head: this.visibleHead };
  }

  /** @internal Resolves once the generation moves past `generation` (or the feed closes / signal aborts). */
  async changed(generation: number, signal: AbortSignal): Promise<void> {
    if (this.generation !== generation || this.closed || signal.aborted) return;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        this.waiters.delete(done);
        signal.removeEventListener("abort", done);
        resolve();
      };
      this.waiters.add(done);
      signal.addEventListener("abort", done, { once: true });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Looks at the log now (a notification, the poll, a reconnect); coalesces overlapping calls. */
  wake(): void {
    if (this.closed) return;
    if (this.looking) {
      this.lookAgain = true;
      return;
    }
    this.looking = this.look().finally(() => {
      this.looking = undefined;
      if (this.lookAgain && !this.closed) {
        this.lookAgain = false;
        this.wake();
      }
    });
  }

  private async look(): Promise<void> {
    let next = this.pollMs;
    try {
      const head = await this.log.head();
      if (head > this.visibleHead) this.visibleHead = head;
      // Committed events above the horizon: an older appender holds them back, and it may end
      // without a notification (rollback, nothing appended), so look again soon, not at the poll.
      const r = await this.o.pool.query<{ seq: string | null }>(this.countQuery);
      if (BigInt(r.rows[0]?.seq ?? "0") > head) {
        next = this.heldBackMs;
        this.heldBackMs = Math.min(this.heldBackMs * 2, this.pollMs);
      } else this.heldBackMs = HELD_BACK_MIN_MS;
    } catch (e) {
      this.o.log?.warn(
        `status events: reading the log failed: ${e instanceof Error ? e.message : String(e)}`,
      );
    }
    // Followers re-read even after a failed look: their own read reports the failure to them.
    this.generation++;
    this.wakeAll();
    this.schedule(next);
  }

  private schedule(ms: number): void {
    if (this.closed) return;
    clearTimeout(this.pollTimer);
    this.pollTimer = setTimeout(() => this.wake(), ms);
    this.pollTimer.unref();
  }

  private wakeAll(): void {
    const ws = [...this.waiters];
    this.waiters.clear();
    for (const w of ws) w();
  }

  private async listen(): Promise<void> {
    if (this.closed) return;
    const client = this.o.listenClient?.() ?? new pg.Client(this.o.pool.options);
    let lost = false;
    const onLost = (why: string): void => {
      if (lost) return;
      lost = true;
      if (this.listener === client) this.listener = undefined;
      void client.end().catch(() => undefined);
      if (this.closed) return;
      this.o.log?.warn(`status events: LISTEN connection lost (${why}); reconnecting`);
      const wait = this.reconnectMs;
      this.reconnectMs = Math.min(this.reconnectMs * 2, RECONNECT_MAX_MS);
      setTimeout(() => void this.listen(), wait).unref();
    };
    client.on("error", (e) => onLost(e.message));
    client.on("end", () => onLost("ended"));
    client.on("notification", () => this.wake());
    try {
      await client.connect();
      await client.query(`LISTEN ${pg.escapeIdentifier(eventsChannelName(this.o.schema))}`);
    } catch (e) {
      onLost(e instanceof Error ? e.message : String(e));
      return;
    }
    if (this.closed || lost) {
      await client.end().catch(() => undefined);
      return;
    }
    this.listener = client;
    this.reconnectMs = RECONNECT_MIN_MS;
    // Whatever was committed while no one listened.
    this.wake();
  }

  /** For tests: ends the LISTEN connection as a network failure would (it reconnects). */
  async dropListenConnection(): Promise<void> {
    const l = this.listener;
    if (!l) return;
    const pid = (l as unknown as { processID?: number }).processID;
    if (pid === undefined) throw new Error("LISTEN connection has no backend pid");
    await this.o.pool.query("SELECT pg_terminate_backend($1)", [pid]);
  }

  /** Whether the LISTEN connection is up (for tests and readiness). */
  get listening(): boolean {
    return this.listener !== undefined;
  }
}

/**
 * Events after a cursor, in seq order, each once. `next()` gives the next batch (never empty),
 * waiting for one; it returns undefined once the signal aborts or the feed closes. The cursor
 * moves past a batch when it is returned: the caller resumes from `cursor` after a failure.
 */
export class Follower {
  private readOnce = false;

  constructor(
    private readonly feed: EventFeed,
    private position: bigint,
    private readonly signal: AbortSignal,
    private readonly batch: number,
  ) {}

  /** The seq of the last event returned (or the start). */
  get cursor(): bigint {
    return this.position;
  }

  async next(): Promise<StatusEvent[] | undefined> {
    for (;;) {
      if (this.signal.aborted || this.feed.isClosed) return undefined;
      const seen = this.feed.snapshot();
      // Nothing past the head the feed's last look saw: wait for the next look rather than each
      // follower asking Postgres at every wake.
      if (this.readOnce && seen.generation > 0 && this.position >= seen.head) {
        await this.feed.changed(seen.generation, this.signal);
        continue;
      }
      this.readOnce = true;
      const events = await this.feed.log.after(this.position, this.batch);
      if (events.length > 0) {
        this.position = events[events.length - 1]?.seq ?? this.position;
        return events;
      }
      await this.feed.changed(seen.generation, this.signal);
    }
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<StatusEvent> {
    for (;;) {
      const events = await this.next();
      if (!events) return;
      yield* events;
    }
  }
}
