/**
 * The short form of `pnpm fuzz` (test/fuzz/main.ts): about 100,000 inputs over every target, a
 * fixed seed. No crash, and every target ran and both accepted and rejected inputs, so the fuzz
 * cannot silently do nothing.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { runFuzz, runOne } from "./runner.js";
import { ACCEPTED, type Target, type TargetSpec } from "./target.js";
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
    // The channel core was given pkts that break each of the MUSTs channel-step checks, and answered `error`.
    const step = report.targets.find((t) => t.name === "channel-step");
    expect(Object.keys(step?.rejections ?? {}).filter((k) => k.startsWith("MUST: "))).toHaveLength(5);
    // The unknown-field rule was reached on its own, not only through the target's property.
    expect(
      report.targets.find((t) => t.name === "pkt")?.rejections["WireError:UNKNOWN_EVEN_FIELD"],
    ).toBeGreaterThan(0);
  }, 600_000);
});

describe("the runner", () => {
  // Throws a typed RangeError for the empty input and an untyped TypeError when byte 0 is zero.
  const target: Target = {
    name: "self-test",
    corpus: [Buffer.from([1, 2, 3])],
    typed: (e) => (e instanceof RangeError ? "RangeError" : undefined),
    run(b) {
      if (b.length === 0) throw new RangeError("empty");
      if (b[0] === 0) throw new TypeError("byte 0 is zero");
      return ACCEPTED;
    },
  };
  const spec: TargetSpec = { name: "self-test", weight: 1, what: "", create: () => Promise.resolve(target) };

  it("reports an untyped error as a crash, once, and writes the input for replay", async () => {
    const dir = mkdtempSync(join(tmpdir(), "fuzz-"));
    try {
      const report = await runFuzz({
        inputs: 5000,
        seed: 1,
        specs: [spec],
        crashDir: dir,
        log: () => undefined,
      });
      expect(report.crashes).toHaveLength(1);
      const crash = report.crashes[0];
      expect(crash?.signature).toMatch(/^TypeError: byte N is zero/);
      expect(crash?.file).toMatch(/self-test-[0-9a-f]{8}\.bin$/);
      const input = readFileSync(crash?.file ?? "");
      expect(input[0]).toBe(0);
      expect((await runOne(target, input)).kind).toBe("crash");
      const t = report.targets[0];
      expect(t?.crashes).toBeGreaterThanOrEqual(1);
      expect(t?.rejections["RangeError"]).toBeGreaterThan(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the same seed gives the same run", async () => {
    const run = () => runFuzz({ inputs: 3000, seed: 7, specs: [spec], log: () => undefined });
    const [a, b] = [await run(), await run()];
    expect(a.targets.map((t) => [t.accepted, t.rejections, t.crashes])).toEqual(
      b.targets.map((t) => [t.accepted, t.rejections, t.crashes]),
    );
  });
});
