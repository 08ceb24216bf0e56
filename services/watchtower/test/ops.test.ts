/**
 * The watchtower process's operator surface (WATCHTOWER_OPS_LISTEN) against a real regtest node,
 * NATS JetStream and Postgres: a mined block raises watchtower_chain_height and counts a
 * connected block and its event, a reorg counts a disconnected block, broadcasts are counted by
 * outcome and the node's refusals as RPC errors; the chain lag is 0 once caught up, and the
 * Postgres and NATS error counters are there at 0. Also WATCHTOWER_OPS_LISTEN in the configuration.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { startRegtest, type Regtest } from "@ln/regtest";
import { Transaction } from "bitcoinjs-lib";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import pg from "pg";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
import { broadcastTx } from "../../channel/src/onchain/chain-requests.js";
import { loadConfig } from "../src/config.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const run = randomBytes(4).toString("hex");
const LN_PREFIX = `wtops_${run}`;
const PREFIX = `${LN_PREFIX}.chain`;
const STREAM = `WTOPS_${run.toUpperCase()}_CHAIN`;
const SCHEMA = `watchtower_ops_${run}`;
const DB = testDatabaseUrl();

describe("WATCHTOWER_OPS_LISTEN", () => {
  const full = {
    WATCHTOWER_DATABASE_URL: "postgres://watchtower@db/ln",
    BITCOIN_RPC_URL: "http://127.0.0.1:8332",
    LN_PREFIX: "lab.a",
  };
  it("is optional, host:port with port 0 allowed, a bad one reported with the other problems", () => {
    expect(loadConfig(full).opsListen).toBeUndefined();
    expect(loadConfig({ ...full, WATCHTOWER_OPS_LISTEN: "0.0.0.0:9102" }).opsListen).toEqual({
      host: "0.0.0.0",
      port: 9102,
    });
    expect(loadConfig({ ...full, WATCHTOWER_OPS_LISTEN: "127.0.0.1:0" }).opsListen).toEqual({
      host: "127.0.0.1",
      port: 0,
    });
    expect(() => loadConfig({ ...full, WATCHTOWER_OPS_LISTEN: ":9102", LN_PREFIX: "" })).toThrow(
      /LN_PREFIX is not set[\s\S]*WATCHTOWER_OPS_LISTEN must be host:port/,
    );
  });
});

describe("the watchtower process's /metrics", () => {
  const pool = new pg.Pool({ connectionString: DB, max: 2 });
  let rt: Regtest;
  let nc: NatsConnection;
  let jsm: JetStreamManager;
  let child: ChildProcess | undefined;
  let stdout = "";
  let stderr = "";

  beforeAll(async () => {
    rt = await startRegtest();
    nc = await connect({ servers: testNatsUrl() });
    jsm = await nc.jetstreamManager();
  }, 60_000);
  afterAll(async () => {
    child?.kill("SIGKILL");
    await jsm?.streams.delete(STREAM).catch(() => undefined);
    await nc?.close();
    await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
    await pool.end();
    await rt?.stop();
  });
  beforeEach(() => onTestFailed(() => console.log(`the process's stderr:\n${stderr}`)));

  /**
   * Until `cond` holds, or the process has exited (then it never will). No deadline of its own: on
   * a busy machine the process's start through tsx takes most of any fixed budget; the test's
   * timeout bounds the wait, and a failing test prints the process's stderr.
   */
  async function until(cond: () => Promise<boolean>, what: string): Promise<void> {
    while (!(await cond())) {
      if (child !== undefined && (child.exitCode !== null || child.signalCode !== null))
        throw new Error(`the process exited before ${what}; stderr:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it("moves with the chain, the broadcasts and the node's errors", async () => {
    child = spawn(
      process.execPath,
      ["--import", "tsx", "--conditions=source", "services/watchtower/src/main.ts"],
      {
        cwd: ROOT,
        env: {
          PATH: process.env["PATH"],
          WATCHTOWER_DATABASE_URL: DB,
          WATCHTOWER_DATABASE_SCHEMA: SCHEMA,
          BITCOIN_RPC_URL: rt.url,
          BITCOIN_RPC_USER: rt.user,
          BITCOIN_RPC_PASSWORD: rt.password,
          NATS_URL: testNatsUrl(),
          LN_PREFIX,
          WATCHTOWER_STREAM: STREAM,
          WATCHTOWER_POLL_MS: "100",
          WATCHTOWER_OPS_LISTEN: "127.0.0.1:0",
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    await until(() => Promise.resolve(/^watchtower: ready /m.test(stdout)), "the ready line");
    const ready = JSON.parse(/^watchtower: ready (.*)$/m.exec(stdout)?.[1] ?? "{}") as {
      height: number;
      stream: string;
      ops: string;
    };
    expect(ready).toEqual({
      height: rt.height(),
      stream: STREAM,
      justice: false,
      ops: expect.stringMatching(/^http:\/\/127\.0\.0\.1:\d+$/),
    });

    const scrape = async (): Promise<string> => {
      const r = await fetch(`${ready.ops}/metrics`);
      expect(r.status).toBe(200);
      return r.text();
    };
    const value = async (series: string): Promise<number> => {
      const line = (await scrape()).split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    };
    const HEIGHT = 'watchtower_chain_height{service="watchtower"}';
    const CONNECTED = 'watchtower_blocks_total{kind="connected",service="watchtower"}';
    const DISCONNECTED = 'watchtower_blocks_total{kind="disconnected",service="watchtower"}';
    const EVENTS = 'watchtower_events_published_total{kind="block_connected",service="watchtower"}';

    expect((await fetch(`${ready.ops}/healthz`)).status).toBe(200);
    expect((await fetch(`${ready.ops}/readyz`)).status).toBe(200);
    expect(await value(HEIGHT)).toBe(ready.height);
    const [connected0, events0, disconnected0] = [
      await value(CONNECTED),
      await value(EVENTS),
      await value(DISCONNECTED),
    ];

    // Caught up: no lag; the Postgres and NATS error counters are there, at 0.
    const LAG = 'watchtower_chain_lag_blocks{service="watchtower"}';
    let text = await scrape();
    expect(text).toMatch(/^watchtower_chain_lag_blocks\{service="watchtower"\} 0$/m);
    expect(text).toMatch(/^watchtower_postgres_errors_total\{service="watchtower"\} 0$/m);
    expect(text).toMatch(/^watchtower_nats_errors_total\{type="disconnect",service="watchtower"\} 0$/m);
    expect(text).toMatch(/^watchtower_nats_errors_total\{type="error",service="watchtower"\} 0$/m);

    await rt.mine(2);
    await until(async () => (await value(HEIGHT)) === ready.height + 2, "the height to move");
    await until(async () => (await value(LAG)) === 0, "the lag back to 0");
    expect(await value(CONNECTED)).toBe(connected0 + 2);
    expect(await value(EVENTS)).toBe(events0 + 2);

    const tip = rt.height();
    await rt.reorg(1);
    await until(async () => (await value(HEIGHT)) === tip + 1, "the reorg");
    expect(await value(DISCONNECTED)).toBe(disconnected0 + 1);
    expect(await value(CONNECTED)).toBe(connected0 + 4);

    // A transaction the node refuses (its input does not exist): rejected, one node RPC error.
    const rpcErrors0 = await value('watchtower_rpc_errors_total{kind="node",service="watchtower"}');
    const tx = new Transaction();
    tx.addInput(Buffer.alloc(32, 1), 0);
    tx.addOutput(Buffer.from("51", "hex"), 1000n);
    await expect(broadcastTx(nc, PREFIX, tx.toHex())).rejects.toMatchObject({ code: "REJECTED" });
    expect(await value('watchtower_broadcasts_total{outcome="rejected",service="watchtower"}')).toBe(1);
    expect(await value('watchtower_rpc_errors_total{kind="node",service="watchtower"}')).toBeGreaterThan(
      rpcErrors0,
    );
    text = await scrape();
    expect(text).toMatch(/^nodejs_heap_size_used_bytes\{service="watchtower"\} /m);
    expect(text).toMatch(/^watchtower_chain_lag_blocks\{service="watchtower"\} 0$/m);

    const exited = new Promise<number | null>((resolve) => child?.on("exit", (code) => resolve(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
    child = undefined;
    for (const line of stderr.trimEnd().split("\n"))
      expect(JSON.parse(line)).toMatchObject({ service: "watchtower" });
    expect(stdout.match(/watchtower: ready/g)).toHaveLength(1);
  }, 45_000);
});
