/**
 * A client checked out of the pool whose connection Postgres ends (pg_terminate_backend here, as a
 * restart's shutdown does) makes the work on it reject; it never emits an 'error' event with no
 * listener, which ends the process (found by the chaos run, seed 7: the channel service died of
 * "Connection terminated unexpectedly" while its payer held a lock's connection). Without the
 * listener withClient adds, these tests end in an uncaught error.
 */
import { setTimeout as pause } from "node:timers/promises";
import { inTransaction, withClient } from "@ln/postgres";
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const idleErrors: Error[] = [];
const admin = new pg.Client({ connectionString: testDatabaseUrl() });
beforeAll(async () => {
  // A released client whose socket ends later is the pool's to report (services log it).
  pool.on("error", (e) => idleErrors.push(e));
  await admin.connect();
});
afterAll(async () => {
  await admin.end();
  await pool.end();
});

const backendPid = async (c: pg.PoolClient): Promise<number> => {
  const r = await c.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  const pid = r.rows[0]?.pid;
  if (pid === undefined) throw new Error("no backend pid");
  return pid;
};

/** Ends backend `pid` from another connection, and waits until it has exited. */
async function terminate(pid: number): Promise<void> {
  const r = await admin.query<{ ok: boolean }>("SELECT pg_terminate_backend($1) AS ok", [pid]);
  expect(r.rows[0]?.ok).toBe(true);
  while ((await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid])).rowCount !== 0)
    await pause(10);
}

it("withClient: a held client's connection ended by Postgres rejects its next query, and the pool works on", async () => {
  let pid = 0;
  const run = withClient(pool, async (c) => {
    pid = await backendPid(c);
    await terminate(pid);
    await c.query("SELECT 1");
  });
  await expect(run).rejects.toThrow(/terminat|not queryable/);
  const r = await pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
  expect(r.rows[0]?.pid).not.toBe(pid);
});

it("inTransaction: a transaction's connection ended while it is idle (the payer's lock) rejects, and the pool works on", async () => {
  let pid = 0;
  const run = inTransaction(pool, async (c) => {
    pid = await backendPid(c);
    await c.query("SELECT pg_try_advisory_xact_lock(7, 7)");
    // Work on other connections while this one holds the lock, idle, as the payer's next() does.
    await terminate(pid);
    await pool.query("SELECT 1");
    return "done";
  });
  await expect(run).rejects.toThrow(/terminat|not queryable/);
  // The lock went with the connection: another session takes it.
  await inTransaction(pool, async (c) => {
    const got = await c.query<{ ok: boolean }>("SELECT pg_try_advisory_xact_lock(7, 7) AS ok");
    expect(got.rows[0]?.ok).toBe(true);
  });
});

it("inTransaction: a connection ended during a query rejects that query", async () => {
  const run = inTransaction(pool, async (c) => {
    const pid = await backendPid(c);
    // The query is in flight when its backend is ended: pg_sleep returns only if it is not.
    const slow = expect(c.query("SELECT pg_sleep(600)")).rejects.toThrow(/terminat/);
    while (
      (await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND query LIKE '%pg_sleep%'", [pid]))
        .rowCount === 0
    )
      await pause(10);
    await terminate(pid);
    await slow;
  });
  // Then COMMIT on the broken connection.
  await expect(run).rejects.toThrow(/terminat|not queryable/);
  expect((await pool.query<{ one: number }>("SELECT 1 AS one")).rows[0]?.one).toBe(1);
});
