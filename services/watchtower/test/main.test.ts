import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { sat, txidFromHex } from "@ln/bitcoin";
import { decodeChainEvent } from "@ln/proto";
import { startRegtest, type Regtest } from "@ln/regtest";
import { buildWalletSpend, finalizeWalletSpend, p2wpkhOutput, signDigest } from "@ln/tx";
import { networks, payments, Transaction } from "bitcoinjs-lib";
import { AckPolicy, connect, type JetStreamManager, type NatsConnection } from "nats";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, beforeEach, describe, expect, it, onTestFailed } from "vitest";
// The channel service's client of these requests, exercised against the real process.
import {
  broadcastTx,
  chainTip,
  ChainRequestError,
  watchScripts,
} from "../../channel/src/onchain/chain-requests.js";
import { chainEventSubjects } from "../src/streams.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

// The watchtower process (src/main.ts) against a real regtest node, NATS JetStream and Postgres.
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const run = randomBytes(4).toString("hex");
const LN_PREFIX = `wt_${run}`;
const PREFIX = `${LN_PREFIX}.chain`;
const STREAM = `WT_${run.toUpperCase()}_CHAIN`;
const SCHEMA = `watchtower_main_${run}`;
const DB = testDatabaseUrl();
const pool = new pg.Pool({ connectionString: DB });
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
  if (child) console.log(`stderr:\n${stderr}\nstdout:\n${stdout}`);
  child?.kill("SIGKILL");
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await pool.end();
  await rt?.stop();
});

function spawnProcess(env: Record<string, string | undefined>): ChildProcess {
  stdout = "";
  stderr = "";
  const c = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=source", "services/watchtower/src/main.ts"],
    {
      cwd: ROOT,
      env: { PATH: process.env["PATH"], ...env },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  c.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  c.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
  return c;
}

const exitOf = (c: ChildProcess): Promise<number | null> =>
  new Promise((resolve) => c.on("exit", (code) => resolve(code)));

/**
 * Until `cond` holds, or `c` has exited (then it never will). No deadline of its own: the process
 * starts through tsx, which on a busy machine takes most of any fixed budget; the test's timeout
 * bounds the wait, and a failing test prints the process's stderr (onTestFailed).
 */
async function until(c: ChildProcess, cond: () => boolean, what: string): Promise<void> {
  while (!cond()) {
    if (c.exitCode !== null || c.signalCode !== null)
      throw new Error(`the process exited before ${what}; stderr:\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function startProcess(): Promise<{ height: number; stream: string }> {
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
        WATCHTOWER_POLL_MS: "100",
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child?.on("exit", (code) => reject(new Error(`exited with ${code} before ready; stderr:\n${stderr}`)));
    child?.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString();
      const m = /^watchtower: ready (.*)$/m.exec(stdout);
      if (m?.[1] !== undefined) {
        resolve(JSON.parse(m[1]) as { height: number; stream: string });
      }
    });
  });
}

describe("watchtower process", () => {
  // Waits have no deadlines of their own (see until): what the process said explains a timeout.
  beforeEach(() => onTestFailed(() => console.log(`the process's stderr:\n${stderr}`)));

  it("serves requests, reports wallet outputs on JetStream, broadcasts, and stops on SIGTERM", async () => {
    const ready = await startProcess();
    expect(ready).toEqual({ height: rt.height(), stream: STREAM, justice: false });
    // The stream holds exactly the event subjects, never the requests.
    const info = await jsm.streams.info(STREAM);
    expect([...info.config.subjects].sort()).toEqual(chainEventSubjects(PREFIX).sort());

    expect(await chainTip(nc, PREFIX)).toMatchObject({ height: rt.height() });

    const priv = Buffer.alloc(32, 0x55);
    const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
    const pay = payments.p2wpkh({ pubkey: pub, network: networks.regtest });
    const scriptHex = Buffer.from(pay.output as Uint8Array).toString("hex");
    await watchScripts(nc, PREFIX, [scriptHex]);
    const stored = await pool.query(`SELECT script_hex FROM "${SCHEMA}".wallet_scripts`);
    expect(stored.rows).toEqual([{ script_hex: scriptHex }]);

    const funding = await rt.fund(pay.address as string, sat(120_000)); // mined in one block
    // As the channel service would: a consumer of the wallet_output subject, from the start.
    const ci = await jsm.consumers.add(STREAM, {
      ack_policy: AckPolicy.Explicit,
      filter_subject: `${PREFIX}.wallet_output`,
      inactive_threshold: 60_000_000_000,
    });
    const consumer = await nc.jetstream().consumers.get(STREAM, ci.name);
    const msg = await consumer.next({ expires: 10_000 });
    msg?.ack();
    expect(msg).not.toBeNull();
    const event = decodeChainEvent(msg?.data ?? new Uint8Array());
    expect(event).toEqual({
      kind: "wallet_output",
      txid: funding.txid,
      vout: funding.vout,
      amountSat: 120_000n,
      scriptHex,
      height: rt.height(),
      blockHash: await rt.rpc.getBestBlockHash(),
      txHex: expect.any(String),
    });
    expect(Transaction.fromHex(event.kind === "wallet_output" ? event.txHex : "").getId()).toBe(funding.txid);

    // Spend it through the watcher: the node takes it (again: idempotent), the watcher says its txid.
    const spend = buildWalletSpend(
      [
        {
          outpoint: { txid: txidFromHex(funding.txid), vout: funding.vout },
          amount: sat(120_000),
          pubkey: pub,
        },
      ],
      [],
      p2wpkhOutput(pub),
      2000,
    );
    const tx = finalizeWalletSpend(
      spend,
      spend.requests.map((r) => signDigest(priv, r.digest)),
    );
    expect(await broadcastTx(nc, PREFIX, tx.toHex())).toBe(tx.getId());
    expect(await broadcastTx(nc, PREFIX, tx.toHex())).toBe(tx.getId());
    expect(await rt.rpc.getRawMempool()).toContain(tx.getId());
    // A double spend of the same coin is the node's to refuse.
    const conflict = buildWalletSpend(
      [
        {
          outpoint: { txid: txidFromHex(funding.txid), vout: funding.vout },
          amount: sat(120_000),
          pubkey: pub,
        },
      ],
      [],
      p2wpkhOutput(pub),
      1000,
    );
    const err = await broadcastTx(
      nc,
      PREFIX,
      finalizeWalletSpend(
        conflict,
        conflict.requests.map((r) => signDigest(priv, r.digest)),
      ).toHex(),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ChainRequestError);
    expect((err as ChainRequestError).code).toBe("REJECTED");

    const exited = new Promise<number | null>((resolve) => child?.on("exit", (code) => resolve(code)));
    child?.kill("SIGTERM");
    expect(await exited).toBe(0);
    child = undefined;
    for (const line of stderr.trimEnd().split("\n"))
      expect(JSON.parse(line)).toMatchObject({ service: "watchtower" });
    expect(stderr).not.toContain(rt.password);
    expect(stdout.match(/watchtower: ready/g)).toHaveLength(1);
  });

  it("with the node down: says what to do, keeps retrying, never shows the password; SIGTERM exits 0", async () => {
    const c = spawnProcess({
      WATCHTOWER_DATABASE_URL: DB,
      WATCHTOWER_DATABASE_SCHEMA: `${SCHEMA}_down`,
      BITCOIN_RPC_URL: "http://127.0.0.1:9", // nothing listens there
      BITCOIN_RPC_USER: "rpc",
      BITCOIN_RPC_PASSWORD: "never-log-this-password",
      NATS_URL: testNatsUrl(),
      LN_PREFIX: `${LN_PREFIX}_down`,
      WATCHTOWER_POLL_MS: "50",
    });
    const exited = exitOf(c);
    try {
      await until(c, () => (stderr.match(/check the node is running/g) ?? []).length >= 2, "two retries");
      // Still serving requests meanwhile, saying the node is unavailable rather than not answering.
      const tx = new Transaction();
      tx.addInput(Buffer.alloc(32, 1), 0);
      tx.addOutput(Buffer.from("51", "hex"), 1000n);
      const down = `${LN_PREFIX}_down.chain`;
      const err = await broadcastTx(nc, down, tx.toHex()).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ChainRequestError);
      expect((err as ChainRequestError).code).toBe("UNAVAILABLE");
      expect((err as ChainRequestError).message).toContain("could not reach the node");
      const tipErr = await chainTip(nc, down).catch((e: unknown) => e);
      expect((tipErr as ChainRequestError).message).toContain("cannot reach its node");
      expect(stdout).toBe("");
      c.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(stderr).toContain("BITCOIN_RPC_URL");
      expect(stderr).not.toContain("never-log-this-password");
    } finally {
      c.kill("SIGKILL");
      await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}_down" CASCADE`);
      await jsm.streams.delete(`WT_${run.toUpperCase()}_DOWN_CHAIN`).catch(() => undefined);
    }
  });

  it("a configuration problem: every missing setting on its own line, exit 1", async () => {
    const c = spawnProcess({ WATCHTOWER_POLL_MS: "soon" });
    expect(await exitOf(c)).toBe(1);
    const lines = stderr.trimEnd().split("\n");
    for (const l of lines) expect(JSON.parse(l)).toMatchObject({ service: "watchtower" });
    for (const name of ["WATCHTOWER_DATABASE_URL", "BITCOIN_RPC_URL", "LN_PREFIX", "WATCHTOWER_POLL_MS"])
      expect(lines.filter((l) => l.includes(name))).toHaveLength(1);
  });
});
