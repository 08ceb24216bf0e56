/*~ The watchtower process (chain half): follows the node and publishes chain events on JetStream,
 * and answers the channel service's requests over NATS (DESIGN.md 1, 7, 8). Composition root:
 * configuration from the environment (config.ts), Postgres, the node's RPC, NATS; graceful
 * SIGTERM/SIGINT. Logs go to stderr as "watchtower: ..."; once caught up and serving it prints
 * one machine-readable line `watchtower: ready {"height":N,"stream":"..."}` on stdout. */
import { BitcoinRpc, BlockFollowerError, RpcError, RpcTransportError } from "@ln/chain-client";
import { connect, type NatsConnection } from "nats";
import pg from "pg";
import { ChainWatcher, chainRequestSubjects, serveChainRequests } from "./chain-watcher.js";
import { loadConfig, WatchtowerConfigError } from "./config.js";
import { chainEventSubjects, ensureChainStream } from "./streams.js";

const log = (text: string): void =>
  void process.stderr.write(
    text
      .split("\n")
      .map((l) => `watchtower: ${l}\n`)
      .join(""),
  );
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

async function main(): Promise<void> {
  const cfg = loadConfig();
  log(
    `starting: node ${redact(cfg.rpc.url)}, NATS ${redact(cfg.natsUrl)}, schema ${cfg.databaseSchema}, ` +
      `subjects ${cfg.chainPrefix}.*, stream ${cfg.stream}`,
  );
  const pool = new pg.Pool({ connectionString: cfg.databaseUrl });
  pool.on("error", (e) => log(`Postgres connection error: ${e.message}`));
  const rpc = new BitcoinRpc(cfg.rpc);

  let nc: NatsConnection;
  try {
    nc = await connect({
      servers: cfg.natsUrl,
      name: `watchtower ${cfg.lnPrefix}`,
      maxReconnectAttempts: -1,
    });
  } catch (e) {
    await pool.end();
    throw new Error(
      `cannot connect to NATS at ${redact(cfg.natsUrl)} (${message(e)}); start it or set NATS_URL`,
    );
  }
  void (async () => {
    for await (const s of nc.status())
      if (s.type === "disconnect" || s.type === "reconnect") log(`NATS ${s.type} (${String(s.data)})`);
  })();

  const watcher = new ChainWatcher({
    pool,
    schema: cfg.databaseSchema,
    rpc,
    js: nc.jetstream(),
    subjectPrefix: cfg.chainPrefix,
    ...(cfg.startHeight !== undefined ? { startHeight: cfg.startHeight } : {}),
    intervalMs: cfg.pollMs,
    onProgress: (p) => log(`synced to ${p.height}/${p.tip}`),
    onPollError: (e) => log(advice(e)),
  });
  try {
    const applied = await watcher.migrate();
    if (applied.length > 0) log(`applied migrations ${applied.join(", ")} to schema ${cfg.databaseSchema}`);
  } catch (e) {
    await nc.close();
    await pool.end();
    throw new Error(
      `cannot prepare schema ${cfg.databaseSchema} (${message(e)}); check WATCHTOWER_DATABASE_URL`,
    );
  }
  await ensureChainStream(await nc.jetstreamManager(), cfg.stream, cfg.chainPrefix);
  log(`stream ${cfg.stream} holds ${chainEventSubjects(cfg.chainPrefix).join(", ")}`);
  serveChainRequests(nc, cfg.chainPrefix, watcher, (e) => log(`request failed: ${e.message}`));
  const req = chainRequestSubjects(cfg.chainPrefix);
  log(`answering ${req.watch}, ${req.watchScript}, ${req.broadcast}, ${req.tip}`);

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
        log(advice(e));
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
        log(advice(e));
        if (stopping) return;
        await pause(backoff(attempt));
        watcher.restartFollower();
      }
    }
  };

  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping`);
    wake?.();
    void (async () => {
      await watcher.follower.stop();
      // A long first catch-up is not waited for: every event is saved after it is published, so
      // the next start re-delivers at most one block, which JetStream drops as a duplicate.
      await Promise.race([initial, new Promise((r) => setTimeout(r, 5000))]);
      await nc.drain().catch((e: unknown) => log(`NATS drain: ${message(e)}`));
      await pool.end().catch((e: unknown) => log(`Postgres: ${message(e)}`));
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
  // The machine-readable ready line that supervisors (the lab, tests) wait for.
  process.stdout.write(`watchtower: ready ${JSON.stringify({ height, stream: cfg.stream })}\n`);
  await follow();
}

main().catch((e: unknown) => {
  // Configuration errors and startup errors are written for the operator and hold no secret.
  log(e instanceof WatchtowerConfigError ? e.message : `failed to start: ${message(e)}`);
  process.exit(1);
});
