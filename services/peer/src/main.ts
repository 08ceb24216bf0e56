/*~ The peer gateway process. Composition root: configuration from the environment (config.ts),
 * NATS, the signer over gRPC/mTLS (the node key never leaves it: ECDH and session_sig are calls),
 * the gateway's listener, the control requests; graceful SIGTERM/SIGINT. Every stderr line is a
 * JSON log record (@ln/log) but one: once serving, `peer: ready {"port":N,"nodeId":"<hex>"}` (with
 * "ops":"http://host:port" when PEER_OPS_LISTEN serves /metrics, /healthz and /readyz).
 * The processes of a node start in any order: NATS and the signer are retried until they answer. */
import { readFile } from "node:fs/promises";
import { armCrashPoints, describeCrashSettings } from "@ln/crash";
import {
  connectionErrors,
  Counter,
  Gauge,
  newRegistry,
  serveOps,
  type OpsServer,
  type Registry,
} from "@ln/metrics";
import { connect, type NatsConnection } from "nats";
import { processLogger, structuredLog } from "@ln/log";
import { SignerClient } from "@ln/signer-client";
import { natsAckFor } from "./ack.js";
import { ConfigError, loadConfig, type PeerConfig } from "./config.js";
import { serveControl } from "./control.js";
import { PeerGateway, type PeerLogEvent } from "./gateway.js";
import { natsConnectOptions } from "@ln/env";

const logger = processLogger("peer");
const log = structuredLog(logger);
/** A gateway or control event as one record: its fields (peer, reason, ...), the event as msg. */
const logEvent = ({ level, ...fields }: PeerLogEvent): void => log[level](fields.event, fields);
const text = (e: unknown): string => {
  const s = e instanceof Error ? e.message : String(e);
  return s.length > 300 ? `${s.slice(0, 300)}...` : s;
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let stopping = false;
let stop: (signal: string) => void = () => process.exit(0); // before anything is open

/** Calls `f` until it resolves, doubling the wait (max 5 s), one log line per failure. */
async function retry<T>(what: string, hint: string, f: () => Promise<T>): Promise<T | undefined> {
  for (let wait = 250; ; wait = Math.min(wait * 2, 5000)) {
    if (stopping) return undefined;
    try {
      return await f();
    } catch (e) {
      log.warn(`${what} not reachable yet (${text(e)}); retrying in ${wait} ms. ${hint}`);
    }
    await sleep(wait);
  }
}

async function readPems(cfg: PeerConfig): Promise<{ ca: Buffer; cert: Buffer; key: Buffer }> {
  const problems: string[] = [];
  const read = async (path: string, name: string): Promise<Buffer> => {
    try {
      return await readFile(path);
    } catch (e) {
      const code = (e as { code?: unknown }).code;
      problems.push(
        `cannot read ${name} ${path} (${typeof code === "string" ? code : text(e)}): set ${name} to a readable PEM file`,
      );
      return Buffer.alloc(0);
    }
  };
  const [ca, cert, key] = await Promise.all([
    read(cfg.signer.caFile, "SIGNER_CLIENT_CA"),
    read(cfg.signer.certFile, "SIGNER_CLIENT_CERT"),
    read(cfg.signer.keyFile, "SIGNER_CLIENT_KEY"),
  ]);
  if (problems.length > 0) throw new ConfigError(problems);
  return { ca, cert, key };
}

/**
 * The gateway's metrics: live connections and pending handshakes read from the gateway at
 * scrape time; handshakes and disconnects counted from its log events. Labels are outcomes and
 * reason codes only, never a node id or an address.
 */
function gatewayMetrics(
  registry: Registry,
  gateway: () => PeerGateway | undefined,
): (line: PeerLogEvent) => void {
  const registers = [registry];
  new Gauge({
    name: "peer_connections",
    help: "Live, authenticated peer connections.",
    registers,
    collect() {
      this.set(gateway()?.peers.length ?? 0);
    },
  });
  new Gauge({
    name: "peer_pending_handshakes",
    help: "Inbound connections mid-handshake (BOLT #8 acts or authenticate).",
    registers,
    collect() {
      this.set(gateway()?.pendingHandshakes ?? 0);
    },
  });
  const handshakes = new Counter({
    name: "peer_handshakes_total",
    help: "Handshakes (BOLT #8 and authenticate) by outcome: ok (either direction), inbound_failed, dial_failed.",
    labelNames: ["outcome"] as const,
    registers,
  });
  const disconnects = new Counter({
    name: "peer_disconnects_total",
    help: "Authenticated connections that ended, by reason (the peer event's DisconnectReason).",
    labelNames: ["reason"] as const,
    registers,
  });
  for (const outcome of ["ok", "inbound_failed", "dial_failed"]) handshakes.inc({ outcome }, 0);
  const REASON = /^[A-Z_]{1,40}$/;
  return (line) => {
    const { event, reason } = line as { event?: unknown; reason?: unknown };
    if (event === "connected") handshakes.inc({ outcome: "ok" });
    else if (event === "inbound_failed" || event === "dial_failed") handshakes.inc({ outcome: event });
    else if (event === "disconnected")
      disconnects.inc({ reason: typeof reason === "string" && REASON.test(reason) ? reason : "OTHER" });
  };
}

async function main(): Promise<void> {
  const cfg = loadConfig();
  armCrashPoints(cfg.crash);
  const armed = describeCrashSettings(cfg.crash);
  if (armed !== undefined) log.warn(armed);
  const tls = await readPems(cfg);
  // What is open so far, for stop().
  const open: { nc?: NatsConnection; signer?: SignerClient; gateway?: PeerGateway; ops?: OpsServer } = {};
  const registry = newRegistry("peer");
  const countEvent = gatewayMetrics(registry, () => open.gateway);
  const connection = connectionErrors(registry, "peer");
  let serving = false;
  stop = (signal) => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: closing connections`);
    setTimeout(() => {
      log.error("shutdown took longer than 10 s; exiting");
      process.exit(1);
    }, 10_000).unref();
    void (async () => {
      await open.gateway?.close();
      if (open.nc && !open.nc.isClosed()) await open.nc.drain();
      open.signer?.close();
      await open.ops?.close();
    })().then(
      () => process.exit(0),
      (e: unknown) => {
        log.warn(`shutdown: ${text(e)}`);
        process.exit(1);
      },
    );
  };

  // Served from the start: /healthz answers while we wait for the signer and NATS.
  if (cfg.opsListen) {
    open.ops = await serveOps({
      listen: cfg.opsListen,
      registry,
      ready: () =>
        Promise.resolve(
          stopping
            ? "shutting down"
            : !serving
              ? "starting: waiting for the signer and NATS"
              : open.nc === undefined || open.nc.isClosed()
                ? "the NATS connection is closed"
                : true,
        ),
      log,
    });
    log.info(`serving /metrics, /healthz and /readyz at ${open.ops.url}`);
  }

  const s = new SignerClient(
    cfg.signer.address,
    tls,
    cfg.signer.serverName === undefined ? {} : { "grpc.ssl_target_name_override": cfg.signer.serverName },
  );
  open.signer = s;
  const info = await retry(
    `the signer at ${cfg.signer.address}`,
    "Start the signer, or check SIGNER_ADDR, the SIGNER_CLIENT_* certificates and SIGNER_SERVERNAME.",
    () => s.call("NodeInfo", {}, 3000),
  );
  if (info === undefined) return;
  const nodeId = info.node_pubkey;
  if (nodeId.length !== 33) throw new Error(`the signer's node_pubkey has ${nodeId.length} bytes, not 33`);
  const nodeHex = nodeId.toString("hex");
  log.info(`node id ${nodeHex} (from the signer at ${cfg.signer.address})`);

  const nats = await retry(
    `NATS at ${cfg.nats.servers}`,
    "Start the NATS server, or check NATS_URL and the NATS credentials.",
    () =>
      connect({ ...natsConnectOptions(cfg.nats, `peer-gateway ${cfg.prefix}`), maxReconnectAttempts: -1 }),
  );
  if (nats === undefined) return;
  open.nc = nats;
  void connection.watchNats(nats.status(), log).catch((e: unknown) => log.warn(`NATS status: ${text(e)}`));
  void nats.closed().then((err) => {
    if (stopping) return;
    log.error(`NATS connection closed${err ? `: ${text(err)}` : ""}; exiting`);
    process.exit(1);
  });

  const gateway = new PeerGateway({
    nodeId,
    staticEcdh: async (point) => (await s.call("Ecdh", { point })).shared_secret,
    signSession: async (h) => (await s.call("SignSession", { handshake_hash: h })).signature,
    nats,
    subjectPrefix: cfg.prefix,
    handshakeTimeoutMs: cfg.handshakeTimeoutMs,
    maxPendingHandshakes: cfg.maxPendingHandshakes,
    ackFor: natsAckFor(
      nats,
      cfg.prefix,
      Math.min(5000, Math.max(50, Math.floor(cfg.handshakeTimeoutMs / 2))),
    ),
    log: (line) => {
      countEvent(line);
      logEvent(line);
    },
  });
  open.gateway = gateway;
  const port = await gateway.listen(cfg.listen.port, cfg.listen.host);
  serveControl({ nats, prefix: cfg.prefix, gateway, log: logEvent });
  await nats.flush(); // the control subscriptions are in place before we say ready
  if (stopping) return;
  log.info(`subjects ${cfg.prefix}.<peer>.{in,out,events,ack}, control ${cfg.prefix}.ctl.{connect,peers}`);
  serving = true;
  // The machine-readable ready line (plain text, on stderr as before) that supervisors wait for.
  process.stderr.write(
    `peer: ready ${JSON.stringify({ port, nodeId: nodeHex, ...(open.ops ? { ops: open.ops.url } : {}) })}\n`,
  );
}

process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

main().catch((e: unknown) => {
  if (e instanceof ConfigError) {
    log.error("cannot start, the configuration is incomplete or wrong:", { problems: e.problems });
    for (const p of e.problems) log.error(`  ${p}`);
  } else log.error(`failed to start: ${text(e)}`);
  process.exit(1);
});
