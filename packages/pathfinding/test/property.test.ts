/**
 * Property tests on random small graphs (at most 7 nodes): every route findRoute returns respects
 * every constraint, its amounts recomputed hop by hop here match, and a brute-force search over every
 * simple path finds none cheaper (and none at all when findRoute finds none).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { msat } from "@ln/bitcoin";
import { edgeKey, findRoute, type Edge, type PathHop, type RouteQuery } from "@ln/pathfinding";

const name = (i: number): string => `n${i}`;

interface Case {
  edges: Edge[];
  q: RouteQuery;
  riskFactor: number;
  /** (scid, from) pairs excluded, kept apart from the query's string keys. */
  excludedPairs: Array<[bigint, string]>;
}

/** A bound either absolute or near the payment's amount (where fees decide whether it holds). */
const bound = (abs: fc.Arbitrary<number>) =>
  fc.oneof(
    abs.map((v) => ({ near: false, v })),
    fc.integer({ min: -500, max: 6000 }).map((v) => ({ near: true, v })),
  );
const at = (b: { near: boolean; v: number }, amount: number): number =>
  b.near ? Math.max(0, amount + b.v) : b.v;

const policyArb = fc.record({
  feeBase: fc.integer({ min: 0, max: 3000 }),
  ppm: fc.integer({ min: 0, max: 20_000 }),
  delta: fc.integer({ min: 0, max: 150 }),
  htlcMin: fc.oneof(
    { arbitrary: bound(fc.constant(0)), weight: 2 },
    bound(fc.integer({ min: 0, max: 300_000 })),
  ),
  htlcMax: bound(fc.oneof(fc.constant(10_000_000), fc.integer({ min: 50_000, max: 400_000 }))),
  capacity: bound(fc.integer({ min: 50_000, max: 1_000_000 })),
});

const caseArb: fc.Arbitrary<Case> = fc
  .integer({ min: 3, max: 7 })
  .chain((n) =>
    fc.record({
      n: fc.constant(n),
      channels: fc.array(
        fc.record({
          a: fc.integer({ min: 0, max: n - 1 }),
          b: fc.integer({ min: 0, max: n - 1 }),
          ab: fc.option(policyArb, { nil: undefined, freq: 4 }),
          ba: fc.option(policyArb, { nil: undefined, freq: 4 }),
        }),
        { minLength: 6, maxLength: 20 },
      ),
      direct: fc.integer({ min: 0, max: 4 }),
      amount: fc.integer({ min: 1, max: 250_000 }),
      finalCltv: fc.integer({ min: 0, max: 40 }),
      maxFee: fc.oneof(fc.integer({ min: 0, max: 3000 }), fc.constant(1_000_000)),
      maxCltv: fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant(100_000)),
      riskFactor: fc.constantFrom(0, 15, 5_000, 1_000_000),
      excludedEdgeIdx: fc.uniqueArray(fc.integer({ min: 0, max: 31 }), { maxLength: 3 }),
      excludedNodeIdx: fc.uniqueArray(fc.integer({ min: 2, max: 6 }), { maxLength: 2 }),
    }),
  )
  .map((r) => {
    const edges: Edge[] = [];
    r.channels.forEach((c, i) => {
      // Few channels between the source and the destination, none from a node to itself.
      if (c.a === c.b || (c.a + c.b === 1 && r.direct > 0)) return;
      const scid = BigInt(i + 1);
      const dirs: Array<[number, number, typeof c.ab]> = [
        [c.a, c.b, c.ab],
        [c.b, c.a, c.ba],
      ];
      for (const [from, to, p] of dirs)
        if (p !== undefined)
          edges.push({
            shortChannelId: scid,
            from: name(from),
            to: name(to),
            capacityMsat: msat(at(p.capacity, r.amount)),
            policy: {
              feeBaseMsat: msat(p.feeBase),
              feeProportionalMillionths: BigInt(p.ppm),
              cltvExpiryDelta: p.delta,
              htlcMinimumMsat: msat(at(p.htlcMin, r.amount)),
              htlcMaximumMsat: msat(at(p.htlcMax, r.amount)),
            },
          });
    });
    const excludedPairs = r.excludedEdgeIdx
      .filter((i) => i < edges.length)
      .map((i): [bigint, string] => [(edges[i] as Edge).shortChannelId, (edges[i] as Edge).from]);
    const q: RouteQuery = {
      source: name(0),
      destination: name(1),
      amountMsat: msat(r.amount),
      finalCltvDelta: r.finalCltv,
      maxFeeMsat: msat(r.maxFee),
      maxTotalCltvDelta: r.maxCltv,
      excludedEdges: new Set(excludedPairs.map(([s, f]) => edgeKey(s, f))),
      excludedNodes: new Set(r.excludedNodeIdx.filter((i) => i < r.n).map(name)),
      riskFactor: r.riskFactor,
    };
    return { edges, q, riskFactor: r.riskFactor, excludedPairs };
  });

interface Evaluated {
  amount: bigint;
  fee: bigint;
  cltv: number;
  cost: bigint;
}

/**
 * A path's amounts, computed from the payee back: each edge carries the amount after it; a
 * forwarder other than the source adds fee_base + floor(amount * ppm / 1e6) and its delta, and
 * costs that fee plus floor(amount received * delta * riskFactor / 1e9). Undefined if a
 * constraint fails.
 */
function evaluate(c: Case, path: readonly Edge[]): Evaluated | undefined {
  const { q } = c;
  let amount: bigint = q.amountMsat;
  let cltv = q.finalCltvDelta;
  let cost = 0n;
  for (let i = path.length - 1; i >= 0; i--) {
    const e = path[i] as Edge;
    if (c.excludedPairs.some(([s, f]) => s === e.shortChannelId && f === e.from)) return undefined;
    if (amount > e.capacityMsat || amount < e.policy.htlcMinimumMsat || amount > e.policy.htlcMaximumMsat)
      return undefined;
    if (i > 0) {
      const fee = e.policy.feeBaseMsat + (amount * e.policy.feeProportionalMillionths) / 1_000_000n;
      amount += fee;
      cltv += e.policy.cltvExpiryDelta;
      cost += fee + (amount * BigInt(e.policy.cltvExpiryDelta) * BigInt(c.riskFactor)) / 1_000_000_000n;
    }
  }
  const fee = amount - q.amountMsat;
  if (fee > q.maxFeeMsat || cltv > q.maxTotalCltvDelta || path.length > 20) return undefined;
  const nodes = [q.source, ...path.map((e) => e.to)];
  if (new Set(nodes).size !== nodes.length) return undefined;
  if (nodes.slice(1, -1).some((n) => q.excludedNodes?.has(n) === true)) return undefined;
  if (q.excludedNodes?.has(q.source) === true || q.excludedNodes?.has(q.destination) === true)
    return undefined;
  return { amount, fee, cltv, cost };
}

/** The cheapest cost over every simple path from the source to the destination. */
function bruteForce(c: Case): bigint | undefined {
  let best: bigint | undefined;
  const walk = (at: string, path: Edge[], seen: Set<string>): void => {
    if (at === c.q.destination) {
      const r = evaluate(c, path);
      if (r !== undefined && (best === undefined || r.cost < best)) best = r.cost;
      return;
    }
    for (const e of c.edges)
      if (e.from === at && !seen.has(e.to)) walk(e.to, [...path, e], new Set([...seen, e.to]));
  };
  walk(c.q.source, [], new Set([c.q.source]));
  return best;
}

/** The edges a route's hops name: hops[i] reached from hops[i-1] (the source for i = 0). */
function edgesOf(c: Case, hops: readonly PathHop[]): Edge[] {
  return hops.map((h, i) => {
    const from = i === 0 ? c.q.source : (hops[i - 1] as PathHop).nodeId;
    const e = c.edges.find(
      (x) => x.shortChannelId === h.shortChannelId && x.from === from && x.to === h.nodeId,
    );
    if (e === undefined) throw new Error(`hop ${i} names no edge`);
    return e;
  });
}

describe("findRoute on random graphs", () => {
  it("returns a feasible route no brute-force path beats, or none when none exists", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        const best = bruteForce(c);
        const r = findRoute(c.edges, c.q);
        if (best === undefined) {
          expect(r.ok).toBe(false);
          return;
        }
        if (!r.ok) throw new Error(`no route (${r.reason}) but brute force found cost ${best}`);
        const path = edgesOf(c, r.hops);
        const ev = evaluate(c, path);
        expect(ev).toBeDefined();
        if (ev === undefined) return;
        expect(ev.cost).toBe(best);
        expect(r.amountMsat).toBe(ev.amount);
        expect(r.feeMsat).toBe(ev.fee);
        expect(r.cltvDelta).toBe(ev.cltv);
        // Our own channel charges nothing; every other hop names its forwarder's policy.
        expect(r.hops[0]).toMatchObject({
          feeBaseMsat: 0n,
          feeProportionalMillionths: 0n,
          cltvExpiryDelta: 0,
        });
        r.hops.slice(1).forEach((h, i) => {
          const e = path[i + 1] as Edge;
          expect(h).toMatchObject({
            feeBaseMsat: e.policy.feeBaseMsat,
            feeProportionalMillionths: e.policy.feeProportionalMillionths,
            cltvExpiryDelta: e.policy.cltvExpiryDelta,
          });
        });
        expect(r.hops.at(-1)?.nodeId).toBe(c.q.destination);
      }),
      { numRuns: 5000 },
    );
  });

  it("gives the same answer whatever the order of the edges", () => {
    fc.assert(
      fc.property(caseArb, (c) => {
        expect(findRoute([...c.edges].reverse(), c.q)).toEqual(findRoute(c.edges, c.q));
      }),
      { numRuns: 500 },
    );
  });
});
