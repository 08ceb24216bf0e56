/**
 * The crash points of a forward (issue 15), over the real processes: nodes A, B, C, channels A-B
 * (funded by A) and B-C (funded by B). For each point of FORWARD_CRASH_POINTS, B's channel service
 * is restarted armed with it (LN_CRASH_AT), A pays an invoice of C through B until B's channel
 * service kills itself there (SIGKILL, the trace naming the point as its last), and it is
 * restarted unarmed. Then: A has exactly one payment of the invoice and it is final; C's invoice
 * is settled iff it succeeded; B has one forward row for it; every channel is normal with no HTLC
 * left; and B's total (its local balances on A-B and B-C together) is what it was plus the fee
 * if the payment succeeded, and what it was if it failed: never less. crash-points.test.ts counts
 * these points as covered here.
 *
 * NET_LOG=1 prints the network's progress lines.
 */
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CRASH_POINT_NAMES } from "@ln/crash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { describeExit } from "../lab/procs.js";
import { channelWith, startNetwork, WaitAbort, type NetNode, type Network } from "../lab/network.js";
import { FORWARD_CRASH_POINTS } from "./forward-crash-rounds.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const PAY_MSAT = 10_000_000n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[fwd-crash] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let C: NetNode;
let ab: { a: string; b: string };
let bc: { b: string; c: string };
let traceFile: string;
const crashedAt = new Set<string>();
const summary: string[] = [];

function reaches(pid: number): string[] {
  if (!existsSync(traceFile)) return [];
  return readFileSync(traceFile, "utf8")
    .split("\n")
    .flatMap((l) => {
      const [point, p] = l.split(" ");
      return point !== undefined && p === String(pid) ? [point] : [];
    });
}

/** Every channel end normal, no HTLC. */
async function quiet(): Promise<true | string> {
  const ds = await Promise.all([
    A.api.channel(ab.a),
    B.api.channel(ab.b),
    B.api.channel(bc.b),
    C.api.channel(bc.c),
  ]);
  for (const d of ds)
    if (d.phase !== "normal") throw new WaitAbort(`channel ${d.id} left normal: ${d.phase}`);
  const n = ds.map((d) => d.htlcs.length);
  return n.every((x) => x === 0) || `HTLCs (A-B at A, at B, B-C at B, at C) ${n.join(" ")}`;
}

/** B's local balances on A-B and on B-C, summed. */
async function bTotal(): Promise<bigint> {
  const [x, y] = await Promise.all([B.api.channel(ab.b), B.api.channel(bc.b)]);
  return BigInt(x.localBalanceMsat) + BigInt(y.localBalanceMsat);
}

async function invoiceStatus(rHash: string): Promise<string> {
  const rows = await net.query<{ status: string }>(
    `SELECT status FROM "${C.schemas.channel}".invoices WHERE r_hash = '${rHash}'`,
  );
  return rows[0]?.status ?? "missing";
}

async function crashRound(point: string): Promise<void> {
  const t0 = Date.now();
  const name = "B.channel";
  await net.waitFor("the channels quiet before the round", quiet, { intervalMs: 250, timeoutMs: 60_000 });
  const before = await bTotal();
  const route = await net.route([A, B, C], [ab.a, bc.b]);
  const hop = route.hops[1];
  const policy = route.policies[1];
  if (hop === undefined || policy === undefined) throw new Error("no second hop");
  const feeMsat =
    BigInt(policy.feeBaseMsat) + (PAY_MSAT * BigInt(policy.feeProportionalMillionths)) / 1_000_000n;

  await net.restart(B, "channel", 1, { LN_CRASH_AT: point });
  const pid = net.supervisor.pid(name);
  if (pid === undefined) throw new Error(`${name} is not running`);
  const exited = net.supervisor.exited(name);
  let recovered = false;
  void exited.then(() => {
    if (net.crashed?.startsWith(`${name} exited`)) net.crashed = undefined;
  });
  try {
    const inv = await C.api.createInvoice(PAY_MSAT, `crash at ${point}`);
    await net.payRoute(A, route, PAY_MSAT, inv.rHash, { wait: false });
    const exit = await Promise.race([
      exited,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${name} did not die at ${point} within 60 s`)), 60_000).unref(),
      ),
    ]);
    expect(exit.signal, `${name} ended by ${describeExit(exit)}`).toBe("SIGKILL");
    expect(reaches(pid).at(-1), `${name}'s last point reached`).toBe(point);
    if (net.crashed?.startsWith(`${name} exited`)) net.crashed = undefined;
    crashedAt.add(point);
    await net.restart(B, "channel", 1, { LN_CRASH_AT: "" });
    recovered = true;

    // The books: one final payment, the invoice settled iff it succeeded, one forward row, quiet.
    let status = "";
    await net.waitFor(
      `the payment through ${point} to end and the books to agree`,
      async () => {
        const mine = (await A.api.payments()).filter((p) => p.rHash === inv.rHash);
        if (mine.length > 1) throw new WaitAbort(`${mine.length} payments of one invoice`);
        const p = mine[0];
        if (p === undefined) return "no payment on A";
        if (p.status === "pending") return "payment pending";
        status = p.status;
        const invoice = await invoiceStatus(inv.rHash);
        const want = p.status === "succeeded" ? "settled" : "open";
        if (invoice !== want) return `payment ${p.status}, invoice ${invoice}`;
        const rows = await net.forwardsOf(B, inv.rHash);
        if (rows.length > 1) throw new WaitAbort(`${rows.length} forwards of one incoming HTLC`);
        const fwd = rows[0]?.status;
        const wantFwd = p.status === "succeeded" ? "settled" : "failed_back";
        if (fwd !== wantFwd) return `payment ${p.status}, B's forward ${fwd ?? "absent"}`;
        const q = await quiet();
        if (q !== true) return q;
        const total = await bTotal();
        if (total < before) throw new WaitAbort(`B ends with ${total} msat, less than ${before} before`);
        const wantTotal = p.status === "succeeded" ? before + feeMsat : before;
        return total === wantTotal || `B's total ${total}, want ${wantTotal} (payment ${p.status})`;
      },
      { intervalMs: 250, timeoutMs: 90_000 },
    );
    summary.push(`${point}: payment ${status}, ${Date.now() - t0} ms`);
  } finally {
    // A round that failed early must not leave B armed for the next.
    if (!recovered) {
      if (net.crashed?.startsWith(`${name} exited`)) net.crashed = undefined;
      await net.restart(B, "channel", 1, { LN_CRASH_AT: "" });
    }
  }
}

describe("crash points of a forward on B", () => {
  beforeAll(async () => {
    traceFile = join(mkdtempSync(join(tmpdir(), "fwd-crash-")), "trace");
    // Inherited by every service process: each reached point is appended with its pid.
    process.env["LN_CRASH_TRACE"] = traceFile;
    net = await startNetwork({ nodes: ["A", "B", "C"], ...(netLog ? { log: netLog } : {}) });
    [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    await net.fund([A, B], FUND_SAT);
    await net.connect(A, B);
    await net.connect(B, C);
    const [x, y] = [await net.openStart(A, B, CHANNEL_SAT), await net.openStart(B, C, CHANNEL_SAT)];
    const [p, q] = [net.bothNormal(A, B, x.id), net.bothNormal(B, C, y.id)];
    await net.waitFor(
      "A-B and B-C normal on both ends",
      async () => {
        const [u, v] = [await p(), await q()];
        return (
          (u === true && v === true) || `A-B ${u === true ? "normal" : u}; B-C ${v === true ? "normal" : v}`
        );
      },
      { mine: true, timeoutMs: 180_000 },
    );
    const [bOf, cOf] = [await channelWith(B, A), await channelWith(C, B)];
    if (bOf === undefined || cOf === undefined) throw new Error("B or C does not list its channel");
    ab = { a: x.id, b: bOf.id };
    bc = { b: y.id, c: cOf.id };
    await net.waitShortChannelIds(A, [ab.a]);
    await net.waitShortChannelIds(B, [ab.b, bc.b]);
  }, 300_000);

  afterAll(async () => {
    if (summary.length > 0) console.log(`[fwd-crash] rounds:\n  ${summary.join("\n  ")}`);
    delete process.env["LN_CRASH_TRACE"];
    await net?.cleanup({ removeDir: crashedAt.size === FORWARD_CRASH_POINTS.length });
  }, 60_000);

  it("every forward point is a point of CRASH_POINTS", () => {
    for (const p of FORWARD_CRASH_POINTS) expect(CRASH_POINT_NAMES as readonly string[]).toContain(p);
  });

  for (const point of FORWARD_CRASH_POINTS) it(`B: ${point}`, () => crashRound(point), 180_000);

  it("crashed at every forward point", () => {
    expect([...crashedAt].sort()).toEqual([...FORWARD_CRASH_POINTS].sort());
  });
});
