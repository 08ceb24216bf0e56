/**
 * The channel service's /metrics on its ops port (prom-client, as main.ts serves it; the control
 * API's port has none): the request counter keeps its
 * name and labels, and the node gauges are read from Postgres at scrape time: channels by phase,
 * payments by status, HTLCs in flight on live channels, the chain height. The service's own
 * metrics: commitment round-trip times from the runner, Postgres pool and NATS connection errors.
 */
import { recordingLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { newRegistry, serveOps, type OpsServer } from "@ln/metrics";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildApi } from "../src/api/index.js";
import { MemoryBackend } from "./memory-backend.js";
import type { ChannelState, Input, Output } from "@ln/channel-core";
import { registerNodeMetrics, registerServiceMetrics } from "../src/api/metrics.js";
import { ChannelRunner } from "../src/channels/runner.js";
import { ChannelStore, type Transitions } from "../src/channels/store.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `channel_metrics_${randomBytes(6).toString("hex")}`;
let app: FastifyInstance;
let ops: OpsServer;
const errors: string[] = [];

beforeAll(async () => {
  await new ChannelStore(pool, schema).migrate();
  const registry = newRegistry("channel");
  registerNodeMetrics(registry, { pool, schema, onError: (what) => errors.push(what) });
  app = await buildApi({ pool, schema, backend: new MemoryBackend(), registry });
  ops = await serveOps({ listen: { host: "127.0.0.1", port: 0 }, registry });
});
afterAll(async () => {
  await ops?.close();
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

async function scrape(): Promise<string> {
  const r = await fetch(`${ops.url}/metrics`);
  expect(r.status).toBe(200);
  expect(r.headers.get("content-type")).toContain("text/plain");
  return r.text();
}
const value = (text: string, series: string): number | undefined => {
  const line = text.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
};

const channel = (id: string, phase: string, htlcs: number): Promise<unknown> =>
  pool.query(`INSERT INTO "${schema}".channels (id, state, phase) VALUES ($1, $2, $3)`, [
    id,
    JSON.stringify({
      phase,
      localCommit: { htlcs: Array.from({ length: htlcs }, (_, i) => ({ id: { $bigint: String(i) } })) },
    }),
    phase,
  ]);
const payment = (id: string, channelId: string, htlcId: number, status: string): Promise<unknown> =>
  pool.query(
    `INSERT INTO "${schema}".payments (id, channel_id, htlc_id, r_hash, amount_msat, expiry, status)
     VALUES ($1, $2, $3, $4, 1000, '{}'::jsonb, $5)`,
    [id, channelId, htlcId, randomBytes(32).toString("hex"), status],
  );

describe("the channel service's /metrics", () => {
  it("has the process metrics and the API's request counter under its old name", async () => {
    await app.inject({ method: "GET", url: "/healthz" });
    const text = await scrape();
    expect(text).toMatch(
      /^channel_api_requests_total\{method="GET",route="\/healthz",status="200",service="channel"\} 1$/m,
    );
    expect(text).toMatch(/^channel_api_uptime_seconds\{service="channel"\} \d+$/m);
    expect(text).toMatch(/^process_cpu_seconds_total\{service="channel"\} /m);
  });

  it("reads channels by phase, payments by status, HTLCs in flight and the chain height at scrape time", async () => {
    let text = await scrape();
    for (const phase of ["opening", "normal", "clearing", "closed", "failed", "behind"])
      expect(value(text, `channel_channels{phase="${phase}",service="channel"}`), phase).toBe(0);
    expect(value(text, 'channel_payments_total{status="pending",service="channel"}')).toBe(0);
    expect(value(text, 'channel_htlcs_in_flight{service="channel"}')).toBe(0);
    expect(value(text, 'channel_chain_height{service="channel"}')).toBe(0);

    const ids = ["a", "b", "c", "d"].map((x) => `${x}-${randomBytes(4).toString("hex")}`);
    await channel(ids[0] as string, "normal", 2);
    await channel(ids[1] as string, "clearing", 1);
    await channel(ids[2] as string, "closed", 5); // not live: its HTLCs do not count
    await channel(ids[3] as string, "behind", 0); // data loss suspected: what an alert rule watches
    await payment("p1", ids[0] as string, 0, "pending");
    await payment("p2", ids[0] as string, 1, "pending");
    await payment("p3", ids[1] as string, 0, "succeeded");
    await pool.query(`INSERT INTO "${schema}".chain_tip (id, height, hash, time) VALUES (1, 321, 'h', 0)`);

    text = await scrape();
    expect(value(text, 'channel_channels{phase="normal",service="channel"}')).toBe(1);
    expect(value(text, 'channel_channels{phase="clearing",service="channel"}')).toBe(1);
    expect(value(text, 'channel_channels{phase="closed",service="channel"}')).toBe(1);
    expect(value(text, 'channel_channels{phase="opening",service="channel"}')).toBe(0);
    expect(value(text, 'channel_channels{phase="behind",service="channel"}')).toBe(1);
    expect(value(text, 'channel_payments_total{status="pending",service="channel"}')).toBe(2);
    expect(value(text, 'channel_payments_total{status="succeeded",service="channel"}')).toBe(1);
    expect(value(text, 'channel_payments_total{status="failed",service="channel"}')).toBe(0);
    expect(value(text, 'channel_htlcs_in_flight{service="channel"}')).toBe(3);
    expect(value(text, 'channel_chain_height{service="channel"}')).toBe(321);
    // No channel id in any label.
    for (const id of ids) expect(text).not.toContain(id);
    expect(errors).toEqual([]);
  });

  it("a failed query is reported, the scrape still succeeds", async () => {
    const registry = newRegistry("channel");
    registerNodeMetrics(registry, { pool, schema: "no_such_schema_here", onError: (w) => errors.push(w) });
    const text = await registry.metrics();
    expect(text).toContain("process_cpu_seconds_total");
    expect(value(text, 'channel_channels{phase="normal",service="channel"}')).toBeUndefined();
    expect(errors).toEqual(
      expect.arrayContaining([
        "channel_channels",
        "channel_payments_total",
        "channel_htlcs_in_flight",
        "channel_chain_height",
      ]),
    );
  });
});

describe("the channel service's own metrics", () => {
  const commit = (seq: number): Output => ({
    type: "send",
    seq,
    pkt: { kind: "update_commit", sig: Buffer.alloc(64) },
  });
  const revocation: Input = {
    type: "pkt",
    pkt: {
      kind: "update_revocation",
      revocationPreimage: Buffer.alloc(32),
      nextRevocationHash: Buffer.alloc(32),
    },
  };
  const revoked = { type: "revoked", number: 0n, preimage: "00", params: {} } as unknown as Output;

  /** A runner on a scripted store: each transition returns the next outputs, whatever the input. */
  function scripted(
    script: Output[][],
    now: () => number,
    onCommitRound?: (s: number) => void,
  ): ChannelRunner {
    const store = {
      transitionAll: (): Promise<Transitions> =>
        Promise.resolve({
          state: { phase: "normal" } as ChannelState,
          outputs: [script.shift() ?? []],
          sends: [],
        }),
      outboxAfter: () => Promise.resolve([]),
    } as unknown as ChannelStore;
    return new ChannelRunner(
      store,
      "replica",
      { answer: () => Promise.reject(new Error("no signer here")) },
      { send: () => Promise.resolve() },
      () => Promise.resolve(),
      { now, ...(onCommitRound ? { onCommitRound } : {}) },
    );
  }

  it("times each commitment round, from our update_commit sent to the peer's revocation applied", async () => {
    const registry = newRegistry("channel");
    const m = registerServiceMetrics(registry);
    let t = 1_000_000;
    const runner = scripted(
      [
        [commit(1)], // round 1 starts at t
        [commit(1)], // sent again (a retransmission): the round is not restarted
        [], // some other input
        [revoked], // round 1 ends: 1.5 s
        [revoked], // a revocation with no round of ours open: nothing measured
        [commit(2)], // round 2 on c1
        [revoked], // a revocation on c2: c1's round 2 stays open
        [revoked], // round 2 ends: 0.25 s
      ],
      () => t,
    );
    runner.onCommitRound = m.commitRound; // as buildChannelService passes it to the node's runner
    const command: Input = { type: "resume" };
    await runner.input("c1", command);
    t += 1000;
    await runner.input("c1", command);
    t += 500;
    await runner.input("c1", command);
    await runner.input("c1", revocation);
    t += 100;
    await runner.input("c1", revocation);
    await runner.input("c1", command);
    await runner.input("c2", revocation); // no round open on c2; c1's stays open
    t += 250;
    await runner.input("c1", revocation);

    const text = await registry.metrics();
    expect(value(text, 'channel_commitment_round_seconds_count{service="channel"}')).toBe(2);
    expect(value(text, 'channel_commitment_round_seconds_sum{service="channel"}')).toBeCloseTo(1.75, 6);
    expect(value(text, 'channel_commitment_round_seconds_bucket{le="0.25",service="channel"}')).toBe(1);
    expect(value(text, 'channel_commitment_round_seconds_bucket{le="2.5",service="channel"}')).toBe(2);
    expect(text).not.toContain("c1");
  });

  it("a revocation the core did not accept (no revoked output) ends no round", async () => {
    const rounds: number[] = [];
    let t = 0;
    const runner = scripted(
      [[commit(1)], [], [revoked]],
      () => t,
      (s) => rounds.push(s),
    );
    await runner.input("c", { type: "resume" });
    t = 3000;
    await runner.input("c", revocation);
    expect(rounds).toEqual([]);
    t = 4000;
    await runner.input("c", revocation);
    expect(rounds).toEqual([4]);
  });

  it("observes how many updates each update_commit we send covers (ours and the peer's, since the last one)", async () => {
    const registry = newRegistry("channel");
    const m = registerServiceMetrics(registry);
    // Each transition's state: the peer's last signed commitment (remoteCommit) and the one the
    // update_commit just sent signs (remotePending), with the log positions each covers.
    const commitments = (
      prev: { localUpdates: number; remoteUpdates: number },
      next: { localUpdates: number; remoteUpdates: number },
    ): ChannelState =>
      ({ phase: "normal", remoteCommit: prev, remotePending: next }) as unknown as ChannelState;
    const steps: { outputs: Output[]; state: ChannelState }[] = [
      // 3 of our adds and 1 of the peer's fulfils since the last commitment: 4 updates.
      {
        outputs: [commit(1)],
        state: commitments({ localUpdates: 0, remoteUpdates: 0 }, { localUpdates: 3, remoteUpdates: 1 }),
      },
      // A retransmission of that update_commit: not a second observation.
      {
        outputs: [commit(1)],
        state: commitments({ localUpdates: 0, remoteUpdates: 0 }, { localUpdates: 3, remoteUpdates: 1 }),
      },
      {
        outputs: [revoked],
        state: commitments({ localUpdates: 3, remoteUpdates: 1 }, { localUpdates: 3, remoteUpdates: 1 }),
      },
      // The next round: 1 of ours, 0 of the peer's.
      {
        outputs: [commit(2)],
        state: commitments({ localUpdates: 3, remoteUpdates: 1 }, { localUpdates: 4, remoteUpdates: 1 }),
      },
      {
        outputs: [revoked],
        state: commitments({ localUpdates: 4, remoteUpdates: 1 }, { localUpdates: 4, remoteUpdates: 1 }),
      },
      // 40 of the peer's updates at once (e.g. fulfils batched by the payee).
      {
        outputs: [commit(3)],
        state: commitments({ localUpdates: 4, remoteUpdates: 1 }, { localUpdates: 4, remoteUpdates: 41 }),
      },
    ];
    const store = {
      transitionAll: (): Promise<Transitions> => {
        const step = steps.shift();
        return Promise.resolve({
          state: step?.state ?? ({ phase: "normal" } as ChannelState),
          outputs: [step?.outputs ?? []],
          sends: [],
        });
      },
      outboxAfter: () => Promise.resolve([]),
    } as unknown as ChannelStore;
    const runner = new ChannelRunner(
      store,
      "replica",
      { answer: () => Promise.reject(new Error("no signer here")) },
      { send: () => Promise.resolve() },
      () => Promise.resolve(),
      { now: () => 0, onCommitSent: m.commitSent }, // as buildChannelService passes it
    );
    for (const input of [
      { type: "resume" },
      { type: "resume" },
      revocation,
      { type: "resume" },
      revocation,
    ] as Input[])
      await runner.input("c1", input);
    await runner.input("c1", { type: "resume" });

    const text = await registry.metrics();
    expect(value(text, 'channel_commitment_updates_count{service="channel"}')).toBe(3);
    expect(value(text, 'channel_commitment_updates_sum{service="channel"}')).toBe(4 + 1 + 40);
    expect(value(text, 'channel_commitment_updates_bucket{le="1",service="channel"}')).toBe(1);
    expect(value(text, 'channel_commitment_updates_bucket{le="4",service="channel"}')).toBe(2);
    expect(value(text, 'channel_commitment_updates_bucket{le="32",service="channel"}')).toBe(2);
    expect(value(text, 'channel_commitment_updates_bucket{le="64",service="channel"}')).toBe(3);
    expect(text).not.toContain("c1");
  });

  it("counts Postgres pool errors and NATS disconnects and errors, each 0 at first", async () => {
    const registry = newRegistry("channel");
    const m = registerServiceMetrics(registry);
    let text = await registry.metrics();
    expect(value(text, 'channel_postgres_errors_total{service="channel"}')).toBe(0);
    expect(value(text, 'channel_nats_errors_total{type="disconnect",service="channel"}')).toBe(0);
    expect(value(text, 'channel_nats_errors_total{type="error",service="channel"}')).toBe(0);
    expect(value(text, 'channel_commitment_round_seconds_count{service="channel"}')).toBe(0);

    const lines: string[] = [];
    const idle = new pg.Pool({ connectionString: testDatabaseUrl(), max: 1 });
    m.watchPool(
      idle,
      recordingLog((r) => lines.push(`${r.level} ${r.msg}`)),
    );
    idle.emit("error", new Error("terminating connection due to administrator command"));
    async function* status(): AsyncIterable<{ type: string; data: string }> {
      yield { type: "disconnect", data: "127.0.0.1:4222" };
      yield { type: "reconnect", data: "127.0.0.1:4222" };
      yield { type: "error", data: "permissions violation" };
      yield { type: "disconnect", data: "127.0.0.1:4222" };
      yield { type: "update", data: "" };
    }
    await m.watchNats(
      status(),
      recordingLog((r) => lines.push(`${r.level} ${r.msg}`)),
    );
    await idle.end();

    text = await registry.metrics();
    expect(value(text, 'channel_postgres_errors_total{service="channel"}')).toBe(1);
    expect(value(text, 'channel_nats_errors_total{type="disconnect",service="channel"}')).toBe(2);
    expect(value(text, 'channel_nats_errors_total{type="error",service="channel"}')).toBe(1);
    expect(text).not.toMatch(/channel_nats_errors_total\{type="(reconnect|update)"/);
    expect(lines[0]).toBe("warn postgres: terminating connection due to administrator command");
    expect(lines).toContain("info NATS reconnect (127.0.0.1:4222)");
  });
});
