/*~ The signer: the only process that holds private keys and shachain seeds. It answers gRPC
 * over mTLS and refuses what its policy forbids (DESIGN.md 4). Composition root: configuration
 * from the environment (config.ts), Postgres, the seed file bound to it (startup.ts), the server
 * with its clients' permissions; graceful SIGTERM. */
import { readFile } from "node:fs/promises";
import { armCrashPoints, describeCrashSettings } from "@ln/crash";
import { processLogger, structuredLog } from "@ln/log";
import { newRegistry, serveOps, type OpsServer } from "@ln/metrics";
import { loadConfig } from "./config.js";
import { SignerError } from "./errors.js";
import { readSeedKeyFile } from "./keys.js";
import { signerMetrics, startServer } from "./server.js";
import { SignerService } from "./service.js";
import { openSeed } from "./startup.js";
import { SignerStore } from "./store.js";

// JSON lines on stderr (@ln/log); the ready line below stays plain text on stdout.
const log = structuredLog(processLogger("signer"));

async function readPem(path: string, what: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (e) {
    throw new SignerError(
      "CONFIG",
      `cannot read ${what} ${path}: ${e instanceof Error ? e.message : String(e)}`,
    );
  }
}

async function main(): Promise<void> {
  const cfg = loadConfig();
  armCrashPoints(cfg.crash);
  const armed = describeCrashSettings(cfg.crash);
  if (armed !== undefined) log.warn(armed);
  const tls = {
    ca: await readPem(cfg.tls.caFile, "SIGNER_TLS_CA"),
    cert: await readPem(cfg.tls.certFile, "SIGNER_TLS_CERT"),
    key: await readPem(cfg.tls.keyFile, "SIGNER_TLS_KEY"),
  };
  const seedKey = await readSeedKeyFile(cfg.seedKeyFile);
  const store = SignerStore.connect(cfg.databaseUrl, cfg.databaseSchema, (e) =>
    log.warn(`postgres: an idle connection ended: ${e.message}`),
  );
  const applied = await store.migrate();
  if (applied.length > 0)
    log.info(`applied migrations ${applied.join(", ")} to schema ${cfg.databaseSchema}`);
  const { keys, created, adopted } = await openSeed(
    store,
    cfg.seedFile,
    seedKey,
    `schema ${cfg.databaseSchema}`,
  ).finally(() => seedKey.fill(0));
  if (created)
    log.warn(
      `created a new seed file at ${cfg.seedFile}: back it up together with the key of SIGNER_SEED_KEY_FILE`,
    );
  if (adopted)
    log.info(
      `recorded the seed's fingerprint in schema ${cfg.databaseSchema} (state made before fingerprints)`,
    );
  const registry = newRegistry("signer");
  const running = await startServer({
    service: new SignerService(keys, store, cfg),
    listen: cfg.listen,
    tls,
    clients: cfg.clients,
    log,
    metrics: signerMetrics(registry),
  });
  log.info(`listening on ${cfg.listen} (port ${running.port}), node key ${keys.nodePub.toString("hex")}`);
  let stopping = false;
  let ops: OpsServer | undefined;
  if (cfg.opsListen) {
    ops = await serveOps({
      listen: cfg.opsListen,
      registry,
      ready: () => Promise.resolve(stopping ? "shutting down" : true),
      log,
    });
    log.info(`serving /metrics, /healthz and /readyz at ${ops.url}`);
  }
  // The machine-readable ready line that supervisors (the lab, tests) wait for.
  process.stdout.write(
    `signer: ready ${JSON.stringify({
      port: running.port,
      nodeId: keys.nodePub.toString("hex"),
      ...(ops ? { ops: ops.url } : {}),
    })}\n`,
  );
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    log.info(`${signal}: finishing calls in flight`);
    void running
      .shutdown()
      .then(() => ops?.close())
      .then(() => store.close())
      .then(
        () => process.exit(0),
        () => process.exit(1),
      );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

main().catch((e: unknown) => {
  // A SignerError's message is written for the operator and holds no secret.
  log.error(
    e instanceof SignerError
      ? `${e.code}: ${e.message}`
      : `failed to start: ${e instanceof Error ? e.message : String(e)}`,
  );
  process.exit(1);
});
