/**
 * BOLT #11 route hints ('r' field): hint[i].nodeId forwards over hint[i].shortChannelId to
 * hint[i+1].nodeId, the last one to the payee, for hint[i]'s fee and delta. Expectations by hand
 * (fee = base + floor(amount * ppm / 1e6) on what the forwarder sends on; risk is 0 at these amounts).
 */
import { describe, expect, it } from "vitest";
import { msat } from "@ln/bitcoin";
import { findRoute, HINT_CAPACITY_MSAT, hintEdges, type RouteHintHop } from "@ln/pathfinding";
import { edge, hop, query } from "./helpers.js";

const hintHop = (nodeId: string, scid: bigint, base: bigint, ppm: bigint, delta: number): RouteHintHop => ({
  nodeId,
  shortChannelId: scid,
  feeBaseMsat: msat(base),
  feeProportionalMillionths: ppm,
  cltvExpiryDelta: delta,
});

describe("hintEdges", () => {
  it("makes each hint hop an edge from its node to the next one, the last to the destination", () => {
    const edges = hintEdges([hintHop("X", 7n, 10n, 20n, 30), hintHop("Y", 8n, 40n, 50n, 60)], "D");
    const open = {
      capacityMsat: HINT_CAPACITY_MSAT,
      htlcMinimumMsat: 0n,
      htlcMaximumMsat: HINT_CAPACITY_MSAT,
    };
    expect(HINT_CAPACITY_MSAT).toBe(0xffff_ffff_ffff_ffffn);
    expect(edges).toEqual([
      {
        shortChannelId: 7n,
        from: "X",
        to: "Y",
        capacityMsat: open.capacityMsat,
        policy: {
          feeBaseMsat: 10n,
          feeProportionalMillionths: 20n,
          cltvExpiryDelta: 30,
          htlcMinimumMsat: open.htlcMinimumMsat,
          htlcMaximumMsat: open.htlcMaximumMsat,
        },
      },
      {
        shortChannelId: 8n,
        from: "Y",
        to: "D",
        capacityMsat: open.capacityMsat,
        policy: {
          feeBaseMsat: 40n,
          feeProportionalMillionths: 50n,
          cltvExpiryDelta: 60,
          htlcMinimumMsat: open.htlcMinimumMsat,
          htlcMaximumMsat: open.htlcMaximumMsat,
        },
      },
    ]);
    expect(hintEdges([], "D")).toEqual([]);
  });
});

describe("findRoute with hints", () => {
  // The public graph: S -1-> A -2-> B (A charges 1000 + 1000 ppm, delta 40); D is private behind B.
  const graph = [edge(1n, "S", "A"), edge(2n, "A", "B", { base: 1000n, ppm: 1000n, delta: 40 })];

  it("reaches a destination known only through a hint", () => {
    const q = query(500_000n, { finalCltvDelta: 18 });
    expect(findRoute(graph, q)).toEqual({
      ok: false,
      reason: "no path: no channels lead from the source to the destination",
    });
    // B -99-> D (the hint): B charges 2000 + 500,000 * 500 / 1e6 = 2250, receives 502,250.
    // A charges 1000 + floor(502,250 * 1000 / 1e6) = 1000 + floor(502.25) = 1502: we send 503,752.
    // Fee 3752; cltv 18 + 30 + 40 = 88.
    const edges = [...graph, ...hintEdges([hintHop("B", 99n, 2000n, 500n, 30)], "D")];
    expect(findRoute(edges, q)).toEqual({
      ok: true,
      hops: [hop("A", 1n), hop("B", 2n, 1000n, 1000n, 40), hop("D", 99n, 2000n, 500n, 30)],
      amountMsat: 503_752n,
      feeMsat: 3752n,
      cltvDelta: 88,
    });
  });

  it("combines graph edges with a two-hop hint, and prefers it to a dearer public channel", () => {
    // Graph: S -1-> A, A -2-> B (1000 flat, delta 40), A -3-> C (3000 flat, delta 40);
    // hint: B -50-> C (100 flat, delta 10), C -51-> D (200 flat, delta 20).
    // Via B: C charges 200 (100,200 at C), B 100 (100,300 at B), A 1000 (101,300): fee 1300,
    // cltv 10 (final) + 20 + 10 + 40 = 80. Via A -3-> C: 200 + 3000 = 3200.
    const edges = [
      edge(1n, "S", "A"),
      edge(2n, "A", "B", { base: 1000n, delta: 40 }),
      edge(3n, "A", "C", { base: 3000n, delta: 40 }),
      ...hintEdges([hintHop("B", 50n, 100n, 0n, 10), hintHop("C", 51n, 200n, 0n, 20)], "D"),
    ];
    expect(findRoute(edges, query(100_000n, { finalCltvDelta: 10 }))).toEqual({
      ok: true,
      hops: [
        hop("A", 1n),
        hop("B", 2n, 1000n, 0n, 40),
        hop("C", 50n, 100n, 0n, 10),
        hop("D", 51n, 200n, 0n, 20),
      ],
      amountMsat: 101_300n,
      feeMsat: 1300n,
      cltvDelta: 80,
    });
  });

  it("pays over our own private channel when the hint starts at us: no fee, no delta", () => {
    // The hint names us (S) as the forwarder into D: our channel charges nothing.
    const edges = hintEdges([hintHop("S", 5n, 1000n, 1000n, 40)], "D");
    expect(findRoute(edges, query(1000n))).toEqual({
      ok: true,
      hops: [hop("D", 5n)],
      amountMsat: 1000n,
      feeMsat: 0n,
      cltvDelta: 20,
    });
  });
});
