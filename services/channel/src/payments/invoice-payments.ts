import { createHash, randomUUID } from "node:crypto";
import { msat, type Msat } from "@ln/bitcoin";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { appendEvents, inEventTransaction } from "../events/event-log.js";
import { failureName, type PaymentRoute } from "./ledger.js";
import type { LocalFailure } from "./payer.js";

/**
 * Invoice payments (migration 23): one row per invoice we pay, its attempts the payments rows
 * that name it (written in the step that adds each HTLC, records.ts). Written here only when the
 * operator asks (pending, with its first event); moved by records.ts (succeeded) and the payer
 * (failed, our channel's refusals).
 */

/** How long the payer keeps trying when the operator does not say (seconds). */
export const DEFAULT_PAYMENT_TIMEOUT_SECONDS = 60;

/** The fee limit when the operator gives none: 1% of the amount plus 1000 msat (small payments can still pay a base fee). */
export const defaultMaxFee = (amountMsat: Msat): Msat => msat(amountMsat / 100n + 1000n);

export type InvoicePaymentStatus = "pending" | "succeeded" | "failed";

export interface InvoiceAttempt {
  /** The attempt's payment id (channel:htlc), or `<id>/refused/<n>` for one our channel refused. */
  id: string;
  route: { nodeId: string; shortChannelId: string; amountMsat: string; expiry: number }[];
  /** What we sent: the invoice's amount plus the fee. */
  amountMsat: Msat;
  feeMsat: Msat;
  status: InvoicePaymentStatus;
  failure:
    | { hop: number | null; nodeId: string | null; code: number | null; name: string; description: string }
    | undefined;
  createdAt: Date;
}

export interface InvoicePayment {
  id: string;
  kind: "invoice";
  status: InvoicePaymentStatus;
  rHash: string;
  payee: string;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  feeMsat: Msat | undefined;
  preimage: string | undefined;
  failure: string | undefined;
  deadline: Date;
  allowRepeat: boolean;
  attempts: InvoiceAttempt[];
  createdAt: Date;
  finishedAt: Date | undefined;
}

export type InvoicePaymentRefusal =
  | "INVALID_INVOICE"
  | "WRONG_NETWORK"
  | "INVOICE_EXPIRED"
  | "OWN_INVOICE"
  | "AMOUNT_REQUIRED"
  | "AMOUNT_NOT_ALLOWED"
  | "INVOICE_ALREADY_PAID"
  | "INVOICE_PAYMENT_PENDING";

/** An invoice not paid, and nothing sent: 400 for the invoice itself, 409 for paying it twice. */
export class InvoicePaymentRefused extends Error {
  override readonly name = "InvoicePaymentRefused";
  constructor(
    readonly code: InvoicePaymentRefusal,
    message: string,
    /** The payment that already pays it (409). */
    readonly existing?: string,
  ) {
    super(message);
  }

  get status(): 400 | 409 {
    return this.code === "INVOICE_ALREADY_PAID" || this.code === "INVOICE_PAYMENT_PENDING" ? 409 : 400;
  }
}

export interface NewInvoicePayment {
  bolt11: string;
  rHash: string;
  payee: string;
  amountMsat: Msat;
  maxFeeMsat: Msat;
  deadline: Date;
  allowRepeat: boolean;
}

/** Advisory lock class of an r_hash being paid: "LNIR". */
const LOCK_CLASS = 0x4c4e4952;
const lockObject = (rHash: string): number =>
  createHash("sha256").update(rHash).digest().readUInt32BE(0) & 0x7fffffff;

/**
 * Writes a new pending invoice payment and its event, then `complete` (the API's idempotency
 * result) in the same transaction. The same r_hash pending or paid already is refused unless
 * the operator allowed a repeat (a lock per r_hash orders concurrent requests; the unique index
 * of migration 23 is the last word).
 */
export async function createInvoicePayment(
  pool: pg.Pool,
  schema: string,
  p: NewInvoicePayment,
  complete?: (tx: pg.ClientBase, payment: InvoicePayment) => Promise<void>,
): Promise<InvoicePayment> {
  const q = quoteSchema(schema);
  const id = `ip-${randomUUID()}`;
  try {
    return await inEventTransaction(pool, schema, async (c) => {
      await c.query(`SELECT pg_advisory_xact_lock($1, $2)`, [LOCK_CLASS, lockObject(p.rHash)]);
      if (!p.allowRepeat) {
        const earlier = await c.query<{ id: string; status: InvoicePaymentStatus }>(
          `SELECT id, status FROM ${q}.invoice_payments WHERE r_hash = $1 AND status IN ('pending', 'succeeded')
            ORDER BY status DESC, created_at LIMIT 1`,
          [p.rHash],
        );
        const e = earlier.rows[0];
        if (e) throw twice(e.status, e.id);
      }
      await c.query(
        `INSERT INTO ${q}.invoice_payments (id, bolt11, r_hash, payee, amount_msat, max_fee_msat, deadline, allow_repeat)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
        [
          id,
          p.bolt11,
          p.rHash,
          p.payee,
          p.amountMsat.toString(),
          p.maxFeeMsat.toString(),
          p.deadline,
          p.allowRepeat,
        ],
      );
      await appendEvents(c, schema, [
        {
          kind: "payment",
          subject: id,
          status: "pending",
          detail: { kind: "invoice", rHash: p.rHash, amountMsat: p.amountMsat.toString(), payee: p.payee },
        },
      ]);
      const made = await invoicePayment(c, schema, id);
      if (!made) throw new Error(`invoice payment ${id} vanished in its own transaction`);
      if (complete) await complete(c, made);
      return made;
    });
  } catch (e) {
    // Another request of the same r_hash without the lock's order (cannot happen here, but the
    // index is what guarantees it).
    if (isUniqueViolation(e)) throw twice("pending", undefined);
    throw e;
  }
}

function twice(status: InvoicePaymentStatus, existing: string | undefined): InvoicePaymentRefused {
  return status === "succeeded"
    ? new InvoicePaymentRefused(
        "INVOICE_ALREADY_PAID",
        `this invoice was paid already${existing ? ` (payment ${existing})` : ""}; nothing was sent. Pay it again only on purpose, with allowRepeat: true`,
        existing,
      )
    : new InvoicePaymentRefused(
        "INVOICE_PAYMENT_PENDING",
        `this invoice is being paid${existing ? ` (payment ${existing})` : ""}; nothing was sent. Follow that payment (GET /v1/payments/{id} or GET /v1/events)`,
        existing,
      );
}

const isUniqueViolation = (e: unknown): boolean =>
  typeof e === "object" && e !== null && "code" in e && (e as { code: unknown }).code === "23505";

interface InvoicePaymentDbRow {
  id: string;
  r_hash: string;
  payee: string;
  amount_msat: string;
  max_fee_msat: string;
  deadline: Date;
  status: InvoicePaymentStatus;
  preimage: string | null;
  fee_msat: string | null;
  failure: string | null;
  allow_repeat: boolean;
  local_failures: LocalFailure[];
  created_at: Date;
  finished_at: Date | null;
}

interface AttemptDbRow {
  id: string;
  invoice_payment_id: string;
  amount_msat: string;
  status: InvoicePaymentStatus;
  route: PaymentRoute | null;
  failure_reason: string | null;
  failure_hop: number | null;
  failure_node: string | null;
  failure_code: number | null;
  failure_description: string | null;
  created_at: Date;
}

const COLUMNS = `id, r_hash, payee, amount_msat::text AS amount_msat, max_fee_msat::text AS max_fee_msat, deadline,
  status, preimage, fee_msat::text AS fee_msat, failure, allow_repeat, local_failures, created_at, finished_at`;

/** One invoice payment with its attempts (`q`: a transaction to read it in, or the pool). */
export async function invoicePayment(
  q: pg.Pool | pg.ClientBase,
  schema: string,
  id: string,
): Promise<InvoicePayment | undefined> {
  const r = await q.query<InvoicePaymentDbRow>(
    `SELECT ${COLUMNS} FROM ${quoteSchema(schema)}.invoice_payments WHERE id = $1`,
    [id],
  );
  return (await withAttempts(q, schema, r.rows))[0];
}

/** Invoice payments, newest first, with their attempts. */
export async function invoicePayments(
  q: pg.Pool | pg.ClientBase,
  schema: string,
  limit: number,
): Promise<InvoicePayment[]> {
  const r = await q.query<InvoicePaymentDbRow>(
    `SELECT ${COLUMNS} FROM ${quoteSchema(schema)}.invoice_payments ORDER BY created_at DESC, id LIMIT $1`,
    [limit],
  );
  return withAttempts(q, schema, r.rows);
}

async function withAttempts(
  q: pg.Pool | pg.ClientBase,
  schema: string,
  rows: InvoicePaymentDbRow[],
): Promise<InvoicePayment[]> {
  if (rows.length === 0) return [];
  const a = await q.query<AttemptDbRow>(
    `SELECT id, invoice_payment_id, amount_msat::text AS amount_msat, status, route, failure_reason, failure_hop,
            failure_node, failure_code, failure_description, created_at
       FROM ${quoteSchema(schema)}.payments WHERE invoice_payment_id = ANY($1) ORDER BY created_at, id`,
    [rows.map((x) => x.id)],
  );
  return rows.map((p) => {
    const amount = BigInt(p.amount_msat);
    const refused: InvoiceAttempt[] = p.local_failures.map((l, i) => ({
      id: `${p.id}/refused/${i}`,
      route: [],
      amountMsat: msat(amount),
      feeMsat: msat(0n),
      status: "failed",
      failure: {
        hop: null,
        nodeId: null,
        code: null,
        name: l.code,
        description: `our channel ${l.channelId} refused it: ${l.reason}`,
      },
      createdAt: new Date(l.at),
    }));
    const sent: InvoiceAttempt[] = a.rows
      .filter((x) => x.invoice_payment_id === p.id)
      .map((x) => ({
        id: x.id,
        route: (x.route?.hops ?? []).map((h) => ({
          nodeId: h.nodeId,
          shortChannelId: h.shortChannelId,
          amountMsat: h.amountMsat,
          expiry: h.expiry,
        })),
        amountMsat: msat(BigInt(x.amount_msat)),
        feeMsat: msat(BigInt(x.amount_msat) - amount),
        status: x.status,
        failure:
          x.status !== "failed"
            ? undefined
            : x.failure_code !== null
              ? {
                  hop: x.failure_hop,
                  nodeId: x.failure_node,
                  code: x.failure_code,
                  name: failureName(x.failure_code),
                  description: x.failure_description ?? "",
                }
              : { hop: null, nodeId: null, code: null, name: "unknown", description: x.failure_reason ?? "" },
        createdAt: x.created_at,
      }));
    return {
      id: p.id,
      kind: "invoice",
      status: p.status,
      rHash: p.r_hash,
      payee: p.payee,
      amountMsat: msat(amount),
      maxFeeMsat: msat(BigInt(p.max_fee_msat)),
      feeMsat: p.fee_msat === null ? undefined : msat(BigInt(p.fee_msat)),
      preimage: p.preimage ?? undefined,
      failure: p.failure ?? undefined,
      deadline: p.deadline,
      allowRepeat: p.allow_repeat,
      attempts: [...refused, ...sent].sort((x, y) => x.createdAt.getTime() - y.createdAt.getTime()),
      createdAt: p.created_at,
      finishedAt: p.finished_at ?? undefined,
    };
  });
}
