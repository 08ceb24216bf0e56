/**
 * The forwarding table's changes that ride on a channel step (DESIGN.md 10 and 11): each runs in
 * the transaction of the step of either channel that moves the forward's HTLC, so a forward's row
 * is always exactly what the two channels' states say, whatever crashes.
 *
 * offering -> offered       the step of the outgoing channel that adds its HTLC
 * offered  -> fulfilled     the step that receives R downstream (or R learned on chain)
 * offered  -> failed        the step that makes the downstream removal irrevocable (or its timeout on chain)
 * fulfilled -> settled      the step of the incoming channel that stages our fulfil upstream
 * failed   -> failed_back   the step of the incoming channel that stages our fail upstream
 */
import type { HtlcResult } from "@ln/channel-core";
import {
  createErrorPacket,
  decodeFailReason,
  encodeFailure,
  OnionError,
  wrapErrorPacket,
  type Failure,
} from "@ln/onion";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

export class ForwardError extends Error {
  override readonly name = "ForwardError";
  constructor(
    readonly code: "FORWARD_NOT_OFFERING",
    message: string,
  ) {
    super(message);
  }
}

/** An incoming HTLC's onion, kept from the step that received it until the HTLC is resolved. */
export async function incomingOnionReceived(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlcId: bigint,
  onionHex: string,
): Promise<void> {
  await c.query(
    `INSERT INTO ${quoteSchema(schema)}.incoming_onions (channel_id, htlc_id, onion) VALUES ($1, $2, $3)
     ON CONFLICT DO NOTHING`,
    [channelId, htlcId.toString(), Buffer.from(onionHex, "hex")],
  );
}

/**
 * The step adding the outgoing HTLC claims its forward: exactly one outgoing HTLC per incoming
 * one. A forward no longer waiting to be offered fails the whole step (nothing is offered).
 */
export async function forwardOffered(
  c: pg.ClientBase,
  schema: string,
  forwardId: bigint,
  channelId: string,
  htlcId: bigint,
): Promise<void> {
  const r = await c.query(
    `UPDATE ${quoteSchema(schema)}.forwards SET status = 'offered', out_htlc_id = $3
      WHERE id = $1 AND out_channel = $2 AND status = 'offering'`,
    [forwardId.toString(), channelId, htlcId.toString()],
  );
  if (r.rowCount !== 1)
    throw new ForwardError(
      "FORWARD_NOT_OFFERING",
      `forward ${forwardId} is not waiting to be offered on channel ${channelId}: its HTLC is not added twice`,
    );
}

/**
 * An HTLC we offered is resolved downstream: if it continues a forward, the forward is fulfilled
 * (R, to take upstream at once, draft 6.2) or failed (the downstream error packet with our layer
 * added, erratum 9; a reason that is no error packet becomes our own temporary_channel_failure).
 * Returns whether the HTLC was a forward's (then it is no payment of ours).
 */
export async function offeredHtlcResolved(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlcId: bigint,
  result: HtlcResult | { kind: "timed_out" },
): Promise<boolean> {
  const q = quoteSchema(schema);
  const row = (
    await c.query<{ id: string; status: string; shared_secret: Buffer }>(
      `SELECT id, status, shared_secret FROM ${q}.forwards WHERE out_channel = $1 AND out_htlc_id = $2 FOR UPDATE`,
      [channelId, htlcId.toString()],
    )
  ).rows[0];
  if (!row) return false;
  if (row.status !== "offered") return true;
  if (result.kind === "fulfilled")
    await c.query(`UPDATE ${q}.forwards SET status = 'fulfilled', preimage = $2 WHERE id = $1`, [
      row.id,
      result.r,
    ]);
  else {
    const { reason, failure } =
      result.kind === "timed_out"
        ? ownFailure(row.shared_secret, { name: "permanent_channel_failure" }, "timed out on chain")
        : downstreamFailure(row.shared_secret, Buffer.from(result.reason, "hex"));
    await c.query(
      `UPDATE ${q}.forwards SET status = 'failed', failure = $2, upstream_reason = $3 WHERE id = $1`,
      [row.id, failure, reason],
    );
  }
  return true;
}

/**
 * Our fulfil or fail of an incoming HTLC is staged: its forward is answered upstream. Returns
 * whether the HTLC was a forward's (then it settles no invoice). The onion is no longer needed.
 */
export async function receivedHtlcResolved(
  c: pg.ClientBase,
  schema: string,
  channelId: string,
  htlcId: bigint,
  result: HtlcResult,
): Promise<boolean> {
  const q = quoteSchema(schema);
  await c.query(`DELETE FROM ${q}.incoming_onions WHERE channel_id = $1 AND htlc_id = $2`, [
    channelId,
    htlcId.toString(),
  ]);
  const r = await c.query(
    `UPDATE ${q}.forwards SET status = $3, resolved_at = now()
      WHERE in_channel = $1 AND in_htlc_id = $2
        AND status IN ('fulfilled', 'failed', 'fulfilled_onchain', 'failed_onchain')`,
    [channelId, htlcId.toString(), result.kind === "fulfilled" ? "settled" : "failed_back"],
  );
  if (r.rowCount === 1) return true;
  const any = await c.query(`SELECT 1 FROM ${q}.forwards WHERE in_channel = $1 AND in_htlc_id = $2`, [
    channelId,
    htlcId.toString(),
  ]);
  return (any.rowCount ?? 0) > 0;
}

/** Our own refusal or failure: an error packet we create with the hop's shared secret. */
export function ownFailure(
  sharedSecret: Buffer,
  failure: Failure,
  problem: string,
): { reason: Buffer; failure: string } {
  return {
    reason: createErrorPacket(sharedSecret, encodeFailure(failure)),
    failure: `${failure.name}: ${problem}`,
  };
}

/**
 * What goes upstream for a downstream failure: its error packet with our layer; a malformed
 * onion downstream becomes our own error packet with its failure (as BOLT #4 does for
 * update_fail_malformed_htlc); anything else, our temporary_channel_failure.
 */
function downstreamFailure(sharedSecret: Buffer, reason: Buffer): { reason: Buffer; failure: string } {
  try {
    const r = decodeFailReason(reason);
    if (r.kind === "packet")
      return { reason: wrapErrorPacket(sharedSecret, r.packet), failure: "failed downstream" };
    return ownFailure(sharedSecret, r.failure, "the next node could not read its onion");
  } catch (e) {
    if (!(e instanceof OnionError)) throw e;
    return ownFailure(
      sharedSecret,
      { name: "temporary_channel_failure", channelUpdate: Buffer.alloc(0) },
      "the next node's failure is no error packet",
    );
  }
}
