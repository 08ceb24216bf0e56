import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

/**
 * Status events (DESIGN.md 11): every status change of a payment, invoice or channel is appended
 * in the same transaction as the change, so the log is exactly as complete as the records are.
 *
 * Ordering without gaps: a sequence number drawn from a Postgres sequence is not in commit order
 * (transaction 1 draws 4, transaction 2 draws 5 and commits first: a reader at 5 never sees 4).
 * So `seq` is the writing transaction's id (xid8) shifted left 16 bits, plus the event's place
 * within the transaction; and a reader is only given events of transactions older than every
 * transaction still running (the snapshot's xmin). No transaction that commits later can have an
 * id below that bound, so once a reader has passed a seq, no event will ever appear before it.
 */

export type EventKind = "payment" | "invoice" | "channel";

/** What a transition appends: the record it changes, its new status, and what to show with it. */
export interface StatusChange {
  kind: EventKind;
  /** The payment id, the invoice's payment hash, or the channel id. */
  subject: string;
  /** The new status (payment: pending/succeeded/failed; invoice: open/settled; channel: its phase). */
  status: string;
  /** JSON-safe details (amounts as decimal strings); never secrets other than a payment's R. */
  detail?: Record<string, string | number | boolean | null>;
}

export interface StatusEvent extends Required<StatusChange> {
  seq: bigint;
  at: Date;
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
  const r = await c.query<{ base: string; n: string }>(
    `SELECT (pg_current_xact_id()::text::bigint << 16) AS base,
            (SELECT count(*) FROM ${q}.events
              WHERE seq >= (pg_current_xact_id()::text::bigint << 16)
                AND seq < ((pg_current_xact_id()::text::bigint + 1) << 16)) AS n`,
  );
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
  detail: Record<string, string | number | boolean | null>;
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

  /** Up to `limit` events with seq > `after`, of transactions older than every running one. */
  async after(after: bigint, limit = 500): Promise<StatusEvent[]> {
    const r = await this.pool.query<EventDbRow>(
      `SELECT seq::text AS seq, kind, subject, status, detail, at FROM ${this.q}.events
        WHERE seq > $1
          AND seq < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)
        ORDER BY seq LIMIT $2`,
      [after.toString(), limit],
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
    const r = await this.pool.query<{ seq: string | null }>(
      `SELECT max(seq)::text AS seq FROM ${this.q}.events
        WHERE seq < (pg_snapshot_xmin(pg_current_snapshot())::text::bigint << 16)`,
    );
    return BigInt(r.rows[0]?.seq ?? "0");
  }
}
