import { msat } from "@ln/bitcoin";
import type { Edge, PathHop, RouteQuery } from "@ln/pathfinding";

export const BIG = 10_000_000_000_000n;

export interface EdgeTerms {
  base?: bigint;
  ppm?: bigint;
  delta?: number;
  min?: bigint;
  max?: bigint;
  capacity?: bigint;
}

/** `from` forwards to `to` over `scid`; unset terms are free and unbounded. */
export const edge = (scid: bigint, from: string, to: string, t: EdgeTerms = {}): Edge => ({
  shortChannelId: scid,
  from,
  to,
  capacityMsat: msat(t.capacity ?? BIG),
  policy: {
    feeBaseMsat: msat(t.base ?? 0n),
    feeProportionalMillionths: t.ppm ?? 0n,
    cltvExpiryDelta: t.delta ?? 0,
    htlcMinimumMsat: msat(t.min ?? 0n),
    htlcMaximumMsat: msat(t.max ?? BIG),
  },
});

/** A hop as planRoute takes it: the node reached, the channel, its forwarder's fee and delta. */
export const hop = (nodeId: string, scid: bigint, base = 0n, ppm = 0n, delta = 0): PathHop => ({
  nodeId,
  shortChannelId: scid,
  feeBaseMsat: msat(base),
  feeProportionalMillionths: ppm,
  cltvExpiryDelta: delta,
});

export const query = (amount: bigint, over: Partial<RouteQuery> = {}): RouteQuery => ({
  source: "S",
  destination: "D",
  amountMsat: msat(amount),
  finalCltvDelta: 20,
  maxFeeMsat: msat(1_000_000n),
  maxTotalCltvDelta: 2016,
  ...over,
});
