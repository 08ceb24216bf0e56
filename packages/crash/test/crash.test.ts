import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import {
  armCrashPoints,
  CRASH_POINT_NAMES,
  CRASH_POINTS,
  crashPoint,
  CrashError,
  describeCrashSettings,
  parseCrashAt,
  readCrashSettings,
  serviceOf,
  type CrashSettings,
} from "../src/index.js";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..", "..");

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    if (e instanceof CrashError) return e.code;
    throw e;
  }
  return undefined;
};

afterEach(() => armCrashPoints({ at: undefined, traceFile: undefined }));

describe("the list of crash points", () => {
  it("names every point <service>.<step> after one of the four services, each with its reason", () => {
    expect(CRASH_POINT_NAMES.length).toBeGreaterThan(0);
    for (const p of CRASH_POINT_NAMES) {
      expect(p).toMatch(/^(channel|signer|peer|tower)\.[a-z_]+(\.[a-z_]+)*$/);
      expect(CRASH_POINTS[p].length).toBeGreaterThan(20);
    }
    expect(new Set(CRASH_POINT_NAMES.map(serviceOf))).toEqual(
      new Set(["channel", "signer", "peer", "tower"]),
    );
  });
});

describe("parseCrashAt", () => {
  it("is none when unset or empty", () => {
    expect(parseCrashAt(undefined)).toBeUndefined();
    expect(parseCrashAt("")).toBeUndefined();
    expect(parseCrashAt("  ")).toBeUndefined();
  });

  it("takes a point alone as its first reach, and point:nth as its nth", () => {
    expect(parseCrashAt("channel.transition.committed")).toEqual({
      point: "channel.transition.committed",
      nth: 1,
    });
    expect(parseCrashAt("signer.revealed.committed:7", "signer")).toEqual({
      point: "signer.revealed.committed",
      nth: 7,
    });
  });

  it("refuses a name that is no crash point, listing the service's points", () => {
    expect(codeOf(() => parseCrashAt("channel.transition.comitted"))).toBe("UNKNOWN_POINT");
    expect(codeOf(() => parseCrashAt("nonsense:2", "peer"))).toBe("UNKNOWN_POINT");
    const message = (() => {
      try {
        parseCrashAt("peer.typo", "peer");
      } catch (e) {
        return (e as Error).message;
      }
      return "no error";
    })();
    expect(message).toContain("peer.out.written");
    expect(message).not.toContain("signer.");
  });

  it("refuses another service's point: that process would never reach it", () => {
    expect(codeOf(() => parseCrashAt("signer.revealed.committed", "channel"))).toBe("OTHER_SERVICE");
  });

  it("refuses a count that is not a whole number from 1", () => {
    for (const bad of ["0", "-1", "1.5", "x", "", "01"])
      expect(
        codeOf(() => parseCrashAt(`peer.out.taken:${bad}`)),
        bad,
      ).toBe("BAD_COUNT");
  });
});

describe("readCrashSettings", () => {
  it("reports a bad LN_CRASH_AT as a problem of the service's configuration", () => {
    const problems: string[] = [];
    const env: Record<string, string> = { LN_CRASH_AT: "tower.nope", LN_CRASH_TRACE: "/tmp/t" };
    const s = readCrashSettings(
      (n) => env[n],
      (l) => problems.push(l),
      "tower",
    );
    expect(s).toEqual({ at: undefined, traceFile: "/tmp/t" });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain("LN_CRASH_AT");
  });

  it("reads the point and the trace file, and describes an armed process", () => {
    const env: Record<string, string> = { LN_CRASH_AT: "tower.justice.sent:2" };
    const s = readCrashSettings(
      (n) => env[n],
      (l) => expect.fail(l),
      "tower",
    );
    expect(s).toEqual({ at: { point: "tower.justice.sent", nth: 2 }, traceFile: undefined });
    expect(describeCrashSettings(s)).toContain("the 2nd time it reaches tower.justice.sent");
    expect(describeCrashSettings({ at: undefined, traceFile: undefined })).toBeUndefined();
  });
});

describe("crashPoint in this process (the kill replaced)", () => {
  const arm = (s: CrashSettings): string[] => {
    const kills: string[] = [];
    armCrashPoints(s, { kill: () => kills.push("killed") });
    return kills;
  };

  it("does nothing unarmed", () => {
    const kills = arm({ at: undefined, traceFile: undefined });
    crashPoint("channel.transition.committed");
    expect(kills).toEqual([]);
  });

  it("kills at the nth reach of the armed point only, other points not counted", () => {
    const kills = arm({ at: { point: "peer.out.taken", nth: 3 }, traceFile: undefined });
    crashPoint("peer.out.taken");
    crashPoint("peer.out.written");
    crashPoint("peer.out.taken");
    expect(kills).toEqual([]);
    crashPoint("peer.out.taken");
    expect(kills).toEqual(["killed"]);
  });

  it("appends every reached point with the pid to the trace file", () => {
    const dir = mkdtempSync(join(tmpdir(), "crash-trace-"));
    try {
      const file = join(dir, "trace");
      arm({ at: undefined, traceFile: file });
      crashPoint("signer.policy.decided");
      crashPoint("tower.records.stored");
      expect(readFileSync(file, "utf8")).toBe(
        `signer.policy.decided ${process.pid}\ntower.records.stored ${process.pid}\n`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("an armed process", () => {
  const run = (env: Record<string, string>): ReturnType<typeof spawnSync> =>
    spawnSync(
      process.execPath,
      ["--import", "tsx", "--conditions=source", join(here, "fixtures", "child.ts")],
      { cwd: root, env: { ...process.env, ...env }, encoding: "utf8", timeout: 30_000 },
    );

  it("dies by SIGKILL at the nth reach, with nothing after it run, and the reach traced", () => {
    const dir = mkdtempSync(join(tmpdir(), "crash-child-"));
    try {
      const trace = join(dir, "trace");
      const r = run({ LN_CRASH_AT: "peer.in.received:2", LN_CRASH_TRACE: trace });
      expect(r.signal).toBe("SIGKILL");
      expect(r.stdout).toBe("reaching 1\nreaching 2\n");
      const lines = readFileSync(trace, "utf8").trim().split("\n");
      expect(lines.map((l) => l.split(" ")[0])).toEqual(["peer.in.received", "peer.in.received"]);
      expect(new Set(lines.map((l) => l.split(" ")[1])).size).toBe(1);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs to the end when not armed, or armed past the reaches it makes", () => {
    for (const env of [{}, { LN_CRASH_AT: "peer.in.received:4" }, { LN_CRASH_AT: "peer.out.taken" }]) {
      const r = run(env);
      expect(r.signal, JSON.stringify(env)).toBeNull();
      expect(r.status).toBe(0);
      expect(r.stdout).toContain("done");
    }
  });

  it("refuses to start with a point it does not know, naming it", () => {
    const r = run({ LN_CRASH_AT: "peer.in.recieved" });
    expect(r.status).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain('"peer.in.recieved"');
  });
});
