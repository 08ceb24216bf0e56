import type { Msat } from "@ln/bitcoin";

/** A channel direction's forwarding terms (the forwarder's channel_update). */
export interface HopPolicy {
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
  htlcMinimumMsat: Msat;
  htlcMaximumMsat: Msat;
}

/** One direction of a channel: `from` forwards to `to` over it under `policy` (from's channel_update). */
export interface Edge {
  shortChannelId: bigint;
  from: string;
  to: string;
  capacityMsat: Msat;
  policy: HopPolicy;
}

export interface RouteQuery {
  source: string;
  destination: string;
  /** What the destination receives. */
  amountMsat: Msat;
  finalCltvDelta: number;
  maxFeeMsat: Msat;
  /** Sum of the forwarders' cltv deltas plus finalCltvDelta. */
  maxTotalCltvDelta: number;
  /** edgeKey(scid, from) of directions not to use. */
  excludedEdges?: ReadonlySet<string>;
  /** Nodes never used as an intermediate hop (excluding the source or destination: no route). */
  excludedNodes?: ReadonlySet<string>;
  riskFactor?: number;
}

/**
 * Same shape as services/channel/src/payments/route.ts RouteHop: hops[i] is the node reached over
 * shortChannelId, with the fee/delta its forwarder (hops[i-1], or us for i=0 -> zero) charges.
 */
export interface PathHop {
  nodeId: string;
  shortChannelId: bigint;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

export type RouteResult =
  | { ok: true; hops: PathHop[]; amountMsat: Msat /* we send */; feeMsat: Msat; cltvDelta: number }
  | { ok: false; reason: string };

/** BOLT #4: at most 20 hops fit the onion. */
export const MAX_HOPS = 20;
/** Risk cost per msat per block, in units of 1e-9 (see README). */
export const DEFAULT_RISK_FACTOR = 15;

export const edgeKey = (shortChannelId: bigint, from: string): string => `${shortChannelId}/${from}`;

export function findRoute(edges: readonly Edge[], q: RouteQuery): RouteResult {
  void edges;
  void q;
  return { ok: false, reason: "not implemented" };
}
