/**
 * Forwarding over the real processes (issue 15, DESIGN.md 10 and 11): nodes A, B, C, channels A-B
 * (funded by A) and B-C (funded by B, so B has outbound liquidity towards C). A pays over explicit
 * routes A→B→C built from each node's own API (short_channel_id and B's policy).
 *
 * (a) an invoice of C through B: B's fee is exactly its policy, every balance moves by exactly the
 *     amounts; (b) an unknown hash: failed at C (hop 2) with incorrect_or_unknown_payment_details;
 * (c) a fee below B's raised policy: refused by B (hop 1) with fee_insufficient, nothing reaches C;
 * (d) hostile onions to B: each failed at hop 0 with its BOLT #4 BADONION code, A-B stays normal;
 * (e) C goes silent holding the HTLC: B goes on chain with C before the outgoing deadline and fails
 *     A back off-chain; (f) C reveals R only on chain after B force-closed B-C: B fulfils A
 *     off-chain with it (draft 6.2).
 *
 * The failure codes are computed here from BOLT #4's flags, not taken from the code under test.
 * All nodes ask a 6-block CSV delay (CHANNEL_DELAY_BLOCKS), so the on-chain parts take tens of
 * blocks. NET_LOG=1 prints the network's progress lines.
 */
import { createHash, randomBytes } from "node:crypto";
import { buildOnion, encodeHopPayload } from "@ln/onion";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError, type Payment } from "../lab/api.js";
import { describeExit } from "../lab/procs.js";
import {
  channelWith,
  startNetwork,
  WaitAbort,
  type BuiltRoute,
  type NetNode,
  type Network,
  type Service,
} from "../lab/network.js";

// BOLT #4 failure code flags and the codes this test expects, from the BOLT's table.
const BADONION = 0x8000;
const PERM = 0x4000;
const UPDATE = 0x1000;
const INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS = PERM | 15;
const FEE_INSUFFICIENT = UPDATE | 12;
const INVALID_ONION_VERSION = BADONION | PERM | 4;
const INVALID_ONION_HMAC = BADONION | PERM | 5;
const INVALID_ONION_KEY = BADONION | PERM | 6;

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const DELAY_BLOCKS = 6;
/** The payee's HTLC expiry, blocks ahead: past C's deadline (delay + margin) with room. */
const FINAL_BLOCKS = 40;
const PAY_MSAT = 50_000_000n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[forwarding] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let C: NetNode;
/** Each end's id of A-B and of B-C. */
let ab: { a: string; b: string };
let bc: { b: string; c: string };

const local = async (n: NetNode, id: string): Promise<bigint> =>
  BigInt((await n.api.channel(id)).localBalanceMsat);

/** The four local balances: A and B on A-B, B and C on B-C. */
async function balances(): Promise<{ aAB: bigint; bAB: bigint; bBC: bigint; cBC: bigint }> {
  const [aAB, bAB, bBC, cBC] = await Promise.all([
    local(A, ab.a),
    local(B, ab.b),
    local(B, bc.b),
    local(C, bc.c),
  ]);
  return { aAB, bAB, bBC, cBC };
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

/** C's invoices by r_hash (its own table). */
async function invoiceStatus(n: NetNode, rHash: string): Promise<string> {
  const rows = await net.query<{ status: string }>(
    `SELECT status FROM "${n.schemas.channel}".invoices WHERE r_hash = '${rHash}'`,
  );
  return rows[0]?.status ?? "missing";
}

/** B's only forward of `rHash`, once it reaches one of `statuses`. */
async function forwardOnB(
  rHash: string,
  statuses: readonly string[],
): Promise<Awaited<ReturnType<Network["forwardsOf"]>>[number]> {
  let row: Awaited<ReturnType<Network["forwardsOf"]>>[number] | undefined;
  await net.waitFor(
    `B's forward of ${rHash.slice(0, 10)}… to be ${statuses.join(" or ")}`,
    async () => {
      const rows = await net.forwardsOf(B, rHash);
      if (rows.length > 1)
        throw new WaitAbort(`${rows.length} forwards of one incoming HTLC: ${JSON.stringify(rows)}`);
      row = rows[0];
      return (row !== undefined && statuses.includes(row.status)) || `forward ${row?.status ?? "absent"}`;
    },
    { intervalMs: 250, timeoutMs: 60_000 },
  );
  if (row === undefined) throw new Error("no forward");
  return row;
}

const fee = (
  policy: { feeBaseMsat: string; feeProportionalMillionths: number },
  amountMsat: bigint,
): bigint =>
  BigInt(policy.feeBaseMsat) + (amountMsat * BigInt(policy.feeProportionalMillionths)) / 1_000_000n;

const randomHash = (): string => randomBytes(32).toString("hex");

function expectFailure(p: Payment, hop: number, node: NetNode, code: number): void {
  expect(p.status, `payment ${p.id}: ${p.failureReason ?? ""}`).toBe("failed");
  expect(p.failure, `payment ${p.id} has no decoded failure (${p.failureReason ?? ""})`).not.toBeNull();
  expect(p.failure?.hop).toBe(hop);
  expect(p.failure?.nodeId).toBe(node.nodeId);
  expect(p.failure?.code).toBe(code);
}

/** BOLT #7 short_channel_id text to its 8-byte number: height << 40 | index << 16 | output. */
function scidNumber(text: string): bigint {
  const [h, i, o] = text.split("x").map((x) => BigInt(x));
  if (h === undefined || i === undefined || o === undefined) throw new Error(`bad short_channel_id ${text}`);
  return (h << 40n) | (i << 16n) | o;
}

/** The processes of `n`, all running and none crashed. */
function expectRunning(n: NetNode): void {
  expect(net.crashed).toBeUndefined();
  for (const svc of ["signer", "watchtower", "peer", "channel"] as const)
    expect(net.supervisor.isRunning(`${n.name}.${svc}`), `${n.name}.${svc} running`).toBe(true);
}

/**
 * Restarts `n`'s service armed with a crash point; `died()` waits (at most a minute) for its
 * death there. (An object: a promise returned by an async function would be awaited with it.)
 */
async function arm(n: NetNode, svc: Service, point: string): Promise<{ died: () => Promise<void> }> {
  const name = `${n.name}.${svc}`;
  await net.restart(n, svc, 1, { LN_CRASH_AT: point });
  const exited = net.supervisor.exited(name).then((exit) => {
    // Its death is the point of the scenario, not a failure of the network.
    if (net.crashed?.startsWith(`${name} exited`)) net.crashed = undefined;
    if (exit.signal !== "SIGKILL") throw new Error(`${name} ended by ${describeExit(exit)}, not at ${point}`);
  });
  const died = (): Promise<void> =>
    Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${name} did not reach ${point} within 60 s`)), 60_000).unref(),
      ),
    ]);
  return { died };
}

describe("forwarding A→B→C", () => {
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
  }, 300_000);

  afterAll(async () => {
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("the route names each channel by the short_channel_id both of its ends report", async () => {
    const r = await net.route([A, B, C], [ab.a, bc.b]);
    const [bAB, cBC] = [await B.api.channel(ab.b), await C.api.channel(bc.c)];
    expect(r.hops.map((h) => h.nodeId)).toEqual([B.nodeId, C.nodeId]);
    expect(r.hops[0]?.shortChannelId).toBe(bAB.shortChannelId);
    expect(r.hops[1]?.shortChannelId).toBe(cBC.shortChannelId);
    expect(r.hops[0]?.feeBaseMsat).toBe(0n);
  });

  it("(a) A pays C's invoice through B: B earns exactly its policy's fee, every balance moves by the amounts", async () => {
    const policy = await net.setPolicy(B, bc.b, { feeBaseMsat: 1500n, feeProportionalMillionths: 2500 });
    expect(policy.feeBaseMsat).toBe("1500");
    expect(policy.feeProportionalMillionths).toBe(2500);
    // 1500 + 50 000 000 * 2500 / 1e6 = 126 500 msat.
    const feeMsat = fee(policy, PAY_MSAT);
    expect(feeMsat).toBe(126_500n);
    const route = await net.route([A, B, C], [ab.a, bc.b]);
    expect(route.hops[1]).toMatchObject({ feeBaseMsat: 1500n, feeProportionalMillionths: 2500 });
    const before = await balances();
    const earnedBefore = BigInt((await net.forwards(B)).totals.feesEarnedMsat);
    const inv = await C.api.createInvoice(PAY_MSAT, "through B");

    const p = await net.payRoute(A, route, PAY_MSAT, inv.rHash, { finalExpiryBlocks: FINAL_BLOCKS });
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
    expect(p.route?.hops.map((h) => BigInt(h.amountMsat))).toEqual([PAY_MSAT + feeMsat, PAY_MSAT]);
    expect(await invoiceStatus(C, inv.rHash)).toBe("settled");

    const fwd = await forwardOnB(inv.rHash, ["settled"]);
    expect(BigInt(fwd.inAmountMsat)).toBe(PAY_MSAT + feeMsat);
    expect(BigInt(fwd.outAmountMsat ?? "0")).toBe(PAY_MSAT);
    expect(BigInt(fwd.feeMsat)).toBe(feeMsat);
    expect([fwd.inChannel, fwd.outChannel]).toEqual([ab.b, bc.b]);
    expect(BigInt((await net.forwards(B)).totals.feesEarnedMsat) - earnedBefore).toBe(feeMsat);

    await net.waitFor("both channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
    expect(await balances()).toEqual({
      aAB: before.aAB - PAY_MSAT - feeMsat,
      bAB: before.bAB + PAY_MSAT + feeMsat,
      bBC: before.bBC - PAY_MSAT,
      cBC: before.cBC + PAY_MSAT,
    });
  }, 180_000);

  it("(b) A pays C an unknown hash: failed at C (hops[1]), incorrect_or_unknown_payment_details", async () => {
    const route = await net.route([A, B, C], [ab.a, bc.b]);
    const before = await balances();
    const rHash = randomHash();
    const p = await net.payRoute(A, route, PAY_MSAT, rHash, { finalExpiryBlocks: FINAL_BLOCKS });
    expectFailure(p, 1, C, INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS);
    // hop is the index in route.hops: C is hops[1], the payee (the third node of A→B→C).
    expect(p.failure?.code).toBe(0x400f);
    expect(p.failure?.name).toBe("incorrect_or_unknown_payment_details");
    const fwd = await forwardOnB(rHash, ["failed_back"]);
    expect(fwd.outChannel).toBe(bc.b);
    expect(BigInt(fwd.feeMsat)).toBe(0n);
    await net.waitFor("both channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
    expect(await balances()).toEqual(before);
  }, 120_000);

  it("(c) B raised its fee; A pays with the old one: refused by B (hops[0]), fee_insufficient, nothing reaches C", async () => {
    const stale = await net.route([A, B, C], [ab.a, bc.b]);
    const old = stale.policies[1];
    if (old === undefined) throw new Error("no policy of B");
    await net.setPolicy(B, bc.b, { feeBaseMsat: BigInt(old.feeBaseMsat) + 10_000n });
    const before = await balances();
    const rHash = randomHash();
    const p = await net.payRoute(A, stale, PAY_MSAT, rHash, { finalExpiryBlocks: FINAL_BLOCKS });
    // B is hops[0] of the route (the node that refused to forward).
    expectFailure(p, 0, B, FEE_INSUFFICIENT);
    expect(p.failure?.code).toBe(0x100c);
    expect(p.failure?.name).toBe("fee_insufficient");
    const fwd = await forwardOnB(rHash, ["failed", "failed_back"]);
    expect(fwd.outHtlcId).toBeNull();
    await net.waitFor("both channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
    expect(await balances()).toEqual(before);
    // Back to the policy of (a) for what follows.
    await net.setPolicy(B, bc.b, { feeBaseMsat: BigInt(old.feeBaseMsat) });
  }, 120_000);

  describe("(d) a hostile onion to B", () => {
    let route: BuiltRoute;

    beforeAll(async () => {
      route = await net.route([A, B, C], [ab.a, bc.b]);
    });

    /** A real onion for B→C of a fresh hash (its associated data): B forwards PAY_MSAT to C. */
    function realOnion(): { rHash: string; onion: Buffer } {
      const rHash = randomHash();
      const final = net.regtest.height() + FINAL_BLOCKS;
      const bcHop = route.hops[1];
      if (bcHop === undefined) throw new Error("no second hop");
      const { packet } = buildOnion({
        sessionKey: randomBytes(32),
        associatedData: Buffer.from(rHash, "hex"),
        hops: [
          {
            nodeId: Buffer.from(B.nodeId, "hex"),
            payload: encodeHopPayload({
              amtToForwardMsat: PAY_MSAT,
              outgoingCltvValue: final,
              shortChannelId: scidNumber(bcHop.shortChannelId),
            }),
          },
          {
            nodeId: Buffer.from(C.nodeId, "hex"),
            payload: encodeHopPayload({
              amtToForwardMsat: PAY_MSAT,
              outgoingCltvValue: final,
              paymentData: { paymentSecret: Buffer.alloc(32), totalMsat: PAY_MSAT },
            }),
          },
        ],
      });
      // version 0 | ephemeral key (33) | hop payloads (1300) | HMAC (32)
      expect(packet.length).toBe(1 + 33 + 1300 + 32);
      return { rHash, onion: packet };
    }

    const cases: { name: string; corrupt: (b: Buffer) => Buffer; code: number }[] = [
      {
        name: "one byte of the HMAC flipped: invalid_onion_hmac",
        corrupt: (b) => {
          b[1365] = (b[1365] ?? 0) ^ 0x01;
          return b;
        },
        code: INVALID_ONION_HMAC,
      },
      {
        name: "version 1: invalid_onion_version",
        corrupt: (b) => {
          b[0] = 1;
          return b;
        },
        code: INVALID_ONION_VERSION,
      },
      {
        name: "an ephemeral key off the curve: invalid_onion_key",
        corrupt: (b) => {
          const key = Buffer.concat([Buffer.from([0x02]), Buffer.alloc(32, 0xff)]);
          // x = 2^256 - 1 is above the field prime: no point has it.
          expect(ecc.isPoint(key)).toBe(false);
          key.copy(b, 1);
          return b;
        },
        code: INVALID_ONION_KEY,
      },
      {
        // Not a hostile case: the same onion unchanged goes through, so the cases above fail
        // for their corruption alone.
        name: "control: the onion unchanged is peeled and forwarded by B (and fails at C: unknown hash)",
        corrupt: (b) => b,
        code: INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS,
      },
    ];

    function payHostile(rHash: string, onion: Buffer): Promise<Payment> {
      return net.payRoute(A, route, PAY_MSAT, rHash, {
        finalExpiryBlocks: FINAL_BLOCKS,
        onion: onion.toString("hex"),
      });
    }

    async function afterwards(before: Awaited<ReturnType<typeof balances>>): Promise<void> {
      await net.waitFor("both channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
      expect((await A.api.channel(ab.a)).phase).toBe("normal");
      expect((await B.api.channel(ab.b)).phase).toBe("normal");
      expect(await balances()).toEqual(before);
      expectRunning(B);
    }

    for (const c of cases)
      it(
        c.name,
        async () => {
          const before = await balances();
          const { rHash, onion } = realOnion();
          const p = await payHostile(rHash, c.corrupt(onion));
          if (c.code === INCORRECT_OR_UNKNOWN_PAYMENT_DETAILS) {
            // A has no shared secret of an onion built here: C's error packet is not A's to
            // read; but B peeled the onion and forwarded what it says.
            expect(p.status).toBe("failed");
            const fwd = await forwardOnB(rHash, ["failed_back"]);
            expect(fwd.outChannel).toBe(bc.b);
            expect(BigInt(fwd.outAmountMsat ?? "0")).toBe(PAY_MSAT);
          }
          // B, hops[0], could not peel it: its malformed reason reaches A as B's failure.
          else expectFailure(p, 0, B, c.code);
          await afterwards(before);
        },
        120_000,
      );

    it("truncated (1000 bytes): refused up front with a typed 4xx, or failed by B as invalid_onion_version", async () => {
      const before = await balances();
      const { rHash, onion } = realOnion();
      const outcome = await payHostile(rHash, onion.subarray(0, 1000)).then(
        (p) => ({ paid: p }),
        (e: unknown) => ({ refused: e }),
      );
      if ("refused" in outcome) {
        // The API refuses an onion that is not 1366 bytes.
        expect(outcome.refused).toBeInstanceOf(ApiError);
        const e = outcome.refused as ApiError;
        expect(e.status).toBeGreaterThanOrEqual(400);
        expect(e.status).toBeLessThan(500);
        netLog?.(`truncated onion refused by A's API: ${e.status} ${e.code}`);
      } else {
        // Sent as is: B finds its length wrong, BOLT #4's invalid_onion_version.
        expectFailure(outcome.paid, 0, B, INVALID_ONION_VERSION);
        netLog?.("truncated onion failed by B: invalid_onion_version");
      }
      await afterwards(before);
    }, 120_000);
  });

  it("(e) C goes silent holding the HTLC: B goes on chain with C in time and fails A back; A-B stays normal", async () => {
    const route = await net.route([A, B, C], [ab.a, bc.b]);
    const aBefore = await local(A, ab.a);
    const inv = await C.api.createInvoice(PAY_MSAT, "C goes silent");
    // C's signer dies recording R's reveal: C has committed the HTLC on both sides and decided
    // to settle it, and never says so. Then C's gateway and channel service stop too.
    const armed = await arm(C, "signer", "signer.invoice_reveal.committed");
    const p0 = await net.payRoute(A, route, PAY_MSAT, inv.rHash, {
      finalExpiryBlocks: FINAL_BLOCKS,
      wait: false,
    });
    await armed.died();
    expect((await B.api.channel(bc.b)).htlcs.length).toBe(1);
    await net.kill(C, "peer");
    await net.kill(C, "channel");
    // C's channel service may have died of its signer's absence before we stopped it: C is meant to be down.
    if (net.crashed?.startsWith("C.")) net.crashed = undefined;
    const fwd = await forwardOnB(inv.rHash, ["offered"]);
    expect(fwd.outChannel).toBe(bc.b);

    const p = await net.waitPaymentFinal(A, p0.id, { mine: true, timeoutMs: 150_000 });
    expect(p.status).toBe("failed");
    const bSide = await B.api.channel(bc.b);
    expect(bSide.phase, "B went on chain with C").not.toBe("normal");
    await forwardOnB(inv.rHash, ["failed_back"]);
    const [a, b] = [await A.api.channel(ab.a), await B.api.channel(ab.b)];
    expect([a.phase, b.phase]).toEqual(["normal", "normal"]);
    expect(a.htlcs).toEqual([]);
    expect(BigInt(a.localBalanceMsat)).toBe(aBefore);
    expectRunning(B);

    // C back, unarmed, for what follows.
    await net.restart(C, "signer", 1, { LN_CRASH_AT: "" });
    await net.restart(C, "peer");
    await net.restart(C, "channel");
    await net.connect(B, C);
  }, 300_000);

  it("(f) C reveals R only on chain after B force-closed B-C: B fulfils A off-chain with it", async () => {
    // A fresh B-C (the last one is closed on chain).
    const old = bc;
    const y = await net.openStart(B, C, CHANNEL_SAT);
    let cId: string | undefined;
    await net.waitFor(
      "the new B-C normal on both ends",
      async () => {
        const b = (await B.api.channel(y.id)).phase;
        const mine = (await C.api.channels()).find((x) => x.peerNodeId === B.nodeId && x.id !== old.c);
        if (b === "failed" || mine?.phase === "failed")
          throw new WaitAbort(`the new B-C failed: B ${b}, C ${mine?.phase ?? "absent"}`);
        cId = mine?.id;
        return (b === "normal" && mine?.phase === "normal") || `B ${b}, C ${mine?.phase ?? "absent"}`;
      },
      { mine: true, timeoutMs: 180_000 },
    );
    if (cId === undefined) throw new Error("C does not list the new channel");
    bc = { b: y.id, c: cId };
    await net.waitShortChannelIds(B, [bc.b]);
    const route = await net.route([A, B, C], [ab.a, bc.b]);
    const policy = route.policies[1];
    if (policy === undefined) throw new Error("no policy of B");
    const aBefore = await local(A, ab.a);
    const inv = await C.api.createInvoice(PAY_MSAT, "R on chain only");

    // C's channel service dies with R out of its signer; it comes back with no gateway: its
    // fulfil is staged and never delivered, so R reaches B only in C's claim on chain.
    const armed = await arm(C, "channel", "channel.payee.revealed");
    const p0 = await net.payRoute(A, route, PAY_MSAT, inv.rHash, {
      finalExpiryBlocks: FINAL_BLOCKS,
      wait: false,
    });
    await armed.died();
    await net.kill(C, "peer");
    await net.restart(C, "channel", 1, { LN_CRASH_AT: "" });
    await forwardOnB(inv.rHash, ["offered"]);

    const p = await net.waitPaymentFinal(A, p0.id, { mine: true, timeoutMs: 150_000 });
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
    expect((await B.api.channel(bc.b)).phase, "B-C went on chain").not.toBe("normal");
    const fwd = await forwardOnB(inv.rHash, ["settled"]);
    expect(BigInt(fwd.feeMsat)).toBe(fee(policy, PAY_MSAT));
    const [a, b] = [await A.api.channel(ab.a), await B.api.channel(ab.b)];
    expect([a.phase, b.phase]).toEqual(["normal", "normal"]);
    await net.waitFor(
      "A-B without HTLCs",
      async () => {
        const d = await A.api.channel(ab.a);
        return d.htlcs.length === 0 || `${d.htlcs.length} HTLCs`;
      },
      { intervalMs: 250, timeoutMs: 60_000 },
    );
    expect(BigInt((await A.api.channel(ab.a)).localBalanceMsat)).toBe(
      aBefore - PAY_MSAT - fee(policy, PAY_MSAT),
    );
    // The R B fulfilled A with is the one C's invoice hashes to.
    const rows = await net.query<{ preimage: string | null }>(
      `SELECT preimage FROM "${B.schemas.channel}".forwards WHERE r_hash = '${inv.rHash}'`,
    );
    const r = rows[0]?.preimage;
    expect(r, "B's forward keeps R").toMatch(/^[0-9a-f]{64}$/);
    expect(
      createHash("sha256")
        .update(Buffer.from(r ?? "", "hex"))
        .digest("hex"),
    ).toBe(inv.rHash);
    await net.restart(C, "peer");
    expectRunning(B);
  }, 300_000);
});
