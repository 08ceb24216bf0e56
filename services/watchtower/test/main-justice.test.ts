/**
 * The watchtower process (src/main.ts) with its justice half on (SIGNER_ADDR set): it takes a
 * record from the channel service's subject, punishes the breach, and stops on SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startRegtest, type Regtest } from "@ln/regtest";
import { connect, type NatsConnection } from "nats";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestSigner, type TestSigner } from "../../signer/test/helpers.js";
import { recordsSubjectOf } from "../src/config.js";
import { DB, makeBreach, publishRecord, spendersOf, until } from "./justice-fixture.js";
import { testNatsUrl } from "@ln/testkit";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const run = randomBytes(4).toString("hex");
const LN_PREFIX = `wtj_${run}`;
const SCHEMA = `watchtower_justice_${run}`;
const STREAM = `WTJ_${run.toUpperCase()}_CHAIN`;
const RECORDS = `WTJ_${run.toUpperCase()}_TOWER`;
const pool = new pg.Pool({ connectionString: DB });
let rt: Regtest;
let signer: TestSigner;
let nc: NatsConnection;
let child: ChildProcess | undefined;
let stdout = "";
let stderr = "";

beforeAll(async () => {
  rt = await startRegtest();
  signer = await startTestSigner();
  nc = await connect({ servers: testNatsUrl() });
}, 120_000);
afterAll(async () => {
  child?.kill("SIGKILL");
  const jsm = await nc?.jetstreamManager();
  for (const s of [STREAM, RECORDS]) await jsm?.streams.delete(s).catch(() => undefined);
  await nc?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await pool.end();
  await signer?.close();
  await rt?.stop();
});

describe("watchtower process with justice", () => {
  it("says justice is on, punishes a breach from a published record, and stops on SIGTERM", async () => {
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
          WATCHTOWER_MEMPOOL_POLL_MS: "100",
          WATCHTOWER_FALLBACK_FEE_RATE: "2000",
          SIGNER_ADDR: signer.address,
          SIGNER_SERVERNAME: "localhost",
          SIGNER_CLIENT_CA: join(signer.pems.dir, "ca.crt"),
          SIGNER_CLIENT_CERT: join(signer.pems.dir, "tower.crt"),
          SIGNER_CLIENT_KEY: join(signer.pems.dir, "tower.key"),
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
    child.stdout?.on("data", (d: Buffer) => (stdout += d.toString()));
    const exited = new Promise<number | null>((resolve) => child?.on("exit", (code) => resolve(code)));
    try {
      await until(() => /^watchtower: ready /m.test(stdout), "the ready line", 30_000);
      const ready = JSON.parse(/^watchtower: ready (.*)$/m.exec(stdout)![1]!) as { justice: boolean };
      expect(ready.justice).toBe(true);
      // The channel service's subject (services/channel tower-link.ts), captured by the tower's stream.
      const b = await makeBreach(rt, signer);
      const ack = await publishRecord(nc, recordsSubjectOf(LN_PREFIX), b);
      expect(ack.stream).toBe(RECORDS);
      await until(async () => {
        const r = await pool.query(`SELECT count(*)::int AS n FROM "${SCHEMA}".tower_records`);
        return r.rows[0].n === 1;
      }, "the record stored");
      const from = rt.height() + 1;
      await rt.submit(b.breach.toHex());
      await until(async () => {
        if ((await spendersOf(rt, b.breach.getId(), from)).size === b.revocable.length) return true;
        await rt.mine(1);
        return false;
      }, "justice to confirm");
      expect(stderr).toMatch(/BREACH: transaction [0-9a-f]{64} \((mempool|block)\)/);
      expect(stderr).not.toContain(rt.password);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      child = undefined;
    } catch (e) {
      console.log(`stderr:\n${stderr}\nstdout:\n${stdout}`);
      throw e;
    }
  }, 90_000);
});
