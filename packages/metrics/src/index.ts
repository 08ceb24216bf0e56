/**
 * The services' operator surface: a prom-client registry per process (the default process
 * metrics, every series labelled with the service) and a small HTTP server for it:
 * GET /metrics (Prometheus text exposition), /healthz (200 while the process runs) and /readyz
 * (200 when `ready()` says so, 503 with the reason otherwise). Labels must stay low-cardinality:
 * never keys, node ids, payment hashes or tokens.
 */
import http from "node:http";
import type { AddressInfo } from "node:net";
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";

export { collectDefaultMetrics, Counter, Gauge, Histogram, Registry };

/** A registry with the default process metrics; every series carries `service="<service>"`. */
export function newRegistry(service: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ service });
  collectDefaultMetrics({ register: registry });
  return registry;
}

export interface HostPort {
  host: string;
  port: number;
}

/** A URL to reach `host:port` from this machine (a wildcard address becomes loopback). */
export function urlOf(host: string, port: number): string {
  const h = host === "0.0.0.0" || host === "" ? "127.0.0.1" : host === "::" ? "::1" : host;
  return `http://${h.includes(":") ? `[${h}]` : h}:${port}`;
}

export interface OpsOptions {
  listen: HostPort;
  registry: Registry;
  /**
   * Readiness: true when ready; false or a reason (the 503 body) when not. A rejection or no
   * answer within 5 s is "not ready" too. Default: always ready.
   */
  ready?: () => Promise<boolean | string>;
  /** One record per fault of the ops server itself (a failed scrape); never request details. */
  log?: OpsLog;
}

/** What the ops server and the connection watchers log through (@ln/log's `Log` is one). */
export interface OpsLog {
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
}
const NO_LOG: OpsLog = { info: () => undefined, warn: () => undefined, error: () => undefined };

export interface OpsServer {
  /** The bound port (useful with port 0). */
  port: number;
  /** e.g. http://127.0.0.1:9100 */
  url: string;
  close(): Promise<void>;
}

const READY_TIMEOUT_MS = 5000;

async function readiness(ready: OpsOptions["ready"]): Promise<true | string> {
  if (!ready) return true;
  let timer: NodeJS.Timeout | undefined;
  try {
    const answer = await Promise.race([
      ready(),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve("the readiness check did not answer in time"), READY_TIMEOUT_MS);
      }),
    ]);
    if (answer === true) return true;
    return answer === false || answer === "" ? "not ready" : answer;
  } catch (e) {
    return `the readiness check failed: ${e instanceof Error ? e.message : String(e)}`;
  } finally {
    clearTimeout(timer);
  }
}

function send(
  res: http.ServerResponse,
  status: number,
  body: string,
  type = "text/plain; charset=utf-8",
): void {
  res.writeHead(status, { "content-type": type, "cache-control": "no-store" });
  res.end(body);
}

/** Serves /metrics, /healthz and /readyz on `listen`; resolves once listening. */
export async function serveOps(opts: OpsOptions): Promise<OpsServer> {
  const log = opts.log ?? NO_LOG;
  const server = http.createServer((req, res) => {
    const path = (req.url ?? "/").split("?")[0];
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      send(res, 405, "method not allowed\n");
      return;
    }
    switch (path) {
      case "/healthz":
        send(res, 200, "ok\n");
        return;
      case "/readyz":
        void readiness(opts.ready).then((r) =>
          r === true ? send(res, 200, "ready\n") : send(res, 503, `not ready: ${r}\n`),
        );
        return;
      case "/metrics":
        opts.registry.metrics().then(
          (text) => send(res, 200, text, opts.registry.contentType),
          (e: unknown) => {
            log.warn(`ops: /metrics failed: ${e instanceof Error ? e.message : String(e)}`);
            send(res, 500, "metrics collection failed\n");
          },
        );
        return;
      default:
        send(res, 404, "not found: try /metrics, /healthz or /readyz\n");
    }
  });
  server.on("error", (e) => log.error(`ops: server error: ${e.message}`));
  await new Promise<void>((resolve, reject) => {
    const fail = (e: Error): void => reject(e);
    server.once("error", fail);
    server.listen(opts.listen.port, opts.listen.host, () => {
      server.off("error", fail);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    url: urlOf(opts.listen.host, port),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Status events of a NATS connection counted as errors. */
const NATS_ERROR_EVENTS: readonly string[] = ["disconnect", "error"];

/**
 * `<service>_postgres_errors_total` and `<service>_nats_errors_total{type}` (from 0), and how to
 * feed them: a pool's `error` events (an idle client lost), and a NATS connection's status
 * iterator (`nc.status()`: disconnects and asynchronous errors; reconnections are logged only).
 */
export function connectionErrors(registry: Registry, service: string) {
  const postgres = new Counter({
    name: `${service}_postgres_errors_total`,
    help: "Errors of the Postgres pool (an idle client lost its connection).",
    registers: [registry],
  });
  const nats = new Counter({
    name: `${service}_nats_errors_total`,
    help: "NATS connection errors by type: disconnect or error (an async error from the server).",
    labelNames: ["type"] as const,
    registers: [registry],
  });
  postgres.inc(0);
  for (const type of NATS_ERROR_EVENTS) nats.inc({ type }, 0);
  return {
    watchPool(pool: { on(event: "error", listener: (e: Error) => void): unknown }, log: OpsLog): void {
      pool.on("error", (e) => {
        postgres.inc();
        log.warn(`postgres: ${e.message}`);
      });
    },
    /** Resolves when the iterator ends (the connection closed). */
    async watchNats(status: AsyncIterable<{ type: string; data?: unknown }>, log: OpsLog): Promise<void> {
      for await (const s of status) {
        if (NATS_ERROR_EVENTS.includes(s.type)) nats.inc({ type: s.type });
        if (s.type === "disconnect" || s.type === "reconnect" || s.type === "error")
          log[s.type === "reconnect" ? "info" : "warn"](
            `NATS ${s.type} (${typeof s.data === "string" || typeof s.data === "number" ? s.data : ""})`,
          );
      }
    },
  };
}
