/**
 * findRoute on hand-made graphs. Every expectation is computed by hand in the comments: a forwarder
 * charges fee_base + floor(amount * ppm / 1e6) on the amount it sends on, and its risk cost is
 * floor(amount it receives * delta * riskFactor / 1e9) (riskFactor 15 unless said). S is the source
 * (its own channels charge nothing), D the destination.
 */
import { describe, expect, it } from "vitest";
import { msat, type Msat } from "@ln/bitcoin";
import { DEFAULT_RISK_FACTOR, edgeKey, findRoute, forwardingFee, MAX_HOPS, type Edge } from "@ln/pathfinding";
import { edge, hop, query, type EdgeTerms } from "./helpers.js";

/**
 * Two ways from S to D:
 *  - short and expensive: S -1-> A -2-> D, A charges 5000 msat flat, delta 10;
 *  - long and cheap: S -3-> B -4-> C -5-> D, B and C charge 1000 msat + 100 ppm, delta 10 each.
 */
const twoWays = (cheap: { b?: EdgeTerms; c?: EdgeTerms } = {}): Edge[] => [
  edge(1n, "S", "A"),
  edge(2n, "A", "D", { base: 5000n, delta: 10 }),
  edge(3n, "S", "B"),
  edge(4n, "B", "C", { base: 1000n, ppm: 100n, delta: 10, ...cheap.b }),
  edge(5n, "C", "D", { base: 1000n, ppm: 100n, delta: 10, ...cheap.c }),
];

/**
 * 1,000,000 msat over the cheap way: C charges 1000 + 1,000,000 * 100 / 1e6 = 1100, so C receives
 * 1,001,100; B charges 1000 + floor(1,001,100 * 100 / 1e6) = 1000 + floor(100.11) = 1100, so B
 * receives 1,002,200, which we send. Fee 2200; cltv 20 (final) + 10 + 10 = 40. Risk:
 * floor(1,002,200 * 10 * 15 / 1e9) = 0 and floor(1,001,100 * 10 * 15 / 1e9) = 0: cost 2200.
 * The short way: fee 5000, we send 1,005,000, cltv 20 + 10 = 30, cost 5000 (risk 0).
 */
const cheapRoute = {
  ok: true,
  hops: [hop("B", 3n), hop("C", 4n, 1000n, 100n, 10), hop("D", 5n, 1000n, 100n, 10)],
  amountMsat: 1_002_200n,
  feeMsat: 2200n,
  cltvDelta: 40,
};
const shortRoute = {
  ok: true,
  hops: [hop("A", 1n), hop("D", 2n, 5000n, 0n, 10)],
  amountMsat: 1_005_000n,
  feeMsat: 5000n,
  cltvDelta: 30,
};

describe("forwardingFee", () => {
  it("is fee_base + floor(amount * ppm / 1e6)", () => {
    expect(forwardingFee({ feeBaseMsat: msat(1000n), feeProportionalMillionths: 100n }, 1_001_100n)).toBe(
      1100n,
    );
    expect(forwardingFee({ feeBaseMsat: msat(0n), feeProportionalMillionths: 1n }, 999_999n)).toBe(0n);
    expect(forwardingFee({ feeBaseMsat: 7n, feeProportionalMillionths: 3_333n }, msat(3_000n))).toBe(16n); // 7 + 9.999
  });
});

describe("findRoute", () => {
  it("takes the cheapest route over a shorter, more expensive one", () => {
    expect(findRoute(twoWays(), query(1_000_000n))).toEqual(cheapRoute);
  });

  it("lets the risk cost of a large amount held long change the choice", () => {
    // S -1-> A -2-> D: A charges 1000 flat but adds 1000 blocks; S -3-> B -4-> D: B charges 5000, adds 10.
    const edges = [
      edge(1n, "S", "A"),
      edge(2n, "A", "D", { base: 1000n, delta: 1000 }),
      edge(3n, "S", "B"),
      edge(4n, "B", "D", { base: 5000n, delta: 10 }),
    ];
    const q = { finalCltvDelta: 18, maxTotalCltvDelta: 2016 };
    // 1,000,000 msat: via A, cost 1000 + floor(1,001,000 * 1000 * 15 / 1e9) = 1000 + 15 = 1015;
    // via B, 5000 + floor(1,005,000 * 10 * 15 / 1e9) = 5000 + 0. A wins.
    expect(findRoute(edges, query(1_000_000n, q))).toEqual({
      ok: true,
      hops: [hop("A", 1n), hop("D", 2n, 1000n, 0n, 1000)],
      amountMsat: 1_001_000n,
      feeMsat: 1000n,
      cltvDelta: 1018,
    });
    // 1,000,000,000 msat: via A, 1000 + floor(1,000,001,000 * 1000 * 15 / 1e9) = 1000 + 15,000 = 16,000;
    // via B, 5000 + floor(1,000,005,000 * 10 * 15 / 1e9) = 5000 + 150 = 5150. B wins despite its fee.
    expect(DEFAULT_RISK_FACTOR).toBe(15);
    expect(findRoute(edges, query(1_000_000_000n, q))).toEqual({
      ok: true,
      hops: [hop("B", 3n), hop("D", 4n, 5000n, 0n, 10)],
      amountMsat: 1_000_005_000n,
      feeMsat: 5000n,
      cltvDelta: 28,
    });
    // Without a risk cost only the fees count: A again.
    const noRisk = findRoute(edges, query(1_000_000_000n, { ...q, riskFactor: 0 }));
    expect(noRisk).toMatchObject({
      ok: true,
      hops: [hop("A", 1n), hop("D", 2n, 1000n, 0n, 1000)],
      feeMsat: 1000n,
    });
  });

  it("takes the other route when a channel of the cheap one cannot carry the amount", () => {
    // B -4-> C carries 1,001,100 msat (see cheapRoute): a capacity one msat short rules it out.
    expect(findRoute(twoWays({ b: { capacity: 1_001_099n } }), query(1_000_000n))).toEqual(shortRoute);
    expect(findRoute(twoWays({ b: { capacity: 1_001_100n } }), query(1_000_000n))).toEqual(cheapRoute);
    // Our own channel S -3-> B carries all we send, 1,002,200.
    const ours = twoWays().map((e) =>
      e.shortChannelId === 3n ? { ...e, capacityMsat: msat(1_002_199n) } : e,
    );
    expect(findRoute(ours, query(1_000_000n))).toEqual(shortRoute);
    // When no way can carry it, the reason says so.
    const small = twoWays().map((e) => ({ ...e, capacityMsat: msat(999_999n) }));
    const r = findRoute(small, query(1_000_000n));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.reason).toMatch(/^capacity: no path can carry 1000000 msat/);
  });

  it("keeps each amount within the channel's htlc_minimum and htlc_maximum", () => {
    // B -4-> C carries 1,001,100; C -5-> D carries 1,000,000.
    expect(findRoute(twoWays({ b: { max: 1_001_099n } }), query(1_000_000n))).toEqual(shortRoute);
    expect(findRoute(twoWays({ b: { max: 1_001_100n } }), query(1_000_000n))).toEqual(cheapRoute);
    expect(findRoute(twoWays({ c: { min: 1_000_001n } }), query(1_000_000n))).toEqual(shortRoute);
    expect(findRoute(twoWays({ c: { min: 1_000_000n } }), query(1_000_000n))).toEqual(cheapRoute);
    // C's minimum sits between the amount D gets and what C receives: C's minimum counts on what it sends.
    expect(findRoute(twoWays({ c: { min: 1_001_000n } }), query(1_000_000n))).toEqual(shortRoute);
  });

  it("keeps the total fee within maxFeeMsat, and says when it is the limit", () => {
    expect(findRoute(twoWays(), query(1_000_000n, { maxFeeMsat: msat(2200n) }))).toEqual(cheapRoute);
    const r = findRoute(twoWays(), query(1_000_000n, { maxFeeMsat: msat(2199n) }));
    expect(r).toEqual({
      ok: false,
      reason:
        "fee limit: the cheapest route within the expiry limit charges 2200 msat in fees, above the limit of 2199 msat",
    });
  });

  it("keeps the total cltv delta within maxTotalCltvDelta, and says when it is the limit", () => {
    // The cheap route needs 40 blocks, the short one 30.
    expect(findRoute(twoWays(), query(1_000_000n, { maxTotalCltvDelta: 40 }))).toEqual(cheapRoute);
    expect(findRoute(twoWays(), query(1_000_000n, { maxTotalCltvDelta: 39 }))).toEqual(shortRoute);
    expect(findRoute(twoWays(), query(1_000_000n, { maxTotalCltvDelta: 30 }))).toEqual(shortRoute);
    const r = findRoute(twoWays(), query(1_000_000n, { maxTotalCltvDelta: 29 }));
    expect(r).toEqual({
      ok: false,
      reason:
        "expiry limit: the cheapest route within the fee limit needs a total cltv delta of 40 blocks, above the limit of 29",
    });
    // The final delta alone over the limit.
    const f = findRoute(twoWays(), query(1_000_000n, { finalCltvDelta: 30, maxTotalCltvDelta: 29 }));
    expect(f.ok).toBe(false);
    if (!f.ok) expect(f.reason).toMatch(/^expiry limit/);
    // Each limit blocks one route: the short one is within 39 blocks but charges 5000 > 4999 msat,
    // the cheap one charges 2200 but needs 40 > 39 blocks.
    expect(
      findRoute(twoWays(), query(1_000_000n, { maxFeeMsat: msat(4999n), maxTotalCltvDelta: 39 })),
    ).toEqual({
      ok: false,
      reason:
        "fee limit or expiry limit: within the expiry limit the cheapest route charges 5000 msat in fees (limit 4999 msat); within the fee limit it needs a total cltv delta of 40 blocks (limit 39)",
    });
    // Only lifting both finds a route (the cheapest: 2200 msat, 40 blocks).
    expect(findRoute(twoWays(), query(1_000_000n, { maxFeeMsat: msat(0n), maxTotalCltvDelta: 20 }))).toEqual({
      ok: false,
      reason:
        "fee limit and expiry limit: the cheapest route charges 2200 msat in fees with a total cltv delta of 40 blocks; the limits are 0 msat and 20 blocks",
    });
  });

  it("avoids excluded channel directions and excluded nodes", () => {
    expect(findRoute(twoWays(), query(1_000_000n, { excludedEdges: new Set([edgeKey(4n, "B")]) }))).toEqual(
      shortRoute,
    );
    // The other direction of channel 4 (C forwarding to B) is not the one used.
    expect(findRoute(twoWays(), query(1_000_000n, { excludedEdges: new Set([edgeKey(4n, "C")]) }))).toEqual(
      cheapRoute,
    );
    // Our own channel can be excluded too.
    expect(findRoute(twoWays(), query(1_000_000n, { excludedEdges: new Set([edgeKey(3n, "S")]) }))).toEqual(
      shortRoute,
    );
    expect(findRoute(twoWays(), query(1_000_000n, { excludedNodes: new Set(["C"]) }))).toEqual(shortRoute);
    expect(findRoute(twoWays(), query(1_000_000n, { excludedNodes: new Set(["A", "C"]) }))).toEqual({
      ok: false,
      reason: "no path: every path uses an excluded channel or node",
    });
    expect(findRoute(twoWays(), query(1_000_000n, { excludedNodes: new Set(["D"]) }))).toEqual({
      ok: false,
      reason: "excluded: the destination is excluded",
    });
    expect(findRoute(twoWays(), query(1_000_000n, { excludedNodes: new Set(["S"]) }))).toEqual({
      ok: false,
      reason: "excluded: the source is excluded",
    });
  });

  it("finds no route across a disconnected graph", () => {
    const edges = [edge(1n, "S", "A"), edge(2n, "A", "S"), edge(3n, "B", "D"), edge(4n, "D", "B")];
    expect(findRoute(edges, query(1000n))).toEqual({
      ok: false,
      reason: "no path: no channels lead from the source to the destination",
    });
    expect(findRoute([], query(1000n)).ok).toBe(false);
  });

  it("refuses to route to ourselves, and a query out of range", () => {
    expect(findRoute(twoWays(), query(1000n, { destination: "S" }))).toEqual({
      ok: false,
      reason: "invalid query: the source is the destination (paying ourselves)",
    });
    for (const bad of [
      query(0n),
      query(1000n, { maxFeeMsat: -1n as Msat }),
      query(1000n, { finalCltvDelta: -1 }),
      query(1000n, { maxTotalCltvDelta: 1.5 }),
      query(1000n, { riskFactor: Number.NaN }),
    ]) {
      const r = findRoute(twoWays(), bad);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.reason).toMatch(/^invalid query: /);
    }
  });

  it("takes at most 20 hops", () => {
    // A chain S -> N1 -> ... -> D of `hops` channels, scid i for the i-th, each forwarder charging
    // 1 msat and 1 block.
    const chain = (hops: number): Edge[] =>
      Array.from({ length: hops }, (_, i) =>
        edge(BigInt(i + 1), i === 0 ? "S" : `N${i}`, i === hops - 1 ? "D" : `N${i + 1}`, {
          base: 1n,
          delta: 1,
        }),
      );
    // 20 hops: 19 forwarders (N1..N19), so 19 msat in fees and 20 + 19 blocks.
    const r = findRoute(chain(MAX_HOPS), query(1000n));
    expect(r).toMatchObject({ ok: true, amountMsat: 1019n, feeMsat: 19n, cltvDelta: 39 });
    if (r.ok) {
      expect(r.hops).toHaveLength(20);
      expect(r.hops[0]).toEqual(hop("N1", 1n));
      expect(r.hops[19]).toEqual(hop("D", 20n, 1n, 0n, 1));
    }
    expect(findRoute(chain(21), query(1000n))).toEqual({
      ok: false,
      reason: "hop limit: the shortest path has 21 hops, more than 20",
    });
  });

  it("breaks ties the same way whatever the order of the edges: the lower scid", () => {
    // Two identical channels from S to A (scids 7 and 3), then A -> D.
    const edges = [edge(7n, "S", "A"), edge(3n, "S", "A"), edge(9n, "A", "D", { base: 10n })];
    const expected = {
      ok: true,
      hops: [hop("A", 3n), hop("D", 9n, 10n)],
      amountMsat: 1010n,
      feeMsat: 10n,
      cltvDelta: 20,
    };
    expect(findRoute(edges, query(1000n))).toEqual(expected);
    expect(findRoute([...edges].reverse(), query(1000n))).toEqual(expected);
  });

  it("does not let a cheaper partial route through a node needed upstream hide the only route", () => {
    // S's only channel goes to Z, whose htlc_minimum is 100,005 msat; D gets 100,000.
    //  - S -5-> Z -1-> D: Z forwards for free, so S -5-> Z would carry 100,000 < 100,005: refused.
    //  - S -5-> Z -4-> X -2-> Y -3-> D: Y charges 5, X charges 5, Z charges 0: Z receives 100,010.
    // From X, the partial route X -6-> Z -1-> D (X charges 5: 100,005 at X, cost 5) is cheaper than
    // X -2-> Y -3-> D (100,010, cost 10), but passes through Z, which the route must reach X from.
    const edges = [
      edge(5n, "S", "Z", { min: 100_005n }),
      edge(1n, "Z", "D"),
      edge(4n, "Z", "X"),
      edge(2n, "X", "Y", { base: 5n }),
      edge(3n, "Y", "D", { base: 5n }),
      edge(6n, "X", "Z", { base: 5n }),
    ];
    expect(findRoute(edges, query(100_000n, { finalCltvDelta: 0 }))).toEqual({
      ok: true,
      hops: [hop("Z", 5n), hop("X", 4n), hop("Y", 2n, 5n), hop("D", 3n, 5n)],
      amountMsat: 100_010n,
      feeMsat: 10n,
      cltvDelta: 0,
    });
  });

  it("ignores edges whose policy could not come from a channel_update", () => {
    const good = edge(2n, "A", "D");
    for (const policy of [
      { ...good.policy, feeBaseMsat: -5n as Msat },
      { ...good.policy, feeBaseMsat: msat(0x1_0000_0000n) },
      { ...good.policy, feeProportionalMillionths: -1n },
      { ...good.policy, cltvExpiryDelta: 0x1_0000 },
      { ...good.policy, cltvExpiryDelta: 0.5 },
    ])
      expect(findRoute([edge(1n, "S", "A"), { ...good, policy }], query(1000n))).toEqual({
        ok: false,
        reason: "no path: no channels lead from the source to the destination",
      });
    expect(findRoute([edge(1n, "S", "A"), good], query(1000n)).ok).toBe(true);
  });
});
