/** Forwarding policies per channel (forwarding/policy.ts) and the forwarding table's reads, over real Postgres. */
import { randomBytes } from "node:crypto";
import { msat } from "@ln/bitcoin";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ForwardReads } from "../src/forwarding/forward-reads.js";
import { ForwardingPolicies, PolicyError, type ForwardingPolicy } from "../src/forwarding/policy.js";
import { migrateChannelService } from "../src/migrations.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `policy_test_${randomBytes(6).toString("hex")}`;
const DEFAULTS: ForwardingPolicy = {
  feeBaseMsat: msat(1000n),
  feeProportionalMillionths: 1n,
  cltvExpiryDelta: 184,
  htlcMinimumMsat: msat(1000n),
};

beforeAll(async () => {
  await migrateChannelService(pool, schema);
  for (const id of ["c1", "c2", "c3"])
    await pool.query(`INSERT INTO "${schema}".channels (id, state) VALUES ($1, '{}')`, [id]);
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("ForwardingPolicies", () => {
  it("a channel without a row has the defaults; set changes only the fields given", async () => {
    const p = new ForwardingPolicies(pool, schema, DEFAULTS);
    expect(await p.get("c1")).toEqual(DEFAULTS);
    expect(await p.set("c1", { feeProportionalMillionths: 250n })).toEqual({
      ...DEFAULTS,
      feeProportionalMillionths: 250n,
    });
    expect(await p.set("c1", { feeBaseMsat: msat(0n), cltvExpiryDelta: 300 })).toEqual({
      feeBaseMsat: 0n,
      feeProportionalMillionths: 250n,
      cltvExpiryDelta: 300,
      htlcMinimumMsat: 1000n,
    });
    // Stored: another instance, with other defaults, reads the channel's own policy.
    const other = new ForwardingPolicies(pool, schema, { ...DEFAULTS, feeBaseMsat: msat(7n) });
    expect(await other.get("c1")).toEqual({
      feeBaseMsat: 0n,
      feeProportionalMillionths: 250n,
      cltvExpiryDelta: 300,
      htlcMinimumMsat: 1000n,
    });
    expect(await other.get("c2")).toEqual({ ...DEFAULTS, feeBaseMsat: 7n });
    // Read inside a transaction, as the forwarder does.
    const c = await pool.connect();
    try {
      expect((await p.get("c1", c)).cltvExpiryDelta).toBe(300);
    } finally {
      c.release();
    }
  });

  it("concurrent partial changes of one channel keep each other's field", async () => {
    const p = new ForwardingPolicies(pool, schema, DEFAULTS);
    await Promise.all([
      p.set("c3", { feeBaseMsat: msat(5n) }),
      p.set("c3", { htlcMinimumMsat: msat(9n) }),
      p.set("c3", { cltvExpiryDelta: 77 }),
    ]);
    expect(await p.get("c3")).toEqual({
      feeBaseMsat: 5n,
      feeProportionalMillionths: 1n,
      cltvExpiryDelta: 77,
      htlcMinimumMsat: 9n,
    });
  });

  it("refuses values outside BOLT #7's ranges with a typed error, storing nothing", async () => {
    const p = new ForwardingPolicies(pool, schema, DEFAULTS);
    for (const bad of [
      { cltvExpiryDelta: 65_536 },
      { feeBaseMsat: msat(0x1_0000_0000n) },
      { feeProportionalMillionths: -1n },
    ]) {
      const e: unknown = await p.set("c2", bad).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(PolicyError);
      expect((e as PolicyError).code).toBe("INVALID");
    }
    expect(await p.get("c2")).toEqual(DEFAULTS);
  });
});

describe("ForwardReads", () => {
  it("lists newest first, filters by status, and earns in - out only once settled", async () => {
    const ins = (n: number, status: string, inAmt: bigint, outAmt: bigint | null, scid: bigint | null) =>
      pool.query(
        `INSERT INTO "${schema}".forwards (in_channel, in_htlc_id, r_hash, in_amount_msat, in_expiry, shared_secret,
           out_short_channel_id, out_channel, out_htlc_id, out_amount_msat, out_expiry, status, failure, created_at, resolved_at)
         VALUES ('c1', $1, $2, $3, 900, '\\x00', $4, $5, $6, $7, 860, $8, $9, $10, $11)`,
        [
          n,
          "ab".repeat(32),
          inAmt.toString(),
          scid?.toString() ?? null,
          outAmt === null ? null : "c2",
          outAmt === null ? null : n,
          outAmt?.toString() ?? null,
          status,
          status === "failed_back" ? "fee_insufficient" : null,
          new Date(Date.UTC(2026, 0, 1, 0, n)),
          status === "settled" || status === "failed_back" ? new Date(Date.UTC(2026, 0, 1, 1, n)) : null,
        ],
      );
    // 700x1x0: 700 << 40 | 1 << 16.
    const scid = (700n << 40n) | (1n << 16n);
    await ins(1, "settled", 1_003_350n, 1_001_100n, scid);
    await ins(2, "failed_back", 5000n, null, null);
    await ins(3, "settled", 20_000n, 18_999n, scid);
    await ins(4, "offered", 7000n, 6000n, scid);
    const reads = new ForwardReads(pool, schema);
    const all = await reads.list({ limit: 10 });
    expect(all.map((f) => [f.inHtlcId, f.status, f.feeMsat])).toEqual([
      [4n, "offered", 0n],
      [3n, "settled", 1001n],
      [2n, "failed_back", 0n],
      [1n, "settled", 2250n],
    ]);
    expect(all[3]).toMatchObject({
      inChannel: "c1",
      outChannel: "c2",
      outHtlcId: 1n,
      outShortChannelId: scid,
      inAmountMsat: 1_003_350n,
      outAmountMsat: 1_001_100n,
      inExpiry: 900,
      outExpiry: 860,
      failure: undefined,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 1)),
      resolvedAt: new Date(Date.UTC(2026, 0, 1, 1, 1)),
    });
    expect(all[2]).toMatchObject({
      outChannel: undefined,
      outShortChannelId: undefined,
      failure: "fee_insufficient",
    });
    expect((await reads.list({ status: "settled", limit: 1 })).map((f) => f.inHtlcId)).toEqual([3n]);
    expect(await reads.totals()).toEqual({ settled: 2, feesEarnedMsat: 2250n + 1001n });
  });
});
