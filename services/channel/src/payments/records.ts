import { sha256 } from "@ln/bitcoin";
import type { ChannelState, Htlc, HtlcResult, Output } from "@ln/channel-core";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { appendEvents, type StatusChange } from "../events/event-log.js";
import {
  forwardOffered,
  incomingOnionReceived,
  offeredHtlcResolved,
  receivedHtlcResolved,
} from "../forwarding/records.js";
import { paymentId, type Ledger, type PaymentRow } from "./ledger.js";
import type { WithinTransition } from "../channels/store.js";

/**
 * Money records (DESIGN.md 11), written inside the transaction of the step that moves their
 * HTLC, never after its commit: a crash can neither lose a record nor leave one pending whose
 * HTLC is resolved. Each status change appends its event in the same transaction (the caller
 * began it with `beginEvents`).
 *
 * - A payment (an HTLC we offered) is pending in the step that offers it, succeeded in the step
 *   that receives R, failed in the step that makes the peer's removal irrevocable (the core's
 *   `htlc_result` outputs say when), or settled on chain (resolution.ts).
 * - An invoice is settled in the step of our fulfil (R leaves us there), or by our claim on chain.
 * - A forward (an HTLC offered to us that continues on another channel, or one we offered that
 *   continues one) moves instead of a payment or an invoice (forwarding/records.ts).
 * - A channel's phase change is an event.
 */

/** A peer's fail reason (hex of the wire bytes) as text for the payment record. */
export const reasonText = (hexReason: string): string => Buffer.from(hexReason, "hex").toString("utf8");

/** The records and events of one step of channel `channelId`, in its transaction `c`. */
export async function writeStepRecords(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  prev: Pick<ChannelState, "phase"> | undefined,
  next: { state: Pick<ChannelState, "phase">; outputs: readonly Output[] },
): Promise<void> {
  const events: StatusChange[] = [];
  for (const o of next.outputs) {
    if (o.type === "htlc_added" && o.offerer === "remote" && o.route !== "")
      await incomingOnionReceived(c, schema, channelId, o.id, o.route);
    else if (o.type === "htlc_added" && o.offerer === "local")
      if (o.forward !== undefined) await forwardOffered(c, schema, o.forward, channelId, o.id);
      else events.push(...(await paymentOffered(c, schema, channelId, o.htlc)));
    else if (o.type === "htlc_result" && o.offerer === "local") {
      if (await offeredHtlcResolved(c, schema, channelId, o.id, o.result)) continue;
      events.push(
        ...(await paymentFinal(
          c,
          schema,
          channelId,
          o.id,
          o.result.kind === "failed" ? { kind: "failed", reason: reasonText(o.result.reason) } : o.result,
          o.htlc,
        )),
      );
    } else if (o.type === "htlc_result") {
      if (await receivedHtlcResolved(c, schema, channelId, o.id, o.result)) continue;
      if (o.result.kind === "fulfilled")
        events.push(...(await invoiceSettled(c, schema, o.htlc?.rHash ?? rHashOf(o.result.r))));
    }
  }
  if (prev?.phase !== next.state.phase)
    events.push({ kind: "channel", subject: channelId, status: next.state.phase });
  await appendEvents(c, schema, events);
}

/** A payment's record as pending (the HTLC we offered); a second record of it changes nothing. */
export async function paymentOffered(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlc: Htlc,
): Promise<StatusChange[]> {
  const r = await c.query(
    `INSERT INTO ${quoteSchema(schema)}.payments (id, channel_id, htlc_id, r_hash, amount_msat, expiry)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
    [
      paymentId(channelId, htlc.id),
      channelId,
      htlc.id.toString(),
      htlc.rHash,
      htlc.amountMsat.toString(),
      JSON.stringify(htlc.expiry),
    ],
  );
  return r.rowCount === 1 ? [paymentEvent(channelId, htlc.id, "pending", htlc)] : [];
}

/**
 * A payment's outcome: succeeded (with R) or failed (with the reason, as text). Only a pending
 * payment changes (an outcome is final). With the HTLC known, a payment with no record yet gets
 * one (final at once), so an outcome is never lost for want of its pending row.
 */
export async function paymentFinal(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlcId: bigint,
  result: HtlcResult,
  htlc: Htlc | undefined,
): Promise<StatusChange[]> {
  const q = quoteSchema(schema);
  const status = result.kind === "fulfilled" ? "succeeded" : "failed";
  const preimage = result.kind === "fulfilled" ? result.r : null;
  const reason = result.kind === "failed" ? result.reason : null;
  const id = paymentId(channelId, htlcId);
  const r = htlc
    ? await c.query(
        `INSERT INTO ${q}.payments (id, channel_id, htlc_id, r_hash, amount_msat, expiry, status, preimage, failure_reason, settled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, now())
         ON CONFLICT (id) DO UPDATE SET status = $7, preimage = $8, failure_reason = $9, settled_at = now()
           WHERE payments.status = 'pending'`,
        [
          id,
          channelId,
          htlcId.toString(),
          htlc.rHash,
          htlc.amountMsat.toString(),
          JSON.stringify(htlc.expiry),
          status,
          preimage,
          reason,
        ],
      )
    : await c.query(
        `UPDATE ${q}.payments SET status = $2, preimage = $3, failure_reason = $4, settled_at = now()
          WHERE id = $1 AND status = 'pending'`,
        [id, status, preimage, reason],
      );
  if (r.rowCount !== 1) return [];
  return [
    paymentEvent(channelId, htlcId, status, htlc, result.kind === "failed" ? result.reason : undefined),
  ];
}

/** An invoice paid: settled once (R left us, off chain or on chain); unknown hashes change nothing. */
export async function invoiceSettled(
  c: pg.ClientBase,
  schema: string,
  rHash: string,
): Promise<StatusChange[]> {
  const r = await c.query<{ amount_msat: string }>(
    `UPDATE ${quoteSchema(schema)}.invoices SET status = 'settled', settled_at = now()
      WHERE r_hash = $1 AND status = 'open' RETURNING amount_msat::text AS amount_msat`,
    [rHash],
  );
  const row = r.rows[0];
  return row
    ? [{ kind: "invoice", subject: rHash, status: "settled", detail: { amountMsat: row.amount_msat } }]
    : [];
}

function paymentEvent(
  channelId: string,
  htlcId: bigint,
  status: string,
  htlc: Htlc | undefined,
  reason?: string,
): StatusChange {
  return {
    kind: "payment",
    subject: paymentId(channelId, htlcId),
    status,
    detail: {
      channelId,
      ...(htlc ? { rHash: htlc.rHash, amountMsat: htlc.amountMsat.toString() } : {}),
      ...(reason !== undefined ? { failureReason: reason } : {}),
    },
  };
}

/**
 * For a command that offers an HTLC: runs `fn` with the payment's record, as just written, inside
 * the step's own transaction (e.g. the control API's idempotency result, so a crash after that
 * commit still answers a retry with the payment). Nothing runs if the step offered nothing.
 */
export const withOfferedPayment =
  (
    ledger: Ledger,
    channelId: string,
    fn: (c: pg.PoolClient, row: PaymentRow) => Promise<void>,
  ): WithinTransition =>
  async (c, t) => {
    const added = t.outputs.find(
      (x): x is Extract<Output, { type: "htlc_added" }> => x.type === "htlc_added" && x.offerer === "local",
    );
    const row = added && (await ledger.payment(paymentId(channelId, added.id), c));
    if (row) await fn(c, row);
  };

const rHashOf = (r: string): string => sha256(Buffer.from(r, "hex")).toString("hex");
