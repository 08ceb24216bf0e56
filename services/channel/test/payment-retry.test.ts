/**
 * What each BOLT #4 failure teaches the next attempt (payments/retry.ts). The codes are written
 * out from BOLT #4's table (flags BADONION 0x8000, PERM 0x4000, NODE 0x2000, UPDATE 0x1000), and
 * every expected exclusion is spelled out by hand: the forwarder's outgoing channel is the next
 * hop's short_channel_id in the direction from the forwarder.
 */
import { edgeKey } from "@ln/pathfinding";
import { describe, expect, it } from "vitest";
import { exclusionsOf, lessonOf, type FailedAttempt } from "../src/payments/retry.js";

const US = `02${"aa".repeat(32)}`;
const B = `03${"bb".repeat(32)}`;
const C = `02${"cc".repeat(32)}`;
const D = `03${"dd".repeat(32)}`;
// us -(AB)-> B -(BC)-> C -(CD)-> D (the payee)
const AB = (100n << 40n) | (1n << 16n);
const BC = (101n << 40n) | (2n << 16n) | 1n;
const CD = (102n << 40n) | (3n << 16n);
const hops = [
  { nodeId: B, shortChannelId: AB },
  { nodeId: C, shortChannelId: BC },
  { nodeId: D, shortChannelId: CD },
];
const failedAt = (hop: number, code: number, channelUpdate?: Buffer): FailedAttempt => ({
  hops,
  failure: { hop, code, channelUpdate },
});

// Each forwarder's outgoing direction, named by hand: the channel to the next hop, from the forwarder.
const B_OUT = edgeKey(BC, B);
const C_OUT = edgeKey(CD, C);
const OUR_FIRST = edgeKey(AB, US);

describe("lessonOf: one BOLT #4 failure", () => {
  const cases: { name: string; hop: number; code: number; expected: object }[] = [
    // The payee's refusals end the payment: another route cannot change its mind.
    {
      name: "incorrect_or_unknown_payment_details at the payee",
      hop: 2,
      code: 0x400f,
      expected: { kind: "stop" },
    },
    { name: "final_incorrect_cltv_expiry at the payee", hop: 2, code: 18, expected: { kind: "stop" } },
    { name: "final_incorrect_htlc_amount at the payee", hop: 2, code: 19, expected: { kind: "stop" } },
    { name: "mpp_timeout at the payee", hop: 2, code: 23, expected: { kind: "stop" } },
    { name: "temporary_node_failure at the payee", hop: 2, code: 0x2002, expected: { kind: "stop" } },
    // A forwarder's channel failures: its outgoing channel, in its direction.
    {
      name: "temporary_channel_failure (no update) at B",
      hop: 0,
      code: 0x1007,
      expected: { kind: "exclude_edge", edge: B_OUT },
    },
    {
      name: "channel_disabled (no update) at C",
      hop: 1,
      code: 0x1014,
      expected: { kind: "exclude_edge", edge: C_OUT },
    },
    {
      name: "fee_insufficient (no update) at B",
      hop: 0,
      code: 0x100c,
      expected: { kind: "exclude_edge", edge: B_OUT },
    },
    {
      name: "amount_below_minimum (no update) at B",
      hop: 0,
      code: 0x100b,
      expected: { kind: "exclude_edge", edge: B_OUT },
    },
    {
      name: "incorrect_cltv_expiry (no update) at C",
      hop: 1,
      code: 0x100d,
      expected: { kind: "exclude_edge", edge: C_OUT },
    },
    {
      name: "expiry_too_soon (no update) at B",
      hop: 0,
      code: 0x100e,
      expected: { kind: "exclude_edge", edge: B_OUT },
    },
    {
      name: "permanent_channel_failure at B",
      hop: 0,
      code: 0x4008,
      expected: { kind: "exclude_edge", edge: B_OUT },
    },
    { name: "unknown_next_peer at C", hop: 1, code: 0x400a, expected: { kind: "exclude_edge", edge: C_OUT } },
    // A forwarder failing as a node: the node.
    {
      name: "temporary_node_failure at B",
      hop: 0,
      code: 0x2002,
      expected: { kind: "exclude_node", node: B },
    },
    {
      name: "permanent_node_failure at C",
      hop: 1,
      code: 0x6002,
      expected: { kind: "exclude_node", node: C },
    },
    { name: "invalid_onion_hmac at B", hop: 0, code: 0xc005, expected: { kind: "exclude_node", node: B } },
    { name: "invalid_onion_version at C", hop: 1, code: 0xc004, expected: { kind: "exclude_node", node: C } },
    { name: "invalid_onion_key at B", hop: 0, code: 0xc006, expected: { kind: "exclude_node", node: B } },
    { name: "invalid_realm at B", hop: 0, code: 0x4001, expected: { kind: "exclude_node", node: B } },
    { name: "invalid_onion_payload at C", hop: 1, code: 0x4016, expected: { kind: "exclude_node", node: C } },
    { name: "expiry_too_far at B", hop: 0, code: 21, expected: { kind: "exclude_node", node: B } },
    {
      name: "an unknown code without flags at C",
      hop: 1,
      code: 0x0777,
      expected: { kind: "exclude_node", node: C },
    },
  ];
  for (const c of cases)
    it(`${c.name} (0x${c.code.toString(16)}) -> ${c.expected["kind" as keyof object]}`, () => {
      expect(lessonOf(US, failedAt(c.hop, c.code))).toMatchObject(c.expected);
    });

  it("a channel failure carrying a channel_update: apply it (the edge named for a second failure)", () => {
    const update = Buffer.from("0801", "hex");
    expect(lessonOf(US, failedAt(0, 0x100c, update))).toEqual({
      kind: "apply_update",
      edge: B_OUT,
      update,
      why: expect.any(String) as string,
    });
  });

  it("no readable failure, or our own channel refused: our first channel is not used again", () => {
    expect(lessonOf(US, { hops, failure: undefined })).toMatchObject({
      kind: "exclude_edge",
      edge: OUR_FIRST,
    });
    expect(lessonOf(US, { hops, failure: undefined, refusedLocally: true })).toMatchObject({
      kind: "exclude_edge",
      edge: OUR_FIRST,
    });
  });

  it("a hop index outside the route blames our first channel", () => {
    expect(lessonOf(US, failedAt(5, 0x2002))).toMatchObject({ kind: "exclude_edge", edge: OUR_FIRST });
  });

  it("a direct payment's peer is the payee: its refusal stops", () => {
    const direct: FailedAttempt = {
      hops: [{ nodeId: D, shortChannelId: AB }],
      failure: { hop: 0, code: 0x400f },
    };
    expect(lessonOf(US, direct)).toMatchObject({ kind: "stop" });
  });
});

describe("exclusionsOf: every attempt so far", () => {
  it("accumulates edges and nodes, oldest first", () => {
    const ex = exclusionsOf(US, [failedAt(0, 0x4008), failedAt(1, 0x2002), failedAt(1, 0x1007)]);
    expect([...ex.excludedEdges].sort()).toEqual([B_OUT, C_OUT].sort());
    expect([...ex.excludedNodes]).toEqual([C]);
    expect(ex.stop).toBeUndefined();
  });

  it("an edge whose update was applied is excluded only when it fails that way again", () => {
    const u = Buffer.from("01", "hex");
    expect([...exclusionsOf(US, [failedAt(0, 0x100c, u)]).excludedEdges]).toEqual([]);
    expect([...exclusionsOf(US, [failedAt(0, 0x100c, u), failedAt(0, 0x1007, u)]).excludedEdges]).toEqual([
      B_OUT,
    ]);
  });

  it("a payee's refusal anywhere stops, with the first such reason", () => {
    const ex = exclusionsOf(US, [failedAt(0, 0x4008), failedAt(2, 0x400f)]);
    expect(ex.stop).toMatch(/payee refused it \(0x400f\)/);
  });
});
