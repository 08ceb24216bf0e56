/**
 * The status events' NATS relay (events/relay.ts) over real Postgres and real JetStream: every
 * event of the log lands on the stream exactly once and in seq order, on `<prefix>.events.<kind>`
 * with message id = seq, across a relay restart, a crash between the ack and the cursor write,
 * and two replicas relaying at once.
 */
import { randomBytes } from "node:crypto";
import { connect, JSONCodec, type JetStreamManager, type NatsConnection } from "nats";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendEvents, inEventTransaction, type EventKind } from "../src/events/event-log.js";
import { EventFeed } from "../src/events/feed.js";
import { EventRelay } from "../src/events/relay.js";
import { migrateChannelService } from "../src/migrations.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const tag = randomBytes(5).toString("hex");
const schema = `chan_relay_${tag}`;
const prefix = `test.relay${tag}`;
const stream = `RELAY_TEST_${tag.toUpperCase()}`;

let nc: NatsConnection;
let jsm: JetStreamManager;
let feed: EventFeed;

beforeAll(async () => {
  await migrateChannelService(pool, schema);
  nc = await connect({ servers: testNatsUrl() });
  jsm = await nc.jetstreamManager();
  feed = new EventFeed({ pool, schema, pollMs: 60_000 });
});

afterAll(async () => {
  await feed?.close();
  await jsm?.streams.delete(stream).catch(() => undefined);
  await nc?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const KINDS: EventKind[] = ["payment", "invoice", "channel"];
let n = 0;
async function append(count: number): Promise<void> {
  await inEventTransaction(pool, schema, (c) =>
    appendEvents(
      c,
      schema,
      Array.from({ length: count }, () => {
        n++;
        return { kind: KINDS[n % 3] ?? "payment", subject: `s-${n}`, status: "x" };
      }),
    ),
  );
}

/** The log's events, from the table: what the stream must hold, in this order. */
async function logged(): Promise<Array<{ seq: string; kind: string; subject: string }>> {
  const r = await pool.query<{ seq: string; kind: string; subject: string }>(
    `SELECT seq::text AS seq, kind, subject FROM "${schema}".events ORDER BY seq`,
  );
  return r.rows;
}

/** Every message of the stream, in stream order. */
async function published(): Promise<Array<{ msgId: string; subject: string; seq: string; kind: string }>> {
  const info = await jsm.streams.info(stream).catch(() => undefined);
  const out = [];
  for (let s = 1; s <= (info?.state.last_seq ?? 0); s++) {
    const m = await jsm.streams.getMessage(stream, { seq: s });
    const body = JSONCodec<{ seq: string; kind: string; subject: string }>().decode(m.data);
    out.push({ msgId: m.header.get("Nats-Msg-Id"), subject: m.subject, seq: body.seq, kind: body.kind });
  }
  return out;
}

const relay = (): EventRelay =>
  new EventRelay({ pool, schema, feed, nc, prefix, stream, standbyMs: 50, batch: 4 });

/** Waits until the stream's last message is the log's last event. */
async function caughtUp(): Promise<void> {
  const last = (await logged()).at(-1)?.seq;
  await expect
    .poll(async () => {
      const info = await jsm.streams.info(stream).catch(() => undefined);
      if (!info || info.state.last_seq === 0) return undefined;
      const m = await jsm.streams.getMessage(stream, { seq: info.state.last_seq });
      return m.header.get("Nats-Msg-Id");
    })
    .toBe(last);
}

async function expectExactlyTheLog(): Promise<void> {
  const want = await logged();
  const got = await published();
  expect(got.map((g) => g.msgId)).toEqual(want.map((w) => w.seq));
  expect(got.map((g) => g.seq)).toEqual(want.map((w) => w.seq));
  expect(got.map((g) => g.subject)).toEqual(want.map((w) => `${prefix}.events.${w.kind}`));
}

describe("status events relay", () => {
  it("publishes every event once, in order, across a restart and a crash before the cursor write", async () => {
    await append(5); // before any relay ran: published from the start
    const a = relay();
    a.start();
    await append(3);
    await append(2);
    await caughtUp();
    await a.stop();
    await expectExactlyTheLog();
    expect(await a.cursor()).toBe(BigInt((await logged()).at(-1)?.seq ?? "0"));

    // Stopped: events appended meanwhile wait in the log.
    await append(4);
    // A crash after JetStream acknowledged but before the cursor moved: the cursor is behind.
    const all = await logged();
    await pool.query(`UPDATE "${schema}".event_relay SET cursor = $1 WHERE stream = $2`, [
      all[3]?.seq,
      stream,
    ]);
    const b = relay();
    b.start();
    await append(1);
    await caughtUp();
    await b.stop();
    await expectExactlyTheLog();
  });

  it("relays once with two replicas, one at a time, and the other takes over when it stops", async () => {
    const a = relay();
    const b = relay();
    a.start();
    b.start();
    for (let i = 0; i < 6; i++) await append(1 + (i % 3));
    await caughtUp();
    expect([a.relaying, b.relaying].filter(Boolean)).toHaveLength(1);
    const [leader, standby] = a.relaying ? [a, b] : [b, a];
    await leader.stop();
    await append(3);
    await caughtUp(); // the standby took over
    expect(standby.relaying).toBe(true);
    await standby.stop();
    await expectExactlyTheLog();
  });

  it("creates the stream on the events subjects with a duplicate window of a day", async () => {
    const info = await jsm.streams.info(stream);
    expect(info.config.subjects).toEqual([`${prefix}.events.>`]);
    expect(info.config.duplicate_window).toBe(24 * 60 * 60 * 1_000_000_000);
  });
});
