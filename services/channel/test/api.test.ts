import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi, MemoryBackend, type Scope } from "../src/api/index.js";

// Real Postgres (trust auth); this run gets its own schema, dropped at the end.
const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test", max: 4 });
const schema = `chan_api_test_${randomBytes(6).toString("hex")}`;

type Method = "GET" | "POST";
interface RouteCase {
  method: Method;
  url: string;
  /** The OpenAPI path. */
  path: string;
  access: "read" | "invoice" | "admin";
}
const R = (method: Method, path: string, access: RouteCase["access"]): RouteCase => ({
  method,
  path,
  url: path.replace("{id}", "chan-x"),
  access,
});
const ROUTES: RouteCase[] = [
  R("GET", "/v1/info", "read"),
  R("POST", "/v1/peers", "admin"),
  R("POST", "/v1/channels", "admin"),
  R("GET", "/v1/channels", "read"),
  R("GET", "/v1/channels/{id}", "read"),
  R("POST", "/v1/invoices", "invoice"),
  R("POST", "/v1/payments", "admin"),
  R("GET", "/v1/payments", "read"),
  R("GET", "/v1/payments/{id}", "read"),
  R("POST", "/v1/channels/{id}/fee", "admin"),
  R("POST", "/v1/channels/{id}/close", "admin"),
  R("POST", "/v1/channels/{id}/force-close", "admin"),
  R("GET", "/v1/wallet/address", "read"),
  R("GET", "/v1/wallet/balance", "read"),
  R("POST", "/v1/wallet/withdraw", "admin"),
];
const PUBLIC = ["/healthz", "/readyz", "/metrics"];

let app: FastifyInstance;
let backend: MemoryBackend;
const tok: Partial<Record<Scope, string>> = {};
const token = (s: Scope): string => {
  const t = tok[s];
  if (!t) throw new Error(`no ${s} token`);
  return t;
};
const auth = (s: Scope): Record<string, string> => ({ authorization: `Bearer ${token(s)}` });
const PEER = `03${"22".repeat(32)}`;

beforeAll(async () => {
  backend = new MemoryBackend();
  app = await buildApi({ pool, schema, backend });
  const store = new ApiStore(pool, schema);
  for (const s of ["admin", "readonly", "invoice"] as const)
    tok[s] = (await store.createToken(`test ${s}`, [s])).token;
});

afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const errorOf = (body: string): { code: string; message: string } =>
  (JSON.parse(body) as { error: { code: string; message: string } }).error;

describe("authentication and scopes", () => {
  it("every route refuses a missing token and a wrong token with 401", async () => {
    for (const r of ROUTES) {
      const none = await app.inject({ method: r.method, url: r.url });
      expect(none.statusCode, `${r.method} ${r.url} without token`).toBe(401);
      expect(errorOf(none.body).code).toBe("UNAUTHENTICATED");
      for (const h of [
        `Bearer ${token("admin")}x`,
        "Bearer nope",
        token("admin"),
        "Basic YWRtaW46YWRtaW4=",
      ]) {
        const wrong = await app.inject({ method: r.method, url: r.url, headers: { authorization: h } });
        expect(wrong.statusCode, `${r.method} ${r.url} with ${h.slice(0, 8)}`).toBe(401);
      }
    }
  });

  it("refuses a token without the route's scope with 403", async () => {
    const lacking: Record<RouteCase["access"], Scope[]> = {
      read: [],
      invoice: ["readonly"],
      admin: ["readonly", "invoice"],
    };
    let checked = 0;
    for (const r of ROUTES)
      for (const s of lacking[r.access]) {
        const res = await app.inject({ method: r.method, url: r.url, headers: auth(s), payload: {} });
        expect(res.statusCode, `${r.method} ${r.url} with ${s}`).toBe(403);
        expect(errorOf(res.body).code).toBe("FORBIDDEN");
        checked++;
      }
    expect(checked).toBeGreaterThan(10);
  });

  it("lets readonly and invoice tokens read, and invoice tokens create invoices", async () => {
    for (const s of ["readonly", "invoice", "admin"] as const) {
      expect((await app.inject({ method: "GET", url: "/v1/info", headers: auth(s) })).statusCode).toBe(200);
      expect(
        (await app.inject({ method: "GET", url: "/v1/wallet/balance", headers: auth(s) })).statusCode,
      ).toBe(200);
    }
    const inv = await app.inject({
      method: "POST",
      url: "/v1/invoices",
      headers: auth("invoice"),
      payload: { amountMsat: "123456789012345678" },
    });
    expect(inv.statusCode).toBe(201);
    const body = JSON.parse(inv.body) as Record<string, unknown>;
    expect(body.amountMsat).toBe("123456789012345678");
    expect(body.rHash).toMatch(/^[0-9a-f]{64}$/);
    expect(Object.keys(body).sort()).toEqual(["amountMsat", "createdAt", "description", "rHash"]);
  });

  it("public routes need no token", async () => {
    for (const url of PUBLIC) expect((await app.inject({ method: "GET", url })).statusCode, url).toBe(200);
    expect(JSON.parse((await app.inject({ method: "GET", url: "/readyz" })).body)).toEqual({ status: "ok" });
    const m = await app.inject({ method: "GET", url: "/metrics" });
    expect(m.headers["content-type"]).toContain("text/plain");
    expect(m.body).toMatch(/channel_api_requests_total\{method="GET",route="\/v1\/info",status="200"\} \d+/);
    expect(m.body).toMatch(/route="\/v1\/info",status="401"/);
  });

  it("stores tokens hashed: the plaintext is nowhere in the table", async () => {
    const rows = await pool.query<{ row: string; token_hash: string; scopes: string[] }>(
      `SELECT row_to_json(t)::text AS row, token_hash, scopes FROM "${schema}".api_tokens t`,
    );
    expect(rows.rowCount).toBe(3);
    const all = rows.rows.map((r) => r.row).join("\n");
    for (const s of ["admin", "readonly", "invoice"] as const) {
      expect(all).not.toContain(token(s));
      expect(all).not.toContain(token(s).slice(5, 25));
      expect(rows.rows.map((r) => r.token_hash)).toContain(
        createHash("sha256").update(token(s)).digest("hex"),
      );
    }
  });

  it("a revoked token is refused", async () => {
    const store = new ApiStore(pool, schema);
    const t = await store.createToken("short-lived", ["readonly"]);
    const h = { authorization: `Bearer ${t.token}` };
    expect((await app.inject({ method: "GET", url: "/v1/info", headers: h })).statusCode).toBe(200);
    expect(await store.revokeToken(t.id)).toBe(true);
    expect((await app.inject({ method: "GET", url: "/v1/info", headers: h })).statusCode).toBe(401);
  });
});

describe("validation", () => {
  const bad: { url: string; payload: unknown; field: string }[] = [
    { url: "/v1/invoices", payload: { amountMsat: 1000 }, field: "amountMsat" },
    { url: "/v1/invoices", payload: {}, field: "amountMsat" },
    { url: "/v1/invoices", payload: { amountMsat: "1.5" }, field: "amountMsat" },
    { url: "/v1/channels", payload: { nodeId: PEER, fundingSat: "-5" }, field: "fundingSat" },
    { url: "/v1/channels", payload: { nodeId: "zz", fundingSat: "5" }, field: "nodeId" },
    { url: "/v1/peers", payload: { host: "h", port: 70000, nodeId: PEER }, field: "port" },
    {
      url: "/v1/wallet/withdraw",
      payload: { address: "bcrt1qxxxxxxxxxxxxxxxx", amountSat: 5 },
      field: "amountSat",
    },
  ];
  it.each(bad)("400 naming the field for $url $field", async ({ url, payload, field }) => {
    const res = await app.inject({ method: "POST", url, headers: auth("admin"), payload: payload as object });
    expect(res.statusCode).toBe(400);
    const e = errorOf(res.body);
    expect(e.code).toBe("VALIDATION_FAILED");
    expect(e.message).toContain(field);
  });

  it("refuses unknown fields and malformed JSON", async () => {
    const extra = await app.inject({
      method: "POST",
      url: "/v1/invoices",
      headers: auth("admin"),
      payload: { amountMsat: "1", preimage: "00" },
    });
    expect(extra.statusCode).toBe(400);
    const broken = await app.inject({
      method: "POST",
      url: "/v1/invoices",
      headers: { ...auth("admin"), "content-type": "application/json" },
      payload: "{not json",
    });
    expect(broken.statusCode).toBe(400);
    expect(errorOf(broken.body).message.length).toBeGreaterThan(0);
  });

  it("GET /v1/channels/:id of an unknown channel is 404 with what to do next", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/channels/nope", headers: auth("readonly") });
    expect(res.statusCode).toBe(404);
    expect(errorOf(res.body)).toMatchObject({
      code: "NOT_FOUND",
      message: expect.stringContaining("GET /v1/channels"),
    });
  });
});

describe("channels and idempotent payments", () => {
  let channelId = "";
  const rHash = "ab".repeat(32);

  it("connects, opens and shows a channel", async () => {
    const peer = await app.inject({
      method: "POST",
      url: "/v1/peers",
      headers: auth("admin"),
      payload: { host: "127.0.0.1", port: 9735, nodeId: PEER },
    });
    expect(peer.statusCode).toBe(200);
    const open = await app.inject({
      method: "POST",
      url: "/v1/channels",
      headers: auth("admin"),
      payload: { nodeId: PEER, fundingSat: "1000000" },
    });
    expect(open.statusCode).toBe(201);
    const c = JSON.parse(open.body) as { id: string; localBalanceMsat: string; capacitySat: string };
    expect(c.capacitySat).toBe("1000000");
    expect(c.localBalanceMsat).toBe("1000000000");
    channelId = c.id;
    const got = await app.inject({
      method: "GET",
      url: `/v1/channels/${channelId}`,
      headers: auth("readonly"),
    });
    expect(got.statusCode).toBe(200);
    expect(JSON.parse(got.body)).toMatchObject({ id: channelId, phase: "normal", htlcs: [], failure: null });
    const list = await app.inject({ method: "GET", url: "/v1/channels", headers: auth("readonly") });
    expect((JSON.parse(list.body) as { channels: unknown[] }).channels).toHaveLength(1);
  });

  it("requires an Idempotency-Key on POST /v1/payments", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/v1/payments",
      headers: auth("admin"),
      payload: { channelId, rHash, amountMsat: "1000", expiry: { blocks: 500 } },
    });
    expect(res.statusCode).toBe(400);
    expect(errorOf(res.body).message).toContain("idempotency-key");
  });

  it("a retry with the same key returns the first result and pays once; another body is 422", async () => {
    const before = backend.count("pay");
    const payload = { channelId, rHash, amountMsat: "5000", expiry: { blocks: 500 } };
    const headers = { ...auth("admin"), "idempotency-key": "pay-1" };
    const first = await app.inject({ method: "POST", url: "/v1/payments", headers, payload });
    expect(first.statusCode).toBe(201);
    const second = await app.inject({
      method: "POST",
      url: "/v1/payments",
      headers,
      payload: { expiry: { blocks: 500 }, amountMsat: "5000", rHash, channelId },
    });
    expect(second.statusCode).toBe(201);
    expect(second.headers["idempotent-replayed"]).toBe("true");
    expect(JSON.parse(second.body)).toEqual(JSON.parse(first.body));
    expect(backend.count("pay")).toBe(before + 1);

    const other = await app.inject({
      method: "POST",
      url: "/v1/payments",
      headers,
      payload: { ...payload, amountMsat: "6000" },
    });
    expect(other.statusCode).toBe(422);
    expect(errorOf(other.body).code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(backend.count("pay")).toBe(before + 1);

    const payments = await app.inject({
      method: "GET",
      url: "/v1/payments?limit=10",
      headers: auth("readonly"),
    });
    const list = (JSON.parse(payments.body) as { payments: { amountMsat: string }[] }).payments;
    expect(list).toHaveLength(1);
    expect(list[0]?.amountMsat).toBe("5000");
    const chan = await app.inject({
      method: "GET",
      url: `/v1/channels/${channelId}`,
      headers: auth("readonly"),
    });
    expect(JSON.parse(chan.body)).toMatchObject({ localBalanceMsat: "999995000", remoteBalanceMsat: "5000" });
  });

  it("concurrent retries with one key still pay once", async () => {
    const before = backend.count("pay");
    const headers = { ...auth("admin"), "idempotency-key": "pay-concurrent" };
    const payload = { channelId, rHash, amountMsat: "7", expiry: { seconds: 1_900_000_000 } };
    const results = await Promise.all(
      Array.from({ length: 5 }, () => app.inject({ method: "POST", url: "/v1/payments", headers, payload })),
    );
    expect(backend.count("pay")).toBe(before + 1);
    for (const r of results) expect([201, 409]).toContain(r.statusCode);
  });

  it("a refusal that moved no money frees the key", async () => {
    const headers = { ...auth("admin"), "idempotency-key": "pay-too-much" };
    const payload = { channelId, rHash, amountMsat: "999999999999", expiry: { blocks: 500 } };
    const first = await app.inject({ method: "POST", url: "/v1/payments", headers, payload });
    expect(first.statusCode).toBe(422);
    expect(errorOf(first.body).code).toBe("INSUFFICIENT_FUNDS");
    const retry = await app.inject({
      method: "POST",
      url: "/v1/payments",
      headers,
      payload: { ...payload, amountMsat: "1" },
    });
    expect(retry.statusCode).toBe(201);
  });

  it("closes and force-closes", async () => {
    const close = await app.inject({
      method: "POST",
      url: `/v1/channels/${channelId}/close`,
      headers: auth("admin"),
    });
    expect(close.statusCode).toBe(200);
    expect(JSON.parse(close.body)).toMatchObject({ phase: "clearing" });
    const force = await app.inject({
      method: "POST",
      url: `/v1/channels/${channelId}/force-close`,
      headers: auth("admin"),
    });
    expect(JSON.parse(force.body)).toMatchObject({ phase: "closed" });
    const again = await app.inject({
      method: "POST",
      url: `/v1/channels/${channelId}/close`,
      headers: auth("admin"),
    });
    expect(again.statusCode).toBe(409);
  });

  it("wallet address, balance and withdraw", async () => {
    const addr = await app.inject({ method: "GET", url: "/v1/wallet/address", headers: auth("readonly") });
    const address = (JSON.parse(addr.body) as { address: string }).address;
    const w = await app.inject({
      method: "POST",
      url: "/v1/wallet/withdraw",
      headers: auth("admin"),
      payload: { address, amountSat: "1000" },
    });
    expect(w.statusCode).toBe(200);
    const bal = await app.inject({ method: "GET", url: "/v1/wallet/balance", headers: auth("readonly") });
    expect(JSON.parse(bal.body)).toEqual({ confirmedSat: "8999000", unconfirmedSat: "0" });
  });
});

describe("audit log", () => {
  it("has a row for every mutating call, with token id but never a token", async () => {
    const rows = await pool.query<{
      token_id: string | null;
      route: string;
      status: number;
      request_id: string;
      row: string;
    }>(
      `SELECT token_id, route, status, request_id, row_to_json(a)::text AS row FROM "${schema}".api_audit_log a ORDER BY id`,
    );
    const ids = (await pool.query<{ id: string }>(`SELECT id FROM "${schema}".api_tokens`)).rows.map(
      (r) => r.id,
    );
    const routes = new Set(rows.rows.map((r) => r.route));
    for (const r of ROUTES.filter((x) => x.method === "POST"))
      expect(routes, r.path).toContain(r.path.replace("{id}", ":id"));
    expect(rows.rows.some((r) => r.status === 401 && r.token_id === null)).toBe(true);
    expect(rows.rows.some((r) => r.status === 201 && r.route === "/v1/payments" && r.token_id !== null)).toBe(
      true,
    );
    for (const r of rows.rows) {
      if (r.token_id !== null) expect(ids).toContain(r.token_id);
      expect(r.request_id.length).toBeGreaterThan(0);
      for (const s of ["admin", "readonly", "invoice"] as const) expect(r.row).not.toContain(token(s));
    }
    // No GETs are audited.
    expect(rows.rows.every((r) => !r.route.startsWith("/v1/wallet/b"))).toBe(true);
  });

  it("uses the caller's X-Request-Id", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/v1/invoices",
      headers: { ...auth("invoice"), "x-request-id": "req-abc-123" },
      payload: { amountMsat: "1" },
    });
    expect(res.headers["x-request-id"]).toBe("req-abc-123");
    const r = await pool.query(
      `SELECT 1 FROM "${schema}".api_audit_log WHERE request_id = 'req-abc-123' AND status = 201`,
    );
    expect(r.rowCount).toBe(1);
  });
});

describe("OpenAPI", () => {
  it("/docs/json lists every route with its methods, and /docs serves the UI", async () => {
    const res = await app.inject({ method: "GET", url: "/docs/json" });
    expect(res.statusCode).toBe(200);
    const doc = JSON.parse(res.body) as { paths: Record<string, Record<string, unknown>> };
    for (const r of ROUTES)
      expect(doc.paths[r.path]?.[r.method.toLowerCase()], `${r.method} ${r.path}`).toBeDefined();
    for (const p of PUBLIC) expect(doc.paths[p]?.get, p).toBeDefined();
    const ui = await app.inject({ method: "GET", url: "/docs" });
    expect([200, 302]).toContain(ui.statusCode);
  });
});
