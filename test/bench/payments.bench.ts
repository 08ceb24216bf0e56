/**
 * pnpm bench:payments — settled payments per second and p50/p99 latency through the whole stack
 * (each node: signer, watchtower, peer and channel service as real processes, on durable Postgres
 * and NATS), with 1, 16 and 64 concurrent payers: directly over one A→B channel, then from A to
 * C through B (A-B and B-C, an explicit route, B peeling the onion and forwarding). For each phase
 * also: commitment rounds per payment (the channel services' channel_commitment_updates), the
 * crypto bound per round and the bound it implies at the measured batch size, Postgres bytes per
 * payment (every table of every node's schemas) and CPU per payment by process; then the restart
 * phase (test/bench/restart.ts, when there) and each figure of issue 17 beside its aim. Figures
 * only: nothing here asserts on timing. test/bench/README.md says how each figure is computed.
 *
 *   pnpm bench:payments
 *
 * Environment: as the lab (DATABASE_URL, NATS_URL, LAB_DIR), plus
 *   BENCH_SECONDS   per phase (default 10)
 *   BENCH_PAYERS    the concurrency levels, a comma list (default 1,16,64)
 *   BENCH_INVOICES  invoices made before each phase (default: twice what the phase may use,
 *                   from the last phase's rate; made between phases, never during one)
 *   BENCH_INVOICE_CONCURRENCY  invoices made at a time (default 32)
 *   BENCH_PROFILE=1 run A's channel service and signer under --cpu-prof; print the top functions
 *                   by self time over the A→B phase with the most payers (profiles kept)
 *   BENCH_RESTART=0 skip the restart phase; BENCH_RESTART_CHANNELS its channel count
 *   BENCH_KEEP_LOGS=1 keep the services' log files (otherwise the run directory is removed)
 *
 * Latency is from the start of POST /v1/payments to the moment the payment is seen "succeeded".
 * Rather than have every payer poll GET /v1/payments/:id (64 payers polling every 2 ms would load
 * the very service being measured), a trigger the bench adds to A's payments table NOTIFYs when a
 * payment leaves "pending" and the bench LISTENs: the status the API reports, seen when it flips.
 * "succeeded" is set when A receives update_fulfill_htlc (R in hand); the fulfill's commitment
 * rounds follow, and they are in the throughput.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeInvoice } from "@ln/invoice";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import type { Invoice, LabApi } from "../lab/api.js";
import { errText, Network, PAYMENT_EXPIRY_BLOCKS, sleep, type NetNode } from "../lab/network.js";
import { REPO_ROOT } from "../lab/procs.js";
import { formatSummary, summariseDir, type Window } from "./profile.js";
import { restartPhase, type RestartFigures } from "./restart.js";

const SECONDS = Number(process.env["BENCH_SECONDS"] ?? "10");
/** Invoices made before each phase; unset: as many as the phase may use (see main). */
const INVOICES_FIXED =
  process.env["BENCH_INVOICES"] !== undefined && process.env["BENCH_INVOICES"] !== ""
    ? Number(process.env["BENCH_INVOICES"])
    : undefined;
const INVOICE_CONCURRENCY = Number(process.env["BENCH_INVOICE_CONCURRENCY"] ?? "32");
/** The most invoices a phase is given, per second of phase (the aim is 1,000 payments/s). */
const MAX_INVOICE_RATE = 1200;
const PAYERS_SPEC = process.env["BENCH_PAYERS"] ?? "1,16,64";
const PROFILE = process.env["BENCH_PROFILE"] === "1";
const RESTART = process.env["BENCH_RESTART"] !== "0";
const RESTART_CHANNELS =
  process.env["BENCH_RESTART_CHANNELS"] !== undefined && process.env["BENCH_RESTART_CHANNELS"] !== ""
    ? Number(process.env["BENCH_RESTART_CHANNELS"])
    : undefined;
const KEEP_LOGS = process.env["BENCH_KEEP_LOGS"] === "1";
const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n; // the draft caps an anchor at 4 294 967 sat
const PAY_MSAT = 600_000n; // 600 sat: above the 546-sat dust limit, so each HTLC is a real output
const WARMUP_PAYMENTS = 5;

// The aims of issue 17, printed beside the figures (never asserted).
const AIM_PPS = 1000;
const AIM_P99_64_MS = 250;
const AIM_P99_1_MS = 50;
const AIM_DB_BYTES = 1024;
const AIM_RESTART_S = 10;

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
  /** update_commits sent in the phase, by node (from each channel service's /metrics). */
  commits?: Map<string, CommitCounters>;
  /** Growth of every table in the phase ("A.channel.payments"). */
  db?: Map<string, TableSize>;
  /** Invoices made for the phase (before it, not timed in it) and the seconds that took. */
  invoicesMade?: number;
  invoiceSeconds?: number;
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
 * What one commitment round costs in secp256k1, read from packages/channel-core and
 * services/signer. A round is one update_commit and its update_revocation:
 *   - the sender's signer signs the peer's commitment (service.ts signRemoteCommitment): 1 sign;
 *   - the receiver's channel core checks that signature (channel.ts receiveCommit →
 *     signatureValid): 1 verify;
 *   - the receiver's signer checks it again before revealing the revocation preimage
 *     (policy.ts authorizeReveal → checkCounterpartySig): 1 verify;
 *   - each of those three builds the commitment and hashes its anchor sighash (double SHA-256 of
 *     the ~300-byte transaction): 3 sighashes. Revocation preimages (shachain) are SHA-256s only.
 * With one payment per pair of rounds each way (update_add_htlc then update_fulfill_htlc, each
 * committed in both directions) a payment takes 4 rounds; with many updates per update_commit
 * the rounds per payment are what the bench measures (channel_commitment_updates), and the bound
 * it implies is rounds/s × payments per round. (Transport MACs and the once-per-session node-key
 * signature are left out; HTLC signatures would add a sign and a verify per HTLC output.)
 */
const UNBATCHED_ROUNDS_PER_PAYMENT = 4;
const SIGNS_PER_ROUND = 1;
const VERIFIES_PER_ROUND = 2;
const SIGHASHES_PER_ROUND = 3;
const TX_BYTES = 300;

function cryptoBound(): { roundsPerSecond: number; signsPerSecond: number; verifiesPerSecond: number } {
  const priv = randomBytes(32);
  const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
  const tx = randomBytes(TX_BYTES);
  const sha256d = (b: Buffer): Buffer =>
    createHash("sha256").update(createHash("sha256").update(b).digest()).digest();
  const oneRound = (i: number): void => {
    tx.writeUInt32LE(i, 0); // a fresh transaction each round
    let digest = sha256d(tx);
    for (let s = 1; s < SIGHASHES_PER_ROUND; s++) digest = sha256d(tx);
    let sig: Uint8Array = Buffer.alloc(64);
    for (let s = 0; s < SIGNS_PER_ROUND; s++) sig = ecc.sign(digest, priv);
    for (let v = 0; v < VERIFIES_PER_ROUND; v++)
      if (!ecc.verify(digest, pub, sig, true)) throw new Error("a fresh signature did not verify");
  };
  const rate = (n: number, f: (i: number) => void): number => {
    const t0 = nowMs();
    for (let i = 0; i < n; i++) f(i);
    return n / ((nowMs() - t0) / 1000);
  };
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
  rate(800, oneRound); // warm up
  const rounds: number[] = [];
  const signs: number[] = [];
  const verifies: number[] = [];
  const digest = sha256d(tx);
  const sig = ecc.sign(digest, priv);
  for (let r = 0; r < 5; r++) {
    rounds.push(rate(1200, oneRound));
    signs.push(rate(1000, () => ecc.sign(digest, priv)));
    verifies.push(rate(1000, () => ecc.verify(digest, pub, sig, true)));
  }
  return {
    roundsPerSecond: median(rounds),
    signsPerSecond: median(signs),
    verifiesPerSecond: median(verifies),
  };
}

// ---------------------------------------------------------------- commitment rounds (metrics)

/** The commitment counters of one channel service, from its /metrics (ops port). */
interface CommitCounters {
  /** update_commits sent (channel_commitment_updates_count). */
  commits: number;
  /** Updates they covered (channel_commitment_updates_sum). */
  updates: number;
  /** Rounds timed and their seconds (channel_commitment_round_seconds_count / _sum). */
  rounds: number;
  roundSeconds: number;
}

/** Sums each series of a Prometheus text exposition over its label sets (buckets left out). */
function promSums(text: string): Map<string, number> {
  const sums = new Map<string, number>();
  for (const line of text.split("\n")) {
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m === null) continue;
    const v = Number(m[3]);
    if (Number.isFinite(v)) sums.set(m[1] as string, (sums.get(m[1] as string) ?? 0) + v);
  }
  return sums;
}

async function commitCounters(opsUrl: string | undefined): Promise<CommitCounters | undefined> {
  if (opsUrl === undefined) return undefined;
  try {
    const r = await fetch(`${opsUrl}/metrics`);
    if (!r.ok) return undefined;
    const sums = promSums(await r.text());
    return {
      commits: sums.get("channel_commitment_updates_count") ?? 0,
      updates: sums.get("channel_commitment_updates_sum") ?? 0,
      rounds: sums.get("channel_commitment_round_seconds_count") ?? 0,
      roundSeconds: sums.get("channel_commitment_round_seconds_sum") ?? 0,
    };
  } catch {
    return undefined;
  }
}

async function commitSnapshot(net: Network): Promise<Map<string, CommitCounters | undefined>> {
  const m = new Map<string, CommitCounters | undefined>();
  for (const n of net.nodes) m.set(n.name, await commitCounters(n.replicas[0]?.opsUrl));
  return m;
}

function commitDelta(
  before: Map<string, CommitCounters | undefined>,
  after: Map<string, CommitCounters | undefined>,
): Map<string, CommitCounters> {
  const d = new Map<string, CommitCounters>();
  for (const [name, a] of after) {
    const b = before.get(name);
    if (a === undefined || b === undefined) continue;
    d.set(name, {
      commits: a.commits - b.commits,
      updates: a.updates - b.updates,
      rounds: a.rounds - b.rounds,
      roundSeconds: a.roundSeconds - b.roundSeconds,
    });
  }
  return d;
}

// ---------------------------------------------------------------- Postgres bytes

interface TableSize {
  /** pg_total_relation_size: heap, indexes and TOAST, page-granular (8 KiB), dead rows included. */
  total: number;
  /** Sum of pg_column_size of the live rows (no page slack, no dead rows, no indexes). */
  live: number;
}

/**
 * The size of every table in the schemas of every node's services, keyed "A.channel.payments".
 * Measured as is: no VACUUM, so growth includes dead row versions autovacuum has not reclaimed yet.
 */
async function dbSnapshot(client: pg.Client, net: Network): Promise<Map<string, TableSize>> {
  const label = new Map<string, string>();
  for (const n of net.nodes)
    for (const [svc, schema] of Object.entries(n.schemas)) label.set(schema, `${n.name}.${svc}`);
  const tables = await client.query<{ schema: string; name: string; total: string }>(
    `SELECT n.nspname AS schema, c.relname AS name, pg_total_relation_size(c.oid)::bigint AS total
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = ANY($1)`,
    [[...label.keys()]],
  );
  const out = new Map<string, TableSize>();
  for (const t of tables.rows) {
    const live = await client.query<{ live: string }>(
      `SELECT coalesce(sum(pg_column_size(t.*)), 0)::bigint AS live FROM "${t.schema}"."${t.name}" t`,
    );
    out.set(`${label.get(t.schema) ?? t.schema}.${t.name}`, {
      total: Number(t.total),
      live: Number(live.rows[0]?.live ?? 0),
    });
  }
  return out;
}

function dbDelta(before: Map<string, TableSize>, after: Map<string, TableSize>): Map<string, TableSize> {
  const d = new Map<string, TableSize>();
  for (const [k, a] of after) {
    const b = before.get(k) ?? { total: 0, live: 0 };
    d.set(k, { total: a.total - b.total, live: a.live - b.live });
  }
  return d;
}

const sumSizes = (m: Map<string, TableSize>): TableSize =>
  [...m.values()].reduce((acc, x) => ({ total: acc.total + x.total, live: acc.live + x.live }), {
    total: 0,
    live: 0,
  });

// ---------------------------------------------------------------- main

/** The payer counts to measure, from BENCH_PAYERS ("1,16,64"). */
function payerCounts(spec: string): number[] {
  const counts = spec.split(",").map((x) => Number(x.trim()));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`BENCH_PAYERS must be a comma list of positive integers, got ${JSON.stringify(spec)}`);
  return [...new Set(counts)].sort((a, b) => a - b);
}

async function main(): Promise<number> {
  const payerList = payerCounts(PAYERS_SPEC);
  const profiled = ["A.channel", "A.signer"] as const;
  const profileDir = (dir: string, proc: string): string => join(dir, "profiles", proc);
  // The run's directory as the lab would choose it, chosen here so the Node options can name it.
  const runId = randomBytes(3).toString("hex");
  const labDir = process.env["LAB_DIR"];
  const dir =
    labDir !== undefined && labDir !== ""
      ? join(labDir, `run-${runId}`)
      : mkdtempSync(join(tmpdir(), `ln-lab-${runId}-`));
  const net = new Network({
    nodes: ["A", "B", "C"],
    log,
    runId,
    dir,
    // Every channel service serves /metrics (channel_commitment_updates, ..._round_seconds).
    channelEnv: { CHANNEL_OPS_LISTEN: "127.0.0.1:0" },
    ...(PROFILE
      ? {
          nodeArgs: Object.fromEntries(
            profiled.map((p) => [p, ["--cpu-prof", `--cpu-prof-dir=${profileDir(dir, p)}`]]),
          ),
        }
      : {}),
  });
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`[bench] ${sig}: cleaning up (again to force)`);
    void net.cleanup({ removeDir: !KEEP_LOGS && !PROFILE }).then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let watcher: SettlementWatcher | undefined;
  let sizer: pg.Client | undefined;
  let ok = false;

  try {
    const tStart = Date.now();
    log(
      `starting regtest, Postgres, NATS, then nodes A, B and C (4 processes each; ~30 s)` +
        (PROFILE ? `; A.channel and A.signer under --cpu-prof` : ""),
    );
    await net.start();
    log(`the nodes are up after ${((Date.now() - tStart) / 1000).toFixed(1)} s`);
    const [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    const rt = net.regtest;
    const pgUrl = net.pgInfra?.url;
    if (pgUrl === undefined) throw new Error("Postgres is not up");
    sizer = new pg.Client({ connectionString: pgUrl });
    await sizer.connect();

    // A-B funded by A; B-C funded by B, so B can forward to C over it.
    await net.fund([A, B], FUND_SAT);
    await net.connect(A, B);
    await net.connect(B, C);
    const ch = { id: (await net.open(A, B, CHANNEL_SAT)).a };
    const bc = (await net.open(B, C, CHANNEL_SAT)).a;
    await net.waitShortChannelIds(A, [ch.id]);
    await net.waitShortChannelIds(B, [bc]);
    const route = await net.route([A, B, C], [ch.id, bc]);

    // Invoices are made before each phase (never during one), as many as the phase may use.
    const invoiceTotals = { made: 0, seconds: 0 };
    const makeInvoices = async (payee: string, api: LabApi, count: number): Promise<Invoice[]> => {
      const made: Invoice[] = [];
      if (count <= 0) return made;
      log(`${payee}: creating ${count} invoices of ${PAY_MSAT} msat (${INVOICE_CONCURRENCY} at a time)`);
      const tInv = nowMs();
      let next = 0;
      await Promise.all(
        Array.from({ length: Math.min(INVOICE_CONCURRENCY, count) }, async () => {
          while (next < count && !interrupted) {
            next++;
            made.push(await api.createInvoice(PAY_MSAT, `bench ${net.runId}`));
            if (made.length % 2000 === 0) log(`  ${made.length} invoices`);
          }
        }),
      );
      const seconds = (nowMs() - tInv) / 1000;
      invoiceTotals.made += made.length;
      invoiceTotals.seconds += seconds;
      log(
        `${payee}: ${made.length} invoices in ${seconds.toFixed(1)} s (${(made.length / seconds).toFixed(0)}/s)`,
      );
      return made;
    };
    // C's invoices are BOLT #11: its payee checks the payment secret the final hop's onion carries.
    const secretOf = new Map<string, string>();
    const invoicesOfC = async (count: number): Promise<Invoice[]> => {
      const made = await makeInvoices("C", C.api, count);
      for (const i of made)
        secretOf.set(i.rHash, decodeInvoice(i.bolt11 ?? "").paymentSecret.toString("hex"));
      return made;
    };

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
    const quiesce = async (chans: [NetNode, string][]): Promise<boolean> => {
      const until = nowMs() + 10_000;
      while (nowMs() < until) {
        const pending = await Promise.all(
          chans.map(async ([n, id]) => (await n.api.channel(id)).htlcs.length),
        );
        if (pending.every((x) => x === 0)) return true;
        await sleep(100);
      }
      return false;
    };
    const PHASES = [
      { path: "A→B", pool: [] as Invoice[], make: (n: number) => makeInvoices("B", B.api, n), pay },
      { path: "A→C via B", pool: [] as Invoice[], make: invoicesOfC, pay: payThrough },
    ] as const;

    /** Each path's sequential rate in the warm-up: the first phase's invoices are sized by it. */
    const warmRate = new Map<string, number>();
    for (const ph of PHASES) {
      log(`warm-up ${ph.path}: ${WARMUP_PAYMENTS} sequential payments`);
      const warm = await runPhase(
        ph.path,
        1,
        3600,
        await ph.make(WARMUP_PAYMENTS),
        ph.pay,
        () => interrupted,
      );
      if (warm.failed > 0) throw new Error(`warm-up payments ${ph.path} failed: ${warm.failures.join("; ")}`);
      warmRate.set(ph.path, warm.succeeded / warm.seconds);
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
    const profiledPayers = payerList.at(-1) ?? 1;
    let profileWindow: Window | undefined;
    const monoUs = (): number => Number(process.hrtime.bigint() / 1000n);
    for (const ph of PHASES) {
      // The warm-up's rate (cold, so counted 1.5×) stands for the path's first phase.
      let last: { payers: number; rate: number } = { payers: 1, rate: 1.5 * (warmRate.get(ph.path) ?? 0) };
      for (const payers of payerList) {
        if (interrupted) break;
        // Enough invoices for the phase: BENCH_INVOICES if set, else twice what the last phase's
        // rate scaled by the payers would use (25/s per payer if that rate is unknown), at most
        // 1,200/s of phase; what a phase leaves is used by the next.
        const estRate = last.rate > 0 ? (last.rate * payers) / last.payers : 25 * payers;
        const want =
          INVOICES_FIXED ??
          Math.min(MAX_INVOICE_RATE * SECONDS, Math.max(50, Math.ceil(estRate * SECONDS * 2) + 20));
        const madeBefore = { ...invoiceTotals };
        ph.pool.push(...(await ph.make(want - ph.pool.length)));

        log(
          `measuring ${ph.path}: ${payers} concurrent payer(s) for ${SECONDS} s (${ph.pool.length} invoices ready)`,
        );
        const notified0 = watcher.notifications;
        const db0 = await dbSnapshot(sizer, net);
        const commits0 = await commitSnapshot(net);
        const cpu0 = cpuSnapshot(net);
        const us0 = monoUs();
        const r = await runPhase(ph.path, payers, SECONDS, ph.pool, ph.pay, () => interrupted);
        const us1 = monoUs();
        const cpu1 = cpuSnapshot(net);
        // The last payments' fulfils are committed after A saw them succeed: let those rounds
        // finish (no HTLC left on the path's channels) before reading rounds and table sizes.
        const quiet = await quiesce(
          ph.path === "A→B"
            ? [[A, ch.id]]
            : [
                [A, ch.id],
                [B, bc],
              ],
        );
        if (!quiet) log("  (HTLCs still on the channels 10 s after the phase: rounds and sizes read anyway)");
        const commits1 = await commitSnapshot(net);
        const db1 = await dbSnapshot(sizer, net);
        if (ph.path === "A→B" && payers === profiledPayers) profileWindow = { fromUs: us0, toUs: us1 };
        r.cpuMsPerPayment = new Map(
          [...cpu1].map(([name, t]) => [name, ((t - (cpu0.get(name) ?? NaN)) * 1000) / r.succeeded]),
        );
        r.commits = commitDelta(commits0, commits1);
        r.db = dbDelta(db0, db1);
        r.invoicesMade = invoiceTotals.made - madeBefore.made;
        r.invoiceSeconds = invoiceTotals.seconds - madeBefore.seconds;
        results.push(r);
        last = { payers, rate: r.succeeded / r.seconds };
        log(
          `  done: ${r.succeeded} settled, ${r.failed} failed in ${r.seconds.toFixed(1)} s` +
            ` (${watcher.notifications - notified0} settlements notified)`,
        );
        if (r.ranOut) log(`  !! ran out of invoices (set BENCH_INVOICES higher)`);
      }
    }
    if (interrupted) return 130;

    log("crypto bound: timing the signatures of one commitment round in-process");
    const bound = cryptoBound();

    const chan = await A.api.channel(ch.id);
    const forwards = await B.api.forwards();

    // The restart phase (test/bench/restart.ts): A's channel service with many stored channels.
    let restart: RestartFigures | undefined;
    let restartNote = "";
    if (!RESTART) restartNote = "skipped (BENCH_RESTART=0)";
    else {
      log(`restart phase: A's channel service with ${RESTART_CHANNELS ?? 10_000} stored channels`);
      try {
        restart = await restartPhase(net, A, log, RESTART_CHANNELS);
      } catch (e) {
        // The other figures are measured: print them, and why the restart has none.
        restartNote = `FAILED: ${errText(e)}`;
        log(`restart phase failed: ${errText(e)}`);
      }
    }

    // The profiles are written when the processes exit: stop them (the run is over) and read them.
    const profileLines: string[] = [];
    if (PROFILE) {
      for (const p of profiled) await net.supervisor.stop(p, 15_000);
      profileLines.push(
        `CPU profiles (--cpu-prof) of ${profiled.join(" and ")}, over the A→B phase with ${profiledPayers} payer(s)` +
          `${profileWindow === undefined ? " (not run: the whole profile)" : ""}; files in ${join(net.dir, "profiles")}`,
      );
      for (const p of profiled) {
        const { files, summary } = summariseDir(profileDir(net.dir, p), profileWindow, REPO_ROOT);
        // One file per thread: tsx's module loader runs on a thread of its own (idle after start-up).
        if (files === 0) profileLines.push(`  ${p}: no .cpuprofile written`);
        else profileLines.push(...formatSummary(`  ${p} (${files} thread profile(s))`, summary, 15));
      }
    }

    const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : "-");
    const int = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString("en-US") : "-");
    const met = (ok: boolean | undefined): string => (ok === undefined ? "" : ok ? "  [met]" : "  [NOT met]");
    const out: string[] = ["", "==================== payments benchmark ===================="];
    out.push(
      `A→B over one channel of ${CHANNEL_SAT} sat, A→C via B over A-B and B-C (B's fee ${route.hops[1]?.feeBaseMsat ?? "?"} msat + ` +
        `${route.hops[1]?.feeProportionalMillionths ?? "?"} ppm), payments of ${PAY_MSAT / 1000n} sat, durable Postgres ` +
        `(${pgUrl.replace(/\/\/[^@]*@/, "//")}), ${SECONDS} s per phase, payers ${payerList.join(", ")}`,
    );
    for (const r of results) {
      const pps = r.succeeded / r.seconds;
      out.push(
        `  ${r.path.padEnd(9)} ${String(r.payers).padStart(2)} payer(s): ${fmt(pps)} payments/s settled (${r.succeeded} in ${fmt(r.seconds)} s` +
          `${r.failed > 0 ? `, ${r.failed} FAILED: ${r.failures.join("; ")}` : ""}${r.ranOut ? ", RAN OUT of invoices" : ""}); ` +
          `latency p50 ${fmt(quantile(r.latenciesMs, 0.5))} ms, p99 ${fmt(quantile(r.latenciesMs, 0.99))} ms, ` +
          `max ${fmt(r.latenciesMs.at(-1) ?? NaN)} ms`,
      );
    }

    out.push(
      "commitment rounds (each channel service's channel_commitment_updates: one observation per update_commit sent," +
        " its value the updates it covers; a round = one update_commit + its update_revocation):",
    );
    const roundsPerPayment = (r: PhaseResult): number =>
      [...(r.commits?.values() ?? [])].reduce((a, c) => a + c.commits, 0) / r.succeeded;
    for (const r of results) {
      const c = [...(r.commits ?? new Map<string, CommitCounters>())].filter(([, x]) => x.commits > 0);
      if (r.commits === undefined || r.commits.size === 0) {
        out.push(`  ${r.path.padEnd(9)} ${String(r.payers).padStart(2)} payer(s): no /metrics read`);
        continue;
      }
      const rpp = roundsPerPayment(r);
      out.push(
        `  ${r.path.padEnd(9)} ${String(r.payers).padStart(2)} payer(s): ` +
          c
            .map(
              ([n, x]) =>
                `${n} sent ${x.commits} (${fmt(x.updates / x.commits, 2)} updates each, round ${fmt((1000 * x.roundSeconds) / x.rounds, 0)} ms)`,
            )
            .join(", ") +
          `; rounds per payment ${fmt(rpp, 2)}, payments per round ${fmt(1 / rpp, 3)}`,
      );
    }

    out.push(
      `crypto bound per commitment round: ${SIGNS_PER_ROUND} sign + ${VERIFIES_PER_ROUND} verifies + ${SIGHASHES_PER_ROUND} double-SHA-256 of ` +
        `${TX_BYTES} bytes; tiny-secp256k1 in-process, one core: ${int(bound.roundsPerSecond)} rounds/s ` +
        `(${int(bound.signsPerSecond)} signs/s, ${int(bound.verifiesPerSecond)} verifies/s); ` +
        `${int(bound.roundsPerSecond / UNBATCHED_ROUNDS_PER_PAYMENT)} payments/s at ${UNBATCHED_ROUNDS_PER_PAYMENT} rounds per payment (one update per commitment)`,
    );
    for (const r of results) {
      const rpp = roundsPerPayment(r);
      const implied = bound.roundsPerSecond / rpp;
      out.push(
        `  ${r.path.padEnd(9)} ${String(r.payers).padStart(2)} payer(s): implied bound = rounds/s × payments per round = ` +
          `${int(bound.roundsPerSecond)} × ${fmt(1 / rpp, 3)} = ${int(implied)} payments/s; measured ÷ implied = ${fmt(r.succeeded / r.seconds / implied, 4)}`,
      );
    }

    out.push(
      "Postgres per settled payment (pg_total_relation_size of every table of every node's schemas, indexes and TOAST included," +
        " before and after each phase, no VACUUM: page-granular, dead row versions included; live = sum of pg_column_size of the rows):",
    );
    const dbAll = new Map<string, TableSize>();
    let dbSettled = 0;
    for (const r of results) {
      if (r.db === undefined) continue;
      dbSettled += r.succeeded;
      for (const [k, v] of r.db) {
        const a = dbAll.get(k) ?? { total: 0, live: 0 };
        dbAll.set(k, { total: a.total + v.total, live: a.live + v.live });
      }
      const sum = sumSizes(r.db);
      out.push(
        `  ${r.path.padEnd(9)} ${String(r.payers).padStart(2)} payer(s): +${int(sum.total)} bytes = ${int(sum.total / r.succeeded)} bytes/payment ` +
          `(live rows +${int(sum.live)} = ${int(sum.live / r.succeeded)} bytes/payment); top 5 tables: ` +
          topTables(r.db, 5, r.succeeded),
      );
    }
    const dbSum = sumSizes(dbAll);
    const dbPerPayment = dbSum.total / dbSettled;
    out.push(
      `  over all phases: +${int(dbSum.total)} bytes for ${dbSettled} payments = ${int(dbPerPayment)} bytes/payment ` +
        `(live rows ${int(dbSum.live / dbSettled)} bytes/payment); top 5 tables: ${topTables(dbAll, 5, dbSettled)}`,
    );

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
      `invoices made before each phase: ` +
        results
          .map((r) => `${r.path} ${r.payers}: ${r.invoicesMade ?? 0} in ${fmt(r.invoiceSeconds ?? 0)} s`)
          .join(", "),
    );
    out.push(
      `invoices: ${invoiceTotals.made} made before the phases (not during them) in ${fmt(invoiceTotals.seconds)} s ` +
        `(${fmt(invoiceTotals.made / invoiceTotals.seconds, 0)}/s, ${INVOICE_CONCURRENCY} at a time; the run took ${fmt((Date.now() - tStart) / 1000, 0)} s so far)`,
    );
    out.push(
      `channel after the run: A local ${BigInt(chan.localBalanceMsat) / 1000n} sat, remote ${BigInt(chan.remoteBalanceMsat) / 1000n} sat, ` +
        `${chan.htlcs.length} HTLCs pending; B forwarded ${forwards.totals.settled} payments, fees earned ${forwards.totals.feesEarnedMsat} msat`,
    );
    if (restart !== undefined) out.push(...restart.lines);
    if (restart !== undefined && PROFILE)
      out.push("  (BENCH_PROFILE=1: A's channel service restarted under --cpu-prof, which slows its start)");
    out.push(...profileLines);

    // Each figure of issue 17 beside its aim.
    const at = (payers: number): PhaseResult | undefined =>
      results.find((r) => r.path === "A→B" && r.payers === payers);
    const top = at(64);
    const one = at(1);
    out.push("---- aims (issue 17) ----");
    if (top !== undefined) {
      const pps = top.succeeded / top.seconds;
      const p99 = quantile(top.latenciesMs, 0.99);
      out.push(`  P1 A→B, 64 payers: ${fmt(pps)} payments/s (aim ≥ 1,000/s)${met(pps >= AIM_PPS)}`);
      out.push(`  P1 A→B, 64 payers: p99 ${fmt(p99)} ms (aim ≤ 250 ms)${met(p99 <= AIM_P99_64_MS)}`);
      out.push(
        `  A→B, 64 payers: ${fmt(1 / roundsPerPayment(top), 3)} payments per commitment round; measured ÷ crypto-implied bound ` +
          `${fmt(pps / (bound.roundsPerSecond / roundsPerPayment(top)), 4)}`,
      );
    } else out.push("  P1 A→B, 64 payers: not measured (BENCH_PAYERS has no 64)");
    if (one !== undefined) {
      const p99 = quantile(one.latenciesMs, 0.99);
      out.push(`  A→B, 1 payer: p99 ${fmt(p99)} ms (aim ≤ 50 ms)${met(p99 <= AIM_P99_1_MS)}`);
    } else out.push("  A→B, 1 payer: not measured (BENCH_PAYERS has no 1)");
    out.push(
      `  Database: ${int(dbPerPayment)} bytes of Postgres per settled payment over the run (aim ≤ 1,024)${met(dbPerPayment <= AIM_DB_BYTES)}`,
    );
    if (restart !== undefined)
      out.push(
        `  Restart: ${restart.channels} channels ready in ${fmt(restart.readySeconds)} s (aim ≤ 10 s with 10,000)` +
          met(restart.readySeconds <= AIM_RESTART_S && restart.channels >= 10_000),
      );
    else out.push(`  Restart: ${restartNote}`);
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
    await sizer?.end().catch(() => undefined);
    await net.cleanup({ removeDir: ok && !KEEP_LOGS && !PROFILE }); // the same promise the signal handler waits on
    if (!ok || KEEP_LOGS || PROFILE) log(`logs${PROFILE ? " and profiles" : ""} kept in ${net.dir}`);
  }
}

/** "A.channel.payments +1.2 MB (123 B/payment)", the `n` tables that grew most. */
function topTables(m: Map<string, TableSize>, n: number, settled: number): string {
  return [...m]
    .sort((a, b) => b[1].total - a[1].total)
    .slice(0, n)
    .map(
      ([k, v]) =>
        `${k} +${Math.round(v.total / 1024)} KiB (${Math.round(v.total / settled)} B/payment, live ${Math.round(v.live / settled)})`,
    )
    .join(", ");
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[bench] ${errText(e)}`);
    process.exit(1);
  },
);
