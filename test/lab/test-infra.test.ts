/**
 * The README's test command needs nothing set up (issue 18): where nothing answers at DATABASE_URL
 * and NATS_URL, the run's global setup (test/global-setup.ts) starts an embedded Postgres and a
 * nats-server with JetStream, the tests use them, and teardown stops them. Proved on a child
 * vitest run of two small files, one on Postgres and one on NATS, pointed at closed ports.
 */
import { spawn } from "node:child_process";
import net from "node:net";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../..");
const FILES = ["packages/postgres/test/postgres.test.ts", "services/watchtower/test/streams.test.ts"];

/** Whether something accepts TCP connections on 127.0.0.1:port. */
function listening(port: number): Promise<boolean> {
  return new Promise((done) => {
    const s = net.connect(port, "127.0.0.1");
    s.once("connect", () => {
      s.destroy();
      done(true);
    });
    s.once("error", () => done(false));
  });
}

describe("the test run's own infrastructure", () => {
  it("starts Postgres and nats-server when the configured ones do not answer, and stops them after", async () => {
    // This worker's environment is vitest's; the child is a fresh run with only the closed URLs.
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env))
      if (v !== undefined && !/^(VITEST|TEST$|NODE_ENV$|FORCE_)/.test(k)) env[k] = v;
    env["NO_COLOR"] = "1";
    env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:1/none";
    env["NATS_URL"] = "nats://127.0.0.1:1";
    const child = spawn("npx", ["vitest", "run", ...FILES], {
      cwd: ROOT,
      env,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => void (out += d));
    child.stderr.setEncoding("utf8").on("data", (d: string) => void (out += d));
    const code = await new Promise<number | null>((done) => child.once("exit", (c) => done(c)));

    expect(code, out).toBe(0);
    expect(out).toContain("started its own Postgres for this run (embedded)");
    expect(out).toContain("started its own nats-server for this run (spawned)");
    expect(out).toMatch(/Test Files\s+2 passed \(2\)/);
    // Teardown stopped both: their ports no longer answer.
    const pgPort = /embedded Postgres answers at postgres:\/\/[^@]+@127\.0\.0\.1:(\d+)\//.exec(out)?.[1];
    const natsPort = /nats-server answers at nats:\/\/127\.0\.0\.1:(\d+)/.exec(out)?.[1];
    expect(pgPort, out).toBeDefined();
    expect(natsPort, out).toBeDefined();
    expect(await listening(Number(pgPort))).toBe(false);
    expect(await listening(Number(natsPort))).toBe(false);
  }, 90_000);
});
