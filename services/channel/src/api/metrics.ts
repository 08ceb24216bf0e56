/**
 * The channel service's Prometheus metrics (prom-client, served on its ops port, never on the API's):
 * the API's request counter, and gauges of the node's books read from Postgres at scrape time.
 * Labels are methods, routes, statuses and phases only: never a channel id, a payment hash or a
 * token.
 */
import { collectDefaultMetrics, connectionErrors, Counter, Gauge, Histogram, Registry } from "@ln/metrics";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

/** Requests served by the control API, by method, route pattern and status. */
export class RequestMetrics {
  private readonly requests: Counter<"method" | "route" | "status">;
  private readonly auditFailures: Counter<"stage">;

  /**
   * On `registry`: the process's, from newRegistry("channel") (main.ts). Default: a new one with
   * the process metrics and no default label, for an embedded API (tests).
   */
  constructor(registry?: Registry) {
    if (registry === undefined) {
      registry = new Registry();
      collectDefaultMetrics({ register: registry });
    }
    const started = Date.now();
    this.requests = new Counter({
      name: "channel_api_requests_total",
      help: "HTTP requests served by the control API.",
      labelNames: ["method", "route", "status"] as const,
      registers: [registry],
    });
    this.auditFailures = new Counter({
      name: "channel_api_audit_failures_total",
      help: "Audit log writes that failed: start (the call was refused) or finish (its outcome is missing).",
      labelNames: ["stage"] as const,
      registers: [registry],
    });
    for (const stage of ["start", "finish"]) this.auditFailures.inc({ stage }, 0);
    new Gauge({
      name: "channel_api_uptime_seconds",
      help: "Seconds since the API started.",
      registers: [registry],
      collect() {
        this.set(Math.floor((Date.now() - started) / 1000));
      },
    });
  }

  count(method: string, route: string, status: number): void {
    this.requests.inc({ method, route, status: String(status) });
  }

  auditFailed(stage: "start" | "finish"): void {
    this.auditFailures.inc({ stage });
  }
}

const PHASES = ["opening", "normal", "clearing", "closed", "failed", "behind"] as const;
const PAYMENT_STATUSES = ["pending", "succeeded", "failed"] as const;
/** Label values read from the database are kept to this shape (they are enums in the code). */
const LABEL = /^[a-z_]{1,32}$/;

/**
 * Gauges of the node's state, each one query at scrape time on `pool` (the service's schema):
 * channel_channels{phase}, channel_payments_total{status}, channel_htlcs_in_flight and
 * channel_chain_height (0 until a tip was recorded). A failed query keeps that gauge's last values
 * and calls `onError`, rather than failing the whole scrape.
 */
export function registerNodeMetrics(
  registry: Registry,
  opts: { pool: pg.Pool; schema: string; onError?: (what: string, e: unknown) => void },
): void {
  const s = quoteSchema(opts.schema);
  const registers = [registry];
  const failed = (what: string, e: unknown): void => opts.onError?.(what, e);
  new Gauge({
    name: "channel_channels",
    help: "Channels by phase (opening, normal, clearing, closed, failed, behind: data loss suspected).",
    labelNames: ["phase"] as const,
    registers,
    async collect() {
      try {
        const r = await opts.pool.query<{ phase: string; n: number }>(
          `SELECT phase, count(*)::int AS n FROM ${s}.channels GROUP BY phase`,
        );
        for (const phase of PHASES) this.set({ phase }, 0);
        for (const row of r.rows) if (LABEL.test(row.phase)) this.set({ phase: row.phase }, row.n);
      } catch (e) {
        failed("channel_channels", e);
      }
    },
  });
  new Gauge({
    name: "channel_payments_total",
    help: "Payments we offered, by status (pending, succeeded, failed); a gauge read from the ledger.",
    labelNames: ["status"] as const,
    registers,
    async collect() {
      try {
        const r = await opts.pool.query<{ status: string; n: number }>(
          `SELECT status, count(*)::int AS n FROM ${s}.payments GROUP BY status`,
        );
        for (const status of PAYMENT_STATUSES) this.set({ status }, 0);
        for (const row of r.rows) if (LABEL.test(row.status)) this.set({ status: row.status }, row.n);
      } catch (e) {
        failed("channel_payments_total", e);
      }
    },
  });
  new Gauge({
    name: "channel_htlcs_in_flight",
    help: "HTLCs on our current commitments of the channels not closed or failed.",
    registers,
    async collect() {
      try {
        const r = await opts.pool.query<{ n: number }>(
          `SELECT coalesce(sum(CASE WHEN jsonb_typeof(state::jsonb -> 'localCommit' -> 'htlcs') = 'array'
                                    THEN jsonb_array_length(state::jsonb -> 'localCommit' -> 'htlcs') ELSE 0 END), 0)::int AS n
             FROM ${s}.channels WHERE phase NOT IN ('closed', 'failed')`,
        );
        this.set(r.rows[0]?.n ?? 0);
      } catch (e) {
        failed("channel_htlcs_in_flight", e);
      }
    },
  });
  new Gauge({
    name: "channel_chain_height",
    help: "Height of the last chain tip the channel service handled (compare watchtower_chain_height for its lag).",
    registers,
    async collect() {
      try {
        const r = await opts.pool.query<{ height: number }>(`SELECT height FROM ${s}.chain_tip WHERE id = 1`);
        this.set(r.rows[0]?.height ?? 0);
      } catch (e) {
        failed("channel_chain_height", e);
      }
    },
  });
}

/**
 * The channel service's own counters and histograms, fed by main.ts: commitment round-trip times
 * (the runner's onCommitRound), Postgres pool errors and NATS connection errors. No labels but
 * the NATS event type.
 */
export interface ServiceMetrics extends ReturnType<typeof connectionErrors> {
  /** Seconds from our update_commit sent to the peer's update_revocation for it applied. */
  commitRound(seconds: number): void;
  /** We sent an update_commit committing the peer to `updates` updates. */
  commitSent(updates: number): void;
}

export function registerServiceMetrics(registry: Registry): ServiceMetrics {
  const registers = [registry];
  const rounds = new Histogram({
    name: "channel_commitment_round_seconds",
    help: "Seconds from our update_commit being sent to the peer's update_revocation for it arriving.",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const updates = new Histogram({
    name: "channel_commitment_updates",
    help: "Updates (HTLC adds, fulfils, fails, fee changes, ours and the peer's) each update_commit we sent covers.",
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
    registers,
  });
  return {
    commitRound: (seconds) => rounds.observe(seconds),
    commitSent: (n) => updates.observe(n),
    ...connectionErrors(registry, "channel"),
  };
}

/** Gossip's reasons to drop (the GossipRejection codes and ours), zero from the start. */
const GOSSIP_DROP_REASONS = [
  "BAD_SIGNATURE",
  "UNKNOWN_CHANNEL",
  "UNKNOWN_NODE",
  "ANCHOR_NOT_FOUND",
  "ANCHOR_SPENT",
  "ANCHOR_MISMATCH",
  "STALE_TIMESTAMP",
  "FUTURE_TIMESTAMP",
  "RATE_LIMITED",
  "MALFORMED",
  "DUPLICATE",
] as const;

/**
 * ln_gossip_dropped_total{reason} and ln_gossip_accepted_total{kind} (gossip/gossip.ts): bad
 * gossip is dropped and counted, never fails a channel.
 */
export function registerGossipMetrics(registry: Registry): {
  dropped(reason: string): void;
  accepted(kind: string): void;
} {
  const dropped = new Counter({
    name: "ln_gossip_dropped_total",
    help: "Gossip messages dropped, by reason (bad signature, unknown or spent anchor, stale, rate limit, ...).",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const accepted = new Counter({
    name: "ln_gossip_accepted_total",
    help: "Gossip messages verified and stored in the graph, by kind.",
    labelNames: ["kind"] as const,
    registers: [registry],
  });
  for (const reason of GOSSIP_DROP_REASONS) dropped.inc({ reason }, 0);
  for (const kind of ["channel_announcement", "channel_update", "node_announcement"])
    accepted.inc({ kind }, 0);
  return {
    dropped: (reason) => dropped.inc({ reason: LABEL.test(reason.toLowerCase()) ? reason : "OTHER" }),
    accepted: (kind) => accepted.inc({ kind }),
  };
}
