/**
 * The status event log's ordering (events/event-log.ts): a reader never passes an event that a
 * transaction still running will commit, whatever order transactions drew their numbers in.
 */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  appendEvents,
  beginEvents,
  EventLog,
  EventLogError,
  inEventTransaction,
} from "../src/events/event-log.js";
import { migrateChannelService } from "../src/migrations.js";
import { testDatabaseUrl } from "@ln/testkit";

// Real Postgres (trust auth); own schema, dropped at the end.
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_test_${randomBytes(6).toString("hex")}`;
const log = new EventLog(pool, schema);

beforeAll(async () => {
  await migrateChannelService(pool, schema);
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("status event log", () => {
  it("holds back a committed event while an older transaction that appends is still running", async () => {
    const older = await pool.connect();
    const newer = await pool.connect();
    try {
      await older.query("BEGIN");
      await beginEvents(older, schema);
      await older.query("SELECT pg_current_xact_id()"); // the older transaction has its id now
      await newer.query("BEGIN");
      await beginEvents(newer, schema);
      await appendEvents(newer, schema, [{ kind: "payment", subject: "p2", status: "pending" }]);
      await newer.query("COMMIT");
      // Committed, but the older transaction may still append below it: not given out yet.
      const start = await log.head();
      expect(await log.after(start)).toEqual([]);
      await appendEvents(older, schema, [
        { kind: "payment", subject: "p1", status: "pending" },
        { kind: "payment", subject: "p1", status: "succeeded", detail: { amountMsat: "1000" } },
      ]);
      await older.query("COMMIT");
      const all = await log.after(start);
      expect(all.map((e) => [e.subject, e.status])).toEqual([
        ["p1", "pending"],
        ["p1", "succeeded"],
        ["p2", "pending"],
      ]);
      expect(all[1]?.detail).toEqual({ amountMsat: "1000" });
      // Strictly increasing, and a reader resuming after any of them gets exactly the rest.
      for (let i = 0; i < all.length; i++)
        expect((await log.after(all[i]?.seq ?? 0n)).map((e) => e.seq)).toEqual(
          all.slice(i + 1).map((e) => e.seq),
        );
    } finally {
      older.release();
      newer.release();
    }
  });

  it("keeps nothing of a transaction that rolled back", async () => {
    const start = await log.head();
    const c = await pool.connect();
    try {
      await c.query("BEGIN");
      await beginEvents(c, schema);
      await appendEvents(c, schema, [{ kind: "invoice", subject: "h", status: "settled" }]);
      await c.query("ROLLBACK");
    } finally {
      c.release();
    }
    expect(await log.after(start)).toEqual([]);
  });

  it("is not held back by a running transaction that appends no events", async () => {
    const other = await pool.connect();
    try {
      await other.query("BEGIN");
      await other.query("SELECT pg_current_xact_id()"); // an older id, but not an appender
      const start = await log.head();
      await inEventTransaction(pool, schema, (c) =>
        appendEvents(c, schema, [{ kind: "channel", subject: "ch", status: "open" }]),
      );
      expect((await log.after(start)).map((e) => e.subject)).toEqual(["ch"]);
    } finally {
      await other.query("ROLLBACK");
      other.release();
    }
  });

  it("refuses to append outside an event transaction, or to begin one after a write", async () => {
    const c = await pool.connect();
    try {
      await c.query("BEGIN");
      await expect(
        appendEvents(c, schema, [{ kind: "payment", subject: "x", status: "pending" }]),
      ).rejects.toBeInstanceOf(EventLogError);
      await c.query("ROLLBACK");
      await c.query("BEGIN");
      await c.query(
        `INSERT INTO "${schema}".events (seq, kind, subject, status) VALUES (1, 'payment', 'y', 'pending')`,
      );
      await expect(beginEvents(c, schema)).rejects.toBeInstanceOf(EventLogError);
      await c.query("ROLLBACK");
    } finally {
      c.release();
    }
  });
});
