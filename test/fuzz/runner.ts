/**
 * The fuzz runner: for each target, a seeded stream of inputs (corpus items mutated, fresh
 * generated ones, the corpus itself), each classified as accepted, a typed rejection, or a crash
 * (anything else thrown, a failed property, an input that hangs). Crashes are written to disk.
 */
import { createHash } from "node:crypto";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { mutateBytes, mutateProto } from "./mutate.js";
import { hashName, Rng } from "./rng.js";
import type { Target, TargetSpec, Verdict } from "./target.js";

export interface Crash {
  target: string;
  signature: string;
  file: string | undefined;
  error: string;
}

export interface TargetReport {
  name: string;
  inputs: number;
  accepted: number;
  rejections: Record<string, number>;
  crashes: number;
  seconds: number;
  perSecond: number;
}

export interface FuzzOptions {
  inputs: number;
  seed: number;
  specs: readonly TargetSpec[];
  /** Where crashing inputs go; undefined: not written (the short form in tests). */
  crashDir?: string;
  log?: (line: string) => void;
  progressMs?: number;
  /** An input taking longer than this is a crash (an infinite-loop guard); 0: off. */
  slowMs?: number;
  /** Stop the run after this many distinct crashes. */
  maxCrashes?: number;
  /** Set `stopped` to end the run early, with a report of what ran (main.ts: on SIGINT, SIGTERM). */
  stop?: { stopped: boolean };
}

export interface FuzzReport {
  seed: number;
  total: number;
  seconds: number;
  targets: TargetReport[];
  crashes: Crash[];
}

/** Inputs per target, split by weight (every target gets at least one). */
export function split(inputs: number, specs: readonly TargetSpec[]): Map<string, number> {
  const total = specs.reduce((s, t) => s + t.weight, 0);
  const out = new Map<string, number>();
  for (const t of specs) out.set(t.name, Math.max(1, Math.round((inputs * t.weight) / total)));
  return out;
}

/** Runs one input and classifies it. */
export async function runOne(
  t: Target,
  input: Buffer,
): Promise<{ kind: "accepted" } | { kind: "rejected"; label: string } | { kind: "crash"; error: unknown }> {
  try {
    const r: Verdict | Promise<Verdict> = t.run(input);
    const v = r instanceof Promise ? await r : r;
    return v.accepted ? { kind: "accepted" } : { kind: "rejected", label: v.rejection };
  } catch (e) {
    const label = t.typed(e);
    return label === undefined ? { kind: "crash", error: e } : { kind: "rejected", label };
  }
}

const POOL_MAX = 4000;

/** The next input of a target's stream. */
function nextInput(rng: Rng, t: Target, pool: Buffer[]): { input: Buffer; mutated: boolean } {
  const fresh = t.freshPercent ?? 5;
  const r = rng.below(100);
  if (r < fresh) return { input: t.generate ? t.generate(rng) : rng.bytes(rng.size(400)), mutated: false };
  const base = rng.pick(pool);
  if (r < fresh + 3) return { input: base, mutated: false };
  let b = base;
  const n = 1 + rng.below(rng.chance(0.7) ? 2 : 6);
  for (let i = 0; i < n; i++) {
    let m: Buffer | undefined;
    if (t.protoFrom !== undefined && rng.chance(0.5) && b.length >= t.protoFrom) {
      const inner = mutateProto(rng, b.subarray(t.protoFrom));
      if (inner) m = Buffer.concat([b.subarray(0, t.protoFrom), inner]);
    }
    b = m ?? mutateBytes(rng, b, pool);
  }
  return { input: b, mutated: true };
}

export function errorSignature(e: unknown): string {
  if (e instanceof Error) {
    const frame = (e.stack ?? "").split("\n").find((l) => l.trim().startsWith("at ")) ?? "";
    return `${e.name}: ${e.message.replace(/[0-9a-f]{8,}/g, "X").replace(/\d+/g, "N")} ${frame.trim()}`.slice(
      0,
      300,
    );
  }
  return `non-Error thrown: ${typeof e}`;
}

const describe = (e: unknown): string => (e instanceof Error ? (e.stack ?? e.message) : String(e));

export function crashFileName(target: string, input: Buffer): string {
  return `${target}-${createHash("sha256").update(input).digest("hex").slice(0, 8)}.bin`;
}

interface Running {
  t: Target;
  n: number;
  rng: Rng;
  pool: Buffer[];
  rep: TargetReport;
  ms: number;
}

/** Rounds the run is cut into: every target gets its share of each, so a stopped run covered all. */
const ROUNDS = 200;

export async function runFuzz(o: FuzzOptions): Promise<FuzzReport> {
  const log = o.log ?? ((l: string) => console.log(l));
  const progressMs = o.progressMs ?? 10_000;
  const counts = split(o.inputs, o.specs);
  const crashes: Crash[] = [];
  const seen = new Set<string>();
  log(
    `fuzz: seed ${o.seed}, ${o.inputs} inputs: ` +
      o.specs.map((s) => `${s.name} ${counts.get(s.name) ?? 0}`).join(", "),
  );
  const running: Running[] = [];
  for (const spec of o.specs) {
    const t = await spec.create();
    running.push({
      t,
      n: counts.get(spec.name) ?? 0,
      // Each target's stream depends only on the seed and its name: the same with FUZZ_TARGETS.
      rng: new Rng(o.seed, hashName(spec.name)),
      pool: [...t.corpus],
      rep: { name: t.name, inputs: 0, accepted: 0, rejections: {}, crashes: 0, seconds: 0, perSecond: 0 },
      ms: 0,
    });
  }
  const started = performance.now();
  let lastProgress = started;
  const total = (): number => running.reduce((s, r) => s + r.rep.inputs, 0);
  const enough = (): boolean =>
    (o.maxCrashes !== undefined && crashes.length >= o.maxCrashes) || o.stop?.stopped === true;
  // Typed rejections are thrown by the thousand: no stack traces while fuzzing (a fifth of the
  // time of a cheap decoder). A crash is run again with them, for its report.
  const stackLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    for (let round = 1; round <= ROUNDS && !enough(); round++) {
      for (const run of running) {
        const { t, rng, pool, rep } = run;
        const until = Math.ceil((run.n * round) / ROUNDS);
        const t0 = performance.now();
        while (rep.inputs < until && !enough()) {
          const { input, mutated } = nextInput(rng, t, pool);
          const before = o.slowMs ? performance.now() : 0;
          let r = await runOne(t, input);
          if (o.slowMs && r.kind !== "crash" && performance.now() - before > o.slowMs)
            r = { kind: "crash", error: new Error(`input took over ${o.slowMs} ms (a loop without bound?)`) };
          rep.inputs++;
          if (r.kind === "accepted") {
            rep.accepted++;
            // Accepted mutants join the pool: later mutations start from inputs past the first checks.
            if (mutated && rng.chance(0.05)) {
              if (pool.length < POOL_MAX) pool.push(input);
              else pool[t.corpus.length + rng.below(POOL_MAX - t.corpus.length)] = input;
            }
          } else if (r.kind === "rejected") rep.rejections[r.label] = (rep.rejections[r.label] ?? 0) + 1;
          else {
            rep.crashes++;
            Error.stackTraceLimit = stackLimit;
            const again = await runOne(t, input);
            Error.stackTraceLimit = 0;
            if (again.kind === "crash") r = again;
            const signature = errorSignature(r.error);
            if (!seen.has(signature)) {
              seen.add(signature);
              let file: string | undefined;
              if (o.crashDir) {
                mkdirSync(o.crashDir, { recursive: true });
                file = join(o.crashDir, crashFileName(t.name, input));
                writeFileSync(file, input);
              }
              crashes.push({ target: t.name, signature, file, error: describe(r.error) });
              log(`CRASH in ${t.name}: ${describe(r.error)}`);
              log(`  input (${input.length} bytes): ${input.toString("hex").slice(0, 400)}`);
              if (file) log(`  replay: FUZZ_REPLAY=${file} pnpm fuzz`);
            }
          }
          if ((rep.inputs & 1023) === 0) {
            // Let signals and timers in (a stop request), and say how far we are.
            await new Promise((resolve) => setImmediate(resolve));
            const now = performance.now();
            if (now - lastProgress >= progressMs) {
              lastProgress = now;
              const secs = (now - started) / 1000;
              log(
                `  ... ${secs.toFixed(0)} s: ${total()} of ${o.inputs} inputs (${Math.round(total() / secs)}/s), ` +
                  `${crashes.length} crashes; ` +
                  running.map((x) => `${x.t.name} ${x.rep.inputs}`).join(", "),
              );
            }
          }
        }
        run.ms += performance.now() - t0;
      }
    }
  } finally {
    Error.stackTraceLimit = stackLimit;
  }
  for (const run of running) {
    run.rep.seconds = run.ms / 1000;
    run.rep.perSecond = Math.round(run.rep.inputs / Math.max(run.rep.seconds, 1e-6));
    log(formatTarget(run.rep));
  }
  const seconds = (performance.now() - started) / 1000;
  const done = total();
  log(
    `fuzz: ${done} inputs in ${seconds.toFixed(1)} s (${Math.round(done / seconds)}/s), ` +
      `${crashes.length} distinct crashes, seed ${o.seed}${o.stop?.stopped ? " (stopped early)" : ""}`,
  );
  return { seed: o.seed, total: done, seconds, targets: running.map((r) => r.rep), crashes };
}

export function formatTarget(r: TargetReport): string {
  const rej = Object.entries(r.rejections)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k} ${v}`)
    .join(", ");
  return (
    `${r.name}: ${r.inputs} inputs, ${r.accepted} accepted, ${r.crashes} crashes, ` +
    `${r.seconds.toFixed(1)} s (${r.perSecond}/s)\n    rejections: ${rej || "none"}`
  );
}
