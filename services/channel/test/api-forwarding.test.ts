/**
 * The control API's routes for payments over a route, forwarding policies and forwards: shapes,
 * scopes, validation, the audit of PUT. Over MemoryBackend (the node's behaviour is tested in
 * route.test.ts, policy.test.ts and payment-failures.test.ts).
 */
import { randomBytes } from "node:crypto";
import { msat } from "@ln/bitcoin";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi, type Scope } from "../src/api/index.js";
import { MemoryBackend } from "./memory-backend.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_api_fwd_test_${randomBytes(6).toString("hex")}`;
const B = `03${"22".repeat(32)}`;
const C = `02${"33".repeat(32)}`;
const D = `02${"44".repeat(32)}`;
const RHASH = "ab".repeat(32);

let app: FastifyInstance;
let backend: MemoryBackend;
let channelId = "";
const tok: Partial<Record<Scope, string>> = {};
const auth = (s: Scope): Record<string, string> => ({ authorization: `Bearer ${tok[s] ?? ""}` });
const body = <T>(res: { body: string }): T => JSON.parse(res.body) as T;

beforeAll(async () => {
  backend = new MemoryBackend({ pool });
  app = await buildApi({ pool, schema, backend });
  const store = new ApiStore(pool, schema);
  for (const s of ["admin", "readonly"] as const) tok[s] = (await store.createToken(`t ${s}`, [s])).token;
  await backend.connectPeer({ host: "127.0.0.1", port: 9735, nodeId: B });
  channelId = (await backend.openChannel({ nodeId: B, fundingSat: 1_000_000n as never })).id;
});
afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("POST /v1/payments with a route", () => {
  const route = {
    hops: [
      { nodeId: B, shortChannelId: "700x1x0" },
      {
        nodeId: C,
        shortChannelId: "710x2x1",
        feeBaseMsat: "2000",
        feeProportionalMillionths: 250,
        cltvExpiryDelta: 144,
      },
      {
        nodeId: D,
        shortChannelId: "720x3x0",
        feeBaseMsat: "1000",
        feeProportionalMillionths: 100,
        cltvExpiryDelta: 40,
      },
    ],
  };
  const pay = (payload: unknown, key = randomBytes(8).toString("hex")) =>
    app.inject({
      method: "POST",
      url: "/v1/payments",
      headers: { ...auth("admin"), "idempotency-key": key },
      payload: payload as Record<string, unknown>,
    });

  it("takes no channelId (the first hop's channel) and answers with the route, each hop's HTLC", async () => {
    const res = await pay({ rHash: RHASH, amountMsat: "1000000", expiry: { blocks: 1000 }, route });
    expect(res.statusCode).toBe(201);
    const p = body<{ channelId: string; amountMsat: string; route: unknown; failure: unknown }>(res);
    expect(p.channelId).toBe(channelId);
    // As route.test.ts: 1,003,350 msat offered; the payee gets 1,000,000 at 1000.
    expect(p.amountMsat).toBe("1003350");
    expect(p.failure).toBeNull();
    expect(p.route).toEqual({
      hops: [
        {
          nodeId: B,
          shortChannelId: "700x1x0",
          feeBaseMsat: "0",
          feeProportionalMillionths: 0,
          cltvExpiryDelta: 0,
          amountMsat: "1003350",
          expiry: 1184,
        },
        {
          nodeId: C,
          shortChannelId: "710x2x1",
          feeBaseMsat: "2000",
          feeProportionalMillionths: 250,
          cltvExpiryDelta: 144,
          amountMsat: "1001100",
          expiry: 1040,
        },
        {
          nodeId: D,
          shortChannelId: "720x3x0",
          feeBaseMsat: "1000",
          feeProportionalMillionths: 100,
          cltvExpiryDelta: 40,
          amountMsat: "1000000",
          expiry: 1000,
        },
      ],
    });
  });

  it("refuses a body with neither channelId nor route, and malformed hops", async () => {
    const none = await pay({ rHash: RHASH, amountMsat: "1", expiry: { blocks: 10 } });
    expect(none.statusCode).toBe(400);
    expect(body<{ error: { code: string } }>(none).error.code).toBe("INVALID");
    for (const hop of [
      { nodeId: B, shortChannelId: "700-1-0" },
      { nodeId: "04".padEnd(66, "0"), shortChannelId: "1x1x1" },
      { nodeId: B, shortChannelId: "1x1x1", cltvExpiryDelta: 70_000 },
      { nodeId: B, shortChannelId: "1x1x1", extra: 1 },
    ]) {
      const res = await pay({
        rHash: RHASH,
        amountMsat: "1",
        expiry: { blocks: 10 },
        route: { hops: [hop] },
      });
      expect(res.statusCode, JSON.stringify(hop)).toBe(400);
    }
    const empty = await pay({ rHash: RHASH, amountMsat: "1", expiry: { blocks: 10 }, route: { hops: [] } });
    expect(empty.statusCode).toBe(400);
  });

  it("takes an onion built elsewhere with a route and hands it on unchanged; refuses one without a route or malformed", async () => {
    const onion = randomBytes(1366).toString("hex");
    const ok = await pay({ rHash: RHASH, amountMsat: "1000000", expiry: { blocks: 1000 }, route, onion });
    expect(ok.statusCode, ok.body).toBe(201);
    expect(backend.lastPay?.onion).toBe(onion);
    // A shorter one too: the peer, not the API, judges a packet's length (BOLT #4 invalid_onion_version).
    const short = randomBytes(1000).toString("hex");
    expect(
      (await pay({ rHash: RHASH, amountMsat: "1000000", expiry: { blocks: 1000 }, route, onion: short }))
        .statusCode,
    ).toBe(201);
    expect(backend.lastPay?.onion).toBe(short);

    const alone = await pay({ channelId, rHash: RHASH, amountMsat: "1", expiry: { blocks: 10 }, onion });
    expect(alone.statusCode).toBe(400);
    expect(body<{ error: { code: string } }>(alone).error.code).toBe("INVALID");
    for (const bad of ["", "abc", "zz".repeat(10), "00".repeat(1367), onion.toUpperCase()]) {
      const res = await pay({ rHash: RHASH, amountMsat: "1", expiry: { blocks: 10 }, route, onion: bad });
      expect(res.statusCode, bad.slice(0, 10)).toBe(400);
    }
  });

  it("a payment's decoded failure is shown with it", async () => {
    backend.addPayment({
      id: "failed-1",
      channelId,
      rHash: RHASH,
      amountMsat: msat(1_003_350n),
      expiry: { blocks: 1184 },
      status: "failed",
      failureReason: `hop 1 (${C.slice(0, 8)}…): fee_insufficient (htlc 1001100 msat, channel_update none)`,
      route: undefined,
      failure: {
        hop: 1,
        nodeId: C,
        code: 0x100c,
        name: "fee_insufficient",
        description: "fee_insufficient (htlc 1001100 msat, channel_update none)",
      },
      createdAt: new Date(),
    });
    const res = await app.inject({ method: "GET", url: "/v1/payments/failed-1", headers: auth("readonly") });
    expect(res.statusCode).toBe(200);
    expect(body<{ failure: unknown }>(res).failure).toEqual({
      hop: 1,
      nodeId: C,
      code: 4108,
      name: "fee_insufficient",
      description: "fee_insufficient (htlc 1001100 msat, channel_update none)",
    });
  });
});

describe("forwarding policy routes", () => {
  it("GET shows the defaults; PUT (admin) changes the fields given and is audited", async () => {
    const got = await app.inject({
      method: "GET",
      url: `/v1/channels/${channelId}/policy`,
      headers: auth("readonly"),
    });
    expect(got.statusCode).toBe(200);
    expect(body(got)).toEqual({
      channelId,
      feeBaseMsat: "1000",
      feeProportionalMillionths: 1,
      cltvExpiryDelta: 184,
      htlcMinimumMsat: "1000",
    });
    const forbidden = await app.inject({
      method: "PUT",
      url: `/v1/channels/${channelId}/policy`,
      headers: auth("readonly"),
      payload: { feeBaseMsat: "0" },
    });
    expect(forbidden.statusCode).toBe(403);
    const put = await app.inject({
      method: "PUT",
      url: `/v1/channels/${channelId}/policy`,
      headers: auth("admin"),
      payload: { feeBaseMsat: "0", cltvExpiryDelta: 200 },
    });
    expect(put.statusCode).toBe(200);
    expect(body(put)).toEqual({
      channelId,
      feeBaseMsat: "0",
      feeProportionalMillionths: 1,
      cltvExpiryDelta: 200,
      htlcMinimumMsat: "1000",
    });
    const audit = await pool.query<{ route: string; method: string; body: unknown; status: number }>(
      `SELECT route, method, body, status FROM "${schema}".api_audit_log WHERE request_id = $1`,
      [put.headers["x-request-id"]],
    );
    expect(audit.rows).toEqual([
      {
        route: "/v1/channels/:id/policy",
        method: "PUT",
        body: { feeBaseMsat: "0", cltvExpiryDelta: 200 },
        status: 200,
      },
    ]);
  });

  it("refuses an empty or out-of-range body (400) and an unknown channel (404)", async () => {
    for (const payload of [{}, { cltvExpiryDelta: 65_536 }, { feeBaseMsat: "4294967296" }, { other: 1 }]) {
      const res = await app.inject({
        method: "PUT",
        url: `/v1/channels/${channelId}/policy`,
        headers: auth("admin"),
        payload,
      });
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
    }
    const missing = await app.inject({
      method: "GET",
      url: "/v1/channels/nope/policy",
      headers: auth("readonly"),
    });
    expect(missing.statusCode).toBe(404);
  });
});

describe("GET /v1/forwards", () => {
  it("lists newest first with status and limit, HxIxO channel ids and the totals", async () => {
    const row = (n: number, status: string, fee: bigint) => ({
      id: BigInt(n),
      inChannel: channelId,
      inHtlcId: BigInt(n),
      rHash: RHASH,
      inAmountMsat: msat(10_000n + fee),
      inExpiry: 900,
      outShortChannelId: (700n << 40n) | (1n << 16n) | 2n,
      outChannel: "out-1",
      outHtlcId: BigInt(n + 10),
      outAmountMsat: msat(10_000n),
      outExpiry: 800,
      status,
      failure: undefined,
      feeMsat: msat(status === "settled" ? fee : 0n),
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, n)),
      resolvedAt: status === "settled" ? new Date(Date.UTC(2026, 0, 1, 1, n)) : undefined,
    });
    backend.forwards.push(row(1, "settled", 11n), row(2, "offered", 5n), row(3, "settled", 7n));
    const res = await app.inject({ method: "GET", url: "/v1/forwards", headers: auth("readonly") });
    expect(res.statusCode).toBe(200);
    const r = body<{ forwards: Record<string, unknown>[]; totals: unknown }>(res);
    expect(r.forwards.map((f) => f.id)).toEqual(["3", "2", "1"]);
    expect(r.forwards[2]).toEqual({
      id: "1",
      inChannel: channelId,
      inHtlcId: "1",
      rHash: RHASH,
      inAmountMsat: "10011",
      inExpiry: 900,
      outChannel: "out-1",
      outHtlcId: "11",
      outShortChannelId: "700x1x2",
      outAmountMsat: "10000",
      outExpiry: 800,
      status: "settled",
      feeMsat: "11",
      failure: null,
      createdAt: "2026-01-01T00:01:00.000Z",
      resolvedAt: "2026-01-01T01:01:00.000Z",
    });
    expect(r.totals).toEqual({ settled: 2, feesEarnedMsat: "18" });
    const settled = await app.inject({
      method: "GET",
      url: "/v1/forwards?status=settled&limit=1",
      headers: auth("readonly"),
    });
    expect(body<{ forwards: { id: string }[] }>(settled).forwards.map((f) => f.id)).toEqual(["3"]);
    const bad = await app.inject({
      method: "GET",
      url: "/v1/forwards?status=lost",
      headers: auth("readonly"),
    });
    expect(bad.statusCode).toBe(400);
  });

  it("is in the OpenAPI document with the policy routes", async () => {
    const doc = body<{ paths: Record<string, Record<string, unknown>> }>(
      await app.inject({ method: "GET", url: "/docs/json" }),
    );
    expect(doc.paths["/v1/forwards"]?.get).toBeDefined();
    expect(doc.paths["/v1/channels/{id}/policy"]?.get).toBeDefined();
    expect(doc.paths["/v1/channels/{id}/policy"]?.put).toBeDefined();
  });
});
