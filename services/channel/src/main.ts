/*~ The channel service as a process: configuration from the environment (config.ts), Postgres,
 * NATS, the signer over gRPC, the service as service.ts builds it (the node, the chain watcher's
 * events through a durable consumer), and the control API. Graceful on SIGTERM: the API stops
 * taking requests, leases are released so another replica takes the channels at once. */
import { readFile } from "node:fs/promises";
import { armCrashPoints, describeCrashSettings } from "@ln/crash";
import { sha256 } from "@ln/bitcoin";
import { processLogger, structuredLog } from "@ln/log";
import { newRegistry, serveOps, urlOf } from "@ln/metrics";
import { SignerClient } from "@ln/signer-client";
import { connect } from "nats";
import pg from "pg";
import { natsConnectOptions } from "@ln/env";
import { ApiStore, buildApi } from "./api/index.js";
import { registerGossipMetrics, registerNodeMetrics, registerServiceMetrics } from "./api/metrics.js";
import { ConfigError, loadConfig } from "./config.js";
import { EventFeed } from "./events/feed.js";
import { EventRelay } from "./events/relay.js";
import { buildChannelService } from "./service.js";

const VERSION = "0.1.0";
// JSON lines on stderr (@ln/log), the API's request lines included; the ready line stays plain text.
const logger = processLogger("channel");
const log = structuredLog(logger);

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new ConfigError(`cannot read ${what} ${path}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** The signer may start after us: wait for it, saying so. */
async function nodeIdFrom(signer: SignerClient, addr: string): Promise<Buffer> {
  for (let attempt = 1; ; attempt++) {
    try {
      return (await signer.call("NodeInfo", {})).node_pubkey;
    } catch (e) {
      if (attempt % 5 === 1)
        log.warn(
          `the signer at ${addr} does not answer yet (${e instanceof Error ? e.message : String(e)}); retrying`,
        );
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * attempt)));
    }
  }
}

async function main(): Promise<void> {
  const cfg = loadConfig();
  armCrashPoints(cfg.crash);
  const armed = describeCrashSettings(cfg.crash);
  if (armed !== undefined) log.warn(armed);
  const tls = {
    ca: await readPem(cfg.signer.caFile, "SIGNER_CLIENT_CA"),
    cert: await readPem(cfg.signer.certFile, "SIGNER_CLIENT_CERT"),
    key: await readPem(cfg.signer.keyFile, "SIGNER_CLIENT_KEY"),
  };
  // /metrics on the ops port (CHANNEL_OPS_LISTEN), never on the control API's: the process, the
  // API's requests, the node's books at scrape time, commitment round-trip times, Postgres and
  // NATS errors.
  const registry = newRegistry("channel");
  const serviceMetrics = registerServiceMetrics(registry);
  const pool = new pg.Pool({ connectionString: cfg.databaseUrl, max: 10 });
  serviceMetrics.watchPool(pool, log);
  // Reconnects through an outage of any length (the client's default gives up after 10 tries, ~20 s,
  // and leaves the service running deaf), as the peer and the watchtower do.
  const nc = await connect({
    ...natsConnectOptions(cfg.nats, `channel-${cfg.replicaId}`),
    maxReconnectAttempts: -1,
  });
  void serviceMetrics
    .watchNats(nc.status(), log)
    .catch((e: unknown) => log.warn(`NATS status: ${e instanceof Error ? e.message : String(e)}`));
  const signer = new SignerClient(
    cfg.signer.addr,
    tls,
    cfg.signer.serverName ? { "grpc.ssl_target_name_override": cfg.signer.serverName } : {},
  );
  const nodeId = await nodeIdFrom(signer, cfg.signer.addr);
  const service = await buildChannelService({
    pool,
    nc,
    signer,
    nodeId,
    settings: {
      databaseSchema: cfg.databaseSchema,
      prefix: cfg.prefix,
      replicaId: cfg.replicaId,
      leaseMs: cfg.leaseMs,
      network: cfg.network,
      terms: cfg.terms,
      walletFeeRate: cfg.walletFeeRate,
      inboundOpenings: cfg.inboundOpenings,
      reconnectMs: cfg.reconnectMs,
      forwarding: cfg.forwarding,
      gossip: cfg.gossip,
      version: VERSION,
    },
    gossipCounters: registerGossipMetrics(registry),
    log,
    onCommitRound: serviceMetrics.commitRound,
    onCommitSent: serviceMetrics.commitSent,
  });
  await service.start();
  const { backend } = service;
  if (cfg.adminToken !== undefined)
    await bootstrapAdminToken(new ApiStore(pool, cfg.databaseSchema), cfg.adminToken);
  let metricsErrorLoggedAt = 0;
  registerNodeMetrics(registry, {
    pool,
    schema: cfg.databaseSchema,
    onError: (what, e) => {
      if (Date.now() - metricsErrorLoggedAt < 60_000) return;
      metricsErrorLoggedAt = Date.now();
      log.warn(`metrics: ${what} not collected: ${e instanceof Error ? e.message : String(e)}`);
    },
  });
  // One LISTEN connection for the process: the NATS relay and every GET /v1/events follow it.
  const feed = new EventFeed({ pool, schema: cfg.databaseSchema, pollMs: cfg.events.pollMs, log });
  const relay = new EventRelay({
    pool,
    schema: cfg.databaseSchema,
    feed,
    nc,
    prefix: cfg.prefix,
    stream: cfg.events.stream,
    log,
  });
  relay.start();
  const app = await buildApi({
    pool,
    backend,
    schema: cfg.databaseSchema,
    version: VERSION,
    registry,
    // The same JSON lines, each request's with its reqId; headers (the token) and bodies are never logged.
    loggerInstance: logger,
    events: { feed, limits: cfg.events },
  });
  await app.listen({ host: cfg.apiListen.host, port: cfg.apiListen.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : cfg.apiListen.port;
  const api = urlOf(cfg.apiListen.host, port);
  let stopping = false;
  // Closed for good only by a fatal error (authorization): exit, and let the supervisor restart us
  // rather than keep channel leases on a replica that hears nothing.
  void nc.closed().then((e) => {
    if (stopping) return;
    log.alert(`NATS connection closed${e ? `: ${e.message}` : ""}; exiting`);
    process.exit(1);
  });
  const ops = cfg.opsListen
    ? await serveOps({
        listen: cfg.opsListen,
        registry,
        ready: async () => {
          if (stopping) return "stopping";
          await pool.query("SELECT 1");
          return true;
        },
        log,
      })
    : undefined;
  if (ops) log.info(`serving /metrics, /healthz and /readyz at ${ops.url}`);
  log.info(`replica ${cfg.replicaId}, schema ${cfg.databaseSchema}, node ${nodeId.toString("hex")}`);
  // The machine-readable ready line that supervisors (the lab) wait for, plain text as before.
  process.stderr.write(
    `channel: ready ${JSON.stringify({ api, nodeId: nodeId.toString("hex"), ...(ops ? { ops: ops.url } : {}) })}\n`,
  );
  // The token is never printed; its hash tells the operator which one is configured.
  if (cfg.adminToken !== undefined)
    log.info(
      `admin token configured (sha256 ${sha256(Buffer.from(cfg.adminToken)).toString("hex").slice(0, 12)}…)`,
    );

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: stopping`);
    void (async () => {
      await app.close();
      await relay.stop();
      await feed.close();
      await ops?.close();
      await service.stop();
      await nc.drain();
      signer.close();
      await pool.end();
    })().then(
      () => process.exit(0),
      (e: unknown) => {
        log.warn(`stopping: ${e instanceof Error ? e.message : String(e)}`);
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

/**
 * Stores CHANNEL_ADMIN_TOKEN (hashed) and revokes the token bootstrapped from an earlier value, so
 * rotating the Secret and restarting retires the old token. The token itself is never logged.
 */
async function bootstrapAdminToken(store: ApiStore, token: string): Promise<void> {
  const r = await store.bootstrapAdminToken(token);
  if (r.revoked > 0)
    log.info(`CHANNEL_ADMIN_TOKEN changed: revoked ${r.revoked} token(s) bootstrapped from an earlier value`);
  if (r.isRevoked)
    log.alert(
      "ALERT: CHANNEL_ADMIN_TOKEN is a revoked token and stays refused; put a new token in the Secret and restart",
    );
}

main().catch((e: unknown) => {
  log.error(
    e instanceof ConfigError
      ? e.message
      : `failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
  );
  process.exit(1);
});
