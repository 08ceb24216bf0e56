/**
 * The forwarding rules of DESIGN.md 10, pure: what a forwarding node does with an incoming HTLC
 * whose onion names a next channel, and what the payee checks of one whose onion ends here. Every
 * refusal is a BOLT #4 failure, for the error packet that goes back to the payer.
 */
import { timingSafeEqual } from "node:crypto";
import { isBlocks, msat, type Locktime, type Msat } from "@ln/bitcoin";
import { delayBlocks, redemptionDeadline, type ChannelState, type DeadlineMargin } from "@ln/channel-core";
import type { Failure, HopPayload } from "@ln/onion";
import { forwardingFee, type ForwardingPolicy } from "./policy.js";

/** The incoming HTLC, as committed on both sides of its channel. */
export interface IncomingHtlc {
  amountMsat: Msat;
  expiry: Locktime;
}

/** The channel the onion names, as this node sees it; undefined: no such channel of ours. */
export interface NextChannel {
  phase: ChannelState["phase"];
  /** The CSV delay on our commitment of that channel (the peer's `open_channel` delay). */
  delay: Locktime;
  policy: ForwardingPolicy;
  /** Whether its peer has a connection now: an HTLC offered to a peer gone would sit until its timeout. */
  peerConnected: boolean;
  /**
   * Our latest signed channel_update of it (the bare message, contracts.md), carried by the
   * failures that take one; empty when we have none (a private channel, not announced yet).
   */
  channelUpdate: Buffer;
}

export interface ForwardContext {
  /** The chain's height as this node last saw it. */
  height: number;
  /** The CSV delay on our commitment of the incoming channel. */
  incomingDelay: Locktime;
  margin: DeadlineMargin;
}

export type ForwardDecision =
  { ok: true; amountMsat: Msat; expiry: number } | { ok: false; failure: Failure; problem: string };

/**
 * Whether to forward, in BOLT #4's order of checks: the next channel, its HTLC minimum, the fee,
 * the cltv delta, then the draft 3.1 deadlines: the outgoing HTLC is settled for sure by
 * `max(expiry, now + its channel's delay) + margin` (its timeout on chain at the latest), which
 * must come before the incoming HTLC's own redemption deadline, or we could be made to pay
 * downstream and be unable to claim upstream.
 */
export function decideForward(
  incoming: IncomingHtlc,
  payload: HopPayload,
  next: NextChannel | undefined,
  ctx: ForwardContext,
): ForwardDecision {
  const out = msat(payload.amtToForwardMsat);
  const outExpiry = payload.outgoingCltvValue;
  const refuse = (failure: Failure, problem: string): ForwardDecision => ({ ok: false, failure, problem });
  if (!next) return refuse({ name: "unknown_next_peer" }, "no channel of ours has that short_channel_id");
  if (next.phase === "closed" || next.phase === "failed" || next.phase === "behind")
    return refuse({ name: "permanent_channel_failure" }, `the next channel is ${next.phase}`);
  const noUpdate = next.channelUpdate;
  if (next.phase !== "normal")
    return refuse(
      { name: "temporary_channel_failure", channelUpdate: noUpdate },
      `the next channel is ${next.phase}`,
    );
  if (!next.peerConnected)
    return refuse(
      { name: "temporary_channel_failure", channelUpdate: noUpdate },
      "the next channel's peer is not connected",
    );
  if (out < next.policy.htlcMinimumMsat)
    return refuse(
      { name: "amount_below_minimum", htlcMsat: incoming.amountMsat, channelUpdate: noUpdate },
      `${out} msat is below the channel's minimum of ${next.policy.htlcMinimumMsat} msat`,
    );
  const fee = forwardingFee(next.policy, out);
  if (incoming.amountMsat < out || incoming.amountMsat - out < fee)
    return refuse(
      { name: "fee_insufficient", htlcMsat: incoming.amountMsat, channelUpdate: noUpdate },
      `${incoming.amountMsat} msat in for ${out} msat out leaves less than the ${fee} msat fee`,
    );
  // Routed HTLCs expire at block heights (DESIGN.md 10).
  if (!isBlocks(incoming.expiry) || incoming.expiry.blocks - next.policy.cltvExpiryDelta < outExpiry)
    return refuse(
      {
        name: "incorrect_cltv_expiry",
        cltvExpiry: isBlocks(incoming.expiry) ? incoming.expiry.blocks : 0,
        channelUpdate: noUpdate,
      },
      `the incoming expiry leaves less than the cltv_expiry_delta of ${next.policy.cltvExpiryDelta} blocks before ${outExpiry}`,
    );
  const inDeadline = redemptionDeadline(incoming.expiry, ctx.incomingDelay, ctx.margin);
  const outSettled = Math.max(outExpiry, ctx.height + delayBlocks(next.delay)) + ctx.margin.blocks;
  if (!isBlocks(inDeadline) || outSettled > inDeadline.blocks)
    return refuse(
      { name: "expiry_too_soon", channelUpdate: noUpdate },
      `the outgoing HTLC could be settled as late as height ${outSettled}, after the incoming one's deadline ${isBlocks(inDeadline) ? inDeadline.blocks : "?"} (draft 3.1)`,
    );
  return { ok: true, amountMsat: out, expiry: outExpiry };
}

/**
 * The payee's checks of an HTLC whose onion ends here, before its invoice (BOLT #4, final node):
 * at least the amount and no earlier expiry than the payload says.
 */
export function finalHopFailure(incoming: IncomingHtlc, payload: HopPayload): Failure | undefined {
  if (incoming.amountMsat < payload.amtToForwardMsat)
    return { name: "final_incorrect_htlc_amount", incomingHtlcMsat: incoming.amountMsat };
  if (!isBlocks(incoming.expiry) || incoming.expiry.blocks < payload.outgoingCltvValue)
    return {
      name: "final_incorrect_cltv_expiry",
      cltvExpiry: isBlocks(incoming.expiry) ? incoming.expiry.blocks : 0,
    };
  return undefined;
}

/** A BOLT #11 invoice of ours as the payee checks a final HTLC against it (payments/ledger.ts). */
export interface InvoiceTerms {
  /** 0: any amount. */
  amountMsat: Msat;
  status: "open" | "settled";
  paymentSecret: Buffer;
  expiresAt: Date;
  minFinalCltvExpiryDelta: number;
}

/**
 * BOLT #4's final-node checks of an HTLC whose onion ends here, against the invoice it pays (after
 * finalHopFailure): the invoice still open and not expired, payment_data with its payment secret
 * and a total_msat of this one HTLC (no multi-part), at least the invoice's amount and at most
 * twice it, and an expiry at least min_final_cltv_expiry_delta past the tip. Every refusal is
 * incorrect_or_unknown_payment_details (BOLT #4 folded final_expiry_too_soon into it, so a prober
 * learns nothing from the expiry): the problem text is for our logs. Undefined: accept.
 */
export function invoicePaymentProblem(
  incoming: IncomingHtlc,
  payload: HopPayload,
  invoice: InvoiceTerms,
  ctx: { height: number; now: Date },
): string | undefined {
  if (invoice.status !== "open") return "the invoice is already paid";
  if (ctx.now.getTime() >= invoice.expiresAt.getTime())
    return `the invoice expired at ${invoice.expiresAt.toISOString()}`;
  const data = payload.paymentData;
  if (!data) return "no payment_data: the invoice's payment secret is required";
  if (data.paymentSecret.length !== 32 || !timingSafeEqual(data.paymentSecret, invoice.paymentSecret))
    return "the payment secret is not the invoice's";
  if (data.totalMsat !== payload.amtToForwardMsat)
    return `total_msat ${data.totalMsat} is not this HTLC's ${payload.amtToForwardMsat}: no multi-part payments`;
  if (invoice.amountMsat > 0n && incoming.amountMsat < invoice.amountMsat)
    return `${incoming.amountMsat} msat is below the invoice's ${invoice.amountMsat} msat`;
  if (invoice.amountMsat > 0n && incoming.amountMsat > 2n * invoice.amountMsat)
    return `${incoming.amountMsat} msat is more than twice the invoice's ${invoice.amountMsat} msat`;
  const least = ctx.height + invoice.minFinalCltvExpiryDelta;
  if (!isBlocks(incoming.expiry) || incoming.expiry.blocks < least)
    return `the expiry is before height ${least} (tip ${ctx.height} + min_final_cltv_expiry_delta ${invoice.minFinalCltvExpiryDelta})`;
  return undefined;
}
