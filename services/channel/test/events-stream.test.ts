/**
 * GET /v1/events over real HTTP and a real Postgres: events appended with the log's own writer
 * (inEventTransaction + appendEvents) reach the stream in seq order, each once; a client that
 * disconnects and resumes with Last-Event-ID gets exactly what it missed; bounds (stream limit,
 * revoked token, scope) end or refuse streams with typed codes.
 */
import { randomBytes } from "node:crypto";
import { connect as tcpConnect, type AddressInfo } from "node:net";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi } from "../src/api/index.js";
import { appendEvents, beginEvents, inEventTransaction, type StatusChange } from "../src/events/event-log.js";
import { EventFeed } from "../src/events/feed.js";
import { MemoryBackend } from "./memory-backend.js";
import { SseReader, type SseFrame } from "./sse-client.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schema = `chan_sse_${randomBytes(6).toString("hex")}`;
type App = Awaited<ReturnType<typeof buildApi>>;

let app: App;
let base: string;
let feed: EventFeed;
const tokens = {
  readonly: { id: "", token: "" },
  invoice: { id: "", token: "" },
  admin: { id: "", token: "" },
};

/**
 * Closes an app whose streams have all ended. Undici (fetch) opens a spare socket when a stream is
 * aborted, which sends no request: the server would wait for its headers timeout (a minute).
 */
async function closeApp(a: App | undefined): Promise<void> {
  if (!a) return;
  const closing = a.close();
  a.server.closeAllConnections();
  await closing;
}

async function listen(a: App): Promise<string> {
  await a.listen({ host: "127.0.0.1", port: 0 });
  return `http://127.0.0.1:${(a.server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  feed = new EventFeed({ pool, schema, pollMs: 60_000 });
  app = await buildApi({ pool, schema, backend: new MemoryBackend(), events: { feed } });
  const store = new ApiStore(pool, schema);
  for (const s of ["readonly", "invoice", "admin"] as const)
    tokens[s] = await store.createToken(`sse ${s}`, [s]);
  base = await listen(app);
});

afterAll(async () => {
  await closeApp(app);
  await feed?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

let counter = 0;
/** Appends `n` payment events in one transaction; returns their subjects. */
async function append(n: number): Promise<string[]> {
  const changes: StatusChange[] = Array.from({ length: n }, () => ({
    kind: "payment",
    subject: `pay-${++counter}`,
    status: "succeeded",
    detail: { amountMsat: "1000" },
  }));
  await inEventTransaction(pool, schema, (c) => appendEvents(c, schema, changes));
  return changes.map((c) => c.subject);
}

const auth = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });
const open = (
  query = "",
  headers: Record<string, string> = {},
  token = tokens.readonly.token,
): Promise<SseReader> => SseReader.open(`${base}/v1/events${query}`, { ...auth(token), ...headers });

interface Got {
  seq: bigint;
  subject: string;
  frame: SseFrame;
}
/** The next `n` events of a stream, with their ids checked against their data. */
async function take(r: SseReader, n: number): Promise<Got[]> {
  const out: Got[] = [];
  while (out.length < n) {
    const f = await r.nextEvent();
    if (!f) throw new Error(`stream ended after ${out.length} of ${n} events`);
    const data = JSON.parse(f.data ?? "") as { seq: string; subject: string; kind: string };
    expect(f.id).toBe(data.seq);
    expect(f.event).toBe(data.kind);
    out.push({ seq: BigInt(data.seq), subject: data.subject, frame: f });
  }
  return out;
}

/** Every seq in the table, in order: what a reader must be given, computed apart from the stream. */
async function allSeqs(): Promise<bigint[]> {
  const r = await pool.query<{ seq: string }>(`SELECT seq::text AS seq FROM "${schema}".events ORDER BY seq`);
  return r.rows.map((x) => BigInt(x.seq));
}

describe("GET /v1/events", () => {
  it("streams events appended after it opened, as text/event-stream with id, event and JSON data", async () => {
    const r = await open();
    expect(r.response.status).toBe(200);
    expect(r.response.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    const subjects = await append(2);
    const got = await take(r, 2);
    r.close();
    expect(got.map((g) => g.subject)).toEqual(subjects);
    const data = JSON.parse(got[0]?.frame.data ?? "") as Record<string, unknown>;
    expect(data).toMatchObject({ kind: "payment", status: "succeeded", detail: { amountMsat: "1000" } });
    expect(new Date(String(data["at"])).getTime()).not.toBeNaN();
    const seqs = await allSeqs();
    expect(got.map((g) => g.seq)).toEqual(seqs.slice(-2));
  });

  it("resumes with Last-Event-ID after a disconnect: exactly the missed events, no gap, no duplicate", async () => {
    const r1 = await open();
    const first = await append(3);
    const seen = await take(r1, 3);
    expect(seen.map((g) => g.subject)).toEqual(first);
    r1.close(); // mid-stream: the client goes away

    const missed = [...(await append(2)), ...(await append(1)), ...(await append(4))];
    const last = seen[seen.length - 1]?.seq ?? 0n;
    const r2 = await open("", { "last-event-id": last.toString() });
    const resumed = await take(r2, missed.length);
    expect(resumed.map((g) => g.subject)).toEqual(missed);
    expect(resumed.map((g) => g.seq)).toEqual((await allSeqs()).filter((s) => s > last));
    // The stream goes on with what comes next, and nothing of before comes again.
    const later = await append(1);
    expect((await take(r2, 1)).map((g) => g.subject)).toEqual(later);
    r2.close();

    // ?after= does the same for a client that has no Last-Event-ID to send.
    const r3 = await open(`?after=${last}`);
    expect((await take(r3, missed.length + 1)).map((g) => g.subject)).toEqual([...missed, ...later]);
    r3.close();
  });

  it("replays everything with ?from=start", async () => {
    const all = await allSeqs();
    const r = await open("?from=start");
    const got = await take(r, all.length);
    r.close();
    expect(got.map((g) => g.seq)).toEqual(all);
  });

  it("gives concurrent writers' events in seq order without gaps, holding back those an open transaction may precede", async () => {
    const r = await open();
    const before = (await allSeqs()).at(-1) ?? 0n;
    const older = await pool.connect();
    try {
      await older.query("BEGIN");
      await beginEvents(older, schema);
      await older.query("SELECT pg_current_xact_id()"); // has its id: below the writers that follow
      // Writers committing meanwhile, some of them overlapping each other.
      const overlapping = await Promise.all([append(2), append(1), append(3)]);
      const more = await append(2);
      await appendEvents(older, schema, [
        { kind: "channel", subject: "chan-old", status: "normal" },
        { kind: "invoice", subject: "inv-old", status: "settled" },
      ]);
      await older.query("COMMIT");
      const expected = (await allSeqs()).filter((s) => s > before);
      expect(expected).toHaveLength(overlapping.flat().length + more.length + 2);
      const got = await take(r, expected.length);
      expect(got.map((g) => g.seq)).toEqual(expected);
      // The older transaction's events come first: its seq is below every later writer's.
      expect(got.slice(0, 2).map((g) => g.subject)).toEqual(["chan-old", "inv-old"]);
      expect(got.slice(0, 2).map((g) => g.frame.event)).toEqual(["channel", "invoice"]);
    } finally {
      older.release();
      r.close();
    }
  });

  it("keeps streaming after the LISTEN connection is lost (it reconnects)", async () => {
    const r = await open();
    await feed.dropListenConnection();
    const subjects = await append(2);
    expect((await take(r, 2)).map((g) => g.subject)).toEqual(subjects);
    r.close();
  });

  it("needs a token: any scope reads, none or an unknown one gets 401", async () => {
    const none = await fetch(`${base}/v1/events`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { code: string } }).error.code).toBe("UNAUTHENTICATED");
    const unknown = await fetch(`${base}/v1/events`, { headers: auth("lnch_unknown-token") });
    expect(unknown.status).toBe(401);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe("UNAUTHENTICATED");
    for (const t of [tokens.invoice.token, tokens.admin.token]) {
      const r = await open("", {}, t);
      expect(r.response.status).toBe(200);
      r.close();
    }
  });

  it("refuses a malformed position with 400", async () => {
    for (const [q, h] of [
      ["", { "last-event-id": "12x" }],
      ["?after=-1", {}],
      ["?after=99999999999999999999", {}],
      ["?from=start", { "last-event-id": "5" }],
      ["?from=beginning", {}],
    ] as const) {
      const res = await fetch(`${base}/v1/events${q}`, { headers: { ...auth(tokens.readonly.token), ...h } });
      expect(res.status, `${q} ${JSON.stringify(h)}`).toBe(400);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe("VALIDATION_FAILED");
    }
  });

  it("writes one audit row per stream, with how it ended", async () => {
    const r = await open("?from=start");
    const requestId = r.response.headers.get("x-request-id");
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    await r.next();
    r.close();
    await expect
      .poll(async () => {
        const rows = await pool.query<{ route: string; token_id: string; status: number; finished: boolean }>(
          `SELECT route, token_id, status, finished_at IS NOT NULL AS finished FROM "${schema}".api_audit_log WHERE request_id = $1`,
          [requestId],
        );
        return rows.rows;
      })
      .toEqual([{ route: "/v1/events", token_id: tokens.readonly.id, status: 200, finished: true }]);
  });
});

describe("GET /v1/events bounds", () => {
  let bounded: App;
  let url: string;

  beforeAll(async () => {
    bounded = await buildApi({
      pool,
      schema,
      backend: new MemoryBackend(),
      events: { feed, limits: { maxStreams: 2, tokenCheckMs: 50, heartbeatMs: 50, stallMs: 300 } },
    });
    url = await listen(bounded);
  });
  afterAll(async () => {
    await closeApp(bounded);
  });

  it("refuses a stream beyond the limit with 503 TOO_MANY_STREAMS, and takes one again once another ends", async () => {
    const a = await SseReader.open(`${url}/v1/events`, auth(tokens.readonly.token));
    const b = await SseReader.open(`${url}/v1/events`, auth(tokens.readonly.token));
    expect([a.response.status, b.response.status]).toEqual([200, 200]);
    const refused = await fetch(`${url}/v1/events`, { headers: auth(tokens.readonly.token) });
    expect(refused.status).toBe(503);
    expect(refused.headers.get("retry-after")).toBe("5");
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("TOO_MANY_STREAMS");
    a.close();
    await expect
      .poll(async () => {
        const res = await fetch(`${url}/v1/events`, { headers: auth(tokens.readonly.token) });
        void res.body?.cancel();
        return res.status;
      })
      .toBe(200);
    b.close();
  });

  it("sends heartbeat comments while idle", async () => {
    const r = await SseReader.open(`${url}/v1/events`, auth(tokens.readonly.token));
    for (;;) {
      const f = await r.next();
      if (!f) throw new Error("stream ended");
      if (f.comments.includes("heartbeat")) break;
    }
    r.close();
  });

  it("ends the stream of a token revoked meanwhile with an end event TOKEN_REVOKED", async () => {
    const t = await new ApiStore(pool, schema).createToken("sse to revoke", ["readonly"]);
    const r = await SseReader.open(`${url}/v1/events`, auth(t.token));
    expect(r.response.status).toBe(200);
    await new ApiStore(pool, schema).revokeToken(t.id);
    const end = await r.nextEvent();
    expect(end?.event).toBe("end");
    expect((JSON.parse(end?.data ?? "") as { error: { code: string } }).error.code).toBe("TOKEN_REVOKED");
    expect(await r.next()).toBeUndefined(); // the server closed it
    const again = await fetch(`${url}/v1/events`, { headers: auth(t.token) });
    expect(again.status).toBe(401);
    await again.body?.cancel();
    const audit = await pool.query<{ outcome: string }>(
      `SELECT outcome FROM "${schema}".api_audit_log WHERE token_id = $1 AND route = '/v1/events' AND status = 200`,
      [t.id],
    );
    expect(audit.rows).toEqual([{ outcome: "TOKEN_REVOKED" }]);
  });

  it("drops a client that reads nothing while its socket is full (STALLED), and frees its place", async () => {
    const start = (await allSeqs()).at(-1) ?? 0n;
    // About 20 MB of events: more than the socket buffers of both ends can hold.
    const pad = "x".repeat(8000);
    for (let i = 0; i < 25; i++)
      await inEventTransaction(pool, schema, (c) =>
        appendEvents(
          c,
          schema,
          Array.from({ length: 100 }, (_, j) => ({
            kind: "channel" as const,
            subject: `big-${i}-${j}`,
            status: "normal",
            detail: { pad },
          })),
        ),
      );
    const { port } = new URL(url);
    const sock = tcpConnect(Number(port), "127.0.0.1");
    await new Promise<void>((resolve) => sock.once("connect", resolve));
    sock.pause(); // never reads
    sock.on("error", () => undefined); // the server's reset, if any, is expected
    sock.write(
      `GET /v1/events?after=${start} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${tokens.readonly.token}\r\n\r\n`,
    );
    await expect
      .poll(
        async () =>
          (
            await pool.query<{ outcome: string | null }>(
              `SELECT outcome FROM "${schema}".api_audit_log
                WHERE route = '/v1/events' AND params->>'after' = $1 AND finished_at IS NOT NULL`,
              [start.toString()],
            )
          ).rows.map((r) => r.outcome),
        { timeout: 30_000 },
      )
      .toEqual(["STALLED"]);
    sock.destroy();
    // Its place is free again: two more streams fit under the limit of 2.
    const a = await SseReader.open(`${url}/v1/events`, auth(tokens.readonly.token));
    const b = await SseReader.open(`${url}/v1/events`, auth(tokens.readonly.token));
    expect([a.response.status, b.response.status]).toEqual([200, 200]);
    a.close();
    b.close();
  });

  it("closing the server ends its streams with SERVER_CLOSING", async () => {
    const other = await buildApi({ pool, schema, backend: new MemoryBackend(), events: { feed } });
    const otherUrl = await listen(other);
    const r = await SseReader.open(`${otherUrl}/v1/events`, auth(tokens.readonly.token));
    await r.next(); // the stream is open
    const closing = other.close();
    const end = await r.nextEvent();
    expect((JSON.parse(end?.data ?? "") as { error: { code: string } }).error.code).toBe("SERVER_CLOSING");
    await closing;
  });
});
