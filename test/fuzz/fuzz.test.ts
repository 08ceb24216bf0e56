/**
 * The short form of `pnpm fuzz` (test/fuzz/main.ts): about 100,000 inputs over every target, a
 * fixed seed. No crash, and every target ran and both accepted and rejected inputs, so the fuzz
 * cannot silently do nothing.
 */
import { describe, expect, it } from "vitest";
import { runFuzz } from "./runner.js";
import { TARGETS } from "./targets/index.js";

const SEED = 20_261_203;
const INPUTS = 100_000;

describe(`fuzz, short form (FUZZ_SEED=${SEED} FUZZ_INPUTS=${INPUTS} pnpm fuzz replays it)`, () => {
  it("no target crashes, and each accepts some inputs and rejects others with typed errors", async () => {
    const lines: string[] = [];
    const report = await runFuzz({ inputs: INPUTS, seed: SEED, specs: TARGETS, log: (l) => lines.push(l) });
    console.log(lines.join("\n"));
    expect(report.crashes.map((c) => `${c.target}: ${c.error}`)).toEqual([]);
    expect(report.targets.map((t) => t.name)).toEqual(TARGETS.map((t) => t.name));
    for (const t of report.targets) {
      expect(t.inputs, t.name).toBeGreaterThan(0);
      expect(t.accepted, `${t.name} accepted nothing`).toBeGreaterThan(0);
      expect(t.inputs - t.accepted, `${t.name} rejected nothing`).toBeGreaterThan(0);
    }
    expect(report.total).toBeGreaterThanOrEqual(INPUTS - TARGETS.length);
  }, 600_000);
});
