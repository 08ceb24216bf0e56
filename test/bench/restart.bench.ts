/**
 * pnpm bench:restart — the payments bench's restart phase alone (restart.ts): nodes A and B, one
 * A→B channel with a few payments on it, then A's channel service restarted with BENCH_RESTART_CHANNELS
 * (default 10,000) channels cloned from that channel's stored state, timed until ready.
 *
 *   pnpm bench:restart
 *
 * Environment: as the lab (DATABASE_URL, NATS_URL, LAB_DIR), plus BENCH_RESTART_CHANNELS and
 * BENCH_KEEP_LOGS=1 (keep the services' log files). Figures only: nothing asserts on timing.
 */
import { join } from "node:path";
import { errText, Network } from "../lab/network.js";
import { restartPhase } from "./restart.js";

const CHANNELS = Number(process.env["BENCH_RESTART_CHANNELS"] ?? "10000");
const KEEP_LOGS = process.env["BENCH_KEEP_LOGS"] === "1";
const PAYMENTS = 3;

const log = (line: string): void => console.log(`[bench] ${line}`);

async function main(): Promise<number> {
  const net = new Network({ nodes: ["A", "B"], log });
  let interrupted = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) process.exit(130);
    interrupted = true;
    console.error(`[bench] ${sig}: cleaning up (again to force)`);
    void net.cleanup({ removeDir: !KEEP_LOGS }).then(() => process.exit(130));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  let ok = false;
  try {
    log("starting regtest, Postgres, NATS, then nodes A and B");
    await net.start();
    const [A, B] = [net.node("A"), net.node("B")];
    await net.fund([A], 10_000_000n);
    await net.connect(A, B);
    await net.open(A, B, 4_000_000n);
    // A few payments, so the cloned state has commitments past the first (the signer check compares them).
    for (let i = 0; i < PAYMENTS; i++) await net.pay(A, B, 1_000_000n);
    const figures = await restartPhase(net, A, log, CHANNELS);
    console.log(
      [
        "============================================================",
        ...figures.lines,
        "(figures only; nothing is asserted on timing; the machine may be shared)",
        "============================================================",
      ].join("\n"),
    );
    ok = true;
    return 0;
  } catch (e) {
    console.error(`[bench] FAILED: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    for (const name of net.supervisor.names().filter((n) => n.endsWith(".channel"))) {
      const lines = net.supervisor.lastLines(name).slice(-8);
      if (lines.length > 0) console.error(`[bench] last lines of ${name}:\n    ${lines.join("\n    ")}`);
    }
    return 1;
  } finally {
    await net.cleanup({ removeDir: ok && !KEEP_LOGS });
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
