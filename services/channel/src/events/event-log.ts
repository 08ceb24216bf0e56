import { createHash } from "node:crypto";
import { inTransaction, quoteSchema } from "@ln/postgres";
import type pg from "pg";

/**
 * Status events (DESIGN.md 11): every status change of a payment, invoice or channel is appended
 * in the same transaction as the change, so the log is exactly as complete as the records are.
 *
 * Ordering without gaps: a sequence number drawn from a Postgres sequence is not in commit order
 * (transaction 1 draws 4, transaction 2 draws 5 and commits first: a reader at 5 never sees 4).
 * So `seq` is the writing transaction's id (xid8) shifted left 16 bits, plus the event's place
 * within the transaction; and a reader is only given events below a horizon no later commit can
 * go under. Every appending transaction first takes a shared advisory lock (`beginEvents`, before
 * it has an id); the horizon is the lowest id of a transaction holding that lock, or the next id
 * to be assigned if none does. Waiting only on appenders (not on the snapshot's xmin) means a long
 * transaction elsewhere in the database never stalls the stream.
 */

export type EventKind = "payment" | "invoice" | "channel";

/** A detail's value: a JSON scalar, or one level of them (a payment's decoded failure). */
export type DetailScalar = string | number | boolean | null;
export type DetailValue = DetailScalar | Readonly<Record<string, DetailScalar>>;

/** What a transition appends: the record it changes, its new status, and what to show with it. */
export interface StatusChange {
  kind: EventKind;
  /** The payment id, the invoice's payment hash, or the channel id. */
  subject: string;
  /** The new status (payment: pending/succeeded/failed; invoice: open/settled; channel: its phase). */
  status: string;
  /** JSON-safe details (amounts as decimal strings); never secrets other than a payment's R. */
  detail?: Record<string, DetailValue>;
}

export interface StatusEvent extends Required<StatusChange> {
  seq: bigint;
  at: Date;
}

/** Misuse of the log: appending outside an event transaction (a gap readers could pass). */
export class EventLogError extends Error {
  override readonly name = "EventLogError";
}

/** The advisory lock appenders share: class "LNEV", object from the schema name. */
const LOCK_CLASS = 0x4c4e4556;
const lockObject = (schema: string): number =>
  createHash("sha256").update(schema).digest().readUInt32BE(0) & 0x7fffffff;

/**
 * Marks `c`'s transaction (just begun, no id yet) as one that may append events: readers hold
 * their horizon below it until it ends. Must come before any statement that writes.
 */
export async function beginEvents(c: pg.ClientBase, schema: string): Promise<void> {
  const r = await c.query<{ fresh: boolean }>(
    `SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh,
            pg_advisory_xact_lock_shared($1, $2) IS NULL AS locked`,
    [LOCK_CLASS, lockObject(schema)],
  );
  if (r.rows[0]?.fresh !== true)
    throw new EventLogError("beginEvents must come before the transaction's first write");
}

/** Runs `fn` in one transaction that may append events (BEGIN, beginEvents, fn, COMMIT). */
export function inEventTransaction<T>(
  pool: pg.Pool,
  schema: string,
  fn: (c: pg.PoolClient) => Promise<T>,
): Promise<T> {
  // beginEvents's lock, sent with the BEGIN (one round trip): the transaction has no id yet.
  return inTransaction(pool, fn, `SELECT pg_advisory_xact_lock_shared(${LOCK_CLASS}, ${lockObject(schema)})`);
}

/** Events a single transaction may append: the low 16 bits of seq. */
export const MAX_EVENTS_PER_TRANSACTION = 0xffff;
/** The Postgres channel NOTIFY'd at each commit that appended events (`<schema>_events`). */
export const eventsChannelName = (schema: string): string => `${schema}_events`;

/**
 * Appends status changes inside the caller's transaction `c` (which must be the one that changes
 * the records), and wakes readers at its commit.
 */
export async function appendEvents(
  c: pg.ClientBase,
  schema: string,
  changes: readonly StatusChange[],
): Promise<void> {
  if (changes.length === 0) return;
  const q = quoteSchema(schema);
  // The events this transaction appended already (earlier calls): ours are after them.
  const r = await c.query<{ base: string; n: string; held: boolean }>(
    `SELECT (pg_current_xact_id()::text::bigint << 16) AS base,
            EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()
                     AND classid = $1 AND objid = $2 AND objsubid = 2 AND granted) AS held,
            (SELECT count(*) FROM ${q}.events
              WHERE seq >= (pg_current_xact_id()::text::bigint << 16)
                AND seq < ((pg_current_xact_id()::text::bigint + 1) << 16)) AS n`,
    [LOCK_CLASS, lockObject(schema)],
  );
  if (r.rows[0]?.held !== true)
    throw new EventLogError("appendEvents outside an event transaction (call beginEvents first)");
  const base = BigInt(r.rows[0]?.base ?? "0");
  const n = Number(r.rows[0]?.n ?? "0");
  if (n + changes.length > MAX_EVENTS_PER_TRANSACTION)
    throw new Error(`more than ${MAX_EVENTS_PER_TRANSACTION} status events in one transaction`);
  const values: unknown[] = [];
  const rows = changes.map((ch, i) => {
    values.push(
      (base + BigInt(n + i)).toString(),
      ch.kind,
      ch.subject,
      ch.status,
      JSON.stringify(ch.detail ?? {}),
    );
    const k = i * 5;
    return `($${k + 1}, $${k + 2}, $${k + 3}, $${k + 4}, $${k + 5})`;
  });
  await c.query(
    `INSERT INTO ${q}.events (seq, kind, subject, status, detail) VALUES ${rows.join(", ")}`,
    values,
  );
  await c.query(`SELECT pg_notify($1, '')`, [eventsChannelName(schema)]);
}

interface EventDbRow {
  seq: string;
  kind: EventKind;
  subject: string;
  status: string;
  detail: Record<string, DetailValue>;
  at: Date;
}

/** The read side: events after a seq, in seq order, only once no earlier one can still appear. */
export class EventLog {
  private readonly q: string;

  constructor(
    private readonly pool: pg.Pool,
    readonly schema: string,
  ) {
    this.q = quoteSchema(schema);
  }

  /**
   * The lowest seq a commit may still add. One statement: its snapshot's next id is taken before
   * pg_locks is read, so an appender not yet holding an id then gets one above it; an appender
   * gone from pg_locks has committed (locks go after the commit is visible), so the next
   * statement's snapshot sees its events.
   */
  private async horizon(): Promise<bigint> {
    const r = await this.pool.query<{ horizon: string }>(
      `WITH snap AS (SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xmax),
            locks AS MATERIALIZED (SELECT locktype, pid, classid, objid, objsubid, granted, transactionid
                                     FROM pg_locks),
            holders AS (SELECT pid FROM locks WHERE locktype = 'advisory' AND classid = $1
                          AND objid = $2 AND objsubid = 2 AND granted),
            xids AS (SELECT t.transactionid::text::bigint AS xid32 FROM locks t
                       JOIN holders h ON h.pid = t.pid WHERE t.locktype = 'transactionid')
       SELECT (LEAST(snap.xmax, min(snap.xmax - (((snap.xmax % 4294967296) - xids.xid32 + 4294967296) % 4294967296))) << 16)::text AS horizon
         FROM snap LEFT JOIN xids ON true GROUP BY snap.xmax`,
      [LOCK_CLASS, lockObject(this.schema)],
    );
    return BigInt(r.rows[0]?.horizon ?? "0");
  }

  /** Up to `limit` events with seq > `after`, of transactions no appender can still precede. */
  async after(after: bigint, limit = 500): Promise<StatusEvent[]> {
    const horizon = await this.horizon();
    const r = await this.pool.query<EventDbRow>(
      `SELECT seq::text AS seq, kind, subject, status, detail, at FROM ${this.q}.events
        WHERE seq > $1 AND seq < $2 ORDER BY seq LIMIT $3`,
      [after.toString(), horizon.toString(), limit],
    );
    return r.rows.map((x) => ({
      seq: BigInt(x.seq),
      kind: x.kind,
      subject: x.subject,
      status: x.status,
      detail: x.detail,
      at: x.at,
    }));
  }

  /** The highest seq a reader may be given now (0 with none): where a new follower starts. */
  async head(): Promise<bigint> {
    const horizon = await this.horizon();
    const r = await this.pool.query<{ seq: string | null }>(
      `SELECT max(seq)::text AS seq FROM ${this.q}.events WHERE seq < $1`,
      [horizon.toString()],
    );
    return BigInt(r.rows[0]?.seq ?? "0");
  }
}
