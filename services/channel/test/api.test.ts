import { decodeInvoice } from "@ln/invoice";
import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Registry } from "@ln/metrics";
import { ApiStore, BOOTSTRAP_LABEL, buildApi, type Scope } from "../src/api/index.js";
import { MemoryBackend } from "./memory-backend.js";
import { testDatabaseUrl } from "@ln/testkit";

// Real Postgres (trust auth); this run gets its own schema, dropped at the end.
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_api_test_${randomBytes(6).toString("hex")}`;

type Method = "GET" | "POST";
interface RouteCase {
  method: Method;
  url: string;
  /** The OpenAPI path. */
  path: string;
  access: "read" | "invoice" | "address" | "admin";
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
  { method: "GET", path: "/v1/invoices/{rHash}", url: `/v1/invoices/${"ab".repeat(32)}`, access: "read" },
  R("POST", "/v1/payments", "admin"),
  R("GET", "/v1/payments", "read"),
  R("GET", "/v1/payments/{id}", "read"),
  R("POST", "/v1/channels/{id}/fee", "admin"),
  R("POST", "/v1/channels/{id}/close", "admin"),
  R("POST", "/v1/channels/{id}/force-close", "admin"),
  R("POST", "/v1/wallet/address", "address"),
  R("GET", "/v1/wallet/balance", "read"),
  R("POST", "/v1/wallet/withdraw", "admin"),
  R("GET", "/v1/tokens", "admin"),
  R("POST", "/v1/tokens/revoke", "admin"),
];
const PUBLIC = ["/healthz", "/readyz"];
const SCOPES = ["admin", "readonly", "invoice", "address"] as const;

let app: FastifyInstance;
let backend: MemoryBackend;
let registry: Registry;
/** The API's log lines (JSON), to check what it says when the audit log fails. */
const logLines: string[] = [];
const tok: Partial<Record<Scope, string>> = {};
const token = (s: Scope): string => {
  const t = tok[s];
  if (!t) throw new Error(`no ${s} token`);
  return t;
};
const auth = (s: Scope): Record<string, string> => ({ authorization: `Bearer ${token(s)}` });
const PEER = `03${"22".repeat(32)}`;

beforeAll(async () => {
  backend = new MemoryBackend({ pool });
  registry = new Registry();
  app = await buildApi({
    pool,
    schema,
    backend,
    registry,
    logger: { level: "info", stream: { write: (line: string) => logLines.push(line) } },
  });
  const store = new ApiStore(pool, schema);
  for (const s of SCOPES) tok[s] = (await store.createToken(`test ${s}`, [s])).token;
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
      invoice: ["readonly", "address"],
      address: ["readonly", "invoice"],
      admin: ["readonly", "invoice", "address"],
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
    for (const s of SCOPES) {
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
    expect(Object.keys(body).sort()).toEqual([
      "amountMsat",
      "bolt11",
      "createdAt",
      "description",
      "expiresAt",
      "payee",
      "rHash",
      "status",
    ]);
    // The string says what the body says, signed by the node.
    const d = decodeInvoice(String(body.bolt11));
    expect(d).toMatchObject({
      paymentHash: body.rHash,
      amountMsat: 123456789012345678n,
      payee: backend.nodeId,
    });
    expect(body.payee).toBe(backend.nodeId);
    expect(Date.parse(String(body.expiresAt))).toBe(d.expiresAt * 1000);
    expect(d.expiresAt - d.createdAt).toBe(3600); // the default expiry

    // Read back by its hash (any scope); an unknown hash is 404.
    const got = await app.inject({
      method: "GET",
      url: `/v1/invoices/${String(body.rHash)}`,
      headers: auth("readonly"),
    });
    expect(got.statusCode).toBe(200);
    expect(JSON.parse(got.body)).toEqual(body);
    const none = await app.inject({
      method: "GET",
      url: `/v1/invoices/${"cd".repeat(32)}`,
      headers: auth("readonly"),
    });
    expect(none.statusCode).toBe(404);

    // Without an amount: any amount; an expiry of our own.
    const any = await app.inject({
      method: "POST",
      url: "/v1/invoices",
      headers: auth("invoice"),
      payload: { description: "tips", expirySeconds: 60 },
    });
    expect(any.statusCode).toBe(201);
    const anyBody = JSON.parse(any.body) as Record<string, unknown>;
    expect(anyBody.amountMsat).toBe("0");
    const da = decodeInvoice(String(anyBody.bolt11));
    expect(da.amountMsat).toBeUndefined();
    expect(da.expiresAt - da.createdAt).toBe(60);
  });

  it("public routes need no token", async () => {
    for (const url of PUBLIC) expect((await app.inject({ method: "GET", url })).statusCode, url).toBe(200);
    expect(JSON.parse((await app.inject({ method: "GET", url: "/readyz" })).body)).toEqual({ status: "ok" });
  });

  it("the API port serves no /metrics (it is on the ops port); the requests are counted in the registry", async () => {
    // An unknown path needs a token like any other; with one, it is not found.
    expect((await app.inject({ method: "GET", url: "/metrics" })).statusCode).toBe(401);
    const m = await app.inject({ method: "GET", url: "/metrics", headers: auth("admin") });
    expect(m.statusCode).toBe(404);
    expect(errorOf(m.body).code).toBe("NOT_FOUND");
    const text = await registry.metrics();
    expect(text).toMatch(/channel_api_requests_total\{method="GET",route="\/v1\/info",status="200"\} \d+/);
    expect(text).toMatch(/route="\/v1\/info",status="401"/);
  });

  it("stores tokens hashed: the plaintext is nowhere in the table", async () => {
    const rows = await pool.query<{ row: string; token_hash: string; scopes: string[] }>(
      `SELECT row_to_json(t)::text AS row, token_hash, scopes FROM "${schema}".api_tokens t`,
    );
    expect(rows.rowCount).toBe(SCOPES.length);
    const all = rows.rows.map((r) => r.row).join("\n");
    for (const s of SCOPES) {
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
    { url: "/v1/invoices", payload: { amountMsat: "0" }, field: "amountMsat" },
    { url: "/v1/invoices", payload: { expirySeconds: 0 }, field: "expirySeconds" },
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
    const res = await app.inject({
      method: "POST",
      url,
      headers: { ...auth("admin"), "idempotency-key": "validation" },
      payload: payload as object,
    });
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
    // No short_channel_id before the anchor is in a block: the field is absent.
    expect(JSON.parse(got.body)).not.toHaveProperty("shortChannelId");
    expect((JSON.parse(list.body) as { channels: object[] }).channels[0]).not.toHaveProperty(
      "shortChannelId",
    );
  });

  it("shows the short_channel_id as HEIGHTxINDEXxOUTPUT once the anchor is in a block", async () => {
    backend.confirmAnchor(channelId, { height: 539268, txIndex: 845, outputIndex: 1 });
    const got = await app.inject({
      method: "GET",
      url: `/v1/channels/${channelId}`,
      headers: auth("readonly"),
    });
    expect(JSON.parse(got.body)).toMatchObject({ id: channelId, shortChannelId: "539268x845x1" });
    const list = await app.inject({ method: "GET", url: "/v1/channels", headers: auth("readonly") });
    expect((JSON.parse(list.body) as { channels: object[] }).channels[0]).toMatchObject({
      id: channelId,
      shortChannelId: "539268x845x1",
    });
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
    const addr = await app.inject({ method: "POST", url: "/v1/wallet/address", headers: auth("address") });
    expect(addr.statusCode).toBe(201);
    const address = (JSON.parse(addr.body) as { address: string }).address;
    const w = await app.inject({
      method: "POST",
      url: "/v1/wallet/withdraw",
      headers: { ...auth("admin"), "idempotency-key": "withdraw-first" },
      payload: { address, amountSat: "1000" },
    });
    expect(w.statusCode).toBe(200);
    const bal = await app.inject({ method: "GET", url: "/v1/wallet/balance", headers: auth("readonly") });
    expect(JSON.parse(bal.body)).toEqual({ confirmedSat: "8999000", unconfirmedSat: "0", closeOutputs: [] });
  });
});

describe("deposit addresses", () => {
  it("are allocated by POST with the address or admin scope, audited; never by GET", async () => {
    const before = backend.count("walletAddress");
    for (const s of ["address", "admin"] as const) {
      const res = await app.inject({ method: "POST", url: "/v1/wallet/address", headers: auth(s) });
      expect(res.statusCode, s).toBe(201);
      expect((JSON.parse(res.body) as { address: string }).address).toMatch(/^bcrt1q/);
      const row = await pool.query(
        `SELECT 1 FROM "${schema}".api_audit_log WHERE request_id = $1 AND route = '/v1/wallet/address' AND status = 201`,
        [res.headers["x-request-id"]],
      );
      expect(row.rowCount, s).toBe(1);
    }
    for (const s of ["readonly", "invoice"] as const) {
      const res = await app.inject({ method: "POST", url: "/v1/wallet/address", headers: auth(s) });
      expect(res.statusCode, s).toBe(403);
    }
    for (const headers of [{}, auth("readonly"), auth("admin")]) {
      const res = await app.inject({ method: "GET", url: "/v1/wallet/address", headers });
      expect(res.statusCode).toBe(405);
      expect(res.headers.allow).toBe("POST");
      expect(errorOf(res.body).code).toBe("METHOD_NOT_ALLOWED");
    }
    expect(backend.count("walletAddress")).toBe(before + 2);
  });
});

describe("idempotent withdrawals", () => {
  const address = `bcrt1q${"7".repeat(38)}`;
  const withdraw = (key: string | undefined, amountSat: string) =>
    app.inject({
      method: "POST",
      url: "/v1/wallet/withdraw",
      headers: { ...auth("admin"), ...(key === undefined ? {} : { "idempotency-key": key }) },
      payload: { address, amountSat },
    });
  const confirmed = async (): Promise<string> =>
    (
      JSON.parse(
        (await app.inject({ method: "GET", url: "/v1/wallet/balance", headers: auth("readonly") })).body,
      ) as { confirmedSat: string }
    ).confirmedSat;

  it("requires an Idempotency-Key", async () => {
    const before = backend.count("withdraw");
    const res = await withdraw(undefined, "1000");
    expect(res.statusCode).toBe(400);
    expect(errorOf(res.body).code).toBe("VALIDATION_FAILED");
    expect(errorOf(res.body).message).toContain("idempotency-key");
    expect(backend.count("withdraw")).toBe(before);
  });

  it("a retry with the same key returns the first result and withdraws once; another body is 422", async () => {
    const before = backend.count("withdraw");
    const balance = BigInt(await confirmed());
    const first = await withdraw("wd-1", "2500");
    expect(first.statusCode).toBe(200);
    const retry = await withdraw("wd-1", "2500");
    expect(retry.statusCode).toBe(200);
    expect(retry.headers["idempotent-replayed"]).toBe("true");
    expect(JSON.parse(retry.body)).toEqual(JSON.parse(first.body));
    expect(backend.count("withdraw")).toBe(before + 1);
    expect(BigInt(await confirmed())).toBe(balance - 2500n);

    const other = await withdraw("wd-1", "2501");
    expect(other.statusCode).toBe(422);
    expect(errorOf(other.body).code).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(backend.count("withdraw")).toBe(before + 1);
    // The key, the request's hash and the result are stored durably.
    const row = await pool.query<{ route: string; status: number; response: { txid: string } }>(
      `SELECT route, status, response FROM "${schema}".api_idempotency WHERE key = 'wd-1'`,
    );
    expect(row.rows).toEqual([
      {
        route: "POST /v1/wallet/withdraw",
        status: 200,
        response: JSON.parse(first.body) as { txid: string },
      },
    ]);
  });

  it("concurrent retries with one key withdraw once, and all answer with that withdrawal", async () => {
    const before = backend.count("withdraw");
    const results = await Promise.all(Array.from({ length: 5 }, () => withdraw("wd-concurrent", "700")));
    expect(backend.count("withdraw")).toBe(before + 1);
    const txids = new Set(results.map((r) => (JSON.parse(r.body) as { txid: string }).txid));
    for (const r of results) expect(r.statusCode).toBe(200);
    expect(txids.size).toBe(1);
  });

  it("a refused withdrawal stores nothing: the key stays free", async () => {
    const refused = await withdraw("wd-too-much", "999999999999");
    expect(refused.statusCode).toBe(422);
    expect(errorOf(refused.body).code).toBe("INSUFFICIENT_FUNDS");
    const rows = await pool.query(`SELECT 1 FROM "${schema}".api_idempotency WHERE key = 'wd-too-much'`);
    expect(rows.rowCount).toBe(0);
    expect((await withdraw("wd-too-much", "1")).statusCode).toBe(200);
  });

  it("keys are per token: another admin token's key of the same name is its own", async () => {
    const other = await new ApiStore(pool, schema).createToken("second admin", ["admin"]);
    const before = backend.count("withdraw");
    const res = await app.inject({
      method: "POST",
      url: "/v1/wallet/withdraw",
      headers: { authorization: `Bearer ${other.token}`, "idempotency-key": "wd-1" },
      payload: { address, amountSat: "2501" },
    });
    expect(res.statusCode).toBe(200);
    expect(backend.count("withdraw")).toBe(before + 1);
  });
});

describe("token revocation", () => {
  const store = new ApiStore(pool, schema);
  const get = (t: string) =>
    app.inject({ method: "GET", url: "/v1/info", headers: { authorization: `Bearer ${t}` } });
  const revoke = (payload: object, headers = auth("admin")) =>
    app.inject({ method: "POST", url: "/v1/tokens/revoke", headers, payload });

  it("POST /v1/tokens/revoke by id: that token is refused from the next request on; audited", async () => {
    const t = await store.createToken("ci deploy", ["readonly"]);
    expect((await get(t.token)).statusCode).toBe(200);
    const res = await revoke({ id: t.id });
    expect(res.statusCode).toBe(200);
    expect(JSON.parse(res.body)).toEqual({
      revoked: [{ id: t.id, label: "ci deploy", scopes: ["readonly"] }],
    });
    const after = await get(t.token);
    expect(after.statusCode).toBe(401);
    expect(errorOf(after.body).code).toBe("UNAUTHENTICATED");
    const audit = await pool.query<{ body: unknown; status: number }>(
      `SELECT body, status FROM "${schema}".api_audit_log WHERE request_id = $1`,
      [res.headers["x-request-id"]],
    );
    expect(audit.rows).toEqual([{ body: { id: t.id }, status: 200 }]);
    // Twice: nothing left to revoke.
    const again = await revoke({ id: t.id });
    expect(again.statusCode).toBe(404);
    expect(errorOf(again.body).code).toBe("NOT_FOUND");
  });

  it("by label: every live token with it; others keep working; listed without secrets", async () => {
    const a = await store.createToken("shop frontend", ["invoice"]);
    const b = await store.createToken("shop frontend", ["invoice"]);
    const keep = await store.createToken("shop backend", ["invoice"]);
    const res = await revoke({ label: "shop frontend" });
    expect(res.statusCode).toBe(200);
    const ids = (JSON.parse(res.body) as { revoked: { id: string }[] }).revoked.map((r) => r.id).sort();
    expect(ids).toEqual([a.id, b.id].sort());
    expect((await get(a.token)).statusCode).toBe(401);
    expect((await get(b.token)).statusCode).toBe(401);
    expect((await get(keep.token)).statusCode).toBe(200);

    const list = await app.inject({ method: "GET", url: "/v1/tokens", headers: auth("admin") });
    expect(list.statusCode).toBe(200);
    const tokens = (JSON.parse(list.body) as { tokens: { id: string; revokedAt: string | null }[] }).tokens;
    expect(tokens.find((t) => t.id === a.id)?.revokedAt).not.toBeNull();
    expect(tokens.find((t) => t.id === keep.id)?.revokedAt).toBeNull();
    for (const t of [a, b, keep]) expect(list.body).not.toContain(t.token);
    expect(list.body).not.toContain(createHash("sha256").update(keep.token).digest("hex"));
  });

  it("refuses a body with neither or both of id and label", async () => {
    for (const payload of [{}, { id: "x", label: "y" }, { label: "" }]) {
      const res = await revoke(payload);
      expect(res.statusCode, JSON.stringify(payload)).toBe(400);
      expect(errorOf(res.body).code).toBe("VALIDATION_FAILED");
    }
  });

  it("rotating CHANNEL_ADMIN_TOKEN revokes the token bootstrapped from the previous value", async () => {
    const first = `first-${randomBytes(16).toString("hex")}`;
    const second = `second-${randomBytes(16).toString("hex")}`;
    expect(await store.bootstrapAdminToken(first)).toEqual({ created: true, revoked: 0, isRevoked: false });
    expect((await get(first)).statusCode).toBe(200);
    // A restart with the same value changes nothing.
    expect(await store.bootstrapAdminToken(first)).toEqual({ created: false, revoked: 0, isRevoked: false });
    expect((await get(first)).statusCode).toBe(200);
    // Rotated: the old value is refused, the new one admits.
    expect(await store.bootstrapAdminToken(second)).toEqual({ created: true, revoked: 1, isRevoked: false });
    expect((await get(first)).statusCode).toBe(401);
    expect((await get(second)).statusCode).toBe(200);
    // Other tokens are not the bootstrap's: untouched.
    expect((await get(token("admin"))).statusCode).toBe(200);
    // The old value put back (a restored Secret) stays revoked, and locks nobody out.
    expect(await store.bootstrapAdminToken(first)).toEqual({ created: false, revoked: 0, isRevoked: true });
    expect((await get(first)).statusCode).toBe(401);
    expect((await get(second)).statusCode).toBe(200);
    const live = await pool.query(
      `SELECT 1 FROM "${schema}".api_tokens WHERE label = $1 AND revoked_at IS NULL`,
      [BOOTSTRAP_LABEL],
    );
    expect(live.rowCount).toBe(1);
  });
});

describe("audit log", () => {
  type AuditRow = {
    id: string;
    token_id: string | null;
    method: string;
    route: string;
    params: Record<string, unknown> | null;
    body: unknown;
    status: number | null;
    outcome: string | null;
    request_id: string;
    client_request_id: string | null;
    finished_at: Date | null;
    row: string;
  };
  const rowsOf = async (where = "TRUE", args: unknown[] = []): Promise<AuditRow[]> =>
    (
      await pool.query<AuditRow>(
        `SELECT id::text, token_id, method, route, params, body, status, outcome, request_id,
                client_request_id, finished_at, row_to_json(a)::text AS row
           FROM "${schema}".api_audit_log a WHERE ${where} ORDER BY id`,
        args,
      )
    ).rows;
  const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

  it("has a row for every mutating call, with token id but never a token", async () => {
    const rows = await rowsOf();
    const ids = (await pool.query<{ id: string }>(`SELECT id FROM "${schema}".api_tokens`)).rows.map(
      (r) => r.id,
    );
    const routes = new Set(rows.map((r) => r.route));
    for (const r of ROUTES.filter((x) => x.method === "POST"))
      expect(routes, r.path).toContain(r.path.replace("{id}", ":id"));
    expect(rows.some((r) => r.status === 401 && r.token_id === null)).toBe(true);
    expect(rows.some((r) => r.status === 201 && r.route === "/v1/payments" && r.token_id !== null)).toBe(
      true,
    );
    for (const r of rows) {
      if (r.token_id !== null) expect(ids).toContain(r.token_id);
      expect(r.request_id).toMatch(UUID);
      for (const s of SCOPES) expect(r.row).not.toContain(token(s));
    }
    // No GETs are audited.
    expect(rows.every((r) => r.method !== "GET")).toBe(true);
  });

  it("keeps the route's parameters and the body", async () => {
    const res = await app.inject({
      method: "POST",
      url: "/v1/channels/chan-audit-1/fee",
      headers: auth("admin"),
      payload: { feeRate: 2500 },
    });
    expect(res.statusCode).toBe(404);
    expect(await rowsOf("request_id = $1", [res.headers["x-request-id"]])).toMatchObject([
      {
        route: "/v1/channels/:id/fee",
        params: { id: "chan-audit-1" },
        body: { feeRate: 2500 },
        status: 404,
        outcome: "NOT_FOUND",
      },
    ]);
  });

  it("never keeps a secret-looking field of a body", async () => {
    const preimage = "5e".repeat(32);
    const res = await app.inject({
      method: "POST",
      url: "/v1/invoices",
      headers: auth("admin"),
      payload: { amountMsat: "1", preimage, nested: { token: token("admin") } },
    });
    expect(res.statusCode).toBe(400);
    const [row] = await rowsOf("request_id = $1", [res.headers["x-request-id"]]);
    expect(row?.body).toEqual({ amountMsat: "1", preimage: "[redacted]", nested: { token: "[redacted]" } });
    expect(row?.row).not.toContain(preimage);
    expect(row?.outcome).toBe("VALIDATION_FAILED");
  });

  it("uses a server-assigned request id; the caller's X-Request-Id is kept apart", async () => {
    const call = () =>
      app.inject({
        method: "POST",
        url: "/v1/invoices",
        headers: { ...auth("invoice"), "x-request-id": "req-abc-123" },
        payload: { amountMsat: "1" },
      });
    const [a, b] = [await call(), await call()];
    for (const r of [a, b]) {
      expect(r.statusCode).toBe(201);
      expect(r.headers["x-request-id"]).toMatch(UUID);
    }
    expect(a.headers["x-request-id"]).not.toBe(b.headers["x-request-id"]);
    const rows = await rowsOf("client_request_id = 'req-abc-123'");
    expect(rows.map((r) => r.request_id)).toEqual([a.headers["x-request-id"], b.headers["x-request-id"]]);
    expect(await rowsOf("request_id = 'req-abc-123'")).toEqual([]);
  });

  it("is written before the call acts: the row is there, without an outcome, while it runs", async () => {
    const seen: (AuditRow | undefined)[] = [];
    const original = backend.connectPeer.bind(backend);
    backend.connectPeer = async (peer) => {
      seen.push((await rowsOf("route = '/v1/peers' AND body ->> 'host' = 'audit.example'"))[0]);
      return original(peer);
    };
    try {
      const res = await app.inject({
        method: "POST",
        url: "/v1/peers",
        headers: auth("admin"),
        payload: { host: "audit.example", port: 9735, nodeId: PEER },
      });
      expect(res.statusCode).toBe(200);
      expect(seen).toHaveLength(1);
      expect(seen[0]).toMatchObject({
        request_id: res.headers["x-request-id"],
        status: null,
        finished_at: null,
      });
      const [after] = await rowsOf("request_id = $1", [res.headers["x-request-id"]]);
      expect(after).toMatchObject({ id: seen[0]?.id, status: 200, outcome: null });
      expect(after?.finished_at).not.toBeNull();
    } finally {
      backend.connectPeer = original;
    }
  });

  it("if the row cannot be written, the call fails (503 AUDIT_UNAVAILABLE) and nothing is done", async () => {
    await pool.query(`CREATE FUNCTION "${schema}".audit_down() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'audit log unavailable'; END $$`);
    await pool.query(`CREATE TRIGGER audit_down BEFORE INSERT ON "${schema}".api_audit_log
      FOR EACH ROW EXECUTE FUNCTION "${schema}".audit_down()`);
    try {
      const withdrawals = backend.count("withdraw");
      const addresses = backend.count("walletAddress");
      const w = await app.inject({
        method: "POST",
        url: "/v1/wallet/withdraw",
        headers: { ...auth("admin"), "idempotency-key": "wd-audit-down" },
        payload: { address: `bcrt1q${"8".repeat(38)}`, amountSat: "1000" },
      });
      expect(w.statusCode).toBe(503);
      expect(errorOf(w.body).code).toBe("AUDIT_UNAVAILABLE");
      const a = await app.inject({ method: "POST", url: "/v1/wallet/address", headers: auth("address") });
      expect(a.statusCode).toBe(503);
      expect(errorOf(a.body).code).toBe("AUDIT_UNAVAILABLE");
      expect(backend.count("withdraw")).toBe(withdrawals);
      expect(backend.count("walletAddress")).toBe(addresses);
      const key = await pool.query(`SELECT 1 FROM "${schema}".api_idempotency WHERE key = 'wd-audit-down'`);
      expect(key.rowCount).toBe(0);
      expect(await registry.metrics()).toMatch(/^channel_api_audit_failures_total\{stage="start"\} [1-9]/m);
    } finally {
      await pool.query(`DROP TRIGGER audit_down ON "${schema}".api_audit_log`);
    }
  });

  it("if the outcome cannot be recorded, the call's answer stands and the log says so", async () => {
    await pool.query(`CREATE TRIGGER audit_down BEFORE UPDATE ON "${schema}".api_audit_log
      FOR EACH ROW EXECUTE FUNCTION "${schema}".audit_down()`);
    try {
      const res = await app.inject({ method: "POST", url: "/v1/wallet/address", headers: auth("address") });
      expect(res.statusCode).toBe(201);
      const id = res.headers["x-request-id"];
      const [row] = await rowsOf("request_id = $1", [id]);
      expect(row).toMatchObject({ status: null, finished_at: null });
      const logged = logLines
        .map((l) => JSON.parse(l) as { reqId?: string; level: number; auditId?: string; status?: number })
        .filter((l) => l.reqId === id && l.auditId !== undefined);
      expect(logged).toEqual([expect.objectContaining({ level: 50, auditId: row?.id, status: 201 })]);
      expect(await registry.metrics()).toMatch(/^channel_api_audit_failures_total\{stage="finish"\} 1$/m);
    } finally {
      await pool.query(`DROP TRIGGER audit_down ON "${schema}".api_audit_log`);
    }
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
