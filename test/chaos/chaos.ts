/**
 * The chaos run (issue 18): three nodes A-B-C, every service a process, two channel-service
 * replicas per node, the run's own Postgres and nats-server; a payment storm (direct, and routed
 * through B both ways) while faults come at random moments drawn from a printed seed: SIGKILL of
 * any service of any node (restarted after a short random delay), Postgres and nats-server
 * restarts, dropped peer connections (a TCP proxy in front of B's and C's peer gateways), the
 * signer SIGSTOPped for longer than a commitment round. Then everything back, quiescence, and
 * every invariant (invariants.ts) printed with its figure.
 *
 * The seed fixes the schedule of faults (when, which, how long) and each payer's sequence of
 * payments (which flow, which amount); what the processes do with them depends on timing.
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { ApiError, type Payment, type RouteHop } from "../lab/api.js";
import { errText, sleep, startNetwork, type NetNode, type Service } from "../lab/network.js";
import { checkInvariants, formatInvariants, waitQuiescent } from "./invariants.js";
import { PeerProxy } from "./proxy.js";
import type { InvariantResult, MemoryPeak, StormRecord, StormRequest } from "./storm.js";

export interface ChaosOptions {
  /** uint32; default: a random one (printed first). */
  readonly seed?: number;
  /** How long the storm runs (faults and payments), seconds. */
  readonly seconds: number;
  /** SIGKILLs over the run. */
  readonly kills: number;
  /** Concurrent payers (default 16). */
  readonly payers?: number;
  /** Postgres restarts (default one per 150 s, at least 1). */
  readonly postgresRestarts?: number;
  /** nats-server restarts (default one per 150 s, at least 1). */
  readonly natsRestarts?: number;
  /** Peer-connection drops (default one per 40 s, at least 2). */
  readonly drops?: number;
  /** Signer SIGSTOPs (default one per 120 s, at least 1). */
  readonly signerStops?: number;
  /** Per process; default 768 MiB. */
  readonly memoryBoundBytes?: number;
  /** Default 300 000 ms. */
  readonly quiescenceTimeoutMs?: number;
  /** Progress and summary lines. Default console.log with "[chaos] ". */
  readonly log?: (line: string) => void;
  /** The network's lines (default: none, they go to the process logs only). */
  readonly netLog?: (line: string) => void;
}

export interface ChaosReport {
  readonly seed: number;
  readonly durationMs: number;
  readonly record: StormRecord;
  readonly invariants: readonly InvariantResult[];
  readonly ok: boolean;
  /** Kills by process name ("B.channel-2"). */
  readonly kills: ReadonlyMap<string, number>;
  readonly postgresRestarts: number;
  readonly natsRestarts: number;
  readonly drops: number;
  readonly connectionsCut: number;
  readonly signerStops: number;
  readonly takeovers: number;
  readonly payments: PaymentCounts;
  /** Processes that exited on their own (not killed by the run), with their last lines. */
  readonly crashes: readonly string[];
  /** The run's lab directory (process logs under logs/). */
  readonly dir: string;
}

export interface PaymentCounts {
  requested: number;
  succeeded: number;
  failed: number;
  /** Answered with a payment still pending at the end of the storm (the checker follows it). */
  pending: number;
  /** Refused with nothing paid (4xx: insufficient funds, channel not normal, ...). */
  refused: number;
  /** Answered PAYMENT_OUTCOME_UNKNOWN (the key bound; the checker finds any payment by its hash). */
  unknown: number;
  /** Never answered (the payer's API down or silent past the deadline). */
  unanswered: number;
}

const NODES = ["A", "B", "C"] as const;
const FUND_SAT = 5_000_000n;
const CHANNEL_SAT = 4_000_000n;
/** Moved across each channel before the storm, so both directions have balance. */
const BALANCE_PAYMENTS = 4;
const BALANCE_MSAT = 400_000_000n;
const LEASE_MS = 3000;
const EXPIRY_BLOCKS = 300;
const MIN_PAY_MSAT = 1_000_000n;
const MAX_PAY_MSAT = 40_000_000n;
/** Longer than a commitment round: the channel service gives a signer call 10 s. */
const SIGNER_STOP_MS: readonly [number, number] = [12_000, 20_000];
const RESTART_DELAY_MS: readonly [number, number] = [100, 2000];
const MAX_RESTARTS_IN_FLIGHT = 3;
/** After the storm, how long a payer keeps re-sending an unanswered request. */
const ANSWER_GRACE_MS = 120_000;

/** mulberry32: a small seeded PRNG, the same sequence for the same seed on every platform. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const between = (r: () => number, [lo, hi]: readonly [number, number]): number => lo + r() * (hi - lo);
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** One process the run may kill: its node, service and replica. */
interface Target {
  readonly process: string;
  readonly node: NetNode;
  readonly service: Service;
  readonly replica: number;
}

type Fault =
  | { at: number; kind: "kill"; target: number; delayMs: number }
  | { at: number; kind: "postgres" }
  | { at: number; kind: "nats" }
  | { at: number; kind: "drop"; proxy: number; refuseMs: number }
  | { at: number; kind: "signer-stop"; node: number; ms: number };

/** The schedule of faults of a run, from its seed alone (ms from the storm's start, sorted). */
export function schedule(
  seed: number,
  o: { seconds: number; kills: number; postgres: number; nats: number; drops: number; signerStops: number },
  targets: number,
): Fault[] {
  const r = prng(seed);
  const span = o.seconds * 1000;
  // Faults in the first 90% of the storm, so the last ones' restarts end within it.
  const at = (): number => Math.floor(span * (0.03 + 0.87 * r()));
  const faults: Fault[] = [];
  for (let i = 0; i < o.kills; i++)
    faults.push({
      at: at(),
      kind: "kill",
      target: Math.floor(r() * targets),
      delayMs: Math.floor(between(r, RESTART_DELAY_MS)),
    });
  for (let i = 0; i < o.postgres; i++) faults.push({ at: at(), kind: "postgres" });
  for (let i = 0; i < o.nats; i++) faults.push({ at: at(), kind: "nats" });
  for (let i = 0; i < o.drops; i++)
    faults.push({ at: at(), kind: "drop", proxy: Math.floor(r() * 2), refuseMs: Math.floor(r() * 3000) });
  for (let i = 0; i < o.signerStops; i++)
    faults.push({
      at: at(),
      kind: "signer-stop",
      node: Math.floor(r() * NODES.length),
      ms: Math.floor(between(r, SIGNER_STOP_MS)),
    });
  return faults.sort((x, y) => x.at - y.at);
}

/** A payment flow of the storm: who pays whom, and how. */
interface Flow {
  readonly payer: NetNode;
  readonly payee: NetNode;
  readonly kind: "direct" | "routed";
  /** direct: the payer's channel with the payee. */
  readonly channelId?: string;
  /** routed: the explicit route through B. */
  readonly hops?: readonly RouteHop[];
}

const rssBytes = (pid: number): number | undefined => {
  try {
    const m = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m?.[1] === undefined ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined; // exited between the pid and the read
  }
};

/** Calls `f` until it answers; connection errors, 5xx and 409 are retried after `waitMs`. */
async function answered<T>(f: () => Promise<T>, until: number, waitMs = 500): Promise<T> {
  for (;;) {
    try {
      return await f();
    } catch (e) {
      const retry = !(e instanceof ApiError) || e.status >= 500 || e.status === 409;
      if (!retry || Date.now() > until) throw e;
    }
    await sleep(waitMs);
  }
}

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? ((l: string): void => console.log(`[chaos] ${l}`));
  const seed = (opts.seed ?? Math.floor(Math.random() * 2 ** 32)) >>> 0;
  log(`seed ${seed} (CHAOS_SEED=${seed} reproduces this run's schedule)`);
  const payerCount = opts.payers ?? 16;
  const memoryBoundBytes = opts.memoryBoundBytes ?? 768 * 1024 * 1024;
  const counts = {
    seconds: opts.seconds,
    kills: opts.kills,
    postgres: opts.postgresRestarts ?? Math.max(1, Math.round(opts.seconds / 150)),
    nats: opts.natsRestarts ?? Math.max(1, Math.round(opts.seconds / 150)),
    drops: opts.drops ?? Math.max(2, Math.round(opts.seconds / 40)),
    signerStops: opts.signerStops ?? Math.max(1, Math.round(opts.seconds / 120)),
  };
  log(
    `storm: ${opts.seconds} s, ${counts.kills} kills, ${counts.postgres} Postgres and ${counts.nats} NATS restarts, ` +
      `${counts.drops} connection drops, ${counts.signerStops} signer stops, ${payerCount} payers`,
  );
  const started = Date.now();
  const net = await startNetwork({
    nodes: NODES,
    channelReplicas: { A: 2, B: 2, C: 2 },
    channelEnv: { CHANNEL_LEASE_MS: String(LEASE_MS), CHANNEL_RECONNECT_S: "1" },
    ownInfra: true,
    ...(opts.netLog !== undefined ? { log: opts.netLog } : {}),
  });
  log(`network up in ${((Date.now() - started) / 1000).toFixed(1)} s; lab directory ${net.dir}`);
  const proxies: PeerProxy[] = [];
  let pool: pg.Pool | undefined;
  try {
    const [A, B, C] = NODES.map((n) => net.node(n)) as [NetNode, NetNode, NetNode];

    // A dials B and B dials C through proxies: a cut there is a dropped peer connection.
    const toB = new PeerProxy(B.peerPort);
    const toC = new PeerProxy(C.peerPort);
    proxies.push(toB, toC);
    await toB.listen();
    await toC.listen();
    await net.fund([A, B], FUND_SAT);
    await A.api.connectPeer("127.0.0.1", toB.port, B.nodeId);
    await B.api.connectPeer("127.0.0.1", toC.port, C.nodeId);
    const ab = await net.open(A, B, CHANNEL_SAT);
    const bc = await net.open(B, C, CHANNEL_SAT);
    await net.waitShortChannelIds(A, [ab.a]);
    await net.waitShortChannelIds(B, [ab.b, bc.a]);
    await net.waitShortChannelIds(C, [bc.b]);
    // The storm's record holds these too: the checker accounts for every payment of the run.
    const requests: StormRequest[] = [];
    const setupPay = async (payer: NetNode, payee: NetNode, channelId: string, i: number): Promise<void> => {
      const inv = await payee.api.createInvoice(BALANCE_MSAT, `chaos setup ${i}`);
      const key = `chaos-${seed}-setup-${payer.name}-${i}`;
      const p = await payer.api.pay(
        {
          channelId,
          rHash: inv.rHash,
          amountMsat: BALANCE_MSAT,
          expiry: { blocks: net.regtest.height() + EXPIRY_BLOCKS },
        },
        key,
      );
      requests.push({
        payer: payer.name,
        payee: payee.name,
        amountMsat: BALANCE_MSAT,
        idempotencyKey: key,
        rHash: inv.rHash,
        kind: "direct",
        paymentId: p.id,
      });
      await net.waitPayment(payer, p.id);
    };
    for (let i = 0; i < BALANCE_PAYMENTS; i++) {
      await setupPay(A, B, ab.a, i);
      await setupPay(B, C, bc.a, i);
    }
    const routeAC = await net.route([A, B, C], [ab.a, bc.a]);
    const routeCA = await net.route([C, B, A], [bc.b, ab.b]);
    const flows: Flow[] = [
      { payer: A, payee: B, kind: "direct", channelId: ab.a },
      { payer: B, payee: A, kind: "direct", channelId: ab.b },
      { payer: B, payee: C, kind: "direct", channelId: bc.a },
      { payer: C, payee: B, kind: "direct", channelId: bc.b },
      { payer: A, payee: C, kind: "routed", hops: routeAC.hops },
      { payer: C, payee: A, kind: "routed", hops: routeCA.hops },
    ];
    log(`channels A-B ${ab.a} and B-C ${bc.a} normal and balanced; the storm starts`);

    const targets: Target[] = NODES.flatMap((name) => {
      const n = net.node(name);
      return [
        { process: n.processes.signer, node: n, service: "signer" as const, replica: 1 },
        { process: n.processes.watchtower, node: n, service: "watchtower" as const, replica: 1 },
        { process: n.processes.peer, node: n, service: "peer" as const, replica: 1 },
        ...n.replicas.map((r) => ({
          process: r.process,
          node: n,
          service: "channel" as const,
          replica: r.index,
        })),
      ];
    });
    const faults = schedule(seed, counts, targets.length);

    // The record the checker reads, filled as the storm runs.
    const peaks = new Map<string, number>();
    const record: StormRecord = {
      funded: new Map([
        ["A", FUND_SAT],
        ["B", FUND_SAT],
      ]),
      requests,
      get memory(): readonly MemoryPeak[] {
        return [...peaks].map(([process, peakBytes]) => ({ process, peakBytes }));
      },
    };
    const pay: PaymentCounts = {
      requested: 0,
      succeeded: 0,
      failed: 0,
      pending: 0,
      refused: 0,
      unknown: 0,
      unanswered: 0,
    };
    const kills = new Map<string, number>();
    const refusals = new Map<string, number>();
    /** How long each restart took to its ready line, by service (the start cost). */
    const restartMs = new Map<string, number[]>();
    let pgRestarts = 0;
    let natsRestarts = 0;
    let drops = 0;
    let cut = 0;
    let signerStops = 0;
    let takeovers = 0;
    const crashes: string[] = [];
    /** Processes a fault is working on (killed and not back, or stopped): no other fault touches them. */
    const busy = new Set<string>();
    /** The stopped signer's pid, continued at the end whatever happens. */
    const stoppedPids = new Set<number>();
    let infraDown = false;
    let stormOver = false;
    let stormEndedAt = 0;
    const storm0 = Date.now();
    const elapsed = (): string => `${((Date.now() - storm0) / 1000).toFixed(0)} s`;

    /** Restarts a target until it is ready (Postgres or NATS may be down meanwhile). */
    const bringBack = async (t: Target): Promise<void> => {
      for (let attempt = 1; ; attempt++) {
        try {
          const t0 = Date.now();
          await net.restart(t.node, t.service, t.replica);
          const took = restartMs.get(t.service) ?? [];
          took.push(Date.now() - t0);
          restartMs.set(t.service, took);
          return;
        } catch (e) {
          if (attempt >= 20) throw new Error(`${t.process} did not come back: ${errText(e)}`, { cause: e });
          log(`${elapsed()}: ${t.process} did not start (${errText(e).split("\n")[0] ?? ""}); again`);
          await sleep(2000);
        }
      }
    };

    // --- the payers ---
    const payer = async (index: number): Promise<void> => {
      const r = prng((seed ^ Math.imul(index + 1, 0x9e3779b1)) >>> 0);
      for (let seq = 0; !stormOver; seq++) {
        const flow = pick(r, flows);
        const amountMsat = MIN_PAY_MSAT + BigInt(Math.floor(r() * Number(MAX_PAY_MSAT - MIN_PAY_MSAT)));
        const key = `chaos-${seed}-${index}-${seq}`;
        let rHash: string;
        try {
          // The payee's invoice (any replica that answers); a lost answer leaves an unpaid one.
          const inv = await answered(
            () => flow.payee.api.createInvoice(amountMsat, `chaos ${key}`),
            Date.now() + 60_000,
          );
          rHash = inv.rHash;
        } catch (e) {
          log(`${elapsed()}: payer ${index}: no invoice from ${flow.payee.name}: ${errText(e)}`);
          await sleep(1000);
          continue;
        }
        const secret = flow.kind === "routed" ? await net.invoiceSecret(flow.payee.nodeId, rHash) : undefined;
        // The same body on every retry: the key is bound to it.
        const body = {
          ...(flow.channelId !== undefined ? { channelId: flow.channelId } : {}),
          rHash,
          amountMsat,
          expiry: { blocks: net.regtest.height() + EXPIRY_BLOCKS },
          ...(flow.hops !== undefined ? { route: flow.hops } : {}),
          ...(secret !== undefined ? { paymentSecret: secret } : {}),
        };
        const req: StormRequest = {
          payer: flow.payer.name,
          payee: flow.payee.name,
          amountMsat,
          idempotencyKey: key,
          rHash,
          kind: flow.kind,
          paymentId: undefined,
        };
        requests.push(req);
        pay.requested++;
        const answerBy = Date.now() + 60_000;
        let p: Payment | undefined;
        for (;;) {
          try {
            p = await flow.payer.api.pay(body, key);
            break;
          } catch (e) {
            // Not answered, the key still busy, or refused with nothing done (5xx): the same
            // request again. PAYMENT_OUTCOME_UNKNOWN binds the key: it is the final answer.
            const again =
              !(e instanceof ApiError) ||
              e.code === "IDEMPOTENCY_IN_PROGRESS" ||
              (e.status >= 500 && e.code !== "PAYMENT_OUTCOME_UNKNOWN");
            const deadline = stormOver ? stormEndedAt + ANSWER_GRACE_MS : answerBy;
            if (!again || Date.now() > deadline) {
              if (e instanceof ApiError && e.status >= 400 && e.status < 500) {
                pay.refused++;
                refusals.set(e.code, (refusals.get(e.code) ?? 0) + 1);
                await sleep(500); // e.g. the channel re-establishing: not a busy loop
              } else if (e instanceof ApiError && e.code === "PAYMENT_OUTCOME_UNKNOWN") pay.unknown++;
              else {
                pay.unanswered++;
                log(`${elapsed()}: payer ${index}: ${key} unanswered: ${errText(e)}`);
              }
              break;
            }
            await sleep(500);
          }
        }
        if (p === undefined) continue;
        req.paymentId = p.id;
        // Follow it to its end (or the end of the storm): the storm's load is its payers.
        let status = p.status;
        while (status === "pending" && !stormOver) {
          await sleep(500);
          try {
            status = (await flow.payer.api.payment(p.id)).status;
          } catch {
            /* the API is down: ask again */
          }
        }
        if (status === "succeeded") pay.succeeded++;
        else if (status === "failed") pay.failed++;
        else pay.pending++;
      }
    };

    // --- faults ---
    const inFlight = new Set<Promise<void>>();
    const track = (p: Promise<void>): void => {
      const q = p.catch((e: unknown) => {
        crashes.push(`fault: ${errText(e)}`);
        log(`${elapsed()}: !! ${errText(e)}`);
      });
      inFlight.add(q);
      void q.finally(() => inFlight.delete(q));
    };
    const killOne = async (wanted: number, delayMs: number): Promise<void> => {
      // The drawn target, else the next one not busy (a fault is bringing it back).
      let t: Target | undefined;
      for (let i = 0; i < targets.length && t === undefined; i++) {
        const c = targets[(wanted + i) % targets.length] as Target;
        if (!busy.has(c.process) && net.supervisor.isRunning(c.process)) t = c;
      }
      if (t === undefined) return;
      busy.add(t.process);
      try {
        await net.kill(t.node, t.service, { replica: t.replica });
        kills.set(t.process, (kills.get(t.process) ?? 0) + 1);
        await sleep(delayMs);
        await bringBack(t);
      } finally {
        busy.delete(t.process);
      }
    };
    const restartInfra = async (what: "postgres" | "nats"): Promise<void> => {
      if (infraDown) return; // one at a time
      infraDown = true;
      try {
        const t0 = Date.now();
        if (what === "postgres") {
          await net.restartPostgres();
          pgRestarts++;
        } else {
          await net.restartNats();
          natsRestarts++;
        }
        log(`${elapsed()}: ${what} restarted (${Date.now() - t0} ms)`);
      } finally {
        infraDown = false;
      }
    };
    const stopSigner = async (n: NetNode, ms: number): Promise<void> => {
      const name = n.processes.signer;
      const pid = net.supervisor.pid(name);
      if (busy.has(name) || pid === undefined) return;
      busy.add(name);
      try {
        process.kill(pid, "SIGSTOP");
        stoppedPids.add(pid);
        signerStops++;
        log(`${elapsed()}: ${name} stopped for ${ms} ms`);
        await sleep(ms);
      } finally {
        process.kill(pid, "SIGCONT");
        stoppedPids.delete(pid);
        busy.delete(name);
      }
    };
    const faultLoop = async (): Promise<void> => {
      for (const f of faults) {
        const wait = storm0 + f.at - Date.now();
        if (wait > 0) await sleep(wait);
        if (f.kind === "kill") {
          // Restarts cost CPU: at most a few at once; the schedule waits for one to end.
          while (inFlight.size >= MAX_RESTARTS_IN_FLIGHT) await Promise.race(inFlight);
          track(killOne(f.target, f.delayMs));
        } else if (f.kind === "postgres" || f.kind === "nats") track(restartInfra(f.kind));
        else if (f.kind === "drop") {
          const proxy = proxies[f.proxy] as PeerProxy;
          const n = proxy.cut(f.refuseMs);
          drops++;
          cut += n;
          log(
            `${elapsed()}: dropped ${n} connection(s) to ${f.proxy === 0 ? "B" : "C"} (refusing ${f.refuseMs} ms)`,
          );
        } else track(stopSigner(net.node(NODES[f.node] as string), f.ms));
      }
      await Promise.all(inFlight);
    };

    // --- watchers: crashes, memory, lease takeovers, blocks, progress ---
    const leases = new pg.Pool({ connectionString: net.pgInfra?.url, max: 2 });
    pool = leases;
    leases.on("error", () => undefined); // a Postgres restart ends idle clients; the next query reconnects
    const owners = new Map<string, string>();
    const watch = async (): Promise<void> => {
      let lastProgress = Date.now();
      let lastBlock = Date.now();
      while (!stormOver) {
        await sleep(2000);
        for (const t of targets) {
          const pid = net.supervisor.pid(t.process);
          if (pid !== undefined) {
            const rss = rssBytes(pid);
            if (rss !== undefined && rss > (peaks.get(t.process) ?? 0)) peaks.set(t.process, rss);
          } else if (!busy.has(t.process)) {
            // Exited on its own: a finding. Restart it as an orchestrator would.
            const lines = net.supervisor.lastLines(t.process).slice(-15).join("\n");
            crashes.push(`${elapsed()}: ${t.process} exited on its own; last lines:\n${lines}`);
            log(`${elapsed()}: !! ${t.process} exited on its own (log ${net.supervisor.logFile(t.process)})`);
            net.crashed = undefined;
            busy.add(t.process);
            track(bringBack(t).finally(() => busy.delete(t.process)));
          }
        }
        const me = process.memoryUsage().rss;
        if (me > (peaks.get("runner") ?? 0)) peaks.set("runner", me);
        for (const n of [A, B, C]) {
          try {
            const rows = await leases.query<{ id: string; lease_owner: string | null }>(
              `SELECT id::text, lease_owner FROM "${n.schemas.channel}".channels`,
            );
            for (const row of rows.rows) {
              if (row.lease_owner === null) continue;
              const k = `${n.name}:${row.id}`;
              const before = owners.get(k);
              if (before !== undefined && before !== row.lease_owner) takeovers++;
              owners.set(k, row.lease_owner);
            }
          } catch {
            /* Postgres restarting */
          }
        }
        if (Date.now() - lastBlock > 30_000) {
          lastBlock = Date.now();
          await net.regtest.mine(1).catch(() => undefined);
        }
        if (Date.now() - lastProgress >= 10_000) {
          lastProgress = Date.now();
          const open =
            pay.requested -
            pay.succeeded -
            pay.failed -
            pay.pending -
            pay.refused -
            pay.unknown -
            pay.unanswered;
          const byService = new Map<string, number>();
          for (const [p, k] of kills) {
            const svc = p.split(".")[1]?.replace(/-\d+$/, "") ?? p;
            byService.set(svc, (byService.get(svc) ?? 0) + k);
          }
          log(
            `${elapsed()}: payments ${pay.succeeded} ok, ${pay.failed} failed, ${open} in flight, ` +
              `${pay.refused} refused, ${pay.unknown} outcome unknown, ${pay.unanswered} unanswered; kills ${[...byService].map(([s, k]) => `${s} ${k}`).join(", ") || "none"}; ` +
              `restarts pg ${pgRestarts} nats ${natsRestarts}; drops ${drops}; signer stops ${signerStops}; takeovers ${takeovers}`,
          );
        }
      }
    };

    const watcher = watch();
    const payersDone = Promise.all(Array.from({ length: payerCount }, (_, i) => payer(i)));
    const faultsDone = faultLoop();
    await sleep(opts.seconds * 1000);
    await faultsDone; // the last faults' restarts
    stormOver = true;
    stormEndedAt = Date.now();
    log(`${elapsed()}: storm over; waiting for the payers' last requests and the last restarts`);
    await payersDone;
    await watcher;
    await Promise.all(inFlight);

    // Everything back: signers continued, proxies open, every process running.
    for (const pid of stoppedPids) process.kill(pid, "SIGCONT");
    for (const p of proxies) p.heal();
    for (const t of targets)
      if (!net.supervisor.isRunning(t.process)) {
        crashes.push(`${t.process} was down at the end of the storm`);
        await bringBack(t);
      }
    net.crashed = undefined;
    const durationStorm = Date.now() - storm0;

    const iopts = {
      memoryBoundBytes,
      quiescenceTimeoutMs: opts.quiescenceTimeoutMs ?? 300_000,
      log,
    };
    log("waiting for quiescence");
    // Not reached is a finding too: the invariants are still checked and printed with it.
    const quiet = await waitQuiescent(net, record, iopts).then(
      (): InvariantResult => ({ name: "quiescence", ok: true, figure: "reached", violations: [] }),
      (e: unknown): InvariantResult => ({
        name: "quiescence",
        ok: false,
        figure: "not reached",
        violations: errText(e).split("; "),
      }),
    );
    const invariants = [quiet, ...(await checkInvariants(net, record, iopts))];
    log(`invariants:\n${formatInvariants(invariants)}`);

    const byNode = new Map<string, number>();
    for (const [p, k] of kills) byNode.set(p, k);
    const totalKills = [...kills.values()].reduce((a, b) => a + b, 0);
    const durationMs = Date.now() - started;
    const summary = [
      `seed ${seed}; storm ${(durationStorm / 1000).toFixed(0)} s; run ${(durationMs / 1000).toFixed(0)} s`,
      `kills ${totalKills}: ${[...byNode]
        .sort()
        .map(([p, k]) => `${p} ${k}`)
        .join(", ")}`,
      `Postgres restarts ${pgRestarts}, NATS restarts ${natsRestarts}, connection drops ${drops} (${cut} connections cut), signer stops ${signerStops}, lease takeovers seen ${takeovers}`,
      `payments: ${pay.requested} requested, ${pay.succeeded} succeeded, ${pay.failed} failed, ${pay.pending} pending at the storm's end, ${pay.refused} refused (${[...refusals].map(([c, k]) => `${c} ${k}`).join(", ") || "none"}), ${pay.unknown} outcome unknown, ${pay.unanswered} unanswered`,
      `restarts to ready (median / max): ${[...restartMs]
        .map(([svc, ms]) => {
          const sorted = [...ms].sort((x, y) => x - y);
          return `${svc} ${((sorted[Math.floor(sorted.length / 2)] ?? 0) / 1000).toFixed(1)} / ${((sorted[sorted.length - 1] ?? 0) / 1000).toFixed(1)} s (${ms.length})`;
        })
        .join(", ")}`,
      `memory peaks: ${[...peaks]
        .sort()
        .map(([p, b]) => `${p} ${(b / 2 ** 20).toFixed(0)} MiB`)
        .join(", ")}`,
      `processes that exited on their own: ${crashes.length}`,
      ...crashes.map((c) => `  ${c.replace(/\n/g, "\n    ")}`),
      `lab directory ${net.dir}`,
    ];
    for (const l of summary) log(l);
    return {
      seed,
      durationMs,
      record,
      invariants,
      ok: invariants.every((i) => i.ok),
      kills,
      postgresRestarts: pgRestarts,
      natsRestarts,
      drops,
      connectionsCut: cut,
      signerStops,
      takeovers,
      payments: pay,
      crashes,
      dir: net.dir,
    };
  } finally {
    await pool?.end().catch(() => undefined);
    for (const p of proxies) await p.close().catch(() => undefined);
    await net.cleanup();
  }
}
