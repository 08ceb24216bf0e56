/**
 * Every crash point of @ln/crash (issue 14.3), over the real processes (test/lab/network.ts):
 * nodes A (payer) and B (payee) with one channel A-B. For each round the service owning the point
 * is restarted armed with it (LN_CRASH_AT=<point>:<nth>), a payment A→B is driven through it
 * until the process kills itself there (SIGKILL, the trace naming the point), and the service is
 * restarted unarmed. Then, after every round: each payment ends succeeded or failed exactly once
 * (A's records), B's invoice is settled if and only if the payment succeeded, both ends' balances
 * are the opening balance moved by exactly the succeeded payments, no HTLC is left, and the
 * channel is still normal (nothing was force-closed). Every point of CRASH_POINTS must be crashed
 * at by some round, or the test fails; the points of a forward (channel.forward.*) are crashed at
 * on a forwarding node by forward-crash-points.test.ts, and counted here as covered there.
 *
 * NET_LOG=1 prints the network's progress lines. CRASH_PROBE=1 only prints which points each
 * process reaches while it restarts and during one payment (to choose the rounds' nth).
 */
import { randomUUID } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CRASH_POINT_NAMES, serviceOf, type CrashPoint, type CrashService } from "@ln/crash";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { defaultSweepScript } from "@ln/justice";
import { buildCommitment } from "@ln/tx";
import type { Payment } from "../lab/api.js";
import type { StaleCommitment } from "../lab/breach.js";
import { confirmedSpenders } from "../lab/chain.js";
import { FORWARD_CRASH_POINTS } from "./forward-crash-rounds.js";
import { describeExit, type ExitInfo } from "../lab/procs.js";
import {
  errText,
  sleep,
  startNetwork,
  WaitAbort,
  PAYMENT_EXPIRY_BLOCKS,
  type NetNode,
  type Network,
  type Service,
} from "../lab/network.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const PAY_MSAT = 10_000_000n;
const PROBE = process.env["CRASH_PROBE"] === "1";
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[crash] ${l}`) : undefined;

const SERVICE_OF: Record<CrashService, Service> = {
  channel: "channel",
  signer: "signer",
  peer: "peer",
  tower: "watchtower",
};

/**
 * One crash: the side whose process dies, and the reach of the point it dies at (counted from the
 * process's start; a channel service's start-up runs the channel twice: its resume and the
 * reconnection). `block`: a block is mined before the payment (the chain points).
 */
interface Round {
  readonly point: CrashPoint;
  readonly side: "A" | "B";
  readonly nth?: number;
  readonly block?: boolean;
}

const ROUNDS: readonly Round[] = [
  // The payer's channel service: its start-up reaches transition.* twice, so :3 is the add_htlc
  // step (committed with the payment's row, not sent) and :4 its update_commit.
  { point: "channel.transition.committed", side: "A", nth: 3 },
  { point: "channel.transition.sent", side: "A", nth: 4 },
  { point: "channel.signer.answered", side: "A" },
  { point: "channel.payment.created", side: "A" },
  { point: "channel.revocation.recorded", side: "A" },
  { point: "channel.tower_record.published", side: "A" },
  { point: "channel.chain_event.handled", side: "A", block: true },
  // The payee's: the invoice, R revealed, and :8 its fulfill step (after start-up's two, the
  // add, our revocation, their commitment, its signature, their revocation, then the fulfill).
  { point: "channel.invoice.created", side: "B" },
  { point: "channel.payee.revealed", side: "B" },
  { point: "channel.transition.committed", side: "B", nth: 8 },
  { point: "channel.signer.answered", side: "B", nth: 2 },
  { point: "channel.peer.received", side: "B" },
  // The signers: before the commit, then after each kind of commit.
  // The first request is the add step's signature.
  { point: "signer.policy.decided", side: "A" },
  { point: "signer.remote_signed.committed", side: "A" },
  { point: "signer.peer_revocation.committed", side: "A" },
  { point: "signer.revealed.committed", side: "B" },
  { point: "signer.invoice_reveal.committed", side: "B" },
  // The gateways, both ways on both ends.
  { point: "peer.in.received", side: "A" },
  { point: "peer.out.written", side: "A", nth: 2 },
  { point: "peer.in.published", side: "B", nth: 2 },
  { point: "peer.out.taken", side: "B", nth: 2 }, // a reconnection may retransmit once
  // The watchtowers: records from the channel service, blocks to it.
  { point: "tower.records.stored", side: "A" },
  { point: "tower.block.published", side: "B", block: true },
];

let net: Network;
let A: NetNode;
let B: NetNode;
let ids: { a: string; b: string };
let traceFile: string;
let stale: StaleCommitment;
/** Every invoice made, and whether a payment of it was attempted. */
const invoicesMade = new Map<string, boolean>();
/** Invoices whose pay request got no answer (A died under it): paid at most once. */
const refused = new Set<string>();
/** Points some armed process died at (its trace showing the point as its last). */
const crashedAt = new Set<CrashPoint>();
const summary: string[] = [];

/** The points reached by process `pid`, in order (the trace file: `<point> <pid>` lines). */
function reaches(pid: number): string[] {
  if (!existsSync(traceFile)) return [];
  return readFileSync(traceFile, "utf8")
    .split("\n")
    .flatMap((l) => {
      const [point, p] = l.split(" ");
      return point !== undefined && p === String(pid) ? [point] : [];
    });
}

const processOf = (n: NetNode, svc: Service): string => `${n.name}.${svc}`;
const pidOf = (name: string): number => {
  const pid = net.supervisor.pid(name);
  if (pid === undefined) throw new Error(`${name} is not running`);
  return pid;
};

/** Polls `check` until true; an error counts as the state seen, a WaitAbort fails at once. */
async function until(what: string, check: () => Promise<true | string>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = "not checked yet";
  for (;;) {
    if (net.crashed !== undefined) throw new Error(`while waiting for ${what}: ${net.crashed}`);
    try {
      const r = await check();
      if (r === true) return;
      last = r;
    } catch (e) {
      if (e instanceof WaitAbort) throw new Error(`while waiting for ${what}: ${e.message}`);
      last = `error: ${errText(e)}`;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last seen: ${last}`);
    await sleep(150);
  }
}

let lastNudge = 0;
/**
 * Redials B from A when they are not connected, at most every 3 s (a live gateway connects well
 * within that): the test is A's only reconnector (its reconnect round is slowed to once a day),
 * since two dials racing each other can leave the gateways on crossed connections, a gateway bug
 * this test is not about.
 */
async function reconnectIfDown(): Promise<void> {
  if (Date.now() - lastNudge < 3000) return;
  const [a, b] = await Promise.all([A.api.info(), B.api.info()]);
  if (a.peerCount > 0 && b.peerCount > 0) return;
  lastNudge = Date.now();
  void A.api.connectPeer("127.0.0.1", B.peerPort, B.nodeId).catch(() => undefined);
}

/** Both ends normal, no HTLC, connected. */
async function quiet(): Promise<true | string> {
  await reconnectIfDown();
  const [a, b, ia, ib] = await Promise.all([
    A.api.channel(ids.a),
    B.api.channel(ids.b),
    A.api.info(),
    B.api.info(),
  ]);
  if (a.phase !== "normal" || b.phase !== "normal") {
    if ([a.phase, b.phase].some((p) => p !== "normal" && p !== "opening"))
      throw new WaitAbort(`the channel left normal: A ${a.phase}, B ${b.phase}`);
    return `A ${a.phase}, B ${b.phase}`;
  }
  if (a.htlcs.length > 0 || b.htlcs.length > 0) return `HTLCs: A ${a.htlcs.length}, B ${b.htlcs.length}`;
  if (ia.peerCount === 0 || ib.peerCount === 0) return `peers: A ${ia.peerCount}, B ${ib.peerCount}`;
  return true;
}

/** Each end's balance, msat: A's local, A's remote, B's local, B's remote. */
async function balances(): Promise<bigint[]> {
  const [a, b] = await Promise.all([A.api.channel(ids.a), B.api.channel(ids.b)]);
  return [a.localBalanceMsat, a.remoteBalanceMsat, b.localBalanceMsat, b.remoteBalanceMsat].map((x) =>
    BigInt(x),
  );
}

/** The payee's invoices' statuses by r_hash (its own table: the API lists none). */
async function invoiceStatuses(): Promise<Map<string, string>> {
  const rows = await net.query<{ r_hash: string; status: string }>(
    `SELECT r_hash, status FROM "${B.schemas.channel}".invoices`,
  );
  return new Map(rows.map((r) => [r.r_hash, r.status]));
}

/**
 * A check that the books agree with the payment of `rHash` (amount PAY_MSAT) made from balances
 * `before`: exactly one payment of it on A, final; the invoice settled iff it succeeded; both
 * ends' balances moved by it iff it succeeded; no HTLC, the channel normal, connected. A string
 * says what is not so yet; a WaitAbort a loss that nothing will repair (the channel quiet twice
 * in a row, its HTLC resolved, and the record still missing or wrong).
 */
/**
 * `refused`: the pay request got no answer (A's channel service died under it, or was down):
 * it may or may not have offered the HTLC, and no payment at all is then a right outcome too.
 */
function booksAgree(rHash: string, before: readonly bigint[], refused = false): () => Promise<true | string> {
  let quietBefore = false;
  return async () => {
    const payments = (await A.api.payments()).filter((p) => p.rHash === rHash);
    const invoice = (await invoiceStatuses()).get(rHash) ?? "missing";
    const q = await quiet();
    const settledTwice = q === true && quietBefore;
    quietBefore = q === true;
    if (payments.length > 1)
      throw new WaitAbort(`${payments.length} payments of invoice ${rHash}: ${JSON.stringify(payments)}`);
    const p: Payment | undefined = payments[0];
    if (p === undefined) {
      // Never offered: the request died with the service before its step committed.
      if (refused && settledTwice && invoice === "open") {
        const got = await balances();
        return (
          got.join(" ") === before.join(" ") ||
          `no payment, but balances ${got.join(" ")} from ${before.join(" ")}`
        );
      }
      // Settled: the HTLC was fulfilled, and nothing writes the record later.
      if (settledTwice && invoice === "settled")
        throw new WaitAbort(
          `LOSS: no payment of invoice ${rHash} on A, whose HTLC is resolved (no HTLC left, invoice ${invoice}, balances ${(await balances()).join(" ")} from ${before.join(" ")})`,
        );
      return `no payment of invoice ${rHash} on A yet (invoice ${invoice})`;
    }
    if (p.status === "pending") {
      if (settledTwice && invoice === "settled")
        throw new WaitAbort(`LOSS: payment ${p.id} pending while its HTLC is resolved (invoice settled)`);
      return `payment ${p.id} pending (invoice ${invoice})`;
    }
    if (BigInt(p.amountMsat) !== PAY_MSAT) throw new WaitAbort(`payment ${p.id} of ${p.amountMsat} msat`);
    const want = p.status === "succeeded" ? "settled" : "open";
    if (invoice !== want) {
      if (settledTwice)
        throw new WaitAbort(
          `LOSS: payment ${p.id} ${p.status} (${p.failureReason ?? ""}) but invoice ${rHash} ${invoice}`,
        );
      return `payment ${p.id} ${p.status} but invoice ${invoice} yet`;
    }
    if (q !== true) return q;
    const moved = p.status === "succeeded" ? PAY_MSAT : 0n;
    const want4 = [before[0]! - moved, before[1]! + moved, before[2]! + moved, before[3]! - moved];
    const got = await balances();
    return (
      got.join(" ") === want4.join(" ") ||
      `balances (A local, A remote, B local, B remote) ${got.join(" ")}, want ${want4.join(" ")} (payment ${p.status})`
    );
  };
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The armed process of a round, watched until it dies. */
class Armed {
  readonly name: string;
  readonly pid: number;
  readonly exited: Promise<ExitInfo>;
  dead = false;
  recovered = false;

  constructor(
    readonly node: NetNode,
    readonly svc: Service,
    readonly round: Round,
  ) {
    this.name = processOf(node, svc);
    this.pid = pidOf(this.name);
    this.exited = net.supervisor.exited(this.name);
    void this.exited.then(() => {
      this.dead = true;
      // Its death is the point of the round, not a failure of the network.
      if (net.crashed?.startsWith(`${this.name} exited`)) net.crashed = undefined;
    });
  }

  /** Waits for the crash, checks it was the point's nth reach, restarts the service unarmed. */
  async recover(next: Readonly<Record<string, string>> = { LN_CRASH_AT: "" }): Promise<void> {
    if (this.recovered) return;
    const { point, nth = 1 } = this.round;
    const exit = await withTimeout(this.exited, 60_000, `${this.name} to die at ${point}:${nth}`);
    expect(exit.signal, `${this.name} ended by ${describeExit(exit)}`).toBe("SIGKILL");
    const trace = reaches(this.pid);
    expect(trace.at(-1), `${this.name}'s last point reached`).toBe(point);
    expect(trace.filter((p) => p === point).length).toBe(nth);
    if (net.crashed?.startsWith(`${this.name} exited`)) net.crashed = undefined;
    crashedAt.add(point);
    await net.restart(this.node, this.svc, 1, next);
    this.recovered = true;
  }
}

async function crashRound(r: Round): Promise<void> {
  const node = r.side === "A" ? A : B;
  const svc = SERVICE_OF[serviceOf(r.point)];
  const name = processOf(node, svc);
  // Read while every service runs: an armed one may die before it answers again.
  const quietBalances = await balances();
  const startedArmed = await net.restart(node, svc, 1, { LN_CRASH_AT: `${r.point}:${r.nth ?? 1}` }).then(
    () => true,
    async (e: unknown) => {
      // Work left over from the last round (e.g. records still arriving) reached the point
      // during the start-up: a crash at it all the same, checked as any other.
      const exit = await net.supervisor.exited(name);
      const last = readFileSync(traceFile, "utf8")
        .split("\n")
        .filter((l) => l.startsWith(`${r.point} `))
        .at(-1);
      const pid = Number(last?.split(" ")[1] ?? 0);
      if (exit.signal !== "SIGKILL" || reaches(pid).at(-1) !== r.point) throw e;
      if (net.crashed?.startsWith(`${name} exited`)) net.crashed = undefined;
      crashedAt.add(r.point);
      await net.restart(node, svc, 1, { LN_CRASH_AT: "" });
      return false;
    },
  );
  if (!startedArmed) return;
  const armed = new Armed(node, svc, r);
  try {
    await crashOnce(r, armed, quietBalances);
  } finally {
    // A round that failed early leaves its process armed (or dead): never for the next round.
    if (!armed.recovered) {
      if (net.crashed?.startsWith(`${armed.name} exited`)) net.crashed = undefined;
      await net.restart(node, svc, 1, { LN_CRASH_AT: "" });
    }
  }
}

async function crashOnce(r: Round, armed: Armed, quietBalances: bigint[]): Promise<void> {
  const t0 = Date.now();
  const nth = r.nth ?? 1;
  await until(`A-B quiet after ${armed.name} restarted armed`, async () => armed.dead || quiet(), 30_000);
  if (armed.dead && nth === 1) {
    // Reached before the payment (the peer's retransmission on reconnecting, say): a crash at
    // the point all the same; the books must still agree once it is back (the channel service
    // that died may be the API the balances are read from: read before it was armed).
    await armed.recover();
    await until(`A-B quiet after ${armed.name} died at ${r.point} early`, quiet, 30_000);
    expect(await balances()).toEqual(quietBalances);
    summary.push(`${r.point}:1 on ${r.side}: reached before the payment`);
    return;
  }
  const early = reaches(armed.pid).filter((p) => p === r.point).length;
  if (armed.dead || early >= nth)
    throw new Error(
      `${armed.name} reached ${r.point} ${early} times during its start-up, before the payment: give the round a higher nth`,
    );
  const before = await balances();
  if (r.block === true) await net.regtest.mine(1);

  const makeInvoice = (): Promise<string> =>
    B.api.createInvoice(PAY_MSAT, `crash at ${r.point}`).then((i) => {
      invoicesMade.set(i.rHash, false);
      return i.rHash;
    });
  let rHash: string | undefined;
  for (let attempt = 1; rHash === undefined; attempt++) {
    try {
      rHash = await makeInvoice();
    } catch (e) {
      // The payee's channel service died answering (channel.invoice.created): its invoice is
      // left unpaid, and a new one is made once it is back. Right after a signer restarted, the
      // first call through a client may fail: asked again.
      if (armed.dead) await armed.recover();
      else if (attempt >= 20) throw e;
      else await sleep(500);
    }
  }
  invoicesMade.set(rHash, true);
  let payError: string | undefined;
  await A.api
    .pay(
      {
        channelId: ids.a,
        rHash,
        amountMsat: PAY_MSAT,
        expiry: { blocks: net.regtest.height() + PAYMENT_EXPIRY_BLOCKS },
      },
      `crash-${randomUUID()}`,
    )
    .catch((e: unknown) => {
      payError = errText(e);
      refused.add(rHash as string);
    });
  await armed.recover();
  await until(
    `the payment through ${r.point} (${r.side}) to end and the books to agree`,
    booksAgree(rHash, before, payError !== undefined),
    60_000,
  );
  const final = (await A.api.payments()).find((p) => p.rHash === rHash);
  summary.push(
    `${r.point}:${nth} on ${r.side}: payment ${final?.status ?? "?"}${payError ? ` (pay answered: ${payError.slice(0, 60)})` : ""}, ${Date.now() - t0} ms`,
  );
}

describe("crash points", () => {
  beforeAll(async () => {
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    traceFile = join(mkdtempSync(join(tmpdir(), "crash-points-")), "trace");
    // Inherited by every service process: each reached point is appended with its pid.
    process.env["LN_CRASH_TRACE"] = traceFile;
    net = await startNetwork({
      nodes: ["A", "B"],
      channelEnv: { CHANNEL_RECONNECT_S: "86400" },
      ...(netLog ? { log: netLog } : {}),
    });
    [A, B] = [net.node("A"), net.node("B")];
    await net.fund(A, FUND_SAT);
    await net.connect(A, B);
    ids = await net.open(A, B, CHANNEL_SAT);
    // A's first commitment (all of the channel A's), revoked by the first payment: A breaches
    // with it at the end, for the tower's justice points.
    stale = await net.keepCommitment(A, ids.a);
  }, 300_000);

  afterAll(async () => {
    if (summary.length > 0) console.log(`[crash] rounds:\n  ${summary.join("\n  ")}`);
    delete process.env["LN_CRASH_TRACE"];
    await net?.cleanup({
      removeDir: crashedAt.size + FORWARD_CRASH_POINTS.length === CRASH_POINT_NAMES.length,
    });
  }, 60_000);

  if (PROBE)
    it("probe: the points each process reaches while restarting and during a payment", async () => {
      for (const n of [A, B])
        for (const svc of ["signer", "watchtower", "peer", "channel"] as const) {
          await net.restart(n, svc);
          const pid = pidOf(processOf(n, svc));
          await until("quiet", quiet, 30_000);
          await sleep(500);
          console.log(`[probe] ${n.name}.${svc} start-up: ${reaches(pid).join(", ")}`);
        }
      const before = new Map(
        [A, B].flatMap((n) =>
          (["signer", "watchtower", "peer", "channel"] as const).map((s) => {
            const name = processOf(n, s);
            return [name, reaches(pidOf(name)).length] as const;
          }),
        ),
      );
      await net.pay(A, B, PAY_MSAT, { channelId: ids.a });
      await until("quiet", quiet, 30_000);
      for (const [name, from] of before)
        console.log(`[probe] ${name} during a payment: ${reaches(pidOf(name)).slice(from).join(", ")}`);
    }, 600_000);
  else {
    for (const r of ROUNDS)
      it(`${r.side}: ${r.point}${r.nth ? `:${r.nth}` : ""}`, () => crashRound(r), 180_000);

    it("every payment made is final once, every invoice settled iff its payment succeeded", async () => {
      const payments = await A.api.payments();
      const statuses = await invoiceStatuses();
      expect(new Set(payments.map((p) => p.id)).size).toBe(payments.length);
      for (const [rHash, paid] of invoicesMade) {
        const mine = payments.filter((p) => p.rHash === rHash);
        const status = statuses.get(rHash);
        if (!paid || (refused.has(rHash) && mine.length === 0)) {
          expect(mine, `invoice ${rHash} was never paid`).toEqual([]);
          expect(status).toBe("open");
          continue;
        }
        expect(mine.length).toBe(1);
        expect(["succeeded", "failed"]).toContain(mine[0]?.status);
        expect(status).toBe(mine[0]?.status === "succeeded" ? "settled" : "open");
      }
    });

    it("B: tower.justice.committed, then tower.justice.sent, on A's breach", async () => {
      // B's tower holds every record of the channel, the stale commitment's among them.
      await until(
        "B's revocation records stored by its tower",
        async () => {
          const unpublished = await net.towerRecordsPending(B);
          const held = await net.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM "${B.schemas.tower}".tower_records`,
          );
          return (unpublished === 0 && Number(held[0]?.n ?? 0) > 0) || `${unpublished} unpublished`;
        },
        30_000,
      );
      const first: Round = { point: "tower.justice.committed", side: "B" };
      await net.restart(B, "watchtower", 1, { LN_CRASH_AT: first.point });
      const committed = new Armed(B, "watchtower", first);
      const breach = await net.breach(A, stale);
      const breachHeight = net.regtest.height() + 1;
      // Signed and committed, it dies before the broadcast; restarted, the next block's check
      // broadcasts the committed justice, and it dies right after.
      await committed.recover({ LN_CRASH_AT: "tower.justice.sent" });
      const sent = new Armed(B, "watchtower", { point: "tower.justice.sent", side: "B" });
      await net.regtest.mine(1);
      await sent.recover();
      const commitment = buildCommitment(stale.params);
      const revocable = commitment.outputs.filter((o) => o.kind !== "to_other").map((o) => o.vout);
      expect(revocable.length).toBeGreaterThan(0);
      const sweep = defaultSweepScript(stale.params);
      let spenders: Awaited<ReturnType<typeof confirmedSpenders>> = [];
      await until(
        "every revocable output of the breach taken by B's justice in a block",
        async () => {
          await net.regtest.mine(1);
          spenders = await confirmedSpenders(net.regtest.rpc, breach.getId(), breachHeight);
          const spent = new Set(spenders.flatMap((x) => x.vouts));
          return revocable.every((v) => spent.has(v)) || `${spent.size}/${revocable.length} spent`;
        },
        90_000,
      );
      for (const { tx } of spenders)
        for (const o of tx.outs) expect(Buffer.from(o.script).equals(sweep)).toBe(true);
    }, 180_000);

    it("crashed at every point of CRASH_POINTS (a forward's in forward-crash-points.test.ts)", () => {
      const mine = CRASH_POINT_NAMES.filter((p) => !FORWARD_CRASH_POINTS.includes(p));
      expect([...crashedAt].sort()).toEqual([...mine].sort());
      // Every forward point the other test covers is a point of the list (no stale name).
      for (const p of FORWARD_CRASH_POINTS) expect(CRASH_POINT_NAMES as readonly string[]).toContain(p);
    });
  }
});
