/**
 * The short chaos run (issue 18) inside the README's test command: the long run's network and
 * faults (SIGKILLs of every kind of service, Postgres and NATS restarts, dropped peer connections,
 * a stopped signer, replica takeovers) with about 30 kills over a few minutes, from a fixed seed
 * (printed; `CHAOS_SEED=<it> pnpm chaos` with the same CHAOS_SECONDS/CHAOS_KILLS/CHAOS_PAYERS
 * replays the schedule). Every invariant must hold; a broken one prints its figure and violations.
 */
import { describe, expect, it } from "vitest";
import { runChaos } from "./chaos.js";

const SEED = 20261203;

// Behind a flag (CHAOS_SHORT=1) until it has passed repeatedly: the channel failures it found (a
// peer's pkts re-applied after a reconnect, a write lost in a Postgres restart) are fixed, and one
// run of this seed after the fixes held every invariant, but one run is not yet a guarantee, and
// the form takes ~7 min on two cores, past the suite's budget.
describe.runIf(process.env["CHAOS_SHORT"] === "1")("chaos (short form)", () => {
  it("every invariant holds after ~30 kills, restarts of Postgres and NATS, drops and a stopped signer", async () => {
    const report = await runChaos({
      seed: SEED,
      seconds: 150,
      kills: 30,
      payers: 8,
      postgresRestarts: 1,
      natsRestarts: 1,
      drops: 3,
      signerStops: 1,
    });
    expect(report.record.requests.length).toBeGreaterThan(0);
    for (const r of report.invariants)
      expect(r.ok, `${r.name}: ${r.figure}\n${r.violations.join("\n")}`).toBe(true);
    // Each kind of fault happened (the schedule is the seed's; a skipped fault is a runner bug).
    expect([...report.kills.values()].reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(25);
    expect(report.postgresRestarts).toBe(1);
    expect(report.natsRestarts).toBe(1);
    expect(report.drops).toBe(3);
    expect(report.signerStops).toBe(1);
  }, 1_800_000);
});
