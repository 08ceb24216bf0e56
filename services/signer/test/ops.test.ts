/**
 * The signer's operator surface: SIGNER_OPS_LISTEN in the configuration, and the process
 * (src/main.ts) serving /metrics, /healthz and /readyz there, its ready line naming the URL, with
 * a refused call counted under its reason code.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { SignerClient } from "@ln/signer-client";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { CLIENT_OPTIONS, DATABASE_URL, makePems, refusal, TEST_CLIENTS_ENV, type Pems } from "./helpers.js";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");

const full = {
  SIGNER_DATABASE_URL: "postgres://signer@db/signer",
  SIGNER_LISTEN: "0.0.0.0:50051",
  SIGNER_TLS_CA: "/tls/ca.crt",
  SIGNER_TLS_CERT: "/tls/tls.crt",
  SIGNER_TLS_KEY: "/tls/tls.key",
  SIGNER_SEED_FILE: "/data/seed.bin",
  SIGNER_SEED_KEY_FILE: "/etc/ln/seed-key/key",
  SIGNER_CLIENTS: "ln-channel=channel",
};

describe("SIGNER_OPS_LISTEN", () => {
  it("is optional, host:port with port 0 allowed, and a bad one is reported with the others", () => {
    expect(loadConfig(full).opsListen).toBeUndefined();
    expect(loadConfig({ ...full, SIGNER_OPS_LISTEN: "0.0.0.0:9100" }).opsListen).toEqual({
      host: "0.0.0.0",
      port: 9100,
    });
    expect(loadConfig({ ...full, SIGNER_OPS_LISTEN: "127.0.0.1:0" }).opsListen).toEqual({
      host: "127.0.0.1",
      port: 0,
    });
    let message = "";
    try {
      loadConfig({ ...full, SIGNER_OPS_LISTEN: "9100", SIGNER_LISTEN: "" });
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toMatch(/SIGNER_OPS_LISTEN must be host:port/);
    expect(message).toMatch(/SIGNER_LISTEN is not set/);
  });
});

describe("the signer process's /metrics", () => {
  const schema = `signer_ops_${randomBytes(6).toString("hex")}`;
  let pems: Pems;
  let child: ChildProcess;
  let exit: Promise<number | null>;
  const out: string[] = [];
  const err: string[] = [];
  let ready: { port: number; nodeId: string; ops?: string };
  let client: SignerClient;

  /** The signer process on `schema`, with the seed file and key file of pems.dir. */
  const spawnSigner = (schema: string, env: Record<string, string> = {}): ChildProcess =>
    spawn(process.execPath, ["--import", "tsx", "--conditions=source", "services/signer/src/main.ts"], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        PATH: process.env["PATH"] ?? "",
        SIGNER_DATABASE_URL: DATABASE_URL,
        SIGNER_DATABASE_SCHEMA: schema,
        SIGNER_LISTEN: "127.0.0.1:0",
        SIGNER_TLS_CA: join(pems.dir, "ca.crt"),
        SIGNER_TLS_CERT: join(pems.dir, "server.crt"),
        SIGNER_TLS_KEY: join(pems.dir, "server.key"),
        SIGNER_SEED_FILE: join(pems.dir, "seed.bin"),
        SIGNER_SEED_KEY_FILE: join(pems.dir, "seed.key"),
        SIGNER_CLIENTS: TEST_CLIENTS_ENV,
        ...env,
      },
    });

  beforeAll(async () => {
    pems = makePems();
    writeFileSync(join(pems.dir, "seed.key"), "cd".repeat(32), { mode: 0o600 });
    child = spawnSigner(schema, { SIGNER_OPS_LISTEN: "127.0.0.1:0" });
    exit = once(child, "exit").then(([code]) => code as number | null);
    child.stdout?.setEncoding("utf8").on("data", (d: string) => out.push(...d.split("\n")));
    child.stderr?.setEncoding("utf8").on("data", (d: string) => err.push(...d.split("\n")));
    const deadline = Date.now() + 30_000;
    for (;;) {
      const line = out.find((l) => l.startsWith("signer: ready "));
      if (line) {
        ready = JSON.parse(line.slice("signer: ready ".length)) as typeof ready;
        break;
      }
      if (Date.now() > deadline || child.exitCode !== null)
        throw new Error(`no ready line:\n${err.join("\n")}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    client = new SignerClient(
      `127.0.0.1:${ready.port}`,
      { ca: pems.ca, cert: pems.clientCert, key: pems.clientKey },
      CLIENT_OPTIONS,
    );
  });

  afterAll(async () => {
    client?.close();
    if (child && child.exitCode === null) {
      child.kill("SIGTERM");
      await exit;
    }
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
    if (pems) rmSync(pems.dir, { recursive: true, force: true });
  });

  const scrape = async (): Promise<string> => {
    const r = await fetch(`${ready.ops}/metrics`);
    expect(r.status).toBe(200);
    return r.text();
  };
  const value = (text: string, series: string): number => {
    const line = text.split("\n").find((l) => l.startsWith(`${series} `));
    return line === undefined ? 0 : Number(line.slice(series.length + 1));
  };

  it("names the ops URL in its ready line; /healthz and /readyz answer", async () => {
    expect(ready.ops).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(ready.nodeId).toMatch(/^[0-9a-f]{66}$/);
    expect((await fetch(`${ready.ops}/healthz`)).status).toBe(200);
    expect((await fetch(`${ready.ops}/readyz`)).status).toBe(200);
  });

  it("counts calls, refusals by reason code and invalid requests, and times them", async () => {
    const before = await scrape();
    const unknown =
      'signer_refusals_total{client="ln-channel",method="RevocationHash",reason="UNKNOWN_CHANNEL",service="signer"}';
    const invalidSeries =
      'signer_refusals_total{client="ln-channel",method="WalletKey",reason="INVALID_REQUEST",service="signer"}';
    const calls = 'signer_requests_total{method="RevocationHash",service="signer"}';
    const refused = await refusal(client.call("RevocationHash", { channel: 987654, number: 0n }));
    expect(refused.code).toBe("UNKNOWN_CHANNEL");
    expect((await refusal(client.call("WalletKey", { index: 0x8000_0000 }))).code).toBe("INVALID_REQUEST");
    await client.call("NodeInfo", {});
    const after = await scrape();
    expect(value(after, unknown)).toBe(value(before, unknown) + 1);
    expect(value(after, invalidSeries)).toBe(value(before, invalidSeries) + 1);
    expect(value(after, calls)).toBe(value(before, calls) + 1);
    expect(value(after, 'signer_requests_total{method="NodeInfo",service="signer"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(after).toMatch(/^signer_request_seconds_count\{[^}]*method="RevocationHash"[^}]*\} \d+$/m);
    expect(after).toMatch(/^process_resident_memory_bytes\{service="signer"\} \d+/m);
    // No key, digest or channel number in any label.
    expect(after).not.toContain("987654");
    expect(after).not.toContain(ready.nodeId);
  });

  it("a second process on the same seed file and an empty schema refuses to start (STATE_MISSING)", async () => {
    const empty = `signer_ops_empty_${randomBytes(6).toString("hex")}`;
    const second = spawnSigner(empty);
    const stderr: string[] = [];
    second.stderr?.setEncoding("utf8").on("data", (d: string) => stderr.push(d));
    const [code] = (await once(second, "exit")) as [number | null];
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    await pool.query(`DROP SCHEMA IF EXISTS "${empty}" CASCADE`);
    await pool.end();
    expect(code).toBe(1);
    expect(stderr.join("")).toContain("STATE_MISSING: ");
  });
});
