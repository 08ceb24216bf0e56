/**
 * Breach claims (justice/claims.ts) on a real Postgres: replicas share the justice work through a
 * durable claim, never a row lock held while the node or the signer is called. A claim excludes
 * every other worker until it expires, an expired one is taken over, and the outcome of a worker
 * whose claim was taken over is never recorded, nor its justice sent. The last tests run the
 * worker itself on a regtest node with the real signer, whose calls are watched from Postgres.
 */
import { randomBytes } from "node:crypto";
import { startRegtest, type Regtest } from "@ln/regtest";
import type { SignerClient } from "@ln/signer-client";
import { Transaction } from "bitcoinjs-lib";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestSigner, type TestSigner } from "../../signer/test/helpers.js";
import type { JusticeSigner, Send } from "../src/context.js";
import { newBreach, type BreachState } from "../src/justice-core.js";
import {
  claimBreach,
  recordOutcome,
  releaseClaim,
  renewClaim,
  type ClaimContext,
} from "../src/justice/claims.js";
import { towerMetrics } from "../src/metrics.js";
import { MIGRATIONS } from "../src/migrations.js";
import { JusticeTower } from "../src/tower.js";
import { migrate } from "@ln/postgres";
import { newRegistry } from "@ln/metrics";
import { DB, makeBreach, mempoolSpenders, SETTINGS } from "./justice-fixture.js";

const pool = new pg.Pool({ connectionString: DB, max: 4 });
const schemas: string[] = [];

afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

async function freshSchema(): Promise<string> {
  const schema = `tower_claims_${randomBytes(4).toString("hex")}`;
  schemas.push(schema);
  await migrate(pool, schema, MIGRATIONS);
  return schema;
}

const worker = (schema: string, workerId: string): ClaimContext => ({
  pool,
  table: (name) => `"${schema}".${name}`,
  workerId,
  claimTtlMs: 30_000,
});

/** A stored record and a breach matched against it (the bytes need not open: claims never open them). */
async function storedBreach(schema: string): Promise<{ ntxid: Buffer; state: BreachState }> {
  const ntxid = randomBytes(32);
  const locator = randomBytes(16);
  const blobHash = randomBytes(32);
  await pool.query(`INSERT INTO "${schema}".tower_records (locator, blob_hash, blob) VALUES ($1, $2, $3)`, [
    locator,
    blobHash,
    randomBytes(100),
  ]);
  const state = newBreach("ab".repeat(32), 20);
  await pool.query(
    `INSERT INTO "${schema}".tower_breaches (ntxid, locator, blob_hash, breach_hex, state) VALUES ($1, $2, $3, $4, $5)`,
    [ntxid, locator, blobHash, "00", JSON.stringify(state)],
  );
  return { ntxid, state };
}

interface ClaimRow {
  claimed_by: string | null;
  live: boolean | null;
  state: BreachState;
}
async function claimRow(schema: string, ntxid: Buffer): Promise<ClaimRow> {
  const r = await pool.query<ClaimRow>(
    `SELECT claimed_by, claimed_until > now() AS live, state FROM "${schema}".tower_breaches WHERE ntxid = $1`,
    [ntxid],
  );
  return r.rows[0]!;
}

/** What another replica's clock would show once the claim's TTL has passed. */
const expire = (schema: string, ntxid: Buffer) =>
  pool.query(
    `UPDATE "${schema}".tower_breaches SET claimed_until = now() - interval '1 second' WHERE ntxid = $1`,
    [ntxid],
  );

const justiceCount = async (schema: string): Promise<number> =>
  (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${schema}".tower_justice`)).rows[0]!.n;

describe("breach claims", () => {
  it("while one worker holds a breach's claim, every other worker (and itself again) gets nothing", async () => {
    const schema = await freshSchema();
    const { ntxid } = await storedBreach(schema);
    const a = worker(schema, "a");
    const b = worker(schema, "b");
    const held = await claimBreach(a, ntxid);
    expect(held?.claim.worker).toBe("a");
    expect(await claimBreach(b, ntxid)).toBeUndefined();
    expect(await claimBreach(a, ntxid)).toBeUndefined();
    expect(await claimRow(schema, ntxid)).toMatchObject({ claimed_by: "a", live: true });
    // The claim lasts its TTL from the claim, as Postgres's clock reads it.
    const until = await pool.query<{ ok: boolean }>(
      `SELECT claimed_until BETWEEN now() + interval '29 seconds' AND now() + interval '30 seconds' AS ok
         FROM "${schema}".tower_breaches WHERE ntxid = $1`,
      [ntxid],
    );
    expect(until.rows[0]!.ok).toBe(true);
  });

  it("an expired claim is taken over by another worker", async () => {
    const schema = await freshSchema();
    const { ntxid } = await storedBreach(schema);
    const a = worker(schema, "a");
    const b = worker(schema, "b");
    const first = await claimBreach(a, ntxid);
    expect(first).toBeDefined();
    expect(await claimBreach(b, ntxid)).toBeUndefined();
    await expire(schema, ntxid);
    const taken = await claimBreach(b, ntxid);
    expect(taken?.claim.worker).toBe("b");
    expect(BigInt(taken!.claim.seq)).toBeGreaterThan(BigInt(first!.claim.seq));
    expect(await claimRow(schema, ntxid)).toMatchObject({ claimed_by: "b", live: true });
  });

  it("the outcome of a worker whose claim was taken over is not recorded, nor can it renew or release", async () => {
    const schema = await freshSchema();
    const { ntxid, state } = await storedBreach(schema);
    const a = worker(schema, "a");
    const b = worker(schema, "b");
    const lost = (await claimBreach(a, ntxid))!;
    await expire(schema, ntxid);
    const taken = (await claimBreach(b, ntxid))!;
    const signedByA = { txid: "01".repeat(32), group: 0, feeRate: 2000, hex: "aa" };
    const stateByA: BreachState = { ...state, groupCount: 1 };

    expect(await recordOutcome(a, lost.claim, { kind: "update", state: stateByA, signed: [signedByA] })).toBe(
      false,
    );
    expect(await recordOutcome(a, lost.claim, { kind: "prune" })).toBe(false);
    expect(await renewClaim(a, lost.claim)).toBe(false);
    await releaseClaim(a, lost.claim);
    const row = await claimRow(schema, ntxid);
    expect(row).toMatchObject({ claimed_by: "b", live: true });
    expect(row.state).toEqual(state);
    expect(await justiceCount(schema)).toBe(0);

    // The holder's outcome is recorded, with its signed version, and the claim cleared.
    const signedByB = { txid: "02".repeat(32), group: 0, feeRate: 2500, hex: "bb" };
    const stateByB: BreachState = { ...state, groupCount: 1 };
    expect(
      await recordOutcome(b, taken.claim, { kind: "update", state: stateByB, signed: [signedByB] }),
    ).toBe(true);
    const after = await claimRow(schema, ntxid);
    expect(after).toMatchObject({ claimed_by: null, live: null });
    expect(after.state).toEqual(stateByB);
    const versions = await pool.query<{ txid: string }>(`SELECT txid FROM "${schema}".tower_justice`);
    expect(versions.rows.map((v) => v.txid)).toEqual([signedByB.txid]);
    // Unclaimed again: the next worker sees B's version.
    const next = (await claimBreach(a, ntxid))!;
    expect([...next.versions.keys()]).toEqual([signedByB.txid]);
  });

  it("a worker's own earlier claim, expired and claimed again, is fenced out by the claim's sequence", async () => {
    const schema = await freshSchema();
    const { ntxid, state } = await storedBreach(schema);
    const a = worker(schema, "a");
    const old = (await claimBreach(a, ntxid))!;
    await expire(schema, ntxid);
    const fresh = (await claimBreach(a, ntxid))!;
    expect(await recordOutcome(a, old.claim, { kind: "prune" })).toBe(false);
    expect((await claimRow(schema, ntxid)).claimed_by).toBe("a");
    expect(await recordOutcome(a, fresh.claim, { kind: "update", state, signed: [] })).toBe(true);
  });

  it("an expired claim nobody took over still records its outcome (no one else acted on the breach)", async () => {
    const schema = await freshSchema();
    const { ntxid } = await storedBreach(schema);
    const a = worker(schema, "a");
    const held = (await claimBreach(a, ntxid))!;
    await expire(schema, ntxid);
    expect(await renewClaim(a, held.claim)).toBe(true);
    expect(await claimBreach(worker(schema, "b"), ntxid)).toBeUndefined(); // renewed: live again
    expect(await recordOutcome(a, held.claim, { kind: "prune" })).toBe(true);
    const left = await pool.query<{ n: number }>(
      `SELECT (SELECT count(*) FROM "${schema}".tower_breaches)::int + (SELECT count(*) FROM "${schema}".tower_records)::int AS n`,
    );
    expect(left.rows[0]!.n).toBe(0);
  });
});

describe("the justice worker under claims (regtest, real signer)", () => {
  let rt: Regtest;
  let signer: TestSigner;
  const stops: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    rt = await startRegtest();
    signer = await startTestSigner();
  }, 120_000);
  afterEach(async () => {
    for (const s of stops.splice(0).reverse()) await s();
  });
  afterAll(async () => {
    await signer?.close();
    await rt?.stop();
  });

  /** A signer that runs `before` ahead of each call, then passes it on to the real one. */
  const watched = (inner: SignerClient, before: () => Promise<void>): JusticeSigner => ({
    call: async (method, request, timeoutMs) => {
      await before();
      return inner.call(method, request, timeoutMs);
    },
  });

  /** A tower on its own pool, named so that its backends can be found in pg_stat_activity. */
  function towerOf(schema: string, workerId: string, s: JusticeSigner) {
    const app = `tower-claims-${workerId}-${randomBytes(3).toString("hex")}`;
    const towerPool = new pg.Pool({ connectionString: DB, max: 3, application_name: app });
    const sends: Send[] = [];
    const metrics = towerMetrics(newRegistry("watchtower"));
    const tower = new JusticeTower({
      pool: towerPool,
      schema,
      rpc: rt.rpc,
      signer: s,
      settings: SETTINGS,
      metrics,
      workerId,
      signerTimeoutMs: 5000,
      onBroadcast: (x) => sends.push(x),
    });
    stops.push(async () => {
      await tower.stop();
      await towerPool.end();
    });
    return { tower, app, sends, metrics };
  }

  it("calls the signer with no transaction open and no row lock held, the claim held in Postgres", async () => {
    const schema = await freshSchema();
    const b = await makeBreach(rt, signer);
    const probes: { idleInTransaction: number; lockFree: boolean; claimedBy: string | null }[] = [];
    let app = "";
    const t = towerOf(
      schema,
      "w1",
      watched(signer.tower, async () => {
        const idle = await pool.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE application_name = $1 AND state LIKE 'idle in transaction%'`,
          [app],
        );
        // Another session takes the breach's row lock at once, or fails (55P03) if a tower holds it.
        const c = await pool.connect();
        let lockFree: boolean;
        try {
          await c.query("BEGIN");
          await c.query(`SELECT 1 FROM "${schema}".tower_breaches FOR UPDATE NOWAIT`);
          lockFree = true;
        } catch (e) {
          if ((e as { code?: string }).code !== "55P03") throw e;
          lockFree = false;
        } finally {
          await c.query("ROLLBACK");
          c.release();
        }
        const claim = await pool.query<{ claimed_by: string | null }>(
          `SELECT claimed_by FROM "${schema}".tower_breaches WHERE claimed_until > now()`,
        );
        probes.push({
          idleInTransaction: idle.rows[0]!.n,
          lockFree,
          claimedBy: claim.rows[0]?.claimed_by ?? null,
        });
      }),
    );
    app = t.app;
    await t.tower.migrate();
    expect(await t.tower.storeRecord(b.record.payload)).toBe(true);
    await rt.submit(b.breach.toHex());
    expect(await t.tower.match([{ txid: b.breach.getId(), hex: b.breach.toHex() }], "mempool")).toBe(1);
    expect(probes.length).toBeGreaterThan(0);
    for (const p of probes) expect(p).toEqual({ idleInTransaction: 0, lockFree: true, claimedBy: "w1" });
    // The work was done: justice signed, recorded, sent, and the claim cleared.
    expect(t.sends.filter((s) => s.kind === "first").length).toBeGreaterThan(0);
    expect(await justiceCount(schema)).toBe(t.sends.filter((s) => s.kind === "first").length);
    const r = await pool.query<{ claimed_by: string | null }>(
      `SELECT claimed_by FROM "${schema}".tower_breaches`,
    );
    expect(r.rows).toEqual([{ claimed_by: null }]);
  });

  it("a breach mined as another version during the signer call: the old plan's outcome is refused, the new one stands", async () => {
    const schema = await freshSchema();
    const b = await makeBreach(rt, signer);
    const other = towerOf(schema, "w2", signer.tower);
    let replanned = false;
    const slow = towerOf(
      schema,
      "w1",
      watched(signer.tower, async () => {
        if (replanned) return;
        replanned = true;
        // Another replica sees a block holding the commitment as first signed (same normalized txid).
        await other.tower.match([{ txid: b.original.getId(), hex: b.original.toHex() }], "block");
      }),
    );
    await slow.tower.migrate();
    expect(await slow.tower.storeRecord(b.record.payload)).toBe(true);
    await rt.submit(b.breach.toHex());
    expect(await slow.tower.match([{ txid: b.breach.getId(), hex: b.breach.toHex() }], "mempool")).toBe(1);
    expect(replanned).toBe(true);
    expect(slow.sends).toEqual([]);
    expect((await slow.metrics.claimsLost.get()).values[0]!.value).toBe(1);
    // What is stored was signed by w2 for the version in the block, none by w1 for the other.
    const r = await pool.query<{ breach_hex: string; state: BreachState }>(
      `SELECT breach_hex, state FROM "${schema}".tower_breaches`,
    );
    expect(r.rows[0]!.state.breachTxid).toBe(b.original.getId());
    expect(r.rows[0]!.breach_hex).toBe(b.original.toHex());
    const stored = await pool.query<{ tx_hex: string }>(`SELECT tx_hex FROM "${schema}".tower_justice`);
    expect(stored.rows.length).toBe(other.sends.filter((x) => x.kind === "first").length);
    expect(stored.rows.length).toBeGreaterThan(0);
    for (const v of stored.rows) {
      const spent = Transaction.fromHex(v.tx_hex).ins.map((i) =>
        Buffer.from(i.hash).reverse().toString("hex"),
      );
      expect(new Set(spent)).toEqual(new Set([b.original.getId()]));
    }
  });

  it("a replica whose claim is taken over during the signer call records and sends nothing; the other does the justice", async () => {
    const schema = await freshSchema();
    const b = await makeBreach(rt, signer);
    const other = towerOf(schema, "w2", signer.tower);
    let tookOver = false;
    const slow = towerOf(
      schema,
      "w1",
      watched(signer.tower, async () => {
        if (tookOver) return;
        tookOver = true;
        // w1 stalls past its claim's TTL (simulated): w2 takes the breach over and finishes it.
        await pool.query(`UPDATE "${schema}".tower_breaches SET claimed_until = now() - interval '1 second'`);
        await other.tower.checkAll();
      }),
    );
    await slow.tower.migrate();
    expect(await slow.tower.storeRecord(b.record.payload)).toBe(true);
    await rt.submit(b.breach.toHex());
    expect(await slow.tower.match([{ txid: b.breach.getId(), hex: b.breach.toHex() }], "mempool")).toBe(1);
    expect(tookOver).toBe(true);

    expect(slow.sends).toEqual([]);
    expect((await slow.metrics.claimsLost.get()).values[0]!.value).toBe(1);
    const sentByOther = other.sends.filter((s) => s.kind === "first").map((s) => s.txid);
    expect(sentByOther.length).toBeGreaterThan(0);
    // Only w2's versions are stored, and only they reach the mempool.
    const stored = await pool.query<{ txid: string }>(`SELECT txid FROM "${schema}".tower_justice`);
    expect(stored.rows.map((v) => v.txid).sort()).toEqual([...sentByOther].sort());
    const inMempool = (await mempoolSpenders(rt, b.breach.getId())).map((t) => t.getId());
    expect(inMempool.sort()).toEqual([...sentByOther].sort());
    const r = await pool.query<{ claimed_by: string | null; state: BreachState }>(
      `SELECT claimed_by, state FROM "${schema}".tower_breaches`,
    );
    expect(r.rows[0]!.claimed_by).toBeNull();
    expect(r.rows[0]!.state.groups.flatMap((g) => g.versions.map((v) => v.txid)).sort()).toEqual(
      [...sentByOther].sort(),
    );
  });
});
