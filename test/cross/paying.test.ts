/**
 * Paying invoices over the real processes (issue 16 item 3, DESIGN.md 10 "Paying" and 11): nodes
 * A, B, C, channels A-B (funded by A) and B-C (funded by B). A pays C's BOLT #11 invoices with
 * POST /v1/payments {invoice}: the node finds the route, retries after each failure, and records
 * each attempt as a payments row.
 *
 * (a) A pays C's invoice through B: one attempt, its fee exactly B's policy (computed here);
 *     paying the same invoice again is refused (409 INVOICE_ALREADY_PAID), nothing sent;
 * (b) A's graph also has a cheaper B→C channel that does not exist: the first attempt goes there
 *     and B refuses it (unknown_next_peer, hops[0]); the retry over the real channel succeeds:
 *     two attempt rows. `lnctl pay <invoice>` prints both attempts and the preimage, exit 0;
 * (c) B raised its fee without A's graph knowing: the phantom channel fails, then the real one
 *     (fee_insufficient at B): no route left; the payment fails with both attempts' reasons, and
 *     no HTLC is left on any channel.
 *
 * SEEDED GRAPH: A's graph tables (migration 21) are also written here directly: the real B-C
 * with B's policy as B reports it (gossip announces a channel only 6 blocks deep, which this test
 * does not wait for; ON CONFLICT keeps a gossiped row), and the phantom channel, which only a
 * test can make. Gossip is merged: B's channel_update carried in its failures reaches A's graph
 * through the payer's ChannelUpdateSink (node.gossip).
 */
import { randomUUID } from "node:crypto";
import { EXIT, run } from "@ln/lnctl";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Invoice, InvoicePayment } from "../lab/api.js";
import { channelWith, startNetwork, WaitAbort, type NetNode, type Network } from "../lab/network.js";

// BOLT #4 failure codes, from its table: PERM = 0x4000, UPDATE = 0x1000.
const UNKNOWN_NEXT_PEER = 0x4000 | 10;
const FEE_INSUFFICIENT = 0x1000 | 12;

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const DELAY_BLOCKS = 6;
const PAY_MSAT = 40_000_000n;
/** A short_channel_id no anchor has: block 1, tx 99, output 7. */
const PHANTOM_SCID = (1n << 40n) | (99n << 16n) | 7n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[paying] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let C: NetNode;
let ab: { a: string; b: string };
let bc: { b: string; c: string };
let bcScid: bigint;

const fee = (p: { feeBaseMsat: string; feeProportionalMillionths: number }, amountMsat: bigint): bigint =>
  BigInt(p.feeBaseMsat) + (amountMsat * BigInt(p.feeProportionalMillionths)) / 1_000_000n;

/** BOLT #7 short_channel_id text to its number: height << 40 | index << 16 | output. */
function scidNumber(text: string): bigint {
  const [h, i, o] = text.split("x").map((x) => BigInt(x));
  if (h === undefined || i === undefined || o === undefined) throw new Error(`bad short_channel_id ${text}`);
  return (h << 40n) | (i << 16n) | o;
}
const scidText = (n: bigint): string => `${n >> 40n}x${(n >> 16n) & 0xffffffn}x${n & 0xffffn}`;

/** C's invoice as a BOLT #11 string. */
async function invoiceOfC(
  amountMsat: bigint,
  description: string,
): Promise<{ bolt11: string; rHash: string }> {
  const inv = (await C.api.createInvoice(amountMsat, description)) as Invoice & { bolt11?: string | null };
  if (typeof inv.bolt11 !== "string") throw new Error("C's invoice has no BOLT #11 string (merge invoices)");
  return { bolt11: inv.bolt11, rHash: inv.rHash };
}

/**
 * SEEDED GRAPH (see the header): one direction of a channel in A's graph, `from` forwarding to
 * `to` with this policy. node_1 < node_2 and direction 0 is node_1 forwarding (migration 21).
 */
async function seedEdge(
  scid: bigint,
  from: string,
  to: string,
  p: { feeBaseMsat: bigint; feeProportionalMillionths: number; cltvExpiryDelta: number },
): Promise<void> {
  const s = `"${A.schemas.channel}"`;
  const [n1, n2] = from < to ? [from, to] : [to, from];
  const direction = from === n1 ? 0 : 1;
  const signed = BigInt.asIntN(64, scid).toString();
  await net.query(
    `INSERT INTO ${s}.graph_channels (short_channel_id, node_1, node_2, commit_key_1, commit_key_2, anchor_txid,
       anchor_vout, capacity_sat, announcement)
     VALUES (${signed}, '${n1}', '${n2}', '${n1}', '${n2}', '${"00".repeat(32)}', 0, ${CHANNEL_SAT}, '\\x00')
     ON CONFLICT (short_channel_id) DO NOTHING`,
  );
  await net.query(
    `INSERT INTO ${s}.graph_policies (short_channel_id, direction, timestamp, disabled, cltv_expiry_delta,
       htlc_minimum_msat, htlc_maximum_msat, fee_base_msat, fee_proportional_millionths, channel_update)
     VALUES (${signed}, ${direction}, 1, false, ${p.cltvExpiryDelta}, 1000, ${CHANNEL_SAT * 1000n},
       ${p.feeBaseMsat}, ${p.feeProportionalMillionths}, '\\x00')
     ON CONFLICT (short_channel_id, direction) DO UPDATE SET fee_base_msat = EXCLUDED.fee_base_msat,
       fee_proportional_millionths = EXCLUDED.fee_proportional_millionths, cltv_expiry_delta = EXCLUDED.cltv_expiry_delta`,
  );
}

/** A's invoice payment once it is final (not pending). */
async function finalPayment(id: string): Promise<InvoicePayment> {
  let p: InvoicePayment | undefined;
  await net.waitFor(
    `A's payment ${id} to be final`,
    async () => {
      p = await A.api.invoicePayment(id);
      return p.status !== "pending" || `pending, ${p.attempts.length} attempt(s)`;
    },
    { intervalMs: 250, timeoutMs: 90_000 },
  );
  if (!p) throw new Error("no payment");
  return p;
}

/** Both channels normal on both ends with no HTLC left. */
async function quiet(): Promise<true | string> {
  const ds = await Promise.all([
    A.api.channel(ab.a),
    B.api.channel(ab.b),
    B.api.channel(bc.b),
    C.api.channel(bc.c),
  ]);
  for (const d of ds)
    if (d.phase !== "normal") throw new WaitAbort(`channel ${d.id} left normal: ${d.phase}`);
  const htlcs = ds.map((d) => d.htlcs.length);
  return htlcs.every((x) => x === 0) || `HTLCs (A-B at A, at B, B-C at B, at C): ${htlcs.join(" ")}`;
}

describe("paying invoices A→B→C", () => {
  beforeAll(async () => {
    net = await startNetwork({
      nodes: ["A", "B", "C"],
      channelEnv: { CHANNEL_DELAY_BLOCKS: String(DELAY_BLOCKS) },
      ...(netLog ? { log: netLog } : {}),
    });
    [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    await net.fund([A, B], FUND_SAT);
    await net.connect(A, B);
    await net.connect(B, C);
    const [x, y] = [await net.openStart(A, B, CHANNEL_SAT), await net.openStart(B, C, CHANNEL_SAT)];
    const [abOk, bcOk] = [net.bothNormal(A, B, x.id), net.bothNormal(B, C, y.id)];
    await net.waitFor(
      "A-B and B-C normal on both ends",
      async () => {
        const [p, q] = [await abOk(), await bcOk()];
        return (
          (p === true && q === true) || `A-B ${p === true ? "normal" : p}; B-C ${q === true ? "normal" : q}`
        );
      },
      { mine: true, timeoutMs: 180_000 },
    );
    const [bOfAB, cOfBC] = [await channelWith(B, A), await channelWith(C, B)];
    if (bOfAB === undefined || cOfBC === undefined) throw new Error("B or C does not list its channel");
    ab = { a: x.id, b: bOfAB.id };
    bc = { b: y.id, c: cOfBC.id };
    await net.waitShortChannelIds(A, [ab.a]);
    await net.waitShortChannelIds(B, [ab.b, bc.b]);
    await net.waitShortChannelIds(C, [bc.c]);
    const text = (await B.api.channel(bc.b)).shortChannelId;
    if (text === undefined) throw new Error("B-C has no short_channel_id");
    bcScid = scidNumber(text);
    const policy = await net.setPolicy(B, bc.b, { feeBaseMsat: 1500n, feeProportionalMillionths: 2500 });
    // SEEDED GRAPH: the real B-C, B forwarding to C under its policy as B reports it.
    await seedEdge(bcScid, B.nodeId, C.nodeId, {
      feeBaseMsat: BigInt(policy.feeBaseMsat),
      feeProportionalMillionths: policy.feeProportionalMillionths,
      cltvExpiryDelta: policy.cltvExpiryDelta,
    });
  }, 300_000);

  afterAll(async () => {
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("(a) A pays C's invoice through B: the route is found, the fee is B's policy; a second payment of it is refused", async () => {
    const policy = await B.api.policy(bc.b);
    // 1500 + 40 000 000 * 2500 / 1e6 = 101 500 msat.
    const feeMsat = fee(policy, PAY_MSAT);
    expect(feeMsat).toBe(101_500n);
    const inv = await invoiceOfC(PAY_MSAT, "through B");
    const r = await A.api.payInvoice({ invoice: inv.bolt11 });
    expect(r.payment).toMatchObject({
      kind: "invoice",
      status: "pending",
      rHash: inv.rHash,
      payee: C.nodeId,
    });
    const p = await finalPayment(r.payment.id);
    expect(p.status, p.failure ?? "").toBe("succeeded");
    expect(BigInt(p.feeMsat ?? "-1")).toBe(feeMsat);
    expect(p.preimage).toMatch(/^[0-9a-f]{64}$/);
    expect(p.attempts).toHaveLength(1);
    const [only] = p.attempts;
    expect(only?.status).toBe("succeeded");
    expect(only?.route.map((h) => [h.nodeId, h.shortChannelId])).toEqual([
      [B.nodeId, (await A.api.channel(ab.a)).shortChannelId],
      [C.nodeId, scidText(bcScid)],
    ]);
    expect(only?.route.map((h) => BigInt(h.amountMsat))).toEqual([PAY_MSAT + feeMsat, PAY_MSAT]);
    expect(BigInt(only?.feeMsat ?? "-1")).toBe(feeMsat);

    const again = await A.api.payInvoice({ invoice: inv.bolt11 }).catch((e: unknown) => e);
    expect(again).toMatchObject({ status: 409, code: "INVOICE_ALREADY_PAID" });
    await net.waitFor("both channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
  }, 180_000);

  it("(b) the cheaper route's channel does not exist: B refuses it, the retry succeeds; lnctl prints both attempts", async () => {
    // SEEDED GRAPH: a phantom B→C channel charging nothing, cheaper than the real one.
    await seedEdge(PHANTOM_SCID, B.nodeId, C.nodeId, {
      feeBaseMsat: 0n,
      feeProportionalMillionths: 0,
      cltvExpiryDelta: 40,
    });
    const feeMsat = fee(await B.api.policy(bc.b), PAY_MSAT);
    const inv = await invoiceOfC(PAY_MSAT, "around a phantom");
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(["pay", inv.bolt11, "--timeout", "60"], {
      env: { LNCTL_URL: A.apiUrl, LNCTL_TOKEN: A.token },
      stdout: { write: (s: string) => out.push(s) },
      stderr: { write: (s: string) => err.push(s) },
      readFile: () => undefined,
    });
    expect(code, `${out.join("")}${err.join("")}`).toBe(EXIT.ok);
    const printed = out.join("");
    expect(printed).toMatch(/attempt 1: .*via 1x99x7.*failed: hop 0 .*unknown_next_peer/);
    expect(printed).toMatch(/attempt 2: .*succeeded/);
    const id = /^payment (\S+):/m.exec(printed)?.[1];
    if (id === undefined) throw new Error(`lnctl printed no payment id: ${printed}`);
    const p = await A.api.invoicePayment(id);
    expect(printed).toContain(p.preimage ?? "no preimage");
    expect(p.status).toBe("succeeded");
    expect(p.attempts.map((a) => a.status)).toEqual(["failed", "succeeded"]);
    const [first, second] = p.attempts;
    expect(first?.route[1]?.shortChannelId).toBe(scidText(PHANTOM_SCID));
    expect(first?.failure).toMatchObject({
      hop: 0,
      nodeId: B.nodeId,
      code: UNKNOWN_NEXT_PEER,
      name: "unknown_next_peer",
    });
    expect(second?.route[1]?.shortChannelId).toBe(scidText(bcScid));
    expect(BigInt(p.feeMsat ?? "-1")).toBe(feeMsat);
    const rows = await net.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${A.schemas.channel}".payments WHERE invoice_payment_id = '${id}'`,
    );
    expect(rows[0]?.n).toBe(2);
    await net.waitFor("both channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
  }, 180_000);

  it("(c) no route left: failed with every attempt's reason, no HTLC in flight", async () => {
    const old = await B.api.policy(bc.b);
    // B charges more than A's graph says (A's graph keeps the old policy: nothing tells it).
    await net.setPolicy(B, bc.b, { feeBaseMsat: BigInt(old.feeBaseMsat) + 50_000n });
    try {
      const inv = await invoiceOfC(PAY_MSAT, "nowhere to go");
      // Between B's old fee (what A's graph says) and its new one: once B's channel_update is
      // applied (with gossip), the real route is over the limit too.
      const maxFeeMsat = fee(old, PAY_MSAT) + 10_000n;
      expect(
        fee({ ...old, feeBaseMsat: String(BigInt(old.feeBaseMsat) + 50_000n) }, PAY_MSAT),
      ).toBeGreaterThan(maxFeeMsat);
      const r = await A.api.payInvoice(
        { invoice: inv.bolt11, timeoutSeconds: 60, maxFeeMsat: maxFeeMsat.toString() },
        randomUUID(),
      );
      const p = await finalPayment(r.payment.id);
      expect(p.status).toBe("failed");
      expect(p.failure).toMatch(/no route left/);
      expect(p.preimage).toBeNull();
      // The phantom first; then B's real channel at its stale fee, refused. (With gossip, A may
      // learn B's new fee before paying, and the real channel is over the limit without trying.)
      expect(p.attempts.every((a) => a.status === "failed")).toBe(true);
      expect(p.attempts[0]?.failure).toMatchObject({ hop: 0, nodeId: B.nodeId, code: UNKNOWN_NEXT_PEER });
      for (const a of p.attempts.slice(1))
        expect(a.failure).toMatchObject({ hop: 0, nodeId: B.nodeId, code: FEE_INSUFFICIENT });
      // A learns B's new fee by trying (B's channel_update applied then is over the limit). Were
      // B's update gossiped to A before the payment, the real channel would not be tried: 1.
      expect(p.attempts).toHaveLength(2);
      // Final only with nothing in flight: every channel's HTLC list is empty on both ends.
      expect(await quiet()).toBe(true);
      const pending = await net.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM "${A.schemas.channel}".payments WHERE status = 'pending'`,
      );
      expect(pending[0]?.n).toBe(0);
    } finally {
      await net.setPolicy(B, bc.b, { feeBaseMsat: BigInt(old.feeBaseMsat) });
    }
  }, 180_000);
});
