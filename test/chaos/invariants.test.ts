/**
 * The chaos run's invariant checker (invariants.ts) against a small real network: nodes A, B, C
 * as processes, channels A-B (funded by A) and B-C (funded by B), payments direct both ways, A→C
 * through B, and two to unknown hashes (one direct, one routed). With nothing in flight, every
 * invariant holds and each node's books are what this test paid, term by term. Then the checker
 * fails where it should, with the code untouched and only the evidence changed: a storm claiming
 * one satoshi more funding for A, an answered payment id that does not exist, a memory peak over
 * the bound, and log files with Node's own report of an uncaught exception and of an unhandled
 * rejection appended. NET_LOG=1 prints the network's progress lines.
 */
import { execFileSync } from "node:child_process";
import { appendFileSync } from "node:fs";
import { randomBytes, randomUUID } from "node:crypto";
import { sat, type Sat } from "@ln/bitcoin";
import { Transaction } from "bitcoinjs-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Payment } from "../lab/api.js";
import { channelWith, startNetwork, type NetNode, type Network } from "../lab/network.js";
import {
  checkInvariants,
  formatInvariants,
  INVARIANTS,
  memoryPeaksNow,
  nodeBooks,
  waitQuiescent,
  type InvariantOptions,
} from "./invariants.js";
import type { InvariantResult, StormRecord, StormRequest } from "./storm.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const GIB = 2 ** 30;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[invariants] ${l}`) : undefined;
const opts: InvariantOptions = {
  memoryBoundBytes: GIB,
  quiescenceTimeoutMs: 120_000,
  ...(netLog ? { log: netLog } : {}),
};

let net: Network;
let A: NetNode;
let B: NetNode;
let C: NetNode;
const requests: StormRequest[] = [];
/** What each payment the test made moved, from the amounts it asked for and B's policy. */
const paid = { aSent: 0n, aReceived: 0n, bSent: 0n, bReceived: 0n, bEarned: 0n, cSent: 0n, cReceived: 0n };
let storm: StormRecord;

const record = (
  payer: NetNode,
  payee: NetNode,
  amountMsat: bigint,
  rHash: string,
  kind: "direct" | "routed",
  p: Payment,
  key: string,
): void => {
  requests.push({
    payer: payer.name,
    payee: payee.name,
    amountMsat,
    idempotencyKey: key,
    rHash,
    kind,
    paymentId: p.id,
  });
};

async function direct(payer: NetNode, payee: NetNode, amountMsat: bigint): Promise<Payment> {
  const key = `inv-${randomUUID()}`;
  const p = await net.pay(payer, payee, amountMsat, { idempotencyKey: key });
  record(payer, payee, amountMsat, p.rHash, "direct", p, key);
  return p;
}

/** A fee B's policy asks to forward `amountMsat` (BOLT #7), computed here. */
const feeOf = (
  policy: { feeBaseMsat: string; feeProportionalMillionths: number },
  amountMsat: bigint,
): bigint =>
  BigInt(policy.feeBaseMsat) + (amountMsat * BigInt(policy.feeProportionalMillionths)) / 1_000_000n;

async function routed(amountMsat: bigint, rHash?: string): Promise<{ p: Payment; fee: bigint }> {
  const route = await net.route([A, B, C]);
  const policy = route.policies[1];
  if (policy === undefined) throw new Error("no policy of B");
  const hash = rHash ?? (await C.api.createInvoice(amountMsat, "invariants test")).rHash;
  const key = `inv-${randomUUID()}`;
  const p = await net.payRoute(A, route, amountMsat, hash, { idempotencyKey: key });
  record(A, C, amountMsat, hash, "routed", p, key);
  return { p, fee: feeOf(policy, amountMsat) };
}

/** The anchor's fee, from the chain: the one funding coin it spends less what it pays. */
async function anchorFee(n: NetNode, channelId: string): Promise<Sat> {
  const c = await n.api.channel(channelId);
  if (c.anchorTxid === null) throw new Error(`${channelId} has no anchor`);
  const hex = await net.regtest.rpc.getRawTransaction(c.anchorTxid, false);
  if (typeof hex !== "string") throw new Error("no raw anchor");
  const tx = Transaction.fromHex(hex);
  expect(tx.ins.length, "the anchor spends the node's one funding coin").toBe(1);
  return sat(FUND_SAT - tx.outs.reduce((a, o) => a + BigInt(o.value), 0n));
}

const byName = (rs: readonly InvariantResult[], name: string): InvariantResult => {
  const r = rs.find((x) => x.name === name);
  if (r === undefined) throw new Error(`no invariant ${name}`);
  return r;
};
const failing = (rs: readonly InvariantResult[]): string[] => rs.filter((r) => !r.ok).map((r) => r.name);

describe("chaos invariants", () => {
  beforeAll(async () => {
    net = await startNetwork({ nodes: ["A", "B", "C"], ...(netLog ? { log: netLog } : {}) });
    [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    await net.fund([A, B], FUND_SAT);
    await net.openChannels([
      { from: "A", to: "B", amountSat: CHANNEL_SAT },
      { from: "B", to: "C", amountSat: CHANNEL_SAT },
    ]);

    // Each payer keeps its half of the commitment fee (draft 3.6, 3380 sat at the lab's rate) on
    // top of what it pays: B and C pay only out of what they received first.
    await direct(A, B, 5_000_000n);
    paid.aSent += 5_000_000n;
    paid.bReceived += 5_000_000n;
    await direct(B, A, 300_000n);
    paid.bSent += 300_000n;
    paid.aReceived += 300_000n;
    const r = await routed(5_000_000n);
    expect(r.p.status).toBe("succeeded");
    paid.aSent += 5_000_000n + r.fee;
    paid.bEarned += r.fee;
    paid.cReceived += 5_000_000n;
    await direct(C, B, 500_000n);
    paid.cSent += 500_000n;
    paid.bReceived += 500_000n;

    // Two to hashes nobody invoiced: failed by B (direct) and by C (through B, failed back).
    const ab = await channelWith(A, B);
    if (ab === undefined) throw new Error("no A-B");
    const unknown = randomBytes(32).toString("hex");
    const key = `inv-${randomUUID()}`;
    const p = await A.api.pay(
      {
        channelId: ab.id,
        rHash: unknown,
        amountMsat: 70_000n,
        expiry: { blocks: net.regtest.height() + 300 },
      },
      key,
    );
    const failed = await net.waitPaymentFinal(A, p.id);
    expect(failed.status).toBe("failed");
    record(A, B, 70_000n, unknown, "direct", p, key);
    const r2 = await routed(90_000n, randomBytes(32).toString("hex"));
    expect(r2.p.status).toBe("failed");

    storm = {
      funded: new Map([
        ["A", FUND_SAT],
        ["B", FUND_SAT],
        ["C", 0n],
      ]),
      requests,
      memory: memoryPeaksNow(net),
    };
    await waitQuiescent(net, storm, opts);
  }, 300_000);

  afterAll(async () => {
    await net?.cleanup();
  }, 60_000);

  it("every invariant holds with the figures of what was paid", async () => {
    const results = await checkInvariants(net, storm, opts);
    console.log(formatInvariants(results));
    expect(results.map((r) => r.name)).toEqual([...INVARIANTS]);
    expect(failing(results), formatInvariants(results)).toEqual([]);
    expect(byName(results, "payments exactly once").figure).toMatch(
      /^6 requests, 6 payments: 4 succeeded, 2 failed; 0 unanswered/,
    );
    expect(byName(results, "forwards resolved both ways").figure).toMatch(
      /^2 forwards: 1 settled .* 1 failed back, 0 pending$/,
    );
    expect(byName(results, "channel ends agree").figure).toMatch(/^2 channels .* 0 HTLCs in flight$/);

    const [feeA, feeB] = [
      await anchorFee(A, (await channelWith(A, B))?.id ?? ""),
      await anchorFee(B, (await channelWith(B, C))?.id ?? ""),
    ];
    const books = await nodeBooks(net, storm);
    const book = (n: string): (typeof books)[number] => {
      const b = books.find((x) => x.node === n);
      if (b === undefined) throw new Error(`no books of ${n}`);
      return b;
    };
    const cap = CHANNEL_SAT * 1000n;
    expect(book("A")).toEqual({
      node: "A",
      channelsMsat: cap - paid.aSent + paid.aReceived,
      walletSat: FUND_SAT - CHANNEL_SAT - feeA,
      fundedSat: FUND_SAT,
      feesSat: feeA,
      earnedMsat: 0n,
      receivedMsat: paid.aReceived,
      sentMsat: paid.aSent,
      differenceMsat: 0n,
    });
    expect(book("B")).toEqual({
      node: "B",
      // B's side of A-B plus its side of B-C.
      channelsMsat: paid.aSent - paid.aReceived + (cap - paid.cReceived + paid.cSent),
      walletSat: FUND_SAT - CHANNEL_SAT - feeB,
      fundedSat: FUND_SAT,
      feesSat: feeB,
      earnedMsat: paid.bEarned,
      receivedMsat: paid.bReceived,
      sentMsat: paid.bSent,
      differenceMsat: 0n,
    });
    expect(book("C")).toEqual({
      node: "C",
      channelsMsat: paid.cReceived - paid.cSent,
      walletSat: 0n,
      fundedSat: 0n,
      feesSat: 0n,
      earnedMsat: 0n,
      receivedMsat: paid.cReceived,
      sentMsat: paid.cSent,
      differenceMsat: 0n,
    });
    expect(feeA).toBeGreaterThan(0n);
    expect(paid.bEarned).toBeGreaterThan(0n);
  });

  it("fails conservation for A alone when A's funding is claimed one satoshi larger", async () => {
    const funded = new Map(storm.funded);
    funded.set("A", FUND_SAT + 1n);
    const results = await checkInvariants(net, { ...storm, funded }, opts);
    expect(failing(results)).toEqual(["money conserved"]);
    const v = byName(results, "money conserved").violations;
    expect(v.length).toBeGreaterThan(0);
    expect(
      v.every((l) => l.startsWith("A: ")),
      v.join("\n"),
    ).toBe(true);
    expect(v).toContain("A: channels + wallet − (funded − fees + earned + received − sent) = -1000 msat");
  });

  it("fails exactly-once when an answered payment id does not exist", async () => {
    // The request to an unknown hash: its payment failed, so only the id's existence is at stake.
    const i = requests.findIndex((r) => r.kind === "direct" && r.amountMsat === 70_000n);
    const forged = requests.map((r, j) => (j === i ? { ...r, paymentId: `${r.paymentId ?? ""}-nope` } : r));
    const results = await checkInvariants(net, { ...storm, requests: forged }, opts);
    expect(failing(results)).toEqual(["payments exactly once"]);
    expect(byName(results, "payments exactly once").violations.join("\n")).toMatch(
      /-nope, which does not exist/,
    );
  });

  it("fails memory for a peak over the bound", async () => {
    const memory = storm.memory.map((m) => (m.process === "B.peer" ? { ...m, peakBytes: GIB } : m));
    const results = await checkInvariants(net, { ...storm, memory }, opts);
    expect(failing(results)).toEqual(["memory bounded"]);
    expect(byName(results, "memory bounded").violations).toEqual([
      "B.peer: peak 1024.0 MiB ≥ bound 1024.0 MiB",
    ]);
  });

  it("fails on Node's report of an uncaught exception or an unhandled rejection in a log", async () => {
    // Node's own output, produced by Node, as a service's stderr would carry it.
    const fatal = (script: string): string => {
      try {
        execFileSync(process.execPath, ["-e", script], { stdio: ["ignore", "ignore", "pipe"] });
      } catch (e) {
        return String((e as { stderr?: Buffer }).stderr ?? "");
      }
      throw new Error(`node -e ${script} did not fail`);
    };
    const thrown = fatal("setTimeout(() => { throw new TypeError('chaos: boom') }, 0)");
    const rejected = fatal("Promise.reject(42)");
    expect(thrown).toMatch(/TypeError: chaos: boom/);
    appendFileSync(net.supervisor.logFile("C.channel"), thrown);
    let results = await checkInvariants(net, storm, opts);
    expect(failing(results)).toEqual(["no uncaught exception"]);
    expect(
      byName(results, "no uncaught exception").violations.every((l) => l.startsWith("C.channel.log:")),
    ).toBe(true);

    appendFileSync(net.supervisor.logFile("A.signer"), rejected);
    results = await checkInvariants(net, storm, opts);
    expect(failing(results)).toEqual(["no uncaught exception"]);
    expect(
      byName(results, "no uncaught exception").violations.some((l) => l.startsWith("A.signer.log:")),
    ).toBe(true);
  });
});
