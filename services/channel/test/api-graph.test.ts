/**
 * GET /v1/graph: the gossip tables of migration 21 (rows written here by hand, as gossip would
 * store them: short_channel_id as a signed bigint) merged with our own channels (MemoryBackend),
 * public or private. Expected bodies are written out by hand; the packed short channel ids are
 * height << 40 | index << 16 | output (BOLT #7), computed by hand below.
 */
import { randomBytes } from "node:crypto";
import { sat, msat } from "@ln/bitcoin";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi } from "../src/api/index.js";
import { migrateChannelService } from "../src/migrations.js";
import { MemoryBackend } from "./memory-backend.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_api_graph_test_${randomBytes(6).toString("hex")}`;
/** MemoryBackend's node id (its own fixed key): 02..., so below every peer here (03...). */
const OURS = new MemoryBackend().nodeId;
const B = `03${"22".repeat(32)}`;
const C = `03${"33".repeat(32)}`;
const D = `03${"44".repeat(32)}`;
const E = `03${"55".repeat(32)}`;
/** 700x1x0 = 700 * 2^40 + 1 * 2^16 + 0. */
const SCID_700 = "769658139508736";
/** 800x2x1 = 800 * 2^40 + 2 * 2^16 + 1. */
const SCID_800 = "879609302351873";
/** 16777215x1x1 = 0xffffff0000010001: above 2^63, so stored negative (minus 2^64). */
const SCID_HIGH = "18446742974197989377";
const SCID_HIGH_STORED = "-1099511562239";

let app: FastifyInstance;
let backend: MemoryBackend;
let readToken = "";
let withB = "";
let withC = "";
let withE = "";

beforeAll(async () => {
  expect(OURS.startsWith("02")).toBe(true);
  await migrateChannelService(pool, schema);
  const q = (sql: string, values: unknown[]) => pool.query(sql.replaceAll("S.", `"${schema}".`), values);
  const chan = `INSERT INTO S.graph_channels (short_channel_id, node_1, node_2, commit_key_1, commit_key_2,
    anchor_txid, anchor_vout, capacity_sat, announcement) VALUES ($1, $2, $3, 'k1', 'k2', $4, 0, $5, '\\x00')`;
  await q(chan, [SCID_700, OURS, B, "aa".repeat(32), "1000000"]);
  await q(chan, [SCID_HIGH_STORED, C, D, "bb".repeat(32), "250000"]);
  const pol = `INSERT INTO S.graph_policies (short_channel_id, direction, timestamp, disabled, cltv_expiry_delta,
    htlc_minimum_msat, htlc_maximum_msat, fee_base_msat, fee_proportional_millionths, channel_update)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, '\\x00')`;
  await q(pol, [SCID_700, 0, 1_700_000_000, false, 184, "1000", "990000000", "1500", "10"]);
  await q(pol, [SCID_700, 1, 1_700_000_001, false, 144, "2000", "990000000", "2000", "250"]);
  await q(pol, [SCID_HIGH_STORED, 1, 1_700_000_002, true, 40, "1", "250000000", "0", "4294967295"]);
  const node = `INSERT INTO S.graph_nodes (node_id, timestamp, alias, addresses, node_announcement)
    VALUES ($1, $2, $3, $4, '\\x00')`;
  await q(node, [B, 1_700_000_100, "bob <b>", JSON.stringify(["127.0.0.1:9735", "[::1]:9736"])]);
  await q(node, [C, 1_700_000_200, "", JSON.stringify([])]);

  backend = new MemoryBackend({ pool, graphSchema: schema });
  app = await buildApi({ pool, schema, backend });
  readToken = (await new ApiStore(pool, schema).createToken("graph read", ["readonly"])).token;
  for (const nodeId of [B, C, E]) await backend.connectPeer({ host: "127.0.0.1", port: 9735, nodeId });
  withB = (await backend.openChannel({ nodeId: B, fundingSat: sat(1_000_000n) })).id;
  backend.confirmAnchor(withB, { height: 700, txIndex: 1, outputIndex: 0 });
  // Private: in a block, never announced; its policy as set by the operator.
  withC = (await backend.openChannel({ nodeId: C, fundingSat: sat(300_000n) })).id;
  backend.confirmAnchor(withC, { height: 800, txIndex: 2, outputIndex: 1 });
  await backend.setPolicy(withC, { feeBaseMsat: msat(5000n), feeProportionalMillionths: 42n });
  // Not in a block yet.
  withE = (await backend.openChannel({ nodeId: E, fundingSat: sat(200_000n) })).id;
  // Closed: no longer drawn.
  const closed = (await backend.openChannel({ nodeId: E, fundingSat: sat(100_000n) })).id;
  await backend.forceClose(closed);
});
afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("GET /v1/graph", () => {
  it("needs a token", async () => {
    const res = await app.inject({ method: "GET", url: "/v1/graph" });
    expect(res.statusCode).toBe(401);
  });

  it("lists every node and channel: gossip's, and ours public or private, each direction's policy", async () => {
    const res = await app.inject({
      method: "GET",
      url: "/v1/graph",
      headers: { authorization: `Bearer ${readToken}` },
    });
    expect(res.statusCode).toBe(200);
    const localDefault = {
      disabled: false,
      feeBaseMsat: "1000",
      feeProportionalMillionths: 1,
      cltvExpiryDelta: 184,
      htlcMinimumMsat: "1000",
      htlcMaximumMsat: null,
      timestamp: null,
    };
    expect(JSON.parse(res.body)).toEqual({
      nodeId: OURS,
      nodes: [
        { nodeId: OURS, alias: null, addresses: [], timestamp: null, ours: true },
        {
          nodeId: B,
          alias: "bob <b>",
          addresses: ["127.0.0.1:9735", "[::1]:9736"],
          timestamp: 1_700_000_100,
          ours: false,
        },
        { nodeId: C, alias: "", addresses: [], timestamp: 1_700_000_200, ours: false },
        { nodeId: D, alias: null, addresses: [], timestamp: null, ours: false },
        { nodeId: E, alias: null, addresses: [], timestamp: null, ours: false },
      ],
      channels: [
        {
          shortChannelId: "700x1x0",
          shortChannelIdNumber: SCID_700,
          node1: OURS,
          node2: B,
          capacitySat: "1000000",
          announced: true,
          ours: true,
          channelId: withB,
          node1Policy: {
            disabled: false,
            feeBaseMsat: "1500",
            feeProportionalMillionths: 10,
            cltvExpiryDelta: 184,
            htlcMinimumMsat: "1000",
            htlcMaximumMsat: "990000000",
            timestamp: 1_700_000_000,
          },
          node2Policy: {
            disabled: false,
            feeBaseMsat: "2000",
            feeProportionalMillionths: 250,
            cltvExpiryDelta: 144,
            htlcMinimumMsat: "2000",
            htlcMaximumMsat: "990000000",
            timestamp: 1_700_000_001,
          },
        },
        {
          shortChannelId: "800x2x1",
          shortChannelIdNumber: SCID_800,
          node1: OURS,
          node2: C,
          capacitySat: "300000",
          announced: false,
          ours: true,
          channelId: withC,
          node1Policy: { ...localDefault, feeBaseMsat: "5000", feeProportionalMillionths: 42 },
          node2Policy: null,
        },
        {
          shortChannelId: "16777215x1x1",
          shortChannelIdNumber: SCID_HIGH,
          node1: C,
          node2: D,
          capacitySat: "250000",
          announced: true,
          ours: false,
          channelId: null,
          node1Policy: null,
          node2Policy: {
            disabled: true,
            feeBaseMsat: "0",
            feeProportionalMillionths: 4_294_967_295,
            cltvExpiryDelta: 40,
            htlcMinimumMsat: "1",
            htlcMaximumMsat: "250000000",
            timestamp: 1_700_000_002,
          },
        },
        {
          shortChannelId: null,
          shortChannelIdNumber: null,
          node1: OURS,
          node2: E,
          capacitySat: "200000",
          announced: false,
          ours: true,
          channelId: withE,
          node1Policy: localDefault,
          node2Policy: null,
        },
      ],
    });
  });

  it("a node with no channels and an empty graph shows itself alone", async () => {
    const lone = new MemoryBackend();
    const bare = await buildApi({ pool, schema, backend: lone });
    try {
      const res = await bare.inject({
        method: "GET",
        url: "/v1/graph",
        headers: { authorization: `Bearer ${readToken}` },
      });
      expect(JSON.parse(res.body)).toEqual({
        nodeId: OURS,
        nodes: [{ nodeId: OURS, alias: null, addresses: [], timestamp: null, ours: true }],
        channels: [],
      });
    } finally {
      await bare.close();
    }
  });
});
