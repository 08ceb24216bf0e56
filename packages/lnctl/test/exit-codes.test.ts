import { describe, expect, it } from "vitest";
import { ApiClientError, ConnectionError, LnClient } from "../src/client.js";
import { REJECTION_STATUS } from "@ln/control-api";
import { EXIT } from "../src/cli.js";
import { fakeFetch, HASH, lnctl } from "./helpers.js";

const TOKEN = "lnch_secret-token-value";
const env = { LNCTL_URL: "http://api.test:8080/", LNCTL_TOKEN: TOKEN };

describe("exit codes", () => {
  it("0 and the reply on success; --json prints the raw reply", async () => {
    const info = {
      nodeId: "02aa",
      network: "regtest",
      version: "v",
      blockHeight: 7,
      peerCount: 0,
      channelCount: 0,
    };
    const f = fakeFetch(200, info);
    const r = await lnctl(["info"], env, { fetch: f.fetch });
    expect(r.code).toBe(EXIT.ok);
    expect(r.stdout).toContain("block height:  7\n");
    expect(f.calls[0]?.url).toBe("http://api.test:8080/v1/info");
    const j = await lnctl(["info", "--json"], env, { fetch: f.fetch });
    expect(JSON.parse(j.stdout)).toEqual(info);
  });

  it("6 on NOT_FOUND: code, message and request id; the token is not printed", async () => {
    const f = fakeFetch(404, { error: { code: "NOT_FOUND", message: "no channel x", requestId: "req-1" } });
    const r = await lnctl(["channel", "x"], env, { fetch: f.fetch });
    expect(r.code).toBe(EXIT.notFound);
    expect(r.stdout).toBe("");
    expect(r.stderr).toBe("error: NOT_FOUND (HTTP 404): no channel x\nrequest id: req-1\n");
    expect(r.stderr).not.toContain(TOKEN);
  });

  it("1 on an error without a JSON body, with the x-request-id header", async () => {
    const f = fakeFetch(502, "<html>bad gateway</html>", { "x-request-id": "rid-9" });
    const r = await lnctl(["channels"], env, { fetch: f.fetch });
    expect(r.code).toBe(EXIT.api);
    expect(r.stderr).toMatch(
      /^error: HTTP_502 \(HTTP 502\): .*is http:\/\/api.test:8080 the channel service's control API\?\nrequest id: rid-9\n$/,
    );
  });

  it("3 when the API cannot be reached, naming the URL (without credentials) and the setting", async () => {
    const failing = async (): Promise<Response> => {
      throw new TypeError("fetch failed", {
        cause: Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" }),
      });
    };
    const r = await lnctl(
      ["info"],
      { ...env, LNCTL_URL: "http://user:pw@api.test:8080" },
      { fetch: failing },
    );
    expect(r.code).toBe(EXIT.connection);
    expect(r.stderr).toBe(
      "lnctl: cannot reach http://api.test:8080 (connect ECONNREFUSED); check --url or LNCTL_URL (and that the channel service is running)\n",
    );
    expect(r.stderr).not.toContain("pw");
    expect(r.stderr).not.toContain(TOKEN);
  });

  it("3 on a timeout and on a 200 that is not JSON", async () => {
    const slow = (_: string, init: RequestInit): Promise<Response> =>
      new Promise((_resolve, reject) =>
        init.signal?.addEventListener("abort", () => reject(init.signal?.reason)),
      );
    const t = await lnctl(["info"], env, { fetch: slow, timeoutMs: 50 });
    expect(t.code).toBe(EXIT.connection);
    expect(t.stderr).toMatch(/no answer from http:\/\/api.test:8080 within 50 ms; check --url or LNCTL_URL/);
    const html = fakeFetch(200, "<html></html>");
    const h = await lnctl(["info"], env, { fetch: html.fetch });
    expect(h.code).toBe(EXIT.connection);
    expect(h.stderr).toMatch(/something other than JSON/);
  });

  it("2 on a usage error before any request", async () => {
    const f = fakeFetch(200, {});
    const r = await lnctl(["open"], env, { fetch: f.fetch });
    expect(r.code).toBe(EXIT.usage);
    expect(f.calls).toHaveLength(0);
  });
});

describe("exit codes by the API's error code", () => {
  const answer = (status: number, code: string) =>
    fakeFetch(status, { error: { code, message: `${code} happened`, requestId: "req-2" } });
  const close = ["close", "chan-1"];

  // The documented table: each code a script can act on, and the exit lnctl gives it.
  it.each([
    [409, "CONFLICT", EXIT.api],
    [422, "IDEMPOTENCY_KEY_REUSED", EXIT.api],
    [400, "VALIDATION_FAILED", EXIT.api],
    [500, "INTERNAL", EXIT.api],
    [401, "UNAUTHENTICATED", EXIT.auth],
    [403, "FORBIDDEN", EXIT.auth],
    [404, "NOT_FOUND", EXIT.notFound],
    [503, "UNAVAILABLE", EXIT.unavailable],
    [503, "NOT_READY", EXIT.unavailable],
    [503, "AUDIT_UNAVAILABLE", EXIT.unavailable],
    [502, "PEER_UNREACHABLE", EXIT.unavailable],
    [503, "PAYMENT_OUTCOME_UNKNOWN", EXIT.outcomeUnknown],
    [409, "CHANNEL_CLOSING", EXIT.refused],
    [422, "EXPIRY_TOO_SOON", EXIT.refused],
  ] as const)("HTTP %i %s exits %i", async (status, code, exit) => {
    const r = await lnctl(close, env, { fetch: answer(status, code).fetch });
    expect(r.code).toBe(exit);
    expect(r.stderr).toBe(`error: ${code} (HTTP ${status}): ${code} happened\nrequest id: req-2\n`);
  });

  it("every rejection code of the channel core exits 4", async () => {
    const codes = Object.keys(REJECTION_STATUS);
    expect(codes.length).toBeGreaterThan(10);
    for (const code of codes) {
      const r = await lnctl(close, env, { fetch: answer(409, code).fetch });
      expect(r.code, code).toBe(4);
    }
  });

  it("a code lnctl does not know goes by its status", async () => {
    expect((await lnctl(close, env, { fetch: answer(401, "NEW_AUTH_THING").fetch })).code).toBe(5);
    expect((await lnctl(close, env, { fetch: answer(404, "GONE_ELSEWHERE").fetch })).code).toBe(6);
    expect((await lnctl(close, env, { fetch: answer(503, "BUSY").fetch })).code).toBe(7);
    expect((await lnctl(close, env, { fetch: answer(418, "TEAPOT").fetch })).code).toBe(1);
  });

  it("lnctl help lists every exit code with its meaning", async () => {
    const r = await lnctl(["help"]);
    expect(r.code).toBe(0);
    const listed = [...r.stdout.matchAll(/^ {2}(\d) {2}\S/gm)].map((m) => Number(m[1]));
    expect(listed).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(Object.values(EXIT).sort()).toEqual(listed);
  });
});

describe("client requests", () => {
  it("sends amounts as decimal strings, the idempotency key as a header, ids URL-encoded", async () => {
    const payment = {
      id: "p",
      channelId: "c",
      rHash: HASH,
      amountMsat: "18446744073709551615",
      expiry: { blocks: 120 },
      status: "succeeded",
      failureReason: null,
      createdAt: "t",
    };
    const f = fakeFetch(201, payment, { "idempotent-replayed": "true" });
    const c = new LnClient({ url: "http://h:1/", token: "tok", fetch: f.fetch });
    const r = await c.payWithReplay(
      { channelId: "c", rHash: HASH, amountMsat: 18446744073709551615n, expiry: { blocks: 120 } },
      "key-1",
    );
    expect(r).toEqual({ payment, replayed: true });
    const call = f.calls[0];
    expect(call?.url).toBe("http://h:1/v1/payments");
    expect(call?.init.method).toBe("POST");
    expect(JSON.parse(String(call?.init.body))).toEqual({
      channelId: "c",
      rHash: HASH,
      amountMsat: "18446744073709551615",
      expiry: { blocks: 120 },
    });
    const h = new Headers(call?.init.headers);
    expect(h.get("idempotency-key")).toBe("key-1");
    expect(h.get("authorization")).toBe("Bearer tok");
    expect(h.get("content-type")).toBe("application/json");
    await c.getPayment("a:b/c").catch(() => undefined);
    expect(f.calls[1]?.url).toBe("http://h:1/v1/payments/a%3Ab%2Fc");
    await c.listPayments(5);
    expect(f.calls[2]?.url).toBe("http://h:1/v1/payments?limit=5");
    expect(new Headers(f.calls[2]?.init.headers).get("content-type")).toBeNull();
  });

  it("throws typed errors", async () => {
    const c = new LnClient({
      url: "http://h:1",
      token: "t",
      fetch: fakeFetch(403, { error: { code: "FORBIDDEN", message: "needs admin", requestId: "r" } }).fetch,
    });
    const e = await c.walletBalance().catch((x: unknown) => x);
    expect(e).toBeInstanceOf(ApiClientError);
    expect(e).toMatchObject({ status: 403, code: "FORBIDDEN", message: "needs admin", requestId: "r" });
    const down = new LnClient({
      url: "http://h:1",
      token: "t",
      fetch: () => Promise.reject(new TypeError("fetch failed")),
    });
    const ce = await down.info().catch((x: unknown) => x);
    expect(ce).toBeInstanceOf(ConnectionError);
    expect((ce as ConnectionError).url).toBe("http://h:1");
    expect(() => new LnClient({ url: "file:///x", token: "t" })).toThrow(/http:\/\/ or https:\/\//);
  });
});
