/**
 * Five nodes as processes (issue 16, DESIGN.md 10) in the lab's shape (test/lab/five-nodes.ts):
 *
 *          C
 *        /   \
 *   A - B     E        each channel funded by its left end; D far cheaper than C towards E
 *        \   /
 *          D
 *
 * Gossip converges: every node's graph has every channel, both directions' policies as set, every
 * node. A pays E across three hops, over an explicit route and by invoice (POST /v1/payments
 * {invoice}): the cheapest way is through B and D. With D stopped, B refuses the hop to D
 * (temporary_channel_failure: its peer is gone; B still announces B-D for GOSSIP_DISABLE_AFTER_S,
 * so A learns it from the failure) and the invoice payment retries around D through C; with C
 * stopped too, no way is left: the payment fails with each attempt's reason and no HTLC stays in
 * flight anywhere.
 *
 * Fees are computed here from the policies the fixture sets (BOLT #7: base + amount * ppm / 10^6
 * of the amount forwarded, rounded down; each forwarder charges on what it sends on), not read
 * from the code under test. NET_LOG=1 prints the network's progress lines.
 */
import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { InvoicePayment, Payment } from "../lab/api.js";
import {
  B_POLICY,
  C_POLICY,
  D_POLICY,
  FIVE_NODES,
  openFiveNodeShape,
  type FiveNodeChannels,
} from "../lab/five-nodes.js";
import { startNetwork, WaitAbort, type BuiltRoute, type NetNode, type Network } from "../lab/network.js";

const PAY_MSAT = 30_000_000n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[five-nodes] ${l}`) : undefined;

/** BOLT #7 short_channel_id text to its number: height << 40 | index << 16 | output. */
function scidNumber(text: string): bigint {
  const [h, i, o] = text.split("x").map((x) => BigInt(x));
  if (h === undefined || i === undefined || o === undefined) throw new Error(`bad short_channel_id ${text}`);
  return (h << 40n) | (i << 16n) | o;
}
/** As graph_channels stores it: Postgres's signed bigint. */
const signed = (scid: bigint): string => BigInt.asIntN(64, scid).toString();

/** A node's graph: each policy as "scid/direction: base ppm delta enabled|disabled", sorted. */
async function graphOf(n: NetNode): Promise<{ channels: string[]; policies: string[]; nodes: string[] }> {
  const s = `"${n.schemas.channel}"`;
  const channels = await net.query<{ s: string }>(
    `SELECT short_channel_id::text AS s FROM ${s}.graph_channels ORDER BY 1`,
  );
  const policies = await net.query<{ p: string }>(
    `SELECT short_channel_id::text || '/' || direction || ': ' || fee_base_msat::text || ' ' ||
            fee_proportional_millionths::text || ' ' || cltv_expiry_delta::text || ' ' ||
            CASE WHEN disabled THEN 'disabled' ELSE 'enabled' END AS p
       FROM ${s}.graph_policies`,
  );
  const nodes = await net.query<{ node_id: string }>(`SELECT node_id FROM ${s}.graph_nodes ORDER BY 1`);
  return {
    channels: channels.map((x) => x.s),
    policies: policies.map((x) => x.p).sort(),
    nodes: nodes.map((x) => x.node_id),
  };
}

let net: Network;
let shape: FiveNodeChannels;
let A: NetNode;
let B: NetNode;
let C: NetNode;
let D: NetNode;
let E: NetNode;

const feeOf = (p: { feeBaseMsat: bigint; feeProportionalMillionths: number }, forwardMsat: bigint): bigint =>
  p.feeBaseMsat + (forwardMsat * BigInt(p.feeProportionalMillionths)) / 1_000_000n;

/**
 * What A sends for `amount` to reach E over forwarders charging `policies` (nearest E last):
 * each forwarder is paid on what it forwards, which includes the fees of those after it.
 */
function totalFee(policies: readonly { feeBaseMsat: bigint; feeProportionalMillionths: number }[]): bigint {
  let forward = PAY_MSAT;
  let fee = 0n;
  for (const p of [...policies].reverse()) {
    const f = feeOf(p, forward);
    fee += f;
    forward += f;
  }
  return fee;
}

/** Every channel of the running nodes normal with no HTLC left, as each end sees it. */
async function nothingInFlight(): Promise<true | string> {
  const seen: string[] = [];
  for (const c of shape.opened)
    for (const [n, id] of [
      [c.from, c.fromId],
      [c.to, c.toId],
    ] as const) {
      if (!net.supervisor.isRunning(n.processes.channel[0] ?? "")) continue;
      const d = await n.api.channel(id);
      if (d.phase !== "normal") throw new WaitAbort(`${n.name}'s channel ${id} left normal: ${d.phase}`);
      if (d.htlcs.length > 0) seen.push(`${c.from.name}-${c.to.name} at ${n.name}: ${d.htlcs.length}`);
    }
  return seen.length === 0 || `HTLCs in flight: ${seen.join(", ")}`;
}

/** A pays an invoice of E's over `route`, explicitly; waits until final. */
async function payE(route: BuiltRoute, what: string): Promise<Payment> {
  const inv = await E.api.createInvoice(PAY_MSAT, `five nodes: ${what}`);
  return net.payRoute(A, route, PAY_MSAT, inv.rHash, { idempotencyKey: `five-${randomUUID()}` });
}

/** An attempt's route as [node, scid, node, scid, ...] by the fixture's names. */
function routeOf(a: InvoicePayment["attempts"][number] | undefined): string[] {
  const name = (id: string): string => FIVE_NODES.find((n) => net.node(n).nodeId === id) ?? id;
  return (a?.route ?? []).flatMap((h) => [name(h.nodeId), h.shortChannelId]);
}

/** E makes an invoice; A pays it by POST /v1/payments {invoice} and waits until it is final. */
async function payInvoiceOfE(what: string): Promise<InvoicePayment> {
  const inv = await E.api.createInvoice(PAY_MSAT, `five nodes: ${what}`);
  if (inv.bolt11 === null) throw new Error("E's invoice has no BOLT #11 string");
  const { payment } = await A.api.payInvoice({ invoice: inv.bolt11 }, `five-${randomUUID()}`);
  let last = payment;
  await net.waitFor(
    `A's invoice payment ${payment.id} (${what}) to be final`,
    async () => {
      last = await A.api.invoicePayment(payment.id);
      return last.status !== "pending" || `${last.status}, ${last.attempts.length} attempt(s)`;
    },
    { intervalMs: 250, timeoutMs: 120_000 },
  );
  return last;
}

describe("five nodes: A-B, B-C, B-D, C-E, D-E", () => {
  beforeAll(async () => {
    net = await startNetwork({
      nodes: FIVE_NODES,
      // B keeps announcing B-D enabled for a while after D is gone: payers learn of it from B's
      // refusal, which is what the retry around D is about.
      channelEnv: { GOSSIP_DISABLE_AFTER_S: "600" },
      nodeChannelEnv: Object.fromEntries(FIVE_NODES.map((n) => [n, { GOSSIP_ALIAS: `five-${n}` }])),
      ...(netLog ? { log: netLog } : {}),
    });
    [A, B, C, D, E] = FIVE_NODES.map((n) => net.node(n)) as [NetNode, NetNode, NetNode, NetNode, NetNode];
    shape = await openFiveNodeShape(net);
  }, 300_000);

  afterAll(async () => {
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("opens the shape: each channel normal on both ends, one short_channel_id seen by both", async () => {
    expect(shape.opened.map((c) => `${c.from.name}-${c.to.name}`)).toEqual([
      "A-B",
      "B-C",
      "B-D",
      "C-E",
      "D-E",
    ]);
    for (const c of shape.opened) {
      const [x, y] = [await c.from.api.channel(c.fromId), await c.to.api.channel(c.toId)];
      expect([x.phase, y.phase]).toEqual(["normal", "normal"]);
      expect(y.shortChannelId).toBe(c.shortChannelId);
    }
    expect(new Set(shape.opened.map((c) => c.shortChannelId)).size).toBe(5);
  });

  it("gossip converges: every node's graph has all five channels, both directions' policies as set, all five nodes", async () => {
    // BOLT #7: direction 0 is node_id_1's (the lesser key) update, forwarding towards node_id_2.
    const want: string[] = [];
    for (const c of shape.opened) {
      const scid = signed(scidNumber(c.shortChannelId));
      const fromFirst = c.from.nodeId < c.to.nodeId;
      for (const [p, dir] of [
        [c.fromPolicy, fromFirst ? 0 : 1],
        [c.toPolicy, fromFirst ? 1 : 0],
      ] as const)
        want.push(
          `${scid}/${dir}: ${p.feeBaseMsat} ${p.feeProportionalMillionths} ${p.cltvExpiryDelta} enabled`,
        );
    }
    want.sort();
    // The policies set here are the ones the channels report (computed from the fixture's).
    expect(shape.ch("B", "D").fromPolicy).toMatchObject({
      feeBaseMsat: "1000",
      feeProportionalMillionths: 1000,
    });
    expect(shape.ch("D", "E").fromPolicy).toMatchObject({
      feeBaseMsat: "100",
      feeProportionalMillionths: 100,
    });
    const ids = [A, B, C, D, E].map((n) => n.nodeId).sort();
    await net.waitFor(
      "every node's graph to hold the five channels, ten policies and five nodes",
      async () => {
        const sizes: string[] = [];
        let done = true;
        for (const n of [A, B, C, D, E]) {
          const g = await graphOf(n);
          sizes.push(`${n.name} ${g.channels.length}/${g.policies.length}/${g.nodes.length}`);
          done &&=
            g.policies.length === want.length &&
            g.policies.every((p, i) => p === want[i]) &&
            g.channels.length === 5 &&
            g.nodes.join() === ids.join();
        }
        return done || `channels/policies/nodes: ${sizes.join(", ")}`;
      },
      { mine: true, timeoutMs: 120_000 },
    );
  });

  it("pays E across three hops through B and D; B and D take exactly their policies' fees", async () => {
    const route = await net.route(
      [A, B, D, E],
      [shape.ch("A", "B").fromId, shape.ch("B", "D").fromId, shape.ch("D", "E").fromId],
    );
    // D's fee on the 30 000 000 msat it sends E: 100 + 3000 = 3100; B's on the 30 003 100 it
    // sends D: 1000 + 30 003 = 31 003 (30 003.1 rounded down).
    expect(totalFee([B_POLICY, D_POLICY])).toBe(34_103n);
    const p = await payE(route, "three hops");
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
    expect(BigInt(p.amountMsat) - PAY_MSAT).toBe(34_103n);
    const [viaB] = (await net.forwardsOf(B, p.rHash)).filter((f) => f.status === "settled");
    const [viaD] = (await net.forwardsOf(D, p.rHash)).filter((f) => f.status === "settled");
    expect(viaB?.feeMsat).toBe("31003");
    expect(viaD?.feeMsat).toBe("3100");
    await net.waitFor("nothing in flight", nothingInFlight, { intervalMs: 250, timeoutMs: 30_000 });
  });

  it("pays an invoice of E's by POST /v1/payments {invoice}: one attempt through B and D, its fee B's and D's policies", async () => {
    const p = await payInvoiceOfE("by invoice, three hops");
    expect(p.status, p.failure ?? "").toBe("succeeded");
    expect(p.attempts).toHaveLength(1);
    const [a] = p.attempts;
    expect(a?.status).toBe("succeeded");
    expect(routeOf(a)).toEqual([
      "B",
      shape.ch("A", "B").shortChannelId,
      "D",
      shape.ch("B", "D").shortChannelId,
      "E",
      shape.ch("D", "E").shortChannelId,
    ]);
    expect(BigInt(p.feeMsat ?? -1)).toBe(totalFee([B_POLICY, D_POLICY]));
    expect(BigInt(a?.feeMsat ?? -1)).toBe(totalFee([B_POLICY, D_POLICY]));
    await net.waitFor("nothing in flight", nothingInFlight, { intervalMs: 250, timeoutMs: 30_000 });
  });

  it("with D stopped, B refuses the hop to D (temporary_channel_failure) and a payment through C succeeds", async () => {
    // Built from each node's own API while D is still up.
    const viaD = await net.route(
      [A, B, D, E],
      [shape.ch("A", "B").fromId, shape.ch("B", "D").fromId, shape.ch("D", "E").fromId],
    );
    await net.stopNode(D);
    const failed = await payE(viaD, "through D, down");
    expect(failed.status).toBe("failed");
    // temporary_channel_failure is UPDATE|7 (BOLT #4), from B: hop 0 of the route.
    expect(failed.failure).toMatchObject({ hop: 0, nodeId: B.nodeId, code: 0x1000 | 7 });
    // Gone less than GOSSIP_DISABLE_AFTER_S: B's own graph still has its B→D update enabled.
    const bd = shape.ch("B", "D");
    const bdScid = signed(scidNumber(bd.shortChannelId));
    const bDir = B.nodeId < D.nodeId ? 0 : 1;
    expect((await graphOf(B)).policies.filter((p) => p.startsWith(`${bdScid}/${bDir}:`))).toEqual([
      `${bdScid}/${bDir}: 1000 1000 ${bd.fromPolicy.cltvExpiryDelta} enabled`,
    ]);
    const around = await net.route(
      [A, B, C, E],
      [shape.ch("A", "B").fromId, shape.ch("B", "C").fromId, shape.ch("C", "E").fromId],
    );
    const p = await payE(around, "around D");
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
    expect(BigInt(p.amountMsat) - PAY_MSAT).toBe(totalFee([B_POLICY, C_POLICY]));
    await net.waitFor("nothing in flight", nothingInFlight, { intervalMs: 250, timeoutMs: 30_000 });
  });

  it("with D stopped, an invoice payment retries around it: the attempts through D fail at B, the last through C succeeds", async () => {
    expect(net.supervisor.isRunning(D.processes.channel[0] ?? "")).toBe(false);
    const p = await payInvoiceOfE("by invoice, around D");
    expect(p.status, p.failure ?? "").toBe("succeeded");
    expect(p.attempts.length).toBeGreaterThanOrEqual(2);
    const last = p.attempts.at(-1);
    expect(last?.status).toBe("succeeded");
    expect(routeOf(last)).toEqual([
      "B",
      shape.ch("A", "B").shortChannelId,
      "C",
      shape.ch("B", "C").shortChannelId,
      "E",
      shape.ch("C", "E").shortChannelId,
    ]);
    for (const a of p.attempts.slice(0, -1)) {
      expect(a.status).toBe("failed");
      expect(routeOf(a)).toEqual([
        "B",
        shape.ch("A", "B").shortChannelId,
        "D",
        shape.ch("B", "D").shortChannelId,
        "E",
        shape.ch("D", "E").shortChannelId,
      ]);
      // temporary_channel_failure (UPDATE|7) from B, hop 0.
      expect(a.failure).toMatchObject({
        hop: 0,
        nodeId: B.nodeId,
        code: 0x1000 | 7,
        name: "temporary_channel_failure",
      });
    }
    expect(BigInt(p.feeMsat ?? -1)).toBe(totalFee([B_POLICY, C_POLICY]));
    await net.waitFor("nothing in flight", nothingInFlight, { intervalMs: 250, timeoutMs: 30_000 });
  });

  it("with C stopped too, no route is left: the payment fails with every attempt's reason, no HTLC in flight", async () => {
    await net.stopNode(C);
    const p = await payInvoiceOfE("by invoice, no way left");
    expect(p.status).toBe("failed");
    expect(p.failure).toEqual(expect.any(String));
    expect(p.attempts.length).toBeGreaterThanOrEqual(1);
    for (const a of p.attempts) {
      expect(a.status).toBe("failed");
      // Each refused by B, the hop towards a node that is down.
      expect(a.failure).toMatchObject({ hop: 0, nodeId: B.nodeId, name: "temporary_channel_failure" });
      expect(a.failure?.description).not.toBe("");
    }
    const tried = new Set(p.attempts.map((a) => routeOf(a)[2]));
    expect(tried).toEqual(new Set(["C", "D"]));
    await net.waitFor("nothing in flight", nothingInFlight, { intervalMs: 250, timeoutMs: 30_000 });
  });
});
