/**
 * The gateway as a process (src/main.ts), twice, each with its own embedded signer (gRPC over
 * mutual TLS) and the real NATS server: B starts before its signer is up, A connects to B by a
 * control request, both announce `connected`, a pkt crosses, SIGTERM ends both with exit 0.
 */
import { silentLog } from "@ln/log";
import { spawn, type ChildProcess } from "node:child_process";
import { createRequire } from "node:module";
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import net from "node:net";
import { rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "nats";
import { decodePeerEvent, encodeAckReply, peerSubjects } from "@ln/proto";
import {
  KeyRing,
  SignerService,
  SignerStore,
  startServer,
  type RunningServer,
} from "@ln/signer-service/embedded";
// The signer's own test certificates (by openssl), and the channel service's control requests.
import { makePems, TEST_CLIENTS } from "../../signer/test/helpers.js";
import { connectPeer, listPeers } from "../../channel/src/peers/peer-requests.js";
import { collect, samplePkt, until } from "./helpers.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

const ROOT = resolve(fileURLToPath(import.meta.url), "../../../..");
const run = randomBytes(4).toString("hex");
// pg by require, typed as the signer's store takes it (services/peer has no @types/pg).
type Pool = ConstructorParameters<typeof SignerStore>[0];
const pg = createRequire(import.meta.url)("pg") as {
  Pool: new (o: { connectionString: string; max: number }) => Pool;
};
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const pems = makePems();
const schemas: string[] = [];
const signers: RunningServer[] = [];
const procs: Proc[] = [];
let nc: NatsConnection;

interface Proc {
  child: ChildProcess;
  lines: string[];
  exit: Promise<number | null>;
}

async function startSigner(side: string, fill: number, port = 0): Promise<RunningServer> {
  const schema = `peer_proc_${run}_${side}`;
  schemas.push(schema);
  const store = new SignerStore(pool, schema);
  await store.migrate();
  const server = await startServer({
    service: new SignerService(new KeyRing(Buffer.alloc(32, fill)), store, { maxFeeSat: 100_000n }),
    listen: `127.0.0.1:${port}`,
    tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
    clients: TEST_CLIENTS,
    log: silentLog,
  });
  signers.push(server);
  return server;
}

function startGateway(lnPrefix: string, signerPort: number, overrides: Record<string, string> = {}): Proc {
  const env: Record<string, string> = {
    PATH: process.env["PATH"] ?? "",
    NATS_URL: testNatsUrl(),
    LN_PREFIX: lnPrefix,
    PEER_LISTEN: "127.0.0.1:0",
    PEER_HANDSHAKE_TIMEOUT_MS: "3000",
    SIGNER_ADDR: `127.0.0.1:${signerPort}`,
    SIGNER_CLIENT_CA: join(pems.dir, "ca.crt"),
    SIGNER_CLIENT_CERT: join(pems.dir, "gateway.crt"),
    SIGNER_CLIENT_KEY: join(pems.dir, "gateway.key"),
    // The server certificate names localhost; we dial 127.0.0.1.
    SIGNER_SERVERNAME: "localhost",
    ...overrides,
  };
  const child = spawn(
    process.execPath,
    ["--import", "tsx", "--conditions=source", "services/peer/src/main.ts"],
    {
      env,
      cwd: ROOT,
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  const lines: string[] = [];
  let rest = "";
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    const parts = (rest + d).split("\n");
    rest = parts.pop() ?? "";
    lines.push(...parts);
  });
  const exit = once(child, "exit").then(([code]) => code as number | null);
  const p = { child, lines, exit };
  procs.push(p);
  return p;
}

async function ready(p: Proc): Promise<{ port: number; nodeId: string }> {
  await until(() => p.lines.some((l) => l.startsWith("peer: ready ")), 15_000, "a ready line").catch(
    (e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}\n${p.lines.join("\n")}`);
    },
  );
  return JSON.parse(
    (p.lines.find((l) => l.startsWith("peer: ready ")) as string).slice("peer: ready ".length),
  );
}

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
});
afterAll(async () => {
  for (const p of procs)
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
  for (const s of signers) await s.shutdown(1000);
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
  await nc.drain();
  rmSync(pems.dir, { recursive: true, force: true });
});

describe("the peer gateway process", () => {
  it("starts in any order, connects on request, relays, and stops on SIGTERM", async () => {
    const [lnA, lnB] = [`t${run}.a`, `t${run}.b`];
    const [pa, pb] = [`${lnA}.peer`, `${lnB}.peer`];
    const signerA = await startSigner("a", 0x31);
    const signerBPort = await freePort();
    const a = startGateway(lnA, signerA.port);
    const b = startGateway(lnB, signerBPort); // its signer is not up yet
    await until(
      () => b.lines.some((l) => l.includes("not reachable yet")),
      15_000,
      "B waiting for its signer",
    );
    expect(b.lines.find((l) => l.includes("not reachable yet"))).toContain(
      `the signer at 127.0.0.1:${signerBPort}`,
    );
    await startSigner("b", 0x32, signerBPort);
    const [ra, rb] = await Promise.all([ready(a), ready(b)]);
    expect(ra.nodeId).toBe(new KeyRing(Buffer.alloc(32, 0x31)).nodePub.toString("hex"));
    expect(rb.nodeId).toBe(new KeyRing(Buffer.alloc(32, 0x32)).nodePub.toString("hex"));
    expect(rb.port).toBeGreaterThan(0);

    const aEvents = collect(nc, peerSubjects(pa, rb.nodeId).events);
    const bEvents = collect(nc, peerSubjects(pb, ra.nodeId).events);
    const bIn = collect(nc, peerSubjects(pb, ra.nodeId).in);
    await Promise.all([aEvents.ready, bEvents.ready, bIn.ready]);

    // Stand-ins for the channel services, with no channel yet: both acks are 0.
    for (const p of [pa, pb])
      nc.subscribe(`${p}.*.ack`, { callback: (_e, m) => void m.respond(encodeAckReply(0n)) });
    await nc.flush();
    expect(await connectPeer(nc, pa, { host: "127.0.0.1", port: rb.port, nodeId: rb.nodeId })).toEqual({
      nodeId: rb.nodeId,
    });
    await until(() => aEvents.msgs.length >= 1 && bEvents.msgs.length >= 1, 5000, "connected events");
    expect(decodePeerEvent(aEvents.msgs[0] as Buffer)).toEqual({ type: "connected", theirAck: "0" });
    expect(decodePeerEvent(bEvents.msgs[0] as Buffer)).toEqual({ type: "connected", theirAck: "0" });
    expect(await listPeers(nc, pa)).toEqual([
      { nodeId: rb.nodeId, host: "127.0.0.1", port: rb.port, direction: "outbound" },
    ]);
    expect(await listPeers(nc, pb)).toEqual([
      {
        nodeId: ra.nodeId,
        host: expect.stringMatching(/127\.0\.0\.1$/),
        port: expect.any(Number),
        direction: "inbound",
      },
    ]);

    const pkt = samplePkt(1);
    nc.publish(peerSubjects(pa, rb.nodeId).out, pkt);
    await until(() => bIn.msgs.length >= 1, 5000, "the pkt at B");
    expect(bIn.msgs[0]?.equals(pkt)).toBe(true);

    a.child.kill("SIGTERM");
    expect(await a.exit).toBe(0);
    await until(() => aEvents.msgs.length >= 2, 5000, "A's disconnected event");
    expect(decodePeerEvent(aEvents.msgs[1] as Buffer)).toEqual({
      type: "disconnected",
      reason: "GATEWAY_CLOSED",
    });
    b.child.kill("SIGTERM");
    expect(await b.exit).toBe(0);

    for (const p of [a, b]) {
      const lines = p.lines.filter((l) => l !== "");
      // One ready line; every other line a JSON log record of this service.
      expect(lines.filter((l) => l.startsWith("peer: ready ")).length).toBe(1);
      for (const l of lines.filter((x) => !x.startsWith("peer: ready ")))
        expect(JSON.parse(l)).toMatchObject({
          service: "peer",
          level: expect.any(String),
          msg: expect.any(String),
        });
      expect(lines.join("\n")).not.toMatch(/PRIVATE KEY|BEGIN|secret|shared_secret|signature/i);
    }
  }, 30_000);

  it("exits 0 on SIGTERM while still waiting for its signer", async () => {
    const p = startGateway(`t${run}.c`, await freePort());
    await until(() => p.lines.some((l) => l.includes("not reachable yet")), 15_000, "waiting for the signer");
    p.child.kill("SIGTERM");
    expect(await p.exit).toBe(0);
    expect(p.lines.some((l) => l.startsWith("peer: ready"))).toBe(false);
  }, 20_000);

  it("exits 1 on a bad configuration, one line per problem", async () => {
    const p = startGateway("bad prefix", 1, { PEER_LISTEN: "nowhere", SIGNER_CLIENT_KEY: "" });
    expect(await p.exit).toBe(1);
    const records = p.lines
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as { service: string; msg: string });
    for (const r of records) expect(r.service).toBe("peer");
    const lines = records.map((r) => r.msg);
    expect(lines[0]).toBe("cannot start, the configuration is incomplete or wrong:");
    for (const l of lines.slice(1)) expect(l.startsWith("  ")).toBe(true);
    expect(lines.slice(1).map((l) => l.trimStart().split(" ").slice(0, 2).join(" "))).toEqual([
      "LN_PREFIX must",
      "PEER_LISTEN must",
      "SIGNER_CLIENT_KEY is",
    ]);
  }, 20_000);
});
