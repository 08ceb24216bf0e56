/**
 * `lnctl events` against the real control API (GET /v1/events over HTTP, events appended to a
 * real Postgres log): it prints each event once, in seq order, and after the server drops the
 * connection (abruptly, or by restarting) it resumes after the last seq it printed.
 */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The real control API and event log, in-process, by relative path from this test only: the
// lnctl package itself depends on nothing but node built-ins.
import { ApiStore, buildApi, type ApiOptions } from "../../../services/channel/src/api/index.js";
import { MemoryBackend } from "../../../services/channel/test/memory-backend.js";
import {
  appendEvents,
  EventLog,
  inEventTransaction,
} from "../../../services/channel/src/events/event-log.js";
import { EXIT, run } from "../src/cli.js";
import type { StatusEvent } from "../src/events.js";
import { lnctl } from "./helpers.js";
import { testDatabaseUrl } from "@ln/testkit";

type Pool = ApiOptions["pool"];
const requireFromChannel = createRequire(new URL("../../../services/channel/package.json", import.meta.url));
const pg = requireFromChannel("pg") as {
  Pool: new (cfg: { connectionString: string; max: number }) => Pool;
};

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 6 });
const schema = `lnctl_events_${randomBytes(6).toString("hex")}`;
type App = Awaited<ReturnType<typeof buildApi>>;
let app: App | undefined;
let port = 0;
let token = "";

async function serve(): Promise<App> {
  const a = await buildApi({
    pool,
    schema,
    backend: new MemoryBackend(),
    events: { limits: { tokenCheckMs: 50 } },
  });
  await a.listen({ host: "127.0.0.1", port });
  port = (a.server.address() as AddressInfo).port;
  return a;
}

/** Closes an app; undici's spare sockets (no request) would hold it for a minute otherwise. */
async function close(a: App | undefined): Promise<void> {
  if (!a) return;
  const closing = a.close();
  a.server.closeAllConnections();
  await closing;
}

beforeAll(async () => {
  app = await serve();
  token = (await new ApiStore(pool, schema).createToken("lnctl events", ["readonly"])).token;
});

afterAll(async () => {
  await close(app);
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

let n = 0;
async function append(count: number): Promise<void> {
  await inEventTransaction(pool, schema, (c) =>
    appendEvents(
      c,
      schema,
      Array.from({ length: count }, () => ({
        kind: "invoice" as const,
        subject: `inv-${++n}`,
        status: "settled",
        detail: { amountMsat: "5000" },
      })),
    ),
  );
}

async function seqsAfter(after: bigint): Promise<string[]> {
  const r = await pool.query<{ seq: string }>(
    `SELECT seq::text AS seq FROM "${schema}".events WHERE seq > $1 ORDER BY seq`,
    [after.toString()],
  );
  return r.rows.map((x) => x.seq);
}

/** lnctl events running in the background, its output captured. */
function follow(
  argv: string[],
  tokenUsed = token,
): {
  lines: () => string[];
  stderr: () => string;
  stop: () => Promise<number>;
  done: Promise<number>;
} {
  let out = "";
  let err = "";
  const ac = new AbortController();
  const done = run(argv, {
    env: { LNCTL_URL: `http://127.0.0.1:${port}`, LNCTL_TOKEN: tokenUsed },
    stdout: { write: (s: string) => (out += s) },
    stderr: { write: (s: string) => (err += s) },
    readFile: () => undefined,
    signal: ac.signal,
    reconnectMs: 20,
  });
  return {
    lines: () => out.split("\n").filter((l) => l !== ""),
    stderr: () => err,
    stop: async () => {
      ac.abort();
      return done;
    },
    done,
  };
}

describe("lnctl events", () => {
  it("prints each event once, in order, resuming after the server drops the connection or restarts", async () => {
    const start = await new EventLog(pool, schema).head();
    const f = follow(["events", "--after", start.toString(), "--json"]);
    await append(3);
    await expect.poll(() => f.lines().length).toBe(3);

    // The server drops every connection at once (no end event): lnctl reconnects.
    app?.server.closeAllConnections();
    await append(2);
    await expect.poll(() => f.lines().length).toBe(5);

    // The server goes away and comes back on the same port; events committed meanwhile.
    await close(app);
    app = undefined;
    await append(1);
    await append(2);
    app = await serve();
    await expect.poll(() => f.lines().length).toBe(8);
    await append(1);
    await expect.poll(() => f.lines().length).toBe(9);

    expect(await f.stop()).toBe(EXIT.ok);
    const printed = f.lines().map((l) => JSON.parse(l) as StatusEvent);
    expect(printed.map((e) => e.seq)).toEqual(await seqsAfter(start));
    expect(printed.map((e) => e.subject)).toEqual(Array.from({ length: 9 }, (_, i) => `inv-${n - 8 + i}`));
    expect(printed[0]).toMatchObject({ kind: "invoice", status: "settled", detail: { amountMsat: "5000" } });
    expect(f.stderr()).toContain("disconnected");
  });

  it("prints one human line per event: seq, time, kind, subject, status, details", async () => {
    const start = await new EventLog(pool, schema).head();
    const f = follow(["events", "--after", start.toString()]);
    await append(1);
    await expect.poll(() => f.lines().length).toBe(1);
    expect(await f.stop()).toBe(EXIT.ok);
    const [seq] = await seqsAfter(start);
    expect(f.lines()[0]).toMatch(
      new RegExp(`^${seq}  \\d{4}-\\d\\d-\\d\\dT[0-9:.]+Z  invoice  inv-${n}  settled  amountMsat=5000$`),
    );
  });

  it("without --after, starts at the head and still resumes without a gap", async () => {
    const before = await new EventLog(pool, schema).head();
    await append(1); // before it starts: not shown
    const f = follow(["events", "--json"]);
    await expect
      .poll(async () => {
        const r = await pool.query<{ n: string }>(
          `SELECT count(*)::text AS n FROM "${schema}".api_audit_log WHERE route = '/v1/events' AND finished_at IS NULL`,
        );
        return r.rows[0]?.n;
      })
      .toBe("1");
    const head = await new EventLog(pool, schema).head();
    app?.server.closeAllConnections(); // before it saw any event
    await append(2);
    await expect.poll(() => f.lines().length).toBe(2);
    expect(await f.stop()).toBe(EXIT.ok);
    expect(f.lines().map((l) => (JSON.parse(l) as StatusEvent).seq)).toEqual(await seqsAfter(head));
    expect(head).toBeGreaterThan(before);
  });

  it("ends with exit 5 (auth) and TOKEN_REVOKED when its token is revoked", async () => {
    const store = new ApiStore(pool, schema);
    const t = await store.createToken("lnctl events revoked", ["readonly"]);
    const f = follow(["events"], t.token);
    await expect
      .poll(async () => {
        const r = await pool.query(
          `SELECT 1 FROM "${schema}".api_audit_log WHERE token_id = $1 AND route = '/v1/events'`,
          [t.id],
        );
        return r.rowCount;
      })
      .toBe(1);
    await store.revokeToken(t.id);
    expect(await f.done).toBe(EXIT.auth);
    expect(f.stderr()).toContain("TOKEN_REVOKED");
  });

  it("refuses a malformed --after as a usage error, and an unreachable API as a connection error", async () => {
    const bad = await lnctl(["events", "--after", "x1"], {
      LNCTL_URL: "http://127.0.0.1:1",
      LNCTL_TOKEN: token,
    });
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toContain("--after must be an event seq");
    const down = await lnctl(["events"], { LNCTL_URL: "http://127.0.0.1:1", LNCTL_TOKEN: token });
    expect(down.code).toBe(EXIT.connection);
  });
});
