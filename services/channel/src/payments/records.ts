import { sha256 } from "@ln/bitcoin";
import type { ChannelState, Htlc, Output } from "@ln/channel-core";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { appendEvents, type StatusChange } from "../events/event-log.js";
import {
  forwardOffered,
  incomingOnionReceived,
  offeredHtlcResolved,
  receivedHtlcResolved,
} from "../forwarding/records.js";
import { paymentId, type Ledger, type PaymentFailure, type PaymentRoute, type PaymentRow } from "./ledger.js";
import { decodeErrorPacket, decodeFailReason, describeFailure, failureCode, OnionError } from "@ln/onion";
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
      else events.push(...(await paymentOffered(c, schema, channelId, o.htlc, o.route)));
    else if (o.type === "htlc_result" && o.offerer === "local") {
      if (await offeredHtlcResolved(c, schema, channelId, o.id, o.result)) continue;
      events.push(
        ...(await paymentFinal(
          c,
          schema,
          channelId,
          o.id,
          o.result.kind === "failed" ? { kind: "peer_failed", reasonHex: o.result.reason } : o.result,
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

/**
 * A payment's record as pending (the HTLC we offered); a second record of it changes nothing.
 * `onion` (hex): the HTLC's route; the route and shared secrets the request kept for it under
 * its hash (payment_onions) move onto the payment row here, in the step that adds the HTLC.
 */
export async function paymentOffered(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlc: Htlc,
  onion = "",
): Promise<StatusChange[]> {
  const q = quoteSchema(schema);
  const id = paymentId(channelId, htlc.id);
  const r = await c.query(
    `INSERT INTO ${q}.payments (id, channel_id, htlc_id, r_hash, amount_msat, expiry)
     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING`,
    [id, channelId, htlc.id.toString(), htlc.rHash, htlc.amountMsat.toString(), JSON.stringify(htlc.expiry)],
  );
  let invoicePaymentId: string | undefined;
  if (onion !== "") {
    // An attempt of an invoice payment (payer.ts) becomes one here, with its HTLC.
    const moved = await c.query<{ invoice_payment_id: string | null }>(
      `WITH o AS (DELETE FROM ${q}.payment_onions WHERE onion_hash = $2
                  RETURNING route, onion_secrets, invoice_payment_id)
       UPDATE ${q}.payments p SET route = o.route, onion_secrets = o.onion_secrets,
              invoice_payment_id = o.invoice_payment_id FROM o
        WHERE p.id = $1 AND p.onion_secrets IS NULL RETURNING p.invoice_payment_id`,
      [id, onionHash(onion)],
    );
    invoicePaymentId = moved.rows[0]?.invoice_payment_id ?? undefined;
  }
  return r.rowCount === 1
    ? [paymentEvent(channelId, htlc.id, "pending", htlc, undefined, undefined, invoicePaymentId)]
    : [];
}

/** The key of payment_onions: SHA-256 of the onion packet, hex (`onion`: the packet in hex). */
export const onionHash = (onion: string): string => sha256(Buffer.from(onion, "hex")).toString("hex");

/**
 * Keeps a route and its onion's shared secrets (concatenated) under the onion's hash, before the
 * command that offers the HTLC: the step that adds it (now, or later if deferred behind the
 * signer) moves them onto the payment row (paymentOffered).
 */
export async function keepPaymentOnion(
  q: pg.Pool | pg.ClientBase,
  schema: string,
  onion: string,
  route: PaymentRoute,
  sharedSecrets: readonly Buffer[],
  attemptOf?: { invoicePaymentId: string; channelId: string },
): Promise<void> {
  await q.query(
    `INSERT INTO ${quoteSchema(schema)}.payment_onions (onion_hash, route, onion_secrets, invoice_payment_id, channel_id)
     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (onion_hash) DO NOTHING`,
    [
      onionHash(onion),
      JSON.stringify(route),
      Buffer.concat(sharedSecrets),
      attemptOf?.invoicePaymentId ?? null,
      attemptOf?.channelId ?? null,
    ],
  );
}

/** Forgets a kept onion whose command was refused (it is never sent). */
export async function forgetPaymentOnion(
  q: pg.Pool | pg.ClientBase,
  schema: string,
  onion: string,
): Promise<void> {
  await q.query(`DELETE FROM ${quoteSchema(schema)}.payment_onions WHERE onion_hash = $1`, [
    onionHash(onion),
  ]);
}

/**
 * How a payment ended: R (off chain or on chain), the peer's fail_htlc (`reasonHex`: the hex of
 * its fail_reason bytes), or a failure in our own words (on chain).
 */
export type PaymentOutcome =
  | { kind: "fulfilled"; r: string }
  | { kind: "peer_failed"; reasonHex: string }
  | { kind: "failed"; reason: string };

/**
 * A payment's outcome: succeeded (with R) or failed (with the reason). A payment sent with an
 * onion has the peer's reason read as a BOLT #4 error packet (who failed, and how); one without
 * keeps it as text. Only a pending payment changes (an outcome is final). With the HTLC known, a
 * payment with no record yet gets one (final at once), so an outcome is never lost for want of
 * its pending row.
 */
export async function paymentFinal(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlcId: bigint,
  result: PaymentOutcome,
  htlc: Htlc | undefined,
): Promise<StatusChange[]> {
  const q = quoteSchema(schema);
  const status = result.kind === "fulfilled" ? "succeeded" : "failed";
  const preimage = result.kind === "fulfilled" ? result.r : null;
  const id = paymentId(channelId, htlcId);
  let reason: string | null = null;
  let failure: PaymentFailure | undefined;
  let channelUpdate: Buffer | null = null;
  if (result.kind === "failed") reason = result.reason;
  else if (result.kind === "peer_failed") {
    const sent = await c.query<{ route: PaymentRoute | null; onion_secrets: Buffer | null }>(
      `SELECT route, onion_secrets FROM ${q}.payments WHERE id = $1 AND status = 'pending'`,
      [id],
    );
    const onion = sent.rows[0];
    if (onion?.onion_secrets && onion.route) {
      const read = readFailReason(onion.onion_secrets, onion.route, result.reasonHex);
      reason = read.reason;
      failure = read.failure;
      channelUpdate = read.channelUpdate ?? null;
    } else reason = reasonText(result.reasonHex);
  }
  const f = [
    failure?.hop ?? null,
    failure?.nodeId ?? null,
    failure?.code ?? null,
    failure?.description ?? null,
    channelUpdate,
  ];
  const r = htlc
    ? await c.query(
        `INSERT INTO ${q}.payments (id, channel_id, htlc_id, r_hash, amount_msat, expiry, status, preimage, failure_reason,
           failure_hop, failure_node, failure_code, failure_description, failure_channel_update, settled_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, now())
         ON CONFLICT (id) DO UPDATE SET status = $7, preimage = $8, failure_reason = $9, failure_hop = $10,
           failure_node = $11, failure_code = $12, failure_description = $13, failure_channel_update = $14,
           settled_at = now()
           WHERE payments.status = 'pending' RETURNING invoice_payment_id, amount_msat::text AS amount_msat`,
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
          ...f,
        ],
      )
    : await c.query(
        `UPDATE ${q}.payments SET status = $2, preimage = $3, failure_reason = $4, failure_hop = $5,
           failure_node = $6, failure_code = $7, failure_description = $8, failure_channel_update = $9,
           settled_at = now()
          WHERE id = $1 AND status = 'pending' RETURNING invoice_payment_id, amount_msat::text AS amount_msat`,
        [id, status, preimage, reason, ...f],
      );
  if (r.rowCount !== 1) return [];
  const row = r.rows[0] as { invoice_payment_id: string | null; amount_msat: string } | undefined;
  const invoicePaymentId = row?.invoice_payment_id ?? undefined;
  const events = [
    paymentEvent(channelId, htlcId, status, htlc, reason ?? undefined, failure, invoicePaymentId),
  ];
  // An attempt that succeeded pays its invoice payment; one that failed leaves it to the payer.
  if (invoicePaymentId !== undefined && preimage !== null && row)
    events.push(...(await invoicePaymentSucceeded(c, schema, invoicePaymentId, preimage, row.amount_msat)));
  return events;
}

/**
 * An invoice payment paid by one of its attempts (R is the proof): succeeded with the preimage and
 * the fee (what the attempt's HTLC carried beyond the invoice's amount). Only a pending one moves:
 * it fails only with no attempt in flight (payer.ts), so none can succeed after; and a channel
 * step must never trip the one-payment-per-hash index (the attempt's row keeps R regardless).
 */
export async function invoicePaymentSucceeded(
  c: pg.ClientBase,
  schema: string,
  id: string,
  preimage: string,
  sentMsat: string,
): Promise<StatusChange[]> {
  const r = await c.query<{ r_hash: string; amount_msat: string; fee_msat: string }>(
    `UPDATE ${quoteSchema(schema)}.invoice_payments
        SET status = 'succeeded', preimage = $2, fee_msat = $3::numeric - amount_msat, failure = NULL,
            finished_at = now()
      WHERE id = $1 AND status = 'pending'
      RETURNING r_hash, amount_msat::text AS amount_msat, fee_msat::text AS fee_msat`,
    [id, preimage, sentMsat],
  );
  const row = r.rows[0];
  return row
    ? [
        {
          kind: "payment",
          subject: id,
          status: "succeeded",
          detail: {
            kind: "invoice",
            rHash: row.r_hash,
            amountMsat: row.amount_msat,
            feeMsat: row.fee_msat,
            preimage,
          },
        },
      ]
    : [];
}

/**
 * The peer's fail reason of an HTLC we sent with an onion: a malformed reason is our peer's (hop
 * 0, it could not read the onion); an error packet is peeled with the route's shared secrets.
 * Never throws: a step must not roll back over an unreadable reason, which is recorded as such.
 */
export function readFailReason(
  secrets: Buffer,
  route: PaymentRoute,
  reasonHex: string,
): { reason: string; failure: PaymentFailure | undefined; channelUpdate?: Buffer | undefined } {
  const at = (hop: number): string => route.hops[hop]?.nodeId ?? "";
  const blame = (hop: number): string => `hop ${hop} (${at(hop).slice(0, 8)}…)`;
  try {
    const sharedSecrets: Buffer[] = [];
    for (let i = 0; i + 32 <= secrets.length; i += 32) sharedSecrets.push(secrets.subarray(i, i + 32));
    const decoded = decodeFailReason(Buffer.from(reasonHex, "hex"));
    const { hop, failure } =
      decoded.kind === "malformed"
        ? { hop: 0, failure: decoded.failure }
        : decodeErrorPacket(sharedSecrets, decoded.packet);
    const code = failureCode(failure);
    const description = describeFailure(failure);
    return {
      reason: `${blame(hop)}: ${description}`,
      failure: { hop, nodeId: at(hop), code, name: failure.name, description },
      // The forwarder's channel_update, for the payer's next attempt (payer.ts).
      ...("channelUpdate" in failure && failure.channelUpdate.length > 0
        ? { channelUpdate: failure.channelUpdate }
        : {}),
    };
  } catch (e) {
    // A hop whose HMAC matched but whose failure message is unreadable is still to blame.
    const hop = e instanceof OnionError ? e.hop : undefined;
    if (hop !== undefined) return { reason: `${blame(hop)}: unreadable failure message`, failure: undefined };
    return { reason: "unreadable error packet", failure: undefined };
  }
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
  failure?: PaymentFailure,
  invoicePaymentId?: string,
): StatusChange {
  return {
    kind: "payment",
    subject: paymentId(channelId, htlcId),
    status,
    detail: {
      channelId,
      ...(invoicePaymentId !== undefined ? { invoicePaymentId } : {}),
      ...(htlc ? { rHash: htlc.rHash, amountMsat: htlc.amountMsat.toString() } : {}),
      ...(reason !== undefined ? { failureReason: reason } : {}),
      ...(failure ? { failure: { ...failure } } : {}),
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
