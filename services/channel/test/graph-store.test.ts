/**
 * The graph over real Postgres (gossip/graph-store.ts, migration 21): latest timestamp wins in one
 * statement, so of replicas writing the same update at once exactly one changes the row (and
 * relays it); a short_channel_id with the top bit set round-trips through the signed bigint.
 */
import { randomBytes } from "node:crypto";
import { msat } from "@ln/bitcoin";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GraphStore, type GraphPolicy } from "../src/gossip/graph-store.js";
import { migrateChannelService } from "../src/migrations.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schema = `graph_test_${randomBytes(6).toString("hex")}`;
const graph = new GraphStore(pool, schema);
// Height 0xffffff: the top bit of the 64-bit number is set (a negative Postgres bigint).
const HIGH = (0xffffffn << 40n) | (2n << 16n) | 1n;
const LOW = (500n << 40n) | 1n;
const [N1, N2, N3] = ["02" + "11".repeat(32), "03" + "22".repeat(32), "02" + "33".repeat(32)];

const channel = (scid: bigint, node1: string, node2: string) => ({
  shortChannelId: scid,
  node1,
  node2,
  commitKey1: "02" + "aa".repeat(32),
  commitKey2: "02" + "bb".repeat(32),
  anchorTxid: "cc".repeat(32),
  anchorVout: 1,
  capacitySat: 4_000_000n,
  announcement: Buffer.from("announcement"),
});
const policy = (scid: bigint, timestamp: number, fee: bigint): GraphPolicy => ({
  shortChannelId: scid,
  direction: 1,
  timestamp,
  disabled: false,
  cltvExpiryDelta: 40,
  htlcMinimumMsat: msat(1000n),
  htlcMaximumMsat: msat(4_000_000_000n),
  feeBaseMsat: msat(fee),
  feeProportionalMillionths: 10n,
  channelUpdate: Buffer.from(`update ${timestamp}`),
});

beforeAll(async () => {
  await migrateChannelService(pool, schema);
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("GraphStore", () => {
  it("adds a channel once; its short_channel_id round-trips with the top bit set", async () => {
    expect(await graph.addChannel(channel(HIGH, N1, N2))).toBe(true);
    expect(await graph.addChannel(channel(HIGH, N1, N2))).toBe(false);
    expect(await graph.channel(HIGH)).toMatchObject({ node1: N1, node2: N2, capacitySat: 4_000_000n });
    expect(await graph.channelIds()).toEqual([HIGH]);
    const raw = await pool.query<{ s: string }>(
      `SELECT short_channel_id::text AS s FROM "${schema}".graph_channels`,
    );
    expect(raw.rows[0]?.s).toBe(BigInt.asIntN(64, HIGH).toString());
  });

  it("an update: unknown channel, stored, stale when not newer, stored when newer", async () => {
    expect(await graph.putPolicy(policy(LOW, 100, 1n))).toBe("unknown");
    expect(await graph.putPolicy(policy(HIGH, 100, 1n))).toBe("stored");
    expect(await graph.putPolicy(policy(HIGH, 100, 2n))).toBe("stale");
    expect(await graph.putPolicy(policy(HIGH, 99, 3n))).toBe("stale");
    expect((await graph.policy(HIGH, 1))?.feeBaseMsat).toBe(1n);
    expect(await graph.putPolicy(policy(HIGH, 101, 4n))).toBe("stored");
    expect(await graph.policy(HIGH, 1)).toEqual(policy(HIGH, 101, 4n));
    expect(await graph.policy(HIGH, 0)).toBeUndefined();
  });

  it("of ten replicas writing the same newer update at once, exactly one changes the row", async () => {
    const results = await Promise.all(
      Array.from({ length: 10 }, () => graph.putPolicy(policy(HIGH, 200, 5n))),
    );
    expect(results.filter((r) => r === "stored")).toHaveLength(1);
    expect(results.filter((r) => r === "stale")).toHaveLength(9);
  });

  it("a node: unknown without a channel, then latest timestamp wins", async () => {
    const node = (t: number) => ({
      nodeId: N1,
      timestamp: t,
      alias: `alias ${t}`,
      addresses: ["127.0.0.1:9735"],
      nodeAnnouncement: Buffer.from(`node ${t}`),
    });
    expect(await graph.putNode({ ...node(10), nodeId: N3 })).toBe("unknown");
    expect(await graph.putNode(node(10))).toBe("stored");
    expect(await graph.putNode(node(10))).toBe("stale");
    expect(await graph.putNode(node(11))).toBe("stored");
    expect(await graph.nodeTimestamp(N1)).toBe(11);
  });

  it("gives a new peer each announcement before its updates, nodes last; bounded", async () => {
    expect(await graph.everything(100)).toEqual([
      Buffer.from("announcement"),
      Buffer.from("update 200"),
      Buffer.from("node 11"),
    ]);
    expect(await graph.everything(1)).toHaveLength(1);
  });

  it("removing a channel removes its policies", async () => {
    expect(await graph.removeChannel(HIGH)).toBe(true);
    expect(await graph.removeChannel(HIGH)).toBe(false);
    expect(await graph.policy(HIGH, 1)).toBeUndefined();
  });
});
