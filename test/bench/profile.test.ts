import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { formatSummary, selfTimes, shortUrl, summariseDir, type CpuProfile } from "./profile.js";

// Samples at 1000, 1100, 1300, 1600, 2000 µs, end 2500: each lasts until the next (the last until endTime).
//   node 2 sign  (100 µs) + node 2 sign (400 µs)  → sign 0.5 ms
//   node 3 (idle) 200 µs; node 4 anonymous 300 µs; node 5 (garbage collector) 500 µs
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: { functionName: "(root)", url: "", lineNumber: -1 } },
    {
      id: 2,
      callFrame: {
        functionName: "sign",
        url: "file:///repo/node_modules/.pnpm/x/node_modules/@noble/curves/a.js",
        lineNumber: 9,
      },
    },
    { id: 3, callFrame: { functionName: "(idle)", url: "", lineNumber: -1 } },
    { id: 4, callFrame: { functionName: "", url: "file:///repo/services/channel/src/x.ts", lineNumber: 0 } },
    { id: 5, callFrame: { functionName: "(garbage collector)", url: "", lineNumber: -1 } },
  ],
  startTime: 900,
  endTime: 2500,
  samples: [2, 3, 4, 2, 5],
  timeDeltas: [100, 100, 200, 300, 400],
};

describe("the CPU profile summariser", () => {
  it("adds each sample's time to the next to the function on top, idle apart", () => {
    const s = selfTimes(profile, undefined, "/repo");
    expect(s.sampledMs).toBeCloseTo(1.5, 9);
    expect(s.idleMs).toBeCloseTo(0.2, 9);
    expect(s.functions.map((f) => [f.name, f.where, Number(f.ms.toFixed(3))])).toEqual([
      ["sign", "@noble/curves:10", 0.5],
      ["(garbage collector)", "", 0.5],
      ["(anonymous)", "services/channel/src/x.ts", 0.3],
    ]);
  });

  it("counts only the samples taken in the window", () => {
    const s = selfTimes(profile, { fromUs: 1100, toUs: 2000 }, "/repo");
    // the samples at 1100 (idle, 200), 1300 (anonymous, 300), 1600 (sign, 400)
    expect(s.sampledMs).toBeCloseTo(0.9, 9);
    expect(s.idleMs).toBeCloseTo(0.2, 9);
    expect(s.functions.map((f) => [f.name, Number(f.ms.toFixed(3))])).toEqual([
      ["sign", 0.4],
      ["(anonymous)", 0.3],
    ]);
  });

  it("merges the profiles of a directory and formats the top entries", () => {
    const dir = mkdtempSync(join(tmpdir(), "profile-test-"));
    try {
      writeFileSync(join(dir, "a.cpuprofile"), JSON.stringify(profile));
      writeFileSync(join(dir, "b.cpuprofile"), JSON.stringify(profile));
      writeFileSync(join(dir, "notes.txt"), "not a profile");
      const { files, summary } = summariseDir(dir, undefined, "/repo");
      expect(files).toBe(2);
      expect(summary.sampledMs).toBeCloseTo(3, 9);
      expect(summary.functions[0]?.ms).toBeCloseTo(1, 9);
      const lines = formatSummary("A.signer", summary, 2);
      expect(lines).toHaveLength(3);
      expect(lines[0]).toBe("A.signer: 3 ms busy of 3 ms sampled (0 ms idle); top 2 by self time:");
      expect(lines[1]).toContain("38.5%"); // 1 ms of 2.6 ms busy
      expect(summariseDir(join(dir, "missing")).files).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("shortens file URLs", () => {
    expect(shortUrl("node:internal/timers")).toBe("node:internal/timers");
    expect(shortUrl("file:///r/node_modules/.pnpm/pg@8/node_modules/pg/lib/client.js", "/r")).toBe("pg");
    expect(shortUrl("file:///r/packages/tx/src/a.ts", "/r")).toBe("packages/tx/src/a.ts");
  });
});
