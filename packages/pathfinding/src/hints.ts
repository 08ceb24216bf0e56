import { msat, type Msat } from "@ln/bitcoin";
import type { Edge } from "./route.js";

/** A BOLT #11 'r' field hop (the shape of @ln/invoice's RouteHintHop). */
export interface RouteHintHop {
  nodeId: string;
  shortChannelId: bigint;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

/** A hint's channel capacity is unknown: assume it carries anything (u64 max). */
export const HINT_CAPACITY_MSAT: Msat = msat(0xffff_ffff_ffff_ffffn);

/**
 * The edges of one BOLT #11 route hint: hint[i].nodeId forwards over hint[i].shortChannelId to
 * hint[i+1].nodeId, the last one to the destination, for hint[i]'s fee and cltv delta. The capacity
 * and HTLC bounds are unknown, so left open; a failure will say if they do not hold.
 */
export function hintEdges(hint: readonly RouteHintHop[], destination: string): Edge[] {
  return hint.map((h, i) => ({
    shortChannelId: h.shortChannelId,
    from: h.nodeId,
    to: hint[i + 1]?.nodeId ?? destination,
    capacityMsat: HINT_CAPACITY_MSAT,
    policy: {
      feeBaseMsat: h.feeBaseMsat,
      feeProportionalMillionths: h.feeProportionalMillionths,
      cltvExpiryDelta: h.cltvExpiryDelta,
      htlcMinimumMsat: msat(0n),
      htlcMaximumMsat: HINT_CAPACITY_MSAT,
    },
  }));
}
