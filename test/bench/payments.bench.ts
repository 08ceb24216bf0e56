/**
 * pnpm bench:payments — settled payments per second and p50/p99 latency through the whole stack
 * (each node: signer, watchtower, peer and channel service as real processes, on durable Postgres
 * and NATS), with 1 and with 16 concurrent payers: directly over one A→B channel, then from A to
 * C through B (A-B and B-C, an explicit route, B peeling the onion and forwarding); and, in the
 * same run, the throughput of the signatures alone that each direct payment needs (the crypto
 * bound), with the ratio. Figures only: nothing here asserts on timing.
 *
 *   pnpm bench:payments
 *
 * Environment: as the lab (DATABASE_URL, NATS_URL, LAB_DIR), plus BENCH_SECONDS (per phase,
 * default 10), BENCH_INVOICES (made up front for each of the two kinds, default 1000) and BENCH_KEEP_LOGS=1 (keep the
 * services' log files; otherwise the run directory is removed at the end).
 *
 * Latency is from the start of POST /v1/payments to the moment the payment is seen "succeeded".
 * Rather than have every payer poll GET /v1/payments/:id (16 payers polling every 2 ms would load
 * the very service being measured), a trigger the bench adds to A's payments table NOTIFYs when a
 * payment leaves "pending" and the bench LISTENs: the status the API reports, seen when it flips.
 * "succeeded" is set when A receives update_fulfill_htlc (R in hand); the fulfill's two
 * commitment rounds follow, and a single channel serialises them, so they are in the throughput.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { decodeInvoice } from "@ln/invoice";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import type { Invoice, LabApi } from "../lab/api.js";
import { errText, Network, PAYMENT_EXPIRY_BLOCKS, sleep } from "../lab/network.js";

const SECONDS = Number(process.env["BENCH_SECONDS"] ?? "10");
const INVOICES = Number(process.env["BENCH_INVOICES"] ?? "1000");
const KEEP_LOGS = process.env["BENCH_KEEP_LOGS"] === "1";
const CONCURRENCY = [1, 16] as const;
const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n; // the draft caps an anchor at 4 294 967 sat
const PAY_MSAT = 600_000n; // 600 sat: above the 546-sat dust limit, so each HTLC is a real output
const WARMUP_PAYMENTS = 5;

const log = (line: string): void => console.log(`[bench] ${line}`);
const nowMs = (): number => Number(process.hrtime.bigint()) / 1e6;

// ---------------------------------------------------------------- watching payments settle

type Outcome = { status: "succeeded" | "failed"; seenMs: number; reason: string | null };

/**
 * Sees each payment of A's flip out of "pending" the moment it commits: a trigger on A's
 * payments table (added by the bench, dropped with the schema) NOTIFYs, and this LISTENs.
 * No polling, so nothing loads the services being measured.
 */
class SettlementWatcher {
  readonly #waiting = new Map<string, (o: Outcome) => void>();
  /** Outcomes seen before their payer asked (the POST can return after the payment settled). */
  readonly #early = new Map<string, Outcome>();
  readonly #client: pg.Client;
  readonly #channel: string;
  notifications = 0;

  constructor(
    url: string,
    private readonly schema: string,
    runId: string,
  ) {
    this.#client = new pg.Client({ connectionString: url });
    this.#channel = `bench_settled_${runId}`;
  }

  async start(): Promise<void> {
    await this.#client.connect();
    const s = `"${this.schema}"`;
    await this.#client.query(
      `CREATE FUNCTION ${s}.bench_notify_settled() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN PERFORM pg_notify('${this.#channel}', NEW.id || ' ' || NEW.status); RETURN NEW; END $$`,
    );
    await this.#client.query(
      `CREATE TRIGGER bench_notify_settled AFTER UPDATE OF status ON ${s}.payments FOR EACH ROW
       WHEN (NEW.status <> 'pending') EXECUTE FUNCTION ${s}.bench_notify_settled()`,
    );
    this.#client.on("notification", (n) => {
      const seenMs = nowMs();
      this.notifications++;
      const [id = "", status = ""] = (n.payload ?? "").split(" ");
      void this.#settled(id, status === "succeeded" ? "succeeded" : "failed", seenMs);
    });
    await this.#client.query(`LISTEN ${this.#channel}`);
  }

  async #settled(id: string, status: Outcome["status"], seenMs: number): Promise<void> {
    let reason: string | null = null;
    if (status === "failed") {
      const r = await this.#client.query<{ failure_reason: string | null }>(
        `SELECT failure_reason FROM "${this.schema}".payments WHERE id = $1`,
        [id],
      );
      reason = r.rows[0]?.failure_reason ?? null;
    }
    const o: Outcome = { status, seenMs, reason };
    const done = this.#waiting.get(id);
    if (done === undefined) this.#early.set(id, o);
    else {
      this.#waiting.delete(id);
      done(o);
    }
  }

  wait(id: string): Promise<Outcome> {
    const early = this.#early.get(id);
    if (early !== undefined) {
      this.#early.delete(id);
      return Promise.resolve(early);
    }
    return new Promise((resolve) => this.#waiting.set(id, resolve));
  }

  async stop(): Promise<void> {
    await this.#client.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------- the measured phases

interface PhaseResult {
  /** "A→B" or "A→C via B". */
  path: string;
  payers: number;
  succeeded: number;
  failed: number;
  seconds: number;
  latenciesMs: number[];
  failures: string[];
  ranOut: boolean;
  /** CPU milliseconds per settled payment, by process. */
  cpuMsPerPayment?: Map<string, number>;
}

const quantile = (sorted: number[], q: number): number =>
  sorted.length === 0 ? NaN : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);

async function runPhase(
  path: string,
  payers: number,
  seconds: number,
  invoices: Invoice[],
  pay: (inv: Invoice) => Promise<Outcome & { startMs: number }>,
  stopping: () => boolean,
): Promise<PhaseResult> {
  const res: PhaseResult = {
    path,
    payers,
    succeeded: 0,
    failed: 0,
    seconds: 0,
    latenciesMs: [],
    failures: [],
    ranOut: false,
  };
  const t0 = nowMs();
  const end = t0 + seconds * 1000;
  let lastReport = t0;
  const worker = async (): Promise<void> => {
    while (nowMs() < end && !stopping()) {
      const inv = invoices.shift();
      if (inv === undefined) {
        res.ranOut = true;
        return;
      }
      try {
        const o = await pay(inv);
        if (o.status === "succeeded") {
          res.succeeded++;
          res.latenciesMs.push(o.seenMs - o.startMs);
        } else {
          res.failed++;
          if (res.failures.length < 5) res.failures.push(o.reason ?? "no reason");
        }
      } catch (e) {
        res.failed++;
        if (res.failures.length < 5) res.failures.push(errText(e));
      }
      const t = nowMs();
      if (t - lastReport >= 2000) {
        lastReport = t;
        log(
          `  ${path}, ${payers} payer(s): ${res.succeeded} settled, ${res.failed} failed after ${((t - t0) / 1000).toFixed(0)} s`,
        );
      }
    }
  };
  await Promise.all(Array.from({ length: payers }, worker));
  res.seconds = (nowMs() - t0) / 1000;
  res.latenciesMs.sort((a, b) => a - b);
  return res;
}

// ---------------------------------------------------------------- where the CPU went

/** CPU seconds (user + system) of a process so far, from /proc (Linux); NaN elsewhere. */
function cpuSeconds(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, in USER_HZ (100)
  } catch {
    return NaN;
  }
}

/** CPU seconds of each service process and of this process (the payers and the watcher). */
function cpuSnapshot(net: Network): Map<string, number> {
  const m = new Map<string, number>();
  for (const name of net.supervisor.names()) m.set(name, cpuSeconds(net.supervisor.pid(name)));
  const own = process.cpuUsage();
  m.set("bench (payers, watcher)", (own.user + own.system) / 1e6);
  return m;
}

// ---------------------------------------------------------------- the crypto bound

/**
 * What one payment costs in secp256k1, read from packages/channel-core and services/signer:
 * a payment is update_add_htlc + update_fulfill_htlc, each committed in both directions, so four
 * commitment rounds (update_commit + update_revocation). Per round:
 *   - the sender's signer signs the peer's commitment (service.ts signRemoteCommitment): 1 sign;
 *   - the receiver's channel core checks that signature (channel.ts receiveCommit →
 *     signatureValid): 1 verify;
 *   - the receiver's signer checks it again before revealing the revocation preimage
 *     (policy.ts authorizeReveal → checkCounterpartySig): 1 verify;
 *   - each of those three builds the commitment and hashes its anchor sighash (double SHA-256 of
 *     the ~300-byte transaction): 3 sighashes. Revocation preimages (shachain) are SHA-256s only.
 * So 4 signs + 8 verifies + 12 sighashes per payment. (Transport MACs and the once-per-session
 * node-key signature are left out.)
 */
const ROUNDS_PER_PAYMENT = 4;
const SIGNS_PER_ROUND = 1;
const VERIFIES_PER_ROUND = 2;
const SIGHASHES_PER_ROUND = 3;
const TX_BYTES = 300;

function cryptoBound(): { paymentsPerSecond: number; signsPerSecond: number; verifiesPerSecond: number } {
  const priv = randomBytes(32);
  const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
  const tx = randomBytes(TX_BYTES);
  const sha256d = (b: Buffer): Buffer =>
    createHash("sha256").update(createHash("sha256").update(b).digest()).digest();
  const onePayment = (i: number): void => {
    for (let r = 0; r < ROUNDS_PER_PAYMENT; r++) {
      tx.writeUInt32LE(i * ROUNDS_PER_PAYMENT + r, 0); // a fresh transaction each round
      let digest = sha256d(tx);
      for (let s = 1; s < SIGHASHES_PER_ROUND; s++) digest = sha256d(tx);
      let sig: Uint8Array = Buffer.alloc(64);
      for (let s = 0; s < SIGNS_PER_ROUND; s++) sig = ecc.sign(digest, priv);
      for (let v = 0; v < VERIFIES_PER_ROUND; v++)
        if (!ecc.verify(digest, pub, sig, true)) throw new Error("a fresh signature did not verify");
    }
  };
  const rate = (n: number, f: (i: number) => void): number => {
    const t0 = nowMs();
    for (let i = 0; i < n; i++) f(i);
    return n / ((nowMs() - t0) / 1000);
  };
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  rate(200, onePayment); // warm up
  const payments: number[] = [];
  const signs: number[] = [];
  const verifies: number[] = [];
  const digest = sha256d(tx);
  const sig = ecc.sign(digest, priv);
  for (let round = 0; round < 5; round++) {
    payments.push(rate(300, onePayment));
    signs.push(rate(1000, () => ecc.sign(digest, priv)));
    verifies.push(rate(1000, () => ecc.verify(digest, pub, sig, true)));
  }
  return {
    paymentsPerSecond: median(payments),
    signsPerSecond: median(signs),
    verifiesPerSecond: median(verifies),
  };
}

// ---------------------------------------------------------------- main

async function main(): Promise<number> {
  const net = new Network({ nodes: ["A", "B", "C"], log });
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`[bench] ${sig}: cleaning up (again to force)`);
    void net.cleanup({ removeDir: !KEEP_LOGS }).then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let watcher: SettlementWatcher | undefined;
  let ok = false;

  try {
    const tStart = Date.now();
    log("starting regtest, Postgres, NATS, then nodes A, B and C (4 processes each; ~30 s)");
    await net.start();
    log(`the nodes are up after ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
    const [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    const rt = net.regtest;
    const pgUrl = net.pgInfra?.url;
    if (pgUrl === undefined) throw new Error("Postgres is not up");

    // A-B funded by A; B-C funded by B, so B can forward to C over it.
    await net.fund([A, B], FUND_SAT);
    await net.connect(A, B);
    await net.connect(B, C);
    const ch = { id: (await net.open(A, B, CHANNEL_SAT)).a };
    const bc = (await net.open(B, C, CHANNEL_SAT)).a;
    await net.waitShortChannelIds(A, [ch.id]);
    await net.waitShortChannelIds(B, [bc]);
    const route = await net.route([A, B, C], [ch.id, bc]);

    const need = INVOICES + WARMUP_PAYMENTS;
    const makeInvoices = async (
      payee: string,
      api: LabApi,
    ): Promise<{ invoices: Invoice[]; rate: number }> => {
      log(`${payee}: creating ${need} invoices of ${PAY_MSAT} msat (8 at a time)`);
      const made: Invoice[] = [];
      const tInv = nowMs();
      let next = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < need && !interrupted) {
            next++;
            made.push(await api.createInvoice(PAY_MSAT, `bench ${net.runId}`));
            if (made.length % 500 === 0) log(`  ${made.length} invoices`);
          }
        }),
      );
      const rate = made.length / ((nowMs() - tInv) / 1000);
      log(
        `${payee}: ${made.length} invoices in ${((nowMs() - tInv) / 1000).toFixed(1)} s (${rate.toFixed(0)}/s)`,
      );
      return { invoices: made, rate };
    };
    const { invoices, rate: invRate } = await makeInvoices("B", B.api);
    const { invoices: invoicesOfC } = await makeInvoices("C", C.api);
    // C's invoices are BOLT #11: its payee checks the payment secret the final hop's onion carries.
    const secretOf = new Map(
      invoicesOfC.map((i) => [i.rHash, decodeInvoice(i.bolt11 ?? "").paymentSecret.toString("hex")]),
    );

    watcher = new SettlementWatcher(pgUrl, A.schemas.channel, net.runId);
    await watcher.start();
    const w = watcher;
    const expiry = { blocks: rt.height() + PAYMENT_EXPIRY_BLOCKS };
    const pay = async (inv: Invoice): Promise<Outcome & { startMs: number }> => {
      const startMs = nowMs();
      const p = await A.api.pay(
        { channelId: ch.id, rHash: inv.rHash, amountMsat: BigInt(inv.amountMsat), expiry },
        `bench-${net.runId}-${randomUUID()}`,
      );
      const o = await w.wait(p.id);
      return { ...o, startMs };
    };
    // Through B: C's invoice, the route A→B→C with B's policy (amountMsat is what C gets).
    const payThrough = async (inv: Invoice): Promise<Outcome & { startMs: number }> => {
      const startMs = nowMs();
      const paymentSecret = secretOf.get(inv.rHash);
      const p = await A.api.pay(
        {
          rHash: inv.rHash,
          amountMsat: BigInt(inv.amountMsat),
          expiry,
          route: route.hops,
          ...(paymentSecret !== undefined ? { paymentSecret } : {}),
        },
        `bench-${net.runId}-${randomUUID()}`,
      );
      const o = await w.wait(p.id);
      return { ...o, startMs };
    };
    const PHASES = [
      { path: "A→B", invoices, pay },
      { path: "A→C via B", invoices: invoicesOfC, pay: payThrough },
    ] as const;

    for (const ph of PHASES) {
      log(`warm-up ${ph.path}: ${WARMUP_PAYMENTS} sequential payments`);
      const warm = await runPhase(
        ph.path,
        1,
        3600,
        ph.invoices.splice(0, WARMUP_PAYMENTS),
        ph.pay,
        () => interrupted,
      );
      if (warm.failed > 0) throw new Error(`warm-up payments ${ph.path} failed: ${warm.failures.join("; ")}`);
    }

    // The services' CPU while no payment runs (timers, polling), to read the per-payment figures by.
    const IDLE_SECONDS = 3;
    const idle0 = cpuSnapshot(net);
    await sleep(IDLE_SECONDS * 1000);
    const idle1 = cpuSnapshot(net);
    const idleMsPerSecond = [...idle1]
      .map(([name, t]): [string, number] => [name, ((t - (idle0.get(name) ?? NaN)) * 1000) / IDLE_SECONDS])
      .filter(([, ms]) => Number.isFinite(ms));

    const results: PhaseResult[] = [];
    for (const ph of PHASES)
      for (const payers of CONCURRENCY) {
        if (interrupted) break;
        log(`measuring ${ph.path}: ${payers} concurrent payer(s) for ${SECONDS} s`);
        const notified0 = watcher.notifications;
        const cpu0 = cpuSnapshot(net);
        const r = await runPhase(ph.path, payers, SECONDS, ph.invoices, ph.pay, () => interrupted);
        const cpu1 = cpuSnapshot(net);
        r.cpuMsPerPayment = new Map(
          [...cpu1].map(([name, t]) => [name, ((t - (cpu0.get(name) ?? NaN)) * 1000) / r.succeeded]),
        );
        results.push(r);
        log(
          `  done: ${r.succeeded} settled, ${r.failed} failed in ${r.seconds.toFixed(1)} s` +
            ` (${watcher.notifications - notified0} settlements notified)`,
        );
        if (r.ranOut) log(`  !! ran out of invoices (raise BENCH_INVOICES)`);
      }
    if (interrupted) return 130;

    log("crypto bound: timing the signatures of one payment in-process");
    const bound = cryptoBound();

    const chan = await A.api.channel(ch.id);
    const forwards = await B.api.forwards();
    const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : "-");
    const out: string[] = ["", "==================== payments benchmark ===================="];
    out.push(
      `A→B over one channel of ${CHANNEL_SAT} sat, A→C via B over A-B and B-C (B's fee ${route.hops[1]?.feeBaseMsat ?? "?"} msat + ` +
        `${route.hops[1]?.feeProportionalMillionths ?? "?"} ppm), payments of ${PAY_MSAT / 1000n} sat, durable Postgres ` +
        `(${pgUrl.replace(/\/\/[^@]*@/, "//")}), ${SECONDS} s per phase`,
    );
    for (const r of results) {
      const pps = r.succeeded / r.seconds;
      out.push(
        `  ${r.path.padEnd(9)} ${String(r.payers).padStart(2)} payer(s): ${fmt(pps)} payments/s settled (${r.succeeded} in ${fmt(r.seconds)} s` +
          `${r.failed > 0 ? `, ${r.failed} FAILED: ${r.failures.join("; ")}` : ""}); ` +
          `latency p50 ${fmt(quantile(r.latenciesMs, 0.5))} ms, p99 ${fmt(quantile(r.latenciesMs, 0.99))} ms, ` +
          `max ${fmt(r.latenciesMs.at(-1) ?? NaN)} ms`,
      );
    }
    for (const r of results) {
      const cpu = [...(r.cpuMsPerPayment ?? new Map<string, number>())].filter(([, ms]) =>
        Number.isFinite(ms),
      );
      if (cpu.length === 0) continue;
      const total = cpu.reduce((a, [, ms]) => a + ms, 0);
      out.push(
        `  CPU per payment ${r.path.padEnd(9)} with ${String(r.payers).padStart(2)} payer(s): ${fmt(total)} ms in our processes ` +
          `(Postgres and NATS not counted): ` +
          cpu
            .sort((a, b) => b[1] - a[1])
            .map(([name, ms]) => `${name} ${fmt(ms)}`)
            .join(", "),
      );
    }
    if (idleMsPerSecond.length > 0)
      out.push(
        `  idle CPU (no payments, ${IDLE_SECONDS} s): ` +
          `${fmt(idleMsPerSecond.reduce((a, [, ms]) => a + ms, 0))} ms/s in all: ` +
          idleMsPerSecond
            .sort((a, b) => b[1] - a[1])
            .map(([name, ms]) => `${name} ${fmt(ms)}`)
            .join(", "),
      );
    out.push(
      `crypto bound: per payment ${ROUNDS_PER_PAYMENT} commitment rounds × (${SIGNS_PER_ROUND} sign + ${VERIFIES_PER_ROUND} verify + ` +
        `${SIGHASHES_PER_ROUND} sighash) = ${ROUNDS_PER_PAYMENT * SIGNS_PER_ROUND} signs + ` +
        `${ROUNDS_PER_PAYMENT * VERIFIES_PER_ROUND} verifies + ${ROUNDS_PER_PAYMENT * SIGHASHES_PER_ROUND} double-SHA-256 of ${TX_BYTES} bytes`,
    );
    out.push(
      `  tiny-secp256k1 in-process, one core: ${fmt(bound.paymentsPerSecond, 0)} payments/s ` +
        `(${fmt(bound.signsPerSecond, 0)} signs/s, ${fmt(bound.verifiesPerSecond, 0)} verifies/s)`,
    );
    for (const r of results.filter((x) => x.path === "A→B"))
      out.push(
        `  ratio A→B with ${String(r.payers).padStart(2)} payer(s): ${(r.succeeded / r.seconds / bound.paymentsPerSecond).toFixed(4)}` +
          ` (payments/s ÷ crypto-bound payments/s)`,
      );
    out.push(
      `channel after the run: A local ${BigInt(chan.localBalanceMsat) / 1000n} sat, remote ${BigInt(chan.remoteBalanceMsat) / 1000n} sat, ` +
        `${chan.htlcs.length} HTLCs pending; invoices made up front at ${fmt(invRate, 0)}/s`,
    );
    out.push(
      `B forwarded ${forwards.totals.settled} payments, fees earned ${forwards.totals.feesEarnedMsat} msat (GET /v1/forwards)`,
    );
    out.push("(figures only; nothing is asserted on timing; the machine may be shared)");
    out.push("============================================================");
    console.log(out.join("\n"));
    ok = true;
    return 0;
  } catch (e) {
    console.error(`[bench] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    for (const name of net.supervisor.names().filter((n) => n.endsWith(".channel"))) {
      const lines = net.supervisor.lastLines(name).slice(-6);
      if (lines.length > 0) console.error(`[bench] last lines of ${name}:\n    ${lines.join("\n    ")}`);
    }
    return 1;
  } finally {
    await watcher?.stop();
    await net.cleanup({ removeDir: ok && !KEEP_LOGS }); // the same promise the signal handler waits on
    if (!ok || KEEP_LOGS) log(`logs kept in ${join(net.dir, "logs")}`);
  }
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[bench] ${errText(e)}`);
    process.exit(1);
  },
);
