/**
 * The gateway process's operator surface (PEER_OPS_LISTEN): /metrics, /healthz, /readyz; a peer
 * connecting raises peer_connections and counts a handshake, its leaving counts a disconnect by
 * reason, a failed inbound handshake is counted too; the NATS error counter is there at 0. Also
 * PEER_OPS_LISTEN in the configuration.
 */
import { silentLog } from "@ln/log";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "nats";
import { encodeAckReply } from "@ln/proto";
import {
  KeyRing,
  SignerService,
  SignerStore,
  startServer,
  type RunningServer,
} from "@ln/signer-service/embedded";
import { makePems, TEST_CLIENTS } from "../../signer/test/helpers.js";
import { ConfigError, loadConfig } from "../src/config.js";
import type { PeerGateway } from "../src/gateway.js";
import { dial, gateway, nodeKey, until } from "./helpers.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const run = randomBytes(4).toString("hex");
type Pool = ConstructorParameters<typeof SignerStore>[0];
const pg = createRequire(import.meta.url)("pg") as {
  Pool: new (o: { connectionString: string; max: number }) => Pool;
};

const full = {
  LN_PREFIX: "ln1",
  PEER_LISTEN: "0.0.0.0:9735",
  SIGNER_ADDR: "signer:50051",
  SIGNER_CLIENT_CA: "/etc/ln/ca.crt",
  SIGNER_CLIENT_CERT: "/etc/ln/peer.crt",
  SIGNER_CLIENT_KEY: "/etc/ln/peer.key",
};

describe("PEER_OPS_LISTEN", () => {
  it("is optional, host:port with port 0 allowed, a bad one reported with the other problems", () => {
    expect(loadConfig(full).opsListen).toBeUndefined();
    expect(loadConfig({ ...full, PEER_OPS_LISTEN: "0.0.0.0:9101" }).opsListen).toEqual({
      host: "0.0.0.0",
      port: 9101,
    });
    expect(loadConfig({ ...full, PEER_OPS_LISTEN: "[::1]:0" }).opsListen).toEqual({ host: "::1", port: 0 });
    try {
      loadConfig({ ...full, PEER_OPS_LISTEN: "nowhere", LN_PREFIX: "" });
      throw new Error("expected a ConfigError");
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      const problems = (e as ConfigError).problems.map((p) => p.split(" ")[0]);
      expect(problems).toEqual(["LN_PREFIX", "PEER_OPS_LISTEN"]);
    }
  });
});

describe("the peer gateway process's /metrics", () => {
  const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
  const pems = makePems();
  const schema = `peer_ops_${run}`;
  const lnPrefix = `t${run}.ops`;
  let signer: RunningServer;
  let child: ChildProcess;
  let exit: Promise<number | null>;
  const lines: string[] = [];
  let nc: NatsConnection;
  let other: PeerGateway | undefined;

  beforeAll(async () => {
    nc = await connect({ servers: testNatsUrl() });
    const store = new SignerStore(pool, schema);
    await store.migrate();
    signer = await startServer({
      service: new SignerService(new KeyRing(Buffer.alloc(32, 0x41)), store, { maxFeeSat: 100_000n }),
      listen: "127.0.0.1:0",
      tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
      clients: TEST_CLIENTS,
      log: silentLog,
    });
    // The channel service's stand-in: no channel yet, ack 0.
    nc.subscribe(`${lnPrefix}.peer.*.ack`, { callback: (_e, m) => void m.respond(encodeAckReply(0n)) });
    await nc.flush();
    child = spawn(process.execPath, ["--import", "tsx", "--conditions=source", "services/peer/src/main.ts"], {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
      env: {
        PATH: process.env["PATH"] ?? "",
        NATS_URL: testNatsUrl(),
        LN_PREFIX: lnPrefix,
        PEER_LISTEN: "127.0.0.1:0",
        PEER_HANDSHAKE_TIMEOUT_MS: "3000",
        PEER_OPS_LISTEN: "127.0.0.1:0",
        SIGNER_ADDR: `127.0.0.1:${signer.port}`,
        SIGNER_CLIENT_CA: join(pems.dir, "ca.crt"),
        SIGNER_CLIENT_CERT: join(pems.dir, "gateway.crt"),
        SIGNER_CLIENT_KEY: join(pems.dir, "gateway.key"),
        SIGNER_SERVERNAME: "localhost",
      },
    });
    exit = once(child, "exit").then(([code]) => code as number | null);
    let rest = "";
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      const parts = (rest + d).split("\n");
      rest = parts.pop() ?? "";
      lines.push(...parts);
    });
  });

  afterAll(async () => {
    await other?.close();
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await signer?.shutdown(1000);
    await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await pool.end();
    await nc?.drain();
    rmSync(pems.dir, { recursive: true, force: true });
  });

  it("counts connections, handshakes and disconnects; readyz is 200 once ready", async () => {
    await until(() => lines.some((l) => l.startsWith("peer: ready ")), 20_000, "a ready line").catch(
      (e: unknown) => {
        throw new Error(`${e instanceof Error ? e.message : String(e)}\n${lines.join("\n")}`);
      },
    );
    const ready = JSON.parse(
      (lines.find((l) => l.startsWith("peer: ready ")) as string).slice("peer: ready ".length),
    ) as { port: number; nodeId: string; ops: string };
    expect(ready.ops).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const scrape = async (): Promise<string> => {
      const r = await fetch(`${ready.ops}/metrics`);
      expect(r.status).toBe(200);
      return r.text();
    };
    const value = async (series: string): Promise<number> => {
      const line = (await scrape()).split("\n").find((l) => l.startsWith(`${series} `));
      return line === undefined ? 0 : Number(line.slice(series.length + 1));
    };
    const CONNECTIONS = 'peer_connections{service="peer"}';
    const OK = 'peer_handshakes_total{outcome="ok",service="peer"}';
    const FAILED = 'peer_handshakes_total{outcome="inbound_failed",service="peer"}';
    const CLOSED = 'peer_disconnects_total{reason="PEER_CLOSED",service="peer"}';

    expect((await fetch(`${ready.ops}/healthz`)).status).toBe(200);
    expect((await fetch(`${ready.ops}/readyz`)).status).toBe(200);
    expect(await value(CONNECTIONS)).toBe(0);
    expect(await value('peer_pending_handshakes{service="peer"}')).toBe(0);
    const ok0 = await value(OK);

    // A peer connects (in-process gateway, its own key): one live connection.
    const otherNats = await connect({ servers: testNatsUrl() });
    const key = nodeKey();
    other = gateway(key, otherNats, { subjectPrefix: `t${run}.other.peer` });
    await other.connect("127.0.0.1", ready.port, Buffer.from(ready.nodeId, "hex"));
    expect(await value(CONNECTIONS)).toBe(1);
    expect(await value(OK)).toBe(ok0 + 1);

    // It leaves: a disconnect by reason, and no live connection.
    const closed0 = await value(CLOSED);
    await other.close();
    other = undefined;
    await otherNats.drain();
    await until(() => lines.some((l) => l.includes('"event":"disconnected"')), 5000, "the disconnect");
    expect(await value(CONNECTIONS)).toBe(0);
    expect(await value(CLOSED)).toBe(closed0 + 1);

    // Garbage instead of act one: a failed inbound handshake.
    const failed0 = await value(FAILED);
    const s = await dial(ready.port);
    s.end(Buffer.alloc(50, 7));
    await until(() => lines.some((l) => l.includes('"event":"inbound_failed"')), 5000, "the failure");
    expect(await value(FAILED)).toBe(failed0 + 1);

    const text = await scrape();
    expect(text).not.toContain(key.hex);
    expect(text).not.toContain(ready.nodeId);
    expect(text).toMatch(/^process_cpu_seconds_total\{service="peer"\} /m);
    expect(text).toMatch(/^peer_nats_errors_total\{type="disconnect",service="peer"\} 0$/m);
    expect(text).toMatch(/^peer_nats_errors_total\{type="error",service="peer"\} 0$/m);

    child.kill("SIGTERM");
    expect(await exit).toBe(0);
    expect(lines.filter((l) => l.startsWith("peer: ready ")).length).toBe(1);
  }, 40_000);
});
