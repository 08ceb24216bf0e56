/**
 * Log hygiene of the processes: the signer (with a known seed key) and the channel service (with
 * a known admin token) run against Postgres (a role with a known password in both URLs) and NATS; the control
 * API answers a good request, a bad token, an unknown route and a bad body. Every stderr line but
 * the ready line is one JSON record naming its service, every API line carries the request id, and
 * no line holds the token, the seed key or the password.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { connect, type NatsConnection } from "nats";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The signer's test certificates, and the chain stream the watchtower would create.
import { makePems, TEST_CLIENTS_ENV, type Pems } from "../../signer/test/helpers.js";
import { ensureChainStream } from "../../watchtower/src/streams.js";
import { testDatabaseUrl, testDatabaseUrlAs, testNatsUrl } from "@ln/testkit";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const run = randomBytes(4).toString("hex");
const SEED_KEY = randomBytes(32).toString("hex");
const TOKEN = `tok_${randomBytes(24).toString("base64url")}`;
const WRONG_TOKEN = `tok_${randomBytes(24).toString("base64url")}`;
const DB_PASSWORD = `pw${randomBytes(8).toString("hex")}`;
// The services log in as a role of their own with a known password (created below), so the
// password is really used whether the test Postgres trusts local users or asks for passwords.
const DB_ROLE = `log_role_${run}`;
const DATABASE_URL = testDatabaseUrlAs(DB_ROLE, DB_PASSWORD);
const SECRETS = [SEED_KEY, TOKEN, WRONG_TOKEN, DB_PASSWORD];
const prefix = `t${run}.log`;
const stream = `T${run}_LOG_CHAIN`;
const schemas = { signer: `log_signer_${run}`, channel: `log_channel_${run}` };

interface Proc {
  child: ChildProcess;
  stdout: string[];
  stderr: string[];
  exit: Promise<number | null>;
}

function start(service: "signer" | "channel", env: Record<string, string>): Proc {
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=source", `services/${service}/src/main.ts`],
    {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env["PATH"] ?? "", ...env },
    },
  );
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.setEncoding("utf8").on("data", (d: string) => void stdout.push(d));
  child.stderr?.setEncoding("utf8").on("data", (d: string) => void stderr.push(d));
  return { child, stdout, stderr, exit: once(child, "exit").then(([code]) => code as number | null) };
}

/** The stderr text in whole lines (a chunk may end mid-line). */
const linesOf = (p: Proc): string[] => p.stderr.join("").split("\n");

async function readyOf(p: Proc, service: string): Promise<Record<string, unknown>> {
  const head = `${service}: ready `;
  const end = Date.now() + 60_000;
  for (;;) {
    // The signer's ready line is on stdout, the channel service's on stderr (as the lab reads both).
    const line = [...p.stdout, ...p.stderr]
      .join("")
      .split("\n")
      .find((l) => l.startsWith(head));
    if (line) return JSON.parse(line.slice(head.length)) as Record<string, unknown>;
    if (Date.now() > end || p.child.exitCode !== null)
      throw new Error(`${service} is not ready:\n${p.stderr.join("")}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let pems: Pems;
let nc: NatsConnection;
const procs: Proc[] = [];

beforeAll(async () => {
  pems = makePems();
  writeFileSync(join(pems.dir, "seed.key"), SEED_KEY, { mode: 0o600 });
  const admin = new pg.Client({ connectionString: testDatabaseUrl() });
  await admin.connect();
  try {
    await admin.query(`CREATE ROLE "${DB_ROLE}" LOGIN PASSWORD '${DB_PASSWORD}'`);
    const db = (await admin.query<{ db: string }>("SELECT current_database() AS db")).rows[0]?.db ?? "";
    await admin.query(`GRANT CREATE ON DATABASE "${db}" TO "${DB_ROLE}"`);
  } finally {
    await admin.end();
  }
  nc = await connect({ servers: testNatsUrl() });
  await ensureChainStream(await nc.jetstreamManager(), stream, `${prefix}.chain`);
});

afterAll(async () => {
  for (const p of procs)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  await (await nc.jetstreamManager()).streams.delete(stream).catch(() => false);
  await nc.drain();
  const admin = new pg.Client({ connectionString: testDatabaseUrl() });
  await admin.connect();
  try {
    for (const s of Object.values(schemas)) await admin.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    // DROP OWNED also revokes the role's grants (CREATE on the database), so the role can go.
    await admin.query(`DROP OWNED BY "${DB_ROLE}"`);
    await admin.query(`DROP ROLE IF EXISTS "${DB_ROLE}"`);
  } finally {
    await admin.end();
  }
  rmSync(pems.dir, { recursive: true, force: true });
});

describe("the processes' logs", () => {
  it("are JSON lines with the service, request ids on API lines, and no secret", async () => {
    const signer = start("signer", {
      SIGNER_DATABASE_URL: DATABASE_URL,
      SIGNER_DATABASE_SCHEMA: schemas.signer,
      SIGNER_LISTEN: "127.0.0.1:0",
      SIGNER_TLS_CA: join(pems.dir, "ca.crt"),
      SIGNER_TLS_CERT: join(pems.dir, "server.crt"),
      SIGNER_TLS_KEY: join(pems.dir, "server.key"),
      SIGNER_SEED_FILE: join(pems.dir, "seed.bin"),
      SIGNER_SEED_KEY_FILE: join(pems.dir, "seed.key"),
      SIGNER_CLIENTS: TEST_CLIENTS_ENV,
    });
    procs.push(signer);
    const signerPort = (await readyOf(signer, "signer"))["port"] as number;

    const channel = start("channel", {
      CHANNEL_DATABASE_URL: DATABASE_URL,
      CHANNEL_DATABASE_SCHEMA: schemas.channel,
      LN_PREFIX: prefix,
      NATS_URL: testNatsUrl(),
      SIGNER_ADDR: `127.0.0.1:${signerPort}`,
      SIGNER_CLIENT_CA: join(pems.dir, "ca.crt"),
      SIGNER_CLIENT_CERT: join(pems.dir, "client.crt"),
      SIGNER_CLIENT_KEY: join(pems.dir, "client.key"),
      SIGNER_SERVERNAME: "localhost",
      CHANNEL_API_LISTEN: "127.0.0.1:0",
      CHANNEL_OPS_LISTEN: "127.0.0.1:0",
      CHANNEL_ADMIN_TOKEN: TOKEN,
      CHANNEL_REPLICA_ID: `log-${run}`,
    });
    procs.push(channel);
    const ready = await readyOf(channel, "channel");
    const api = ready["api"] as string;
    const ops = ready["ops"] as string;
    expect(ops).not.toBe(api);

    const call = (path: string, token: string, init: RequestInit = {}): Promise<Response> =>
      fetch(`${api}${path}`, {
        ...init,
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json", ...init.headers },
      });
    const ok = await call("/v1/info", TOKEN, { headers: { "x-request-id": `req-${run}` } });
    expect(ok.status).toBe(200);
    // The server names each request itself; a caller's X-Request-Id is not its id.
    const okId = ok.headers.get("x-request-id");
    expect(okId).toMatch(/^[0-9a-f-]{36}$/);
    expect((await call("/v1/info", WRONG_TOKEN)).status).toBe(401);
    expect((await call("/v1/nowhere", TOKEN)).status).toBe(404);
    expect(
      (await call("/v1/channels", TOKEN, { method: "POST", body: `{"preimage":"${SEED_KEY}"}` })).status,
    ).toBe(400);
    // /metrics is on the ops port only: not on the API's, even with a token.
    const metrics = await fetch(`${ops}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(
      /^channel_api_requests_total\{method="GET",route="\/v1\/info",status="200",service="channel"\} 1$/m,
    );
    expect((await call("/metrics", TOKEN)).status).toBe(404);
    expect((await fetch(`${ops}/readyz`)).status).toBe(200);

    channel.child.kill("SIGTERM");
    expect(await channel.exit).toBe(0);
    signer.child.kill("SIGTERM");
    expect(await signer.exit).toBe(0);

    for (const [service, p] of [
      ["signer", signer],
      ["channel", channel],
    ] as const) {
      const text = p.stderr.join("") + p.stdout.join("");
      for (const s of SECRETS) expect(text).not.toContain(s);
      const lines = linesOf(p).filter((l) => l !== "" && !l.startsWith(`${service}: ready `));
      expect(lines.length).toBeGreaterThan(1);
      for (const l of lines) {
        const r = JSON.parse(l) as Record<string, unknown>;
        expect(r).toMatchObject({
          service,
          level: expect.any(String),
          time: expect.any(String),
          msg: expect.any(String),
        });
      }
    }

    const records = linesOf(channel)
      .filter((l) => l.startsWith("{"))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const apiLines = records.filter((r) => "req" in r || "res" in r || r["msg"] === "request completed");
    // Five requests, each logged on arrival and on completion, each line with its request id.
    expect(apiLines.length).toBeGreaterThanOrEqual(10);
    for (const r of apiLines) expect(r["reqId"]).toEqual(expect.any(String));
    expect(apiLines.filter((r) => r["reqId"] === okId)).toHaveLength(2);
    expect(apiLines.filter((r) => r["reqId"] === `req-${run}`)).toHaveLength(0);
    expect(JSON.stringify(apiLines)).not.toMatch(/authorization/i);
    expect(new Set(apiLines.map((r) => r["reqId"])).size).toBe(5);
  }, 120_000);

  it("refuse to start on a bad LOG_LEVEL, saying so in one JSON line", async () => {
    const p = start("signer", { LOG_LEVEL: "loud", SIGNER_SEED_KEY_FILE: join(pems.dir, "seed.key") });
    procs.push(p);
    expect(await p.exit).toBe(1);
    const lines = linesOf(p).filter((l) => l !== "");
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({
      level: "fatal",
      service: "signer",
      msg: expect.stringMatching(/^LOG_LEVEL must be one of/),
    });
  }, 30_000);
});
