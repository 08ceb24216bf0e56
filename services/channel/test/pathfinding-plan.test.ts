/**
 * A route from @ln/pathfinding feeds planRoute (payments/route.ts) unchanged: the HTLC planRoute
 * offers is what findRoute says we send, each hop's incoming HTLC is what findRoute's search put
 * there, and the expiry adds findRoute's forwarders' deltas.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { msat } from "@ln/bitcoin";
import { findRoute, type Edge } from "@ln/pathfinding";
import { planRoute } from "../src/payments/route.js";

const S = `02${"aa".repeat(32)}`;
const B = `02${"bb".repeat(32)}`;
const C = `03${"cc".repeat(32)}`;
const D = `02${"dd".repeat(32)}`;

const edge = (scid: bigint, from: string, to: string, base: bigint, ppm: bigint, delta: number): Edge => ({
  shortChannelId: scid,
  from,
  to,
  capacityMsat: msat(10_000_000_000n),
  policy: {
    feeBaseMsat: msat(base),
    feeProportionalMillionths: ppm,
    cltvExpiryDelta: delta,
    htlcMinimumMsat: msat(0n),
    htlcMaximumMsat: msat(10_000_000_000n),
  },
});

const query = (amount: bigint) => ({
  source: S,
  destination: D,
  amountMsat: msat(amount),
  finalCltvDelta: 18,
  maxFeeMsat: msat(1_000_000n),
  maxTotalCltvDelta: 2016,
});

describe("findRoute -> planRoute", () => {
  it("three hops, hand-computed", () => {
    // S -1-> B -2-> C -3-> D; our channel's policy (2222 flat) is not charged. C charges 1000 +
    // 100 ppm, delta 40: 1000 + 100 = 1100, C receives 1,001,100. B charges 2000 + 250 ppm, delta
    // 144: 2000 + floor(1,001,100 * 250 / 1e6) = 2000 + floor(250.275) = 2250, B receives 1,003,350.
    const edges = [
      edge(1n, S, B, 2222n, 0n, 6),
      edge(2n, B, C, 2000n, 250n, 144),
      edge(3n, C, D, 1000n, 100n, 40),
    ];
    const r = findRoute(edges, query(1_000_000n));
    if (!r.ok) throw new Error(r.reason);
    expect(r).toMatchObject({ amountMsat: 1_003_350n, feeMsat: 3350n, cltvDelta: 18 + 144 + 40 });
    // The payee's HTLC expires at 1018 (tip 1000 + its 18 blocks).
    const plan = planRoute(r.hops, msat(1_000_000n), 1018);
    expect(plan.amountMsat).toBe(1_003_350n);
    expect(plan.expiry).toBe(1000 + 18 + 144 + 40);
    expect(plan.hops.map((h) => [h.nodeId, h.amountMsat, h.expiry])).toEqual([
      [B, 1_003_350n, 1202],
      [C, 1_001_100n, 1058],
      [D, 1_000_000n, 1018],
    ]);
  });

  it("on random chains and diamonds, planRoute offers what findRoute says we send", () => {
    const nodes = [S, B, C, D, `03${"ee".repeat(32)}`];
    const edgeArb = fc.record({
      from: fc.integer({ min: 0, max: 4 }),
      to: fc.integer({ min: 0, max: 4 }),
      base: fc.bigInt({ min: 0n, max: 5000n }),
      ppm: fc.bigInt({ min: 0n, max: 50_000n }),
      delta: fc.integer({ min: 0, max: 200 }),
    });
    fc.assert(
      fc.property(
        fc.array(edgeArb, { minLength: 1, maxLength: 14 }),
        fc.bigInt({ min: 1n, max: 5_000_000n }),
        (es, amount) => {
          const edges = es
            .filter((e) => e.from !== e.to)
            .map((e, i) =>
              edge(BigInt(i + 1), nodes[e.from] as string, nodes[e.to] as string, e.base, e.ppm, e.delta),
            );
          const r = findRoute(edges, query(amount));
          if (!r.ok) return;
          const plan = planRoute(r.hops, msat(amount), 500_000);
          expect(plan.amountMsat).toBe(r.amountMsat);
          expect(plan.expiry).toBe(500_000 + r.cltvDelta - 18);
        },
      ),
      { numRuns: 500 },
    );
  });
});
