/*~ The channel service as a process: configuration from the environment (config.ts), Postgres,
 * NATS, the signer over gRPC, the node (node.ts), the chain watcher's events through a durable
 * consumer, and the control API. Graceful on SIGTERM: the API stops taking requests, leases are
 * released so another replica takes the channels at once. */
import { readFile } from "node:fs/promises";
import { armCrashPoints, describeCrashSettings } from "@ln/crash";
import { sha256 } from "@ln/bitcoin";
import { lineLogger, processLogger } from "@ln/log";
import { newRegistry, serveOps, urlOf } from "@ln/metrics";
import { SignerClient } from "@ln/signer-client";
import { networks } from "bitcoinjs-lib";
import { connect } from "nats";
import pg from "pg";
import { ApiStore, buildApi } from "./api/index.js";
import { registerNodeMetrics, registerServiceMetrics } from "./api/metrics.js";
import { broadcastTx, chainTip, watchScripts } from "./chain-requests.js";
import { consumeChainEvents, requestOutputWatch, requestWatch } from "./chain-link.js";
import { ConfigError, loadConfig } from "./config.js";
import { Ledger } from "./ledger.js";
import { ChannelNodeBackend } from "./node-backend.js";
import { ChannelNode } from "./node.js";
import { connectPeer, listPeers, resyncPeer } from "./peer-requests.js";
import { Resolver } from "./resolution.js";
import { ChannelStore } from "./store.js";
import { TowerLink, towerRecordsSubject } from "./tower-link.js";
import { Wallet } from "./wallet.js";
import { natsConnectOptions } from "@ln/env";

const VERSION = "0.1.0";
// JSON lines on stderr (@ln/log), the API's request lines included; the ready line stays plain text.
const logger = processLogger("channel");
const log = lineLogger(logger);

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
        log(
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
  if (armed !== undefined) log(armed);
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
  const store = new ChannelStore(pool, cfg.databaseSchema);
  await store.migrate();
  const ledger = new Ledger(pool, cfg.databaseSchema);
  const nc = await connect(natsConnectOptions(cfg.nats, `channel-${cfg.replicaId}`));
  void serviceMetrics
    .watchNats(nc.status(), log)
    .catch((e: unknown) => log(`NATS status: ${e instanceof Error ? e.message : String(e)}`));
  const signer = new SignerClient(
    cfg.signer.addr,
    tls,
    cfg.signer.serverName ? { "grpc.ssl_target_name_override": cfg.signer.serverName } : {},
  );
  const nodeId = await nodeIdFrom(signer, cfg.signer.addr);
  const chainPrefix = `${cfg.prefix}.chain`;
  const peerPrefix = `${cfg.prefix}.peer`;
  const wallet = new Wallet({
    pool,
    schema: cfg.databaseSchema,
    signer,
    chain: {
      watchScripts: (scripts) => watchScripts(nc, chainPrefix, scripts),
      broadcast: (hex) => broadcastTx(nc, chainPrefix, hex),
    },
    network:
      cfg.network === "bitcoin"
        ? networks.bitcoin
        : cfg.network === "testnet"
          ? networks.testnet
          : networks.regtest,
    feeRatePerKvb: cfg.walletFeeRate,
  });
  const peers = {
    connect: (p: { host: string; port: number; nodeId: string }) => connectPeer(nc, peerPrefix, p),
    list: () => listPeers(nc, peerPrefix),
    resync: (nodeId: string) => resyncPeer(nc, peerPrefix, nodeId),
  };
  const resolution = new Resolver({
    pool,
    schema: cfg.databaseSchema,
    store,
    ledger,
    signer,
    wallet,
    watchOutput: (id, txid, vout) => requestOutputWatch(nc, chainPrefix, id, txid, vout),
    feeRate: cfg.walletFeeRate,
    log,
  });
  const node = new ChannelNode({
    store,
    ledger,
    signer,
    nodeId,
    nc,
    peerPrefix,
    chain: {
      broadcast: (hex) => broadcastTx(nc, chainPrefix, hex),
      tip: () => chainTip(nc, chainPrefix),
      watchAnchor: (id, o) => requestWatch(nc, chainPrefix, id, o),
    },
    wallet,
    peers,
    tower: new TowerLink({ js: nc.jetstream(), store, subject: towerRecordsSubject(cfg.prefix) }),
    resolution,
    replicaId: cfg.replicaId,
    leaseMs: cfg.leaseMs,
    terms: cfg.terms,
    inboundOpenings: cfg.inboundOpenings,
    log,
  });
  node.runner.onCommitRound = serviceMetrics.commitRound;
  await node.start();
  const chain = await consumeChainEvents({
    nc,
    prefix: chainPrefix,
    durable: `channel-${cfg.prefix}-${cfg.replicaId}`,
    handle: async (ev) => {
      await wallet.onChainEvent(ev);
      await node.onChainEvent(ev);
    },
    log,
  });
  void wallet
    .rebroadcastUnconfirmed()
    .then((n) => n > 0 && log(`re-broadcast ${n} unconfirmed wallet transaction(s)`))
    .catch((e: unknown) =>
      log(`re-broadcasting wallet transactions: ${e instanceof Error ? e.message : String(e)}`),
    );

  const backend = new ChannelNodeBackend({
    node,
    resolution,
    store,
    ledger,
    wallet,
    peers,
    nodeId: nodeId.toString("hex"),
    network: cfg.network,
    version: VERSION,
    invoiceHash: async (index, amountMsat) => {
      // The amount too: the signer then reveals R only for an HTLC paying at least it.
      const { r_hash } = await signer.call("InvoiceHash", { index, amount_msat: amountMsat });
      return r_hash.toString("hex");
    },
  });
  if (cfg.adminToken !== undefined)
    await bootstrapAdminToken(new ApiStore(pool, cfg.databaseSchema), cfg.adminToken);
  let metricsErrorLoggedAt = 0;
  registerNodeMetrics(registry, {
    pool,
    schema: cfg.databaseSchema,
    onError: (what, e) => {
      if (Date.now() - metricsErrorLoggedAt < 60_000) return;
      metricsErrorLoggedAt = Date.now();
      log(`metrics: ${what} not collected: ${e instanceof Error ? e.message : String(e)}`);
    },
  });
  const app = await buildApi({
    pool,
    backend,
    schema: cfg.databaseSchema,
    version: VERSION,
    registry,
    // The same JSON lines, each request's with its reqId; headers (the token) and bodies are never logged.
    loggerInstance: logger,
  });
  await app.listen({ host: cfg.apiListen.host, port: cfg.apiListen.port });
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : cfg.apiListen.port;
  const api = urlOf(cfg.apiListen.host, port);
  let stopping = false;
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
  if (ops) log(`serving /metrics, /healthz and /readyz at ${ops.url}`);
  log(`replica ${cfg.replicaId}, schema ${cfg.databaseSchema}, node ${nodeId.toString("hex")}`);
  // The machine-readable ready line that supervisors (the lab) wait for, plain text as before.
  process.stderr.write(
    `channel: ready ${JSON.stringify({ api, nodeId: nodeId.toString("hex"), ...(ops ? { ops: ops.url } : {}) })}\n`,
  );
  // The token is never printed; its hash tells the operator which one is configured.
  if (cfg.adminToken !== undefined)
    log(
      `admin token configured (sha256 ${sha256(Buffer.from(cfg.adminToken)).toString("hex").slice(0, 12)}…)`,
    );

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    void (async () => {
      await app.close();
      await ops?.close();
      await chain.stop();
      await node.stop();
      await nc.drain();
      signer.close();
      await pool.end();
    })().then(
      () => process.exit(0),
      (e: unknown) => {
        log(`stopping: ${e instanceof Error ? e.message : String(e)}`);
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
    log(`CHANNEL_ADMIN_TOKEN changed: revoked ${r.revoked} token(s) bootstrapped from an earlier value`);
  if (r.isRevoked)
    log(
      "ALERT: CHANNEL_ADMIN_TOKEN is a revoked token and stays refused; put a new token in the Secret and restart",
    );
}

main().catch((e: unknown) => {
  log(
    e instanceof ConfigError
      ? e.message
      : `failed to start: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`,
  );
  process.exit(1);
});
