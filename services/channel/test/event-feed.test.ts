/**
 * The event feed's safety nets (events/feed.ts), on a real Postgres: followers still get every
 * event when the LISTEN connection never comes up (the periodic look), and an event held back by
 * an older appender that ends without a notification (rollback) is delivered soon after, without
 * waiting for that periodic look.
 */
import { recordingLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { appendEvents, beginEvents, inEventTransaction } from "../src/events/event-log.js";
import { EventFeed } from "../src/events/feed.js";
import { migrateChannelService } from "../src/migrations.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 6 });
const schema = `chan_feed_${randomBytes(6).toString("hex")}`;

beforeAll(async () => {
  await migrateChannelService(pool, schema);
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const append = (subject: string): Promise<void> =>
  inEventTransaction(pool, schema, (c) =>
    appendEvents(c, schema, [{ kind: "payment", subject, status: "pending" }]),
  );

describe("EventFeed", () => {
  it("delivers by its periodic look when the LISTEN connection never comes up", async () => {
    const lines: string[] = [];
    const feed = new EventFeed({
      pool,
      schema,
      pollMs: 100,
      // Nothing listens on port 1: every attempt fails, and the feed keeps retrying.
      listenClient: () => new pg.Client({ connectionString: "postgres://postgres@127.0.0.1:1/test" }),
      log: recordingLog((r) => lines.push(`${r.level} ${r.msg}`)),
    });
    const ac = new AbortController();
    try {
      const follower = feed.follow(await feed.head(), ac.signal);
      await append("polled-1");
      await append("polled-2");
      const got: string[] = [];
      while (got.length < 2) got.push(...((await follower.next()) ?? []).map((e) => e.subject));
      expect(got).toEqual(["polled-1", "polled-2"]);
      expect(feed.listening).toBe(false);
      expect(lines.some((l) => l.includes("LISTEN connection lost"))).toBe(true);
    } finally {
      ac.abort();
      await feed.close();
    }
  });

  it("delivers an event held back by an appender that rolled back, without waiting for the periodic look", async () => {
    // The periodic look is 10 minutes away: only the held-back re-look can deliver in this test's time.
    const feed = new EventFeed({ pool, schema, pollMs: 600_000 });
    const ac = new AbortController();
    const older = await pool.connect();
    try {
      const follower = feed.follow(await feed.head(), ac.signal);
      await expect.poll(() => feed.listening).toBe(true);
      await older.query("BEGIN");
      await beginEvents(older, schema);
      await older.query("SELECT pg_current_xact_id()");
      await append("held-back"); // committed above the older transaction: held back
      await older.query("ROLLBACK"); // ends with no notification
      const got = await follower.next();
      expect(got?.map((e) => e.subject)).toEqual(["held-back"]);
    } finally {
      older.release();
      ac.abort();
      await feed.close();
    }
  });

  it("ends its followers when it closes", async () => {
    const feed = new EventFeed({ pool, schema, pollMs: 600_000 });
    const follower = feed.follow(await feed.head(), new AbortController().signal);
    const next = follower.next();
    await feed.close();
    expect(await next).toBeUndefined();
  });
});
