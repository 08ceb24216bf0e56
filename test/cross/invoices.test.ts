/**
 * BOLT #11 invoices over the real processes (issue 16): B's invoices decode with two decoders
 * that are not ours (light-bolt11-decoder, bolt11), their signature recovering B's node id as
 * B's signer reports it, with a route hint for the channel the network cannot see yet. A pays
 * them over a one-hop onion route (POST /v1/payments with the route and the invoice's secret);
 * B, the payee, refuses a wrong secret, an amount below the invoice's or above twice it, a final
 * expiry before tip + min_final_cltv_expiry_delta, an expired invoice, an unknown hash and a
 * second payment of a paid invoice, each with incorrect_or_unknown_payment_details (BOLT #4),
 * decrypted by A. The code is computed here from BOLT #4's flags.
 */
import { randomBytes } from "node:crypto";
import bolt11 from "bolt11";
import { decode as lightDecode } from "light-bolt11-decoder";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Invoice, Payment } from "../lab/api.js";
import { channelWith, startNetwork, type BuiltRoute, type NetNode, type Network } from "../lab/network.js";

const PERM = 0x4000;
const INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15;

const DELAY_BLOCKS = 6;
/** What B's invoices ask beyond the tip: delay 6 + the deadline margin 6 + 12 (services/channel). */
const MIN_FINAL = DELAY_BLOCKS + 6 + 12;
/** B's defaults toward us, hinted while no channel_update of A's is known: base 1000, 1 ppm, delay + 40. */
const HINT_POLICY = {
  fee_base_msat: 1000,
  fee_proportional_millionths: 1,
  cltv_expiry_delta: DELAY_BLOCKS + 40,
};
const FINAL_BLOCKS = 40;
const PAY_MSAT = 5_000_000n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[invoices] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let ab: { a: string; b: string };
let route: BuiltRoute;

function expectRefusedByB(p: Payment): void {
  expect(p.status, `payment ${p.id}: ${p.failureReason ?? ""}`).toBe("failed");
  expect(p.failure, `payment ${p.id} has no decoded failure (${p.failureReason ?? ""})`).not.toBeNull();
  expect(p.failure?.hop).toBe(0);
  expect(p.failure?.nodeId).toBe(B.nodeId);
  expect(p.failure?.code).toBe(INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
}

const pay = (
  inv: { rHash: string },
  amountMsat: bigint,
  opts: { paymentSecret?: string; finalExpiryBlocks?: number } = {},
): Promise<Payment> =>
  net.payRoute(A, route, amountMsat, inv.rHash, { finalExpiryBlocks: FINAL_BLOCKS, ...opts });

const status = async (inv: Invoice): Promise<string> => (await B.api.invoice(inv.rHash)).status;

describe("BOLT #11 invoices, A pays B", () => {
  beforeAll(async () => {
    net = await startNetwork({
      nodes: ["A", "B"],
      // A-B is never announced here (1000 blocks deep): B's invoices hint it.
      channelEnv: { CHANNEL_DELAY_BLOCKS: String(DELAY_BLOCKS), GOSSIP_ANNOUNCE_DEPTH: "1000" },
      ...(netLog ? { log: netLog } : {}),
    });
    [A, B] = [net.node("A"), net.node("B")];
    await net.fund([A], 10_000_000n);
    await net.connect(A, B);
    const x = await net.openStart(A, B, 4_000_000n);
    const ok = net.bothNormal(A, B, x.id);
    await net.waitFor("A-B normal on both ends", ok, { mine: true, timeoutMs: 180_000 });
    const bOfAB = await channelWith(B, A);
    if (bOfAB === undefined) throw new Error("B does not list its channel with A");
    ab = { a: x.id, b: bOfAB.id };
    await net.waitShortChannelIds(A, [ab.a]);
    await net.waitShortChannelIds(B, [ab.b]);
    route = await net.route([A, B], [ab.a]);
  }, 300_000);

  afterAll(async () => {
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("B's invoice decodes with light-bolt11-decoder and bolt11, signed by B's node key, hinting A-B", async () => {
    const inv = await B.api.createInvoice(PAY_MSAT, "two coffees", 900);
    const s = inv.bolt11 ?? "";
    expect(s.startsWith("lnbcrt50u1")).toBe(true); // 5,000,000 msat = 50 micro-BTC
    expect(inv.payee).toBe(B.nodeId);

    // bolt11 recovers the payee from the signature and checks it against the n field.
    const b = bolt11.decode(s);
    expect(b.payeeNodeKey).toBe(B.nodeId);
    expect(b.millisatoshis).toBe("5000000");
    expect(b.tagsObject.payment_hash).toBe(inv.rHash);
    expect(b.tagsObject.expire_time).toBe(900);
    expect(b.tagsObject.min_final_cltv_expiry).toBe(MIN_FINAL);
    expect(b.timestamp).toBe(Date.parse(inv.createdAt) / 1000);
    expect(b.timeExpireDate).toBe(Date.parse(inv.expiresAt ?? "") / 1000);

    const light = lightDecode(s);
    const section = (name: string): unknown => light.sections.find((x) => x.name === name);
    expect(section("payment_hash")).toMatchObject({ value: inv.rHash });
    expect(section("description")).toMatchObject({ value: "two coffees" });
    expect(section("payee")).toMatchObject({ value: B.nodeId });
    expect((section("payment_secret") as { value: string }).value).toMatch(/^[0-9a-f]{64}$/);
    expect(section("payment_secret")).toMatchObject({ value: b.tagsObject.payment_secret });
    // A-B is not announced: hinted with A as the node forwarding to B over it.
    const scid = route.hops[0]?.shortChannelId ?? "";
    const [h, i, o] = scid.split("x").map(BigInt) as [bigint, bigint, bigint];
    const scidHex = ((h << 40n) | (i << 16n) | o).toString(16).padStart(16, "0");
    expect(light.route_hints).toEqual([[{ pubkey: A.nodeId, short_channel_id: scidHex, ...HINT_POLICY }]]);
  });

  it("A pays it with its secret; a second payment of it is refused", async () => {
    const inv = await B.api.createInvoice(PAY_MSAT, "paid once");
    const p = await pay(inv, PAY_MSAT);
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
    expect(await status(inv)).toBe("settled");
    expectRefusedByB(await pay(inv, PAY_MSAT));
  }, 120_000);

  it("refuses a wrong secret, 1 msat below the amount, 1 msat above twice it, an unknown hash", async () => {
    const inv = await B.api.createInvoice(PAY_MSAT, "checked");
    expectRefusedByB(await pay(inv, PAY_MSAT, { paymentSecret: randomBytes(32).toString("hex") }));
    expectRefusedByB(await pay(inv, PAY_MSAT - 1n));
    expectRefusedByB(await pay(inv, 2n * PAY_MSAT + 1n));
    expectRefusedByB(await pay({ rHash: randomBytes(32).toString("hex") }, PAY_MSAT));
    expect(await status(inv)).toBe("open");
    // Twice the amount is still a payment of it.
    const p = await pay(inv, 2n * PAY_MSAT);
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
  }, 180_000);

  it("an invoice of any amount: paid through an onion with its secret, never by a plain HTLC (no secret) of a neighbour's choosing", async () => {
    const inv = await B.api.createInvoice(undefined, "tips");
    expect(inv.amountMsat).toBe("0");
    // A plain HTLC of 1 msat: R would go to whoever sent it, however little the payer got.
    const plain = await A.api.pay(
      {
        channelId: ab.a,
        rHash: inv.rHash,
        amountMsat: 1n,
        expiry: { blocks: net.regtest.height() + FINAL_BLOCKS },
      },
      `plain-${inv.rHash}`,
    );
    const refused = await net.waitPaymentFinal(A, plain.id, { timeoutMs: 60_000 });
    expect(refused.status).toBe("failed");
    expect(refused.failureReason).toContain("only through an onion");
    expect(await status(inv)).toBe("open");
    const p = await pay(inv, PAY_MSAT);
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
  }, 120_000);

  it("refuses a final expiry before tip + min_final_cltv_expiry_delta, and an expired invoice", async () => {
    const inv = await B.api.createInvoice(PAY_MSAT, "too soon");
    // Past the channel's own deadline rule (delay 6 + margin 6) but before the invoice's delta.
    expectRefusedByB(await pay(inv, PAY_MSAT, { finalExpiryBlocks: MIN_FINAL - 4 }));

    const short = await B.api.createInvoice(PAY_MSAT, "expires at once", 1);
    const expiresAt = Date.parse(short.expiresAt ?? "");
    await net.waitFor("the invoice's expiry to pass", async () => Date.now() > expiresAt || "not yet", {
      intervalMs: 200,
      timeoutMs: 10_000,
    });
    expectRefusedByB(await pay(short, PAY_MSAT));
    expect(await status(short)).toBe("open");
  }, 180_000);
});
