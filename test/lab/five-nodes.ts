/**
 * The five-node network of the lab and of test/cross/five-nodes.test.ts (issue 16): nodes A..E,
 * each channel funded by its first node, so money flows towards E:
 *
 *          C
 *        /   \
 *   A - B     E        A-B, B-C, B-D, C-E, D-E
 *        \   /
 *          D
 *
 * B forwards at the same price towards C and D; D charges far less than C towards E, so the
 * cheapest way from A to E is A-B-D-E (three hops), and with D down it is A-B-C-E.
 */
import type { ChannelSpec, Network, OpenedChannel } from "./network.js";

export const FIVE_NODES = ["A", "B", "C", "D", "E"] as const;
export type FiveNodeName = (typeof FIVE_NODES)[number];

/** Each channel's capacity (the draft caps an anchor at 4 294 967 sat). */
export const FIVE_CHANNEL_SAT = 4_000_000n;
/** A wallet coin: one per channel a node funds (B two), E one. */
export const FIVE_FUND_SAT = 10_000_000n;

/** What B charges to forward towards C and towards D. */
export const B_POLICY = { feeBaseMsat: 1_000n, feeProportionalMillionths: 1_000 };
/** What C charges to forward towards E. */
export const C_POLICY = { feeBaseMsat: 2_000n, feeProportionalMillionths: 2_000 };
/** What D charges to forward towards E: far less than C. */
export const D_POLICY = { feeBaseMsat: 100n, feeProportionalMillionths: 100 };

export const FIVE_NODE_SHAPE: readonly ChannelSpec[] = [
  { from: "A", to: "B", amountSat: FIVE_CHANNEL_SAT },
  { from: "B", to: "C", amountSat: FIVE_CHANNEL_SAT, fromPolicy: B_POLICY },
  { from: "B", to: "D", amountSat: FIVE_CHANNEL_SAT, fromPolicy: B_POLICY },
  { from: "C", to: "E", amountSat: FIVE_CHANNEL_SAT, fromPolicy: C_POLICY },
  { from: "D", to: "E", amountSat: FIVE_CHANNEL_SAT, fromPolicy: D_POLICY },
];

export interface FiveNodeChannels {
  readonly fundings: { node: string; txid: string }[];
  readonly opened: OpenedChannel[];
  /** The shape's channel from `from` to `to` (as funded). */
  ch(from: FiveNodeName, to: FiveNodeName): OpenedChannel;
}

/** Funds the funders (a coin per channel) and E, and opens the shape on a started network. */
export async function openFiveNodeShape(net: Network): Promise<FiveNodeChannels> {
  const funders = FIVE_NODE_SHAPE.map((c) => net.node(c.from));
  const fundings = await net.fund([...funders, net.node("E")], FIVE_FUND_SAT);
  const opened = await net.openChannels(FIVE_NODE_SHAPE);
  return {
    fundings,
    opened,
    ch(from, to) {
      const c = opened.find((x) => x.from.name === from && x.to.name === to);
      if (c === undefined) throw new Error(`no channel ${from}-${to} in the shape`);
      return c;
    },
  };
}
