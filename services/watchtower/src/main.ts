/*~ The watchtower process (chain half): follows the node and publishes chain events on JetStream,
 * and answers the channel service's requests over NATS (DESIGN.md 1, 7, 8). Composition root:
 * configuration from the environment (config.ts), Postgres, the node's RPC, NATS; graceful
 * SIGTERM/SIGINT. Logs go to stderr as JSON lines (@ln/log); once caught up and serving it prints
 * one machine-readable line `watchtower: ready {"height":N,"stream":"..."}` on stdout (with
 * "ops":"http://host:port" when WATCHTOWER_OPS_LISTEN serves /metrics, /healthz and /readyz, and
 * "justice":true|false: whether the tower proper runs, which it does only when SIGNER_ADDR is set). */
import { readFile } from "node:fs/promises";
import { armCrashPoints, describeCrashSettings } from "@ln/crash";
import { BitcoinRpc, BlockFollowerError, RpcError, RpcTransportError } from "@ln/chain-client";
import { processLogger, structuredLog } from "@ln/log";
import { SignerClient } from "@ln/signer-client";
import {
  connectionErrors,
  Counter,
  Gauge,
  newRegistry,
  serveOps,
  type OpsServer,
  type Registry,
} from "@ln/metrics";
import type { BroadcastReply } from "@ln/proto";
import { connect, type JetStreamClient, type NatsConnection } from "nats";
import pg from "pg";
import { ChainWatcher, chainRequestSubjects, serveChainRequests } from "./chain-watcher.js";
import { loadConfig, WatchtowerConfigError } from "./config.js";
import { chainEventSubjects, ensureChainStream } from "./streams.js";
import { JusticeTower, towerMetrics } from "./tower.js";
import { natsConnectOptions } from "@ln/env";

// JSON lines on stderr (@ln/log), multi-line text in one msg; the ready line stays plain on stdout.
const logger = processLogger("watchtower");
const log = structuredLog(logger);
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** A URL for the log: never its user or password. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString();
  } catch {
    return "(unparseable URL)";
  }
}

/** What the operator should do about an error of the follower. */
function advice(e: unknown): string {
  if (e instanceof RpcTransportError)
    return `${e.message}; check the node is running and BITCOIN_RPC_URL/BITCOIN_RPC_USER/BITCOIN_RPC_PASSWORD; retrying`;
  if (e instanceof RpcError) return `the node refused a request: ${e.message}; retrying`;
  if (e instanceof BlockFollowerError && e.code === "HANDLER_FAILED")
    return `${e.message}. Check Postgres and NATS (JetStream) are reachable; retrying`;
  if (e instanceof BlockFollowerError)
    return `${e.message}. If the node was reset or replaced, point BITCOIN_RPC_URL at the right node or drop the cursor table of the schema; retrying`;
  return `${message(e)}; retrying`;
}

/** The watchtower's metrics; labels are event kinds and outcomes only, never a txid or a channel. */
function watchtowerMetrics(registry: Registry) {
  const registers = [registry];
  const m = {
    blocks: new Counter({
      name: "watchtower_blocks_total",
      help: "Blocks handled, by kind: connected or disconnected (a reorg); a replay JetStream drops as a duplicate is not counted.",
      labelNames: ["kind"] as const,
      registers,
    }),
    events: new Counter({
      name: "watchtower_events_published_total",
      help: "Chain events published on JetStream, by kind (block_connected, anchor_depth, wallet_output, ...); duplicates dropped by JetStream are not counted.",
      labelNames: ["kind"] as const,
      registers,
    }),
    rpcErrors: new Counter({
      name: "watchtower_rpc_errors_total",
      help: "Failed calls to the node's RPC, by kind: transport (unreachable, timeout, HTTP) or node (the node answered with an error).",
      labelNames: ["kind"] as const,
      registers,
    }),
    broadcasts: new Counter({
      name: "watchtower_broadcasts_total",
      help: "Broadcast requests answered, by outcome: ok, rejected, unavailable, bad_request or error.",
      labelNames: ["outcome"] as const,
      registers,
    }),
    connection: connectionErrors(registry, "watchtower"),
  };
  for (const kind of ["connected", "disconnected"]) m.blocks.inc({ kind }, 0);
  for (const kind of ["transport", "node"]) m.rpcErrors.inc({ kind }, 0);
  return m;
}
type WatchtowerMetrics = ReturnType<typeof watchtowerMetrics>;

/** The node's RPC, counting failed calls (every typed method goes through call()). */
class MeteredRpc extends BitcoinRpc {
  constructor(
    opts: ConstructorParameters<typeof BitcoinRpc>[0],
    private readonly errors: WatchtowerMetrics["rpcErrors"],
  ) {
    super(opts);
  }

  override async call<T = unknown>(
    method: string,
    params?: readonly unknown[],
    opts?: Parameters<BitcoinRpc["call"]>[2],
  ): Promise<T> {
    try {
      return await super.call<T>(method, params, opts);
    } catch (e) {
      this.errors.inc({ kind: e instanceof RpcError ? "node" : "transport" });
      throw e;
    }
  }
}

/** The watcher, counting broadcast requests by outcome. */
class MeteredWatcher extends ChainWatcher {
  constructor(
    opts: ConstructorParameters<typeof ChainWatcher>[0],
    private readonly outcomes: WatchtowerMetrics["broadcasts"],
  ) {
    super(opts);
  }

  override async broadcast(tx: Buffer): Promise<BroadcastReply> {
    try {
      const reply = await super.broadcast(tx);
      this.outcomes.inc({ outcome: "txid" in reply ? "ok" : reply.code.toLowerCase() });
      return reply;
    } catch (e) {
      this.outcomes.inc({ outcome: "error" });
      throw e;
    }
  }
}

/** JetStream publishing, counting the events (the subject's last token is the event kind). */
function meteredJetStream(js: JetStreamClient, m: WatchtowerMetrics, prefix: string): JetStreamClient {
  const publish: JetStreamClient["publish"] = async (subject, payload, options) => {
    const ack = await js.publish(subject, payload, options);
    if (!ack.duplicate && subject.startsWith(`${prefix}.`)) {
      const kind = subject.slice(prefix.length + 1);
      m.events.inc({ kind });
      if (kind === "block_connected") m.blocks.inc({ kind: "connected" });
      if (kind === "block_disconnected") m.blocks.inc({ kind: "disconnected" });
    }
    return ack;
  };
  return new Proxy(js, {
    get(target, prop, receiver) {
      if (prop === "publish") return publish;
      const v: unknown = Reflect.get(target, prop, receiver);
      return typeof v === "function" ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

async function main(): Promise<void> {
  const cfg = loadConfig();
  armCrashPoints(cfg.crash);
  const armed = describeCrashSettings(cfg.crash);
  if (armed !== undefined) log.warn(armed);
  const registry = newRegistry("watchtower");
  const metrics = watchtowerMetrics(registry);
  let ops: OpsServer | undefined;
  let ready: true | string = "starting: catching up with the node";
  // Served from the start: /healthz answers during a long first catch-up.
  if (cfg.opsListen) {
    ops = await serveOps({ listen: cfg.opsListen, registry, ready: () => Promise.resolve(ready), log });
    log.info(`serving /metrics, /healthz and /readyz at ${ops.url}`);
  }
  log.info(
    `starting: node ${redact(cfg.rpc.url)}, NATS ${redact(cfg.nats.servers)}, schema ${cfg.databaseSchema}, ` +
      `subjects ${cfg.chainPrefix}.*, stream ${cfg.stream}`,
  );
  const pool = new pg.Pool({ connectionString: cfg.databaseUrl });
  metrics.connection.watchPool(pool, log);
  const rpc = new MeteredRpc(cfg.rpc, metrics.rpcErrors);
  /** The node's tip as last seen: the follower's progress reports, and each scrape. */
  let nodeTip: number | undefined;

  let nc: NatsConnection;
  try {
    nc = await connect({
      ...natsConnectOptions(cfg.nats, `watchtower ${cfg.lnPrefix}`),
      maxReconnectAttempts: -1,
    });
  } catch (e) {
    await pool.end();
    await ops?.close();
    throw new Error(
      `cannot connect to NATS at ${redact(cfg.nats.servers)} (${message(e)}); start it, or check NATS_URL and the NATS credentials`,
    );
  }
  void metrics.connection
    .watchNats(nc.status(), log)
    .catch((e: unknown) => log.warn(`NATS status: ${message(e)}`));

  const watcher = new MeteredWatcher(
    {
      pool,
      schema: cfg.databaseSchema,
      rpc,
      js: meteredJetStream(nc.jetstream(), metrics, cfg.chainPrefix),
      subjectPrefix: cfg.chainPrefix,
      ...(cfg.startHeight !== undefined ? { startHeight: cfg.startHeight } : {}),
      intervalMs: cfg.pollMs,
      onProgress: (p) => {
        nodeTip = p.tip;
        log.info(`synced to ${p.height}/${p.tip}`);
      },
      onPollError: (e) => log.warn(advice(e)),
    },
    metrics.broadcasts,
  );
  new Gauge({
    name: "watchtower_chain_lag_blocks",
    help: "Blocks the watchtower is behind the node: the node's tip (asked at scrape time, else the last known) minus the height it handled; 0 when caught up.",
    registers: [registry],
    async collect() {
      // One attempt, at most 2 s: a node that does not answer leaves the last known tip (its
      // failures are counted in watchtower_rpc_errors_total).
      let timer: NodeJS.Timeout | undefined;
      const tip = await Promise.race([
        rpc.call<unknown>("getblockcount", [], { idempotent: false }).catch(() => undefined),
        new Promise<undefined>((r) => (timer = setTimeout(() => r(undefined), 2000))),
      ]);
      clearTimeout(timer);
      if (typeof tip === "number") nodeTip = tip;
      const c = watcher.follower.cursor;
      if (c && nodeTip !== undefined) this.set(Math.max(0, nodeTip - c.height));
    },
  });
  new Gauge({
    name: "watchtower_chain_height",
    help: "Height of the last block the watchtower handled (its cursor).",
    registers: [registry],
    collect() {
      const c = watcher.follower.cursor;
      if (c) this.set(c.height);
    },
  });
  try {
    const applied = await watcher.migrate();
    if (applied.length > 0)
      log.info(`applied migrations ${applied.join(", ")} to schema ${cfg.databaseSchema}`);
  } catch (e) {
    await nc.close();
    await pool.end();
    await ops?.close();
    throw new Error(
      `cannot prepare schema ${cfg.databaseSchema} (${message(e)}); check WATCHTOWER_DATABASE_URL`,
    );
  }
  // The tower proper: records, breaches, justice. It holds no key; the signer signs justice.
  let tower: JusticeTower | undefined;
  let signer: SignerClient | undefined;
  if (cfg.justice) {
    const j = cfg.justice;
    const pem = async (file: string, name: string): Promise<Buffer> => {
      try {
        return await readFile(file);
      } catch (e) {
        throw new Error(`cannot read ${name} ${file} (${message(e)}); point ${name} at a readable PEM file`);
      }
    };
    const tls = {
      ca: await pem(j.signer.caFile, "SIGNER_CLIENT_CA"),
      cert: await pem(j.signer.certFile, "SIGNER_CLIENT_CERT"),
      key: await pem(j.signer.keyFile, "SIGNER_CLIENT_KEY"),
    };
    signer = new SignerClient(j.signer.addr, tls, {
      // A signer back after an outage is found within seconds: justice may be waiting on it.
      "grpc.initial_reconnect_backoff_ms": 500,
      "grpc.max_reconnect_backoff_ms": 5000,
      ...(j.signer.serverName ? { "grpc.ssl_target_name_override": j.signer.serverName } : {}),
    });
    tower = new JusticeTower({
      pool,
      schema: cfg.databaseSchema,
      rpc,
      signer,
      settings: j,
      metrics: towerMetrics(registry),
      // Levels and alerts set where each event happens (the tower's parts use the structured Log).
      log: structuredLog(logger),
      ...(cfg.startHeight !== undefined ? { startHeight: cfg.startHeight } : {}),
      intervalMs: cfg.pollMs,
      mempoolPollMs: j.mempoolPollMs,
    });
    await tower.migrate();
    await tower.consumeRecords({
      nc,
      stream: j.recordsStream,
      subject: j.recordsSubject,
      durable: j.recordsConsumer,
    });
    log.info(
      `justice: records from ${j.recordsSubject} (stream ${j.recordsStream}), signer ${j.signer.addr}, ` +
        `fee target ${j.feeTargetBlocks} blocks, bump after ${j.bumpBlocks}, bury at ${j.buryDepth}`,
    );
  } else
    log.warn(
      "justice is off: SIGNER_ADDR is not set, so revocation records are not taken and breaches not punished",
    );
  await ensureChainStream(await nc.jetstreamManager(), cfg.stream, cfg.chainPrefix);
  log.info(`stream ${cfg.stream} holds ${chainEventSubjects(cfg.chainPrefix).join(", ")}`);
  serveChainRequests(nc, cfg.chainPrefix, watcher, (e) => log.warn(`request failed: ${e.message}`));
  const req = chainRequestSubjects(cfg.chainPrefix);
  log.info(`answering ${req.watch}, ${req.watchScript}, ${req.broadcast}, ${req.tip}`);

  let stopping = false;
  let wake: (() => void) | undefined;
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });
  const backoff = (attempt: number): number => Math.min(cfg.pollMs * 2 ** Math.min(attempt, 10), 30_000);

  // The first pass before "ready": the cursor is set and the node's blocks so far are reported.
  let initial: Promise<void> = Promise.resolve();
  const catchUp = async (): Promise<boolean> => {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        await watcher.syncOnce();
        return true;
      } catch (e) {
        log.warn(advice(e));
        if (!(e instanceof RpcTransportError)) watcher.restartFollower();
        await pause(backoff(attempt));
      }
    }
    return false;
  };
  // Then poll until stopped; whatever stops the follower is logged and it resumes from its cursor.
  const follow = async (): Promise<void> => {
    for (let attempt = 0; !stopping; attempt++) {
      try {
        await watcher.follower.start();
        return;
      } catch (e) {
        log.warn(advice(e));
        if (stopping) return;
        await pause(backoff(attempt));
        watcher.restartFollower();
      }
    }
  };

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    ready = "shutting down";
    log.info(`${signal}: stopping`);
    wake?.();
    void (async () => {
      await watcher.follower.stop();
      await tower?.stop().catch((e: unknown) => log.warn(`stopping the tower: ${message(e)}`));
      signer?.close();
      // A long first catch-up is not waited for: every event is saved after it is published, so
      // the next start re-delivers at most one block, which JetStream drops as a duplicate.
      await Promise.race([initial, new Promise((r) => setTimeout(r, 5000))]);
      await nc.drain().catch((e: unknown) => log.warn(`NATS drain: ${message(e)}`));
      await pool.end().catch((e: unknown) => log.warn(`Postgres: ${message(e)}`));
      await ops?.close();
    })().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));

  const first = catchUp();
  initial = first.then(() => undefined);
  if (!(await first)) return;
  const height = watcher.follower.cursor?.height ?? Math.max((cfg.startHeight ?? 1) - 1, 0);
  ready = true;
  // The machine-readable ready line that supervisors (the lab, tests) wait for.
  process.stdout.write(
    `watchtower: ready ${JSON.stringify({ height, stream: cfg.stream, justice: tower !== undefined, ...(ops ? { ops: ops.url } : {}) })}\n`,
  );
  tower?.start();
  await follow();
}

main().catch((e: unknown) => {
  // Configuration errors and startup errors are written for the operator and hold no secret.
  log.error(e instanceof WatchtowerConfigError ? e.message : `failed to start: ${message(e)}`);
  process.exit(1);
});
