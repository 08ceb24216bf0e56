import { msat, type Msat } from "@ln/bitcoin";
import type { Edge } from "./route.js";

/** A BOLT #11 'r' field hop (same shape as @ln/invoice's RouteHintHop). */
export interface RouteHintHop {
  nodeId: string;
  shortChannelId: bigint;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

/** A hint's channel capacity is unknown: assume it carries anything (u64 max). */
export const HINT_CAPACITY_MSAT: Msat = msat(0xffff_ffff_ffff_ffffn);

export function hintEdges(hint: readonly RouteHintHop[], destination: string): Edge[] {
  void hint;
  void destination;
  return [];
}
