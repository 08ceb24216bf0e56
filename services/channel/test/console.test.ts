/**
 * The operator's console as served by the control API (app.inject, real Postgres for the token
 * store, the memory backend): public static files under a strict CSP, no inline script, nothing
 * from elsewhere, while /v1 still wants a token. The page itself runs in test/console.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Fastify, { type FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi } from "../src/api/index.js";
import { MemoryBackend } from "./memory-backend.js";
import { CONSOLE_CSP, consolePage } from "../src/api/console/index.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
const schema = `chan_console_test_${randomBytes(6).toString("hex")}`;

let app: FastifyInstance;
let token: string;

beforeAll(async () => {
  app = await buildApi({ pool, schema, backend: new MemoryBackend() });
  token = (await new ApiStore(pool, schema).createToken("console test", ["readonly"])).token;
});

afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const FILES = [
  { url: "/console", type: "text/html" },
  { url: "/console/app.js", type: "text/javascript" },
  { url: "/console/app.css", type: "text/css" },
  { url: "/console/icon.svg", type: "image/svg+xml" },
  // qrcode-generator's ES module, from node_modules.
  { url: "/console/qrcode.js", type: "text/javascript" },
];

/** The CSP's directives by name, each with its sources. */
const directives = (csp: string): Map<string, string[]> =>
  new Map(
    csp
      .split(";")
      .map((d) => d.trim().split(/\s+/))
      .filter((d) => d[0])
      .map(([name, ...sources]) => [name ?? "", sources]),
  );

describe("the console's files", () => {
  it.each(FILES)("$url is served without a token, with the strict CSP", async ({ url, type }) => {
    const res = await app.inject({ method: "GET", url });
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toContain(type);
    expect(res.headers["content-security-policy"]).toBe(CONSOLE_CSP);
    expect(res.headers["x-content-type-options"]).toBe("nosniff");
    expect(res.headers["referrer-policy"]).toBe("no-referrer");
    expect(res.body.length).toBeGreaterThan(50);
  });

  it("ignores whatever Authorization header comes along", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/console",
      headers: { authorization: "Bearer not-a-token" },
    });
    expect(res.statusCode).toBe(200);
  });

  it("the CSP allows only this origin and no inline script or style", () => {
    const d = directives(CONSOLE_CSP);
    expect(d.get("default-src")).toEqual(["'self'"]);
    for (const name of ["script-src", "style-src", "connect-src", "img-src"])
      expect(d.get(name), name).toEqual(["'self'"]);
    expect(d.get("object-src")).toEqual(["'none'"]);
    expect(d.get("frame-ancestors")).toEqual(["'none'"]);
    expect(CONSOLE_CSP).not.toMatch(/unsafe-|data:|https?:|\*/);
  });

  it("the page has no inline script, handler or style and loads nothing from elsewhere", async () => {
    const html = (await app.inject({ method: "GET", url: "/console" })).body;
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
    expect(scripts).toHaveLength(1);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/\bsrc="console\/app\.js"/);
      expect(body?.trim()).toBe("");
    }
    expect(html).not.toMatch(/\son[a-z]+\s*=/i); // onclick= and friends
    expect(html).not.toMatch(/<style\b|\sstyle\s*=/i);
    expect(html).not.toMatch(/javascript:/i);
    const refs = [...html.matchAll(/\s(?:src|href|action)="([^"]*)"/gi)].map((m) => m[1] ?? "");
    expect(refs.length).toBeGreaterThan(2);
    for (const ref of refs) expect(ref, ref).toMatch(/^console\/[a-z]+\.(js|css|svg)$/);
  });

  it("the script keeps the token out of URLs, local storage and markup", async () => {
    const js = (await app.inject({ method: "GET", url: "/console/app.js" })).body;
    expect(js).toContain("sessionStorage");
    expect(js).toMatch(/authorization: `Bearer \$\{token\}`/);
    expect(js).not.toMatch(/localStorage|innerHTML|outerHTML|insertAdjacentHTML|document\.write|eval\(/);
    expect(js).not.toMatch(/console\.(log|info|debug|warn|error)/);
    expect(js).not.toMatch(/https?:\/\//);
  });

  it("stays out of the OpenAPI document", async () => {
    const doc = JSON.parse((await app.inject({ method: "GET", url: "/docs/json" })).body) as {
      paths: Record<string, unknown>;
    };
    expect(Object.keys(doc.paths).filter((p) => p.startsWith("/console"))).toEqual([]);
  });

  it("serves nothing else under /console: other paths need a token like any unknown route", async () => {
    for (const url of ["/console/secrets.js", "/console/../v1/info", "/console/"]) {
      const res = await app.inject({ method: "GET", url });
      expect(res.statusCode, url).toBe(401);
    }
  });
});

describe("the data stays behind the token", () => {
  it.each(["/v1/info", "/v1/channels", "/v1/payments", "/v1/wallet/balance"])(
    "%s refuses a request without a token and answers one with it",
    async (url) => {
      const none = await app.inject({ method: "GET", url });
      expect(none.statusCode).toBe(401);
      expect(none.headers["content-security-policy"]).toBeUndefined();
      const ok = await app.inject({ method: "GET", url, headers: { authorization: `Bearer ${token}` } });
      expect(ok.statusCode).toBe(200);
    },
  );
});

describe("missing files", () => {
  it("answer 503 naming where they were looked for, and the rest of the API still starts", async () => {
    const dir = await mkdtemp(join(tmpdir(), "console-missing-"));
    const bare = Fastify();
    try {
      await bare.register(consolePage, { dir });
      const res = await bare.inject({ method: "GET", url: "/console/app.js" });
      expect(res.statusCode).toBe(503);
      const body = JSON.parse(res.body) as { error: { code: string; message: string } };
      expect(body.error.code).toBe("CONSOLE_UNAVAILABLE");
      expect(body.error.message).toContain(dir);
    } finally {
      await bare.close();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
