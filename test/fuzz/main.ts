/**
 * `pnpm fuzz`: every target a peer or the chain can reach, fed generated and mutated inputs.
 *   FUZZ_INPUTS   total inputs (default 10,000,000), split across targets by weight
 *   FUZZ_SEED     the run's seed (default random; always printed: the same seed replays the run)
 *   FUZZ_TARGETS  a comma list of target names (default all)
 *   FUZZ_REPLAY   a crash file (test-results/fuzz-crashes/<target>-<hash>.bin): runs that input alone
 */
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { runFuzz, runOne } from "./runner.js";
import { selectTargets, TARGETS } from "./targets/index.js";

const CRASH_DIR = "test-results/fuzz-crashes";

async function replay(file: string): Promise<number> {
  const m = /^(.+)-[0-9a-f]{8}\.bin$/.exec(basename(file));
  const spec = TARGETS.find((t) => t.name === m?.[1]);
  if (!spec) throw new Error(`${file}: not <target>-<hash>.bin of a known target`);
  const t = await spec.create();
  const r = await runOne(t, readFileSync(file));
  if (r.kind === "crash") {
    console.log(`${spec.name}: CRASH`);
    console.log(r.error instanceof Error ? (r.error.stack ?? r.error.message) : String(r.error));
    return 1;
  }
  console.log(`${spec.name}: ${r.kind === "accepted" ? "accepted" : `rejected (${r.label})`}`);
  return 0;
}

function intFromEnv(name: string, fallback: number): number {
  const v = process.env[name];
  if (v === undefined || v === "") return fallback;
  const n = Number(v.replaceAll("_", ""));
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name}=${v}: not a non-negative integer`);
  return n;
}

async function main(): Promise<number> {
  const file = process.env["FUZZ_REPLAY"];
  if (file) return replay(file);
  const seed = intFromEnv("FUZZ_SEED", randomInt(0x1_0000_0000 - 1));
  const inputs = intFromEnv("FUZZ_INPUTS", 10_000_000);
  const specs = selectTargets(process.env["FUZZ_TARGETS"]);
  console.log(`fuzz: FUZZ_SEED=${seed} (set it to replay this run)`);
  for (const s of specs) console.log(`  ${s.name} (weight ${s.weight}): ${s.what}`);
  // Interrupted, the run ends at once with its report: how far it got, per target.
  const stop = { stopped: false };
  for (const sig of ["SIGINT", "SIGTERM"] as const)
    process.once(sig, () => {
      console.log(`fuzz: ${sig}, stopping`);
      stop.stopped = true;
    });
  const report = await runFuzz({ inputs, seed, specs, crashDir: CRASH_DIR, slowMs: 5000, stop });
  if (report.crashes.length > 0) {
    console.log(`\n${report.crashes.length} distinct crashes (seed ${seed}):`);
    for (const c of report.crashes)
      console.log(`  ${c.target}: ${c.signature}\n    FUZZ_REPLAY=${c.file ?? "?"} pnpm fuzz`);
    return 1;
  }
  return 0;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(2);
  },
);
