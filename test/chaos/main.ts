/**
 * `pnpm chaos`: the long chaos run (issue 18). Environment:
 *   CHAOS_SEED     the seed (uint32) of the fault schedule and the payers; default random, printed
 *   CHAOS_SECONDS  how long the storm runs (default 900)
 *   CHAOS_KILLS    SIGKILLs over the run (default 500)
 *   CHAOS_PAYERS   concurrent payers (default 16)
 *   LAB_DIR        where the run's directory (process logs) goes; default a temp directory
 *   CHAOS_NET_LOG=1  also print the network's own lines
 * Exit code 1 when an invariant fails (or the run breaks).
 */
import { runChaos } from "./chaos.js";

function intEnv(name: string, dflt: number | undefined, min: number, max: number): number | undefined {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return dflt;
  const v = Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    console.error(`${name} must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return v;
}

const seed = intEnv("CHAOS_SEED", undefined, 0, 2 ** 32 - 1);
const seconds = intEnv("CHAOS_SECONDS", 900, 10, 86_400) ?? 900;
const kills = intEnv("CHAOS_KILLS", 500, 0, 100_000) ?? 500;
const payers = intEnv("CHAOS_PAYERS", 16, 1, 256) ?? 16;

try {
  const report = await runChaos({
    ...(seed !== undefined ? { seed } : {}),
    seconds,
    kills,
    payers,
    ...(process.env["CHAOS_NET_LOG"] ? { netLog: (l: string) => console.log(`[net] ${l}`) } : {}),
  });
  const failed = report.invariants.filter((i) => !i.ok);
  console.log(
    failed.length === 0
      ? `[chaos] every invariant holds (seed ${report.seed})`
      : `[chaos] ${failed.length} invariant(s) broken (seed ${report.seed}): ${failed.map((i) => i.name).join(", ")}`,
  );
  process.exit(failed.length === 0 ? 0 : 1);
} catch (e) {
  console.error(`[chaos] the run broke: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  process.exit(1);
}
