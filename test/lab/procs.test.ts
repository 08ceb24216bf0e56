import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { entryCommand, ProcessError, Supervisor } from "./procs.js";

const FAKE = "test/lab/fixtures/fake-service.ts";

describe("Supervisor", () => {
  let dir: string;
  let sup: Supervisor;
  const logs: string[] = [];
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "procs-test-"));
    sup = new Supervisor({ logDir: dir, log: (l) => logs.push(l) });
  });
  afterEach(async () => {
    await sup.stopAll(1000);
    rmSync(dir, { recursive: true, force: true });
  });

  it("resolves with the JSON of the ready line and logs the output to a file", async () => {
    const info = await sup.start("one", FAKE, { FAKE_MODE: "ready" }, { service: "fake" });
    expect(info["port"]).toBe(1234);
    expect(info["pid"]).toBe(sup.pid("one"));
    expect(sup.readyInfo("one")).toEqual(info);
    expect(sup.lastLines("one")).toContain("fake: starting in mode ready");
    expect(logs.some((l) => l.includes(join(dir, "one.log")))).toBe(true);
    await new Promise((r) => setTimeout(r, 100));
    expect(readFileSync(sup.logFile("one"), "utf8")).toContain("fake: ready {");
  });

  it("takes the service name from a services/<name>/ entry path by default", async () => {
    // No "services/" in the path: the process name is the service name.
    await expect(sup.start("fake", FAKE, {})).resolves.toMatchObject({ port: 1234 });
  });

  it("rejects with the last lines when the process exits before it is ready", async () => {
    const err = await sup
      .start("bad", FAKE, { FAKE_MODE: "exit" }, { service: "fake" })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    const pe = err as ProcessError;
    expect(pe.message).toMatch(/bad exited \(code 3\) before printing "fake: ready/);
    expect(pe.message).toContain("cannot start: FAKE_MODE=exit");
    expect(pe.lastLines).toContain("fake: cannot start: FAKE_MODE=exit");
    expect(sup.isRunning("bad")).toBe(false);
  });

  it("passes Node options before the entry, and again on a restart", async () => {
    // The process exits by itself (process.exit), so --cpu-prof writes its profile.
    const profiles = join(dir, "profiles");
    const nodeArgs = ["--cpu-prof", `--cpu-prof-dir=${profiles}`];
    const start = sup.start("prof", FAKE, { FAKE_MODE: "exit" }, { service: "fake", nodeArgs });
    await expect(start).rejects.toBeInstanceOf(ProcessError);
    await sup.exited("prof");
    const profilesOf = (): string[] => readdirSync(profiles).filter((f) => f.endsWith(".cpuprofile"));
    const first = profilesOf().length;
    expect(first).toBeGreaterThanOrEqual(1); // one per thread: tsx's loader may have its own
    await expect(sup.restart("prof")).rejects.toBeInstanceOf(ProcessError);
    await sup.exited("prof");
    expect(profilesOf().length).toBe(2 * first);
  });

  it("rejects after the ready timeout", async () => {
    const err = await sup
      .start("slow", FAKE, { FAKE_MODE: "silent" }, { service: "fake", readyTimeoutMs: 3000 })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProcessError);
    expect((err as Error).message).toMatch(/printed no "fake: ready \{\.\.\.\}" line within 3000 ms/);
  });

  it("kills with a signal, reports unexpected exits, and restarts with a new pid", async () => {
    const unexpected: string[] = [];
    const s = new Supervisor({ logDir: dir, onUnexpectedExit: (n) => unexpected.push(n) });
    try {
      const first = await s.start("k", FAKE, {}, { service: "fake" });
      const exit = await s.kill("k", "SIGKILL");
      expect(exit).toEqual({ code: null, signal: "SIGKILL" });
      expect(s.isRunning("k")).toBe(false);
      expect(unexpected).toEqual([]); // we asked for it
      const second = await s.restart("k");
      expect(second["pid"]).not.toBe(first["pid"]);
      expect(s.isRunning("k")).toBe(true);
      // An exit nobody asked for is reported.
      process.kill(s.pid("k") ?? 0, "SIGKILL");
      await s.exited("k");
      expect(unexpected).toEqual(["k"]);
    } finally {
      await s.stopAll(1000);
    }
  });

  it("stopAll sends SIGTERM, then SIGKILL after the grace period", async () => {
    await sup.start("polite", FAKE, {}, { service: "fake" });
    await sup.start("stubborn", FAKE, { FAKE_MODE: "ignore-term" }, { service: "fake" });
    const t0 = Date.now();
    await sup.stopAll(1500);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1400);
    expect(await sup.exited("polite")).toEqual({ code: null, signal: "SIGTERM" });
    expect(await sup.exited("stubborn")).toEqual({ code: null, signal: "SIGKILL" });
    expect(sup.lastLines("stubborn")).toContain("fake: ignoring SIGTERM");
  });
});

describe("entryCommand (LN_SERVICES_FROM)", () => {
  const tsx = { command: "/bin/tsx-node", prefix: ["--import", "tsx"] };
  /** A repository with one service "svc", its build `builtAt` (seconds) and its source `editedAt`. */
  const repo = (builtAt: number, editedAt: number): string => {
    const root = mkdtempSync(join(tmpdir(), "entry-test-"));
    const svc = join(root, "services", "svc");
    mkdirSync(join(svc, "src", "deep"), { recursive: true });
    mkdirSync(join(svc, "dist"), { recursive: true });
    mkdirSync(join(root, "packages"));
    writeFileSync(join(svc, "tsconfig.json"), "{}");
    writeFileSync(join(svc, "dist", "main.js"), "");
    writeFileSync(join(svc, "src", "main.ts"), "");
    writeFileSync(join(svc, "src", "deep", "part.ts"), "");
    writeFileSync(join(svc, "tsconfig.tsbuildinfo"), "");
    utimesSync(join(svc, "src", "main.ts"), 1000, 1000);
    utimesSync(join(svc, "src", "deep", "part.ts"), editedAt, editedAt);
    utimesSync(join(svc, "tsconfig.tsbuildinfo"), builtAt, builtAt);
    return root;
  };

  it("runs tsx unless told dist, and always for an entry that is not a service's main", () => {
    const root = repo(2000, 1500);
    try {
      // LN_SERVICES_FROM unset ("" here: undefined would take the test run's own environment).
      expect(entryCommand("services/svc/src/main.ts", tsx, root, "")).toEqual({
        command: "/bin/tsx-node",
        args: ["--import", "tsx", "services/svc/src/main.ts"],
      });
      expect(entryCommand("test/lab/fixtures/fake-service.ts", tsx, root, "dist").command).toBe(
        "/bin/tsx-node",
      );
      expect(entryCommand("services/svc/src/main.ts", tsx, root, "dist")).toEqual({
        command: process.execPath,
        args: [join("services", "svc", "dist", "main.js")],
      });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it("refuses a build older than a source file in a subfolder, naming the project and the fix", () => {
    const root = repo(2000, 3000);
    try {
      expect(() => entryCommand("services/svc/src/main.ts", tsx, root, "dist")).toThrow(
        /services\/svc is older than its sources; run `pnpm run build`/,
      );
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
