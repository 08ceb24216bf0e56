import { msat, type Msat } from "@ln/bitcoin";
import { forwardingFee } from "../forwarding/policy.js";

/**
 * A payment over an explicit route (DESIGN.md 10): what each hop's onion layer says and what HTLC
 * we offer, computed backwards from the payee. Pure.
 *
 * hops[i] is the node reached and the channel that reaches it, with the fee and cltv delta that
 * the node before it (the forwarder, hops[i-1]) charges for that channel; hops[0]'s channel is
 * ours, so it charges nothing; the last hop is the payee.
 */
export interface RouteHop {
  /** The node reached: a 33-byte compressed public key, hex. */
  nodeId: string;
  /** The channel that reaches it (BOLT #7 packing). */
  shortChannelId: bigint;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

/** A hop's onion payload (BOLT #4 TLVs 2, 4, 6, 8), as @ln/onion's encodeHopPayload takes it. */
export interface HopPayloadFields {
  amtToForwardMsat: bigint;
  outgoingCltvValue: number;
  shortChannelId?: bigint;
  paymentData?: { paymentSecret: Buffer; totalMsat: bigint };
}

export interface PlannedHop extends RouteHop {
  /** The HTLC that reaches this node: its amount and expiry (a block height). */
  amountMsat: Msat;
  expiry: number;
  payload: HopPayloadFields;
}

export interface RoutePlan {
  /** The HTLC we offer on our channel (hops[0]'s incoming HTLC). */
  amountMsat: Msat;
  expiry: number;
  hops: PlannedHop[];
}

export type RouteErrorCode =
  | "EMPTY_ROUTE"
  | "TOO_MANY_HOPS"
  /** hops[0] carries a fee or delta: our own channel charges us nothing. */
  | "FIRST_HOP_POLICY"
  | "INVALID_HOP"
  /** An amount past u64, or an expiry past the largest block height. */
  | "OUT_OF_RANGE";

export class RouteError extends Error {
  override readonly name = "RouteError";
  constructor(
    readonly code: RouteErrorCode,
    message: string,
    readonly hop?: number,
  ) {
    super(message);
  }
}

/** BOLT #4: a 1300-byte hop payload area holds at most 20 hops of the smallest payloads. */
export const MAX_ROUTE_HOPS = 20;
/** A payment to no invoice (a bare hash): the final hop's payment_data carries 32 zero bytes. */
export const NO_PAYMENT_SECRET = Buffer.alloc(32);
/** Expiries are block heights (locktime below 500,000,000). */
const MAX_HEIGHT = 499_999_999;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const U32_MAX = 0xffff_ffffn;
const NODE_ID = /^0[23][0-9a-f]{64}$/;

/**
 * Each hop's payload and incoming HTLC, and the HTLC we offer. `amountMsat` is what the payee
 * gets, `finalExpiry` its HTLC's expiry (the payee's outgoing_cltv_value), `paymentSecret` the
 * invoice's (BOLT #11 `s`), carried to the payee in payment_data.
 */
export function planRoute(
  hops: readonly RouteHop[],
  amountMsat: Msat,
  finalExpiry: number,
  paymentSecret: Buffer = NO_PAYMENT_SECRET,
): RoutePlan {
  if (hops.length === 0) throw new RouteError("EMPTY_ROUTE", "the route has no hop");
  if (hops.length > MAX_ROUTE_HOPS)
    throw new RouteError("TOO_MANY_HOPS", `the route has ${hops.length} hops, at most ${MAX_ROUTE_HOPS}`);
  hops.forEach(checkHop);
  const first = hops[0] as RouteHop;
  if (first.feeBaseMsat !== 0n || first.feeProportionalMillionths !== 0n || first.cltvExpiryDelta !== 0)
    throw new RouteError(
      "FIRST_HOP_POLICY",
      "the first hop's channel is ours: its fee and cltv delta must be absent or zero",
      0,
    );
  if (amountMsat <= 0n || amountMsat > U64_MAX)
    throw new RouteError("OUT_OF_RANGE", `amount ${amountMsat} msat is not a positive u64`);
  if (!Number.isInteger(finalExpiry) || finalExpiry < 1 || finalExpiry > MAX_HEIGHT)
    throw new RouteError("OUT_OF_RANGE", `expiry ${finalExpiry} is not a block height`);
  if (paymentSecret.length !== 32)
    throw new RouteError("INVALID_HOP", "a payment secret is 32 bytes", hops.length - 1);

  const planned: PlannedHop[] = new Array<PlannedHop>(hops.length);
  const last = hops.length - 1;
  // The payee's HTLC carries exactly the amount and expiry its payload names.
  let amount: bigint = amountMsat;
  let expiry = finalExpiry;
  planned[last] = {
    ...(hops[last] as RouteHop),
    amountMsat: msat(amount),
    expiry,
    payload: {
      amtToForwardMsat: amount,
      outgoingCltvValue: expiry,
      paymentData: { paymentSecret, totalMsat: amount },
    },
  };
  // Hop i forwards hop i+1's HTLC over hops[i+1]'s channel, for that channel's fee and delta.
  for (let i = last - 1; i >= 0; i--) {
    const next = hops[i + 1] as RouteHop;
    const payload: HopPayloadFields = {
      amtToForwardMsat: amount,
      outgoingCltvValue: expiry,
      shortChannelId: next.shortChannelId,
    };
    amount += forwardingFee(next, amount);
    expiry += next.cltvExpiryDelta;
    if (amount > U64_MAX) throw new RouteError("OUT_OF_RANGE", `hop ${i}'s amount exceeds a u64`, i);
    if (expiry > MAX_HEIGHT)
      throw new RouteError("OUT_OF_RANGE", `hop ${i}'s expiry ${expiry} is past the largest block height`, i);
    planned[i] = { ...(hops[i] as RouteHop), amountMsat: msat(amount), expiry, payload };
  }
  return { amountMsat: msat(amount), expiry, hops: planned };
}

function checkHop(h: RouteHop, i: number): void {
  const bad = (what: string): RouteError => new RouteError("INVALID_HOP", `hop ${i}: ${what}`, i);
  if (!NODE_ID.test(h.nodeId)) throw bad("nodeId is not a compressed public key (66 lowercase hex)");
  if (h.shortChannelId < 0n || h.shortChannelId > U64_MAX) throw bad("shortChannelId is out of range");
  if (h.feeBaseMsat < 0n || h.feeBaseMsat > U32_MAX) throw bad("feeBaseMsat is not a u32");
  if (h.feeProportionalMillionths < 0n || h.feeProportionalMillionths > U32_MAX)
    throw bad("feeProportionalMillionths is not a u32");
  if (!Number.isInteger(h.cltvExpiryDelta) || h.cltvExpiryDelta < 0 || h.cltvExpiryDelta > 0xffff)
    throw bad("cltvExpiryDelta is not a u16");
}
