/**
 * The network graph in Postgres (migration 21: graph_channels, graph_policies, graph_nodes). Every
 * write is one statement whose RETURNING says whether it changed the row: when several replicas
 * receive the same gossip, only the one whose write changed the row relays it.
 */
import { msat, type Msat, type Sat } from "@ln/bitcoin";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

/** short_channel_id as Postgres's signed bigint, and back (contracts.md). */
const toDb = (scid: bigint): string => BigInt.asIntN(64, scid).toString();
const fromDb = (v: string): bigint => BigInt.asUintN(64, BigInt(v));

export interface GraphChannel {
  shortChannelId: bigint;
  node1: string;
  node2: string;
  commitKey1: string;
  commitKey2: string;
  anchorTxid: string;
  anchorVout: number;
  capacitySat: Sat | bigint;
  /** The channel_announcement pkt as received. */
  announcement: Buffer;
}

export interface GraphPolicy {
  shortChannelId: bigint;
  direction: 0 | 1;
  timestamp: number;
  disabled: boolean;
  cltvExpiryDelta: number;
  htlcMinimumMsat: Msat;
  htlcMaximumMsat: Msat;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  /** The channel_update pkt as received (or made, for ours). */
  channelUpdate: Buffer;
}

export interface GraphNode {
  nodeId: string;
  timestamp: number;
  alias: string;
  addresses: string[];
  /** The node_announcement pkt as received (or made, for ours). */
  nodeAnnouncement: Buffer;
}

interface PolicyDbRow {
  short_channel_id: string;
  direction: number;
  timestamp: string;
  disabled: boolean;
  cltv_expiry_delta: number;
  htlc_minimum_msat: string;
  htlc_maximum_msat: string;
  fee_base_msat: string;
  fee_proportional_millionths: string;
  channel_update: Buffer;
}

const POLICY_COLUMNS = `short_channel_id::text AS short_channel_id, direction, timestamp::text AS timestamp, disabled,
  cltv_expiry_delta, htlc_minimum_msat::text AS htlc_minimum_msat, htlc_maximum_msat::text AS htlc_maximum_msat,
  fee_base_msat::text AS fee_base_msat, fee_proportional_millionths::text AS fee_proportional_millionths, channel_update`;

const toPolicy = (r: PolicyDbRow): GraphPolicy => ({
  shortChannelId: fromDb(r.short_channel_id),
  direction: r.direction === 1 ? 1 : 0,
  timestamp: Number(r.timestamp),
  disabled: r.disabled,
  cltvExpiryDelta: r.cltv_expiry_delta,
  htlcMinimumMsat: msat(BigInt(r.htlc_minimum_msat)),
  htlcMaximumMsat: msat(BigInt(r.htlc_maximum_msat)),
  feeBaseMsat: msat(BigInt(r.fee_base_msat)),
  feeProportionalMillionths: BigInt(r.fee_proportional_millionths),
  channelUpdate: r.channel_update,
});

export class GraphStore {
  private readonly s: string;

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    this.s = quoteSchema(schema);
  }

  /** Adds a channel; false when it is already there (an announcement never changes). */
  async addChannel(c: GraphChannel): Promise<boolean> {
    const r = await this.pool.query(
      `INSERT INTO ${this.s}.graph_channels
         (short_channel_id, node_1, node_2, commit_key_1, commit_key_2, anchor_txid, anchor_vout, capacity_sat, announcement)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
       ON CONFLICT (short_channel_id) DO NOTHING RETURNING 1`,
      [
        toDb(c.shortChannelId),
        c.node1,
        c.node2,
        c.commitKey1,
        c.commitKey2,
        c.anchorTxid,
        c.anchorVout,
        c.capacitySat.toString(),
        c.announcement,
      ],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async channel(scid: bigint): Promise<Omit<GraphChannel, "announcement"> | undefined> {
    const r = await this.pool.query<{
      node_1: string;
      node_2: string;
      commit_key_1: string;
      commit_key_2: string;
      anchor_txid: string;
      anchor_vout: number;
      capacity_sat: string;
    }>(
      `SELECT node_1, node_2, commit_key_1, commit_key_2, anchor_txid, anchor_vout, capacity_sat::text AS capacity_sat
         FROM ${this.s}.graph_channels WHERE short_channel_id = $1`,
      [toDb(scid)],
    );
    const x = r.rows[0];
    return x
      ? {
          shortChannelId: scid,
          node1: x.node_1,
          node2: x.node_2,
          commitKey1: x.commit_key_1,
          commitKey2: x.commit_key_2,
          anchorTxid: x.anchor_txid,
          anchorVout: x.anchor_vout,
          capacitySat: BigInt(x.capacity_sat),
        }
      : undefined;
  }

  /** Every channel's short_channel_id (the anchor rechecks). */
  async channelIds(): Promise<bigint[]> {
    const r = await this.pool.query<{ s: string }>(
      `SELECT short_channel_id::text AS s FROM ${this.s}.graph_channels`,
    );
    return r.rows.map((x) => fromDb(x.s));
  }

  /** Removes a channel (its anchor is spent) and its policies; false when it was not there. */
  async removeChannel(scid: bigint): Promise<boolean> {
    const r = await this.pool.query(`DELETE FROM ${this.s}.graph_channels WHERE short_channel_id = $1`, [
      toDb(scid),
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  /**
   * Stores a channel_update if newer than the stored one (latest timestamp wins), in one
   * statement: "stored" when it changed the row, "stale" when ours is as new or newer,
   * "unknown" when the channel is not in the graph.
   */
  async putPolicy(p: GraphPolicy): Promise<"stored" | "stale" | "unknown"> {
    const r = await this.pool.query<{ ok: boolean }>(
      `WITH up AS (
         INSERT INTO ${this.s}.graph_policies AS p
           (short_channel_id, direction, timestamp, disabled, cltv_expiry_delta, htlc_minimum_msat,
            htlc_maximum_msat, fee_base_msat, fee_proportional_millionths, channel_update)
         SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10
          WHERE EXISTS (SELECT 1 FROM ${this.s}.graph_channels WHERE short_channel_id = $1)
         ON CONFLICT (short_channel_id, direction) DO UPDATE SET
           timestamp = excluded.timestamp, disabled = excluded.disabled,
           cltv_expiry_delta = excluded.cltv_expiry_delta, htlc_minimum_msat = excluded.htlc_minimum_msat,
           htlc_maximum_msat = excluded.htlc_maximum_msat, fee_base_msat = excluded.fee_base_msat,
           fee_proportional_millionths = excluded.fee_proportional_millionths,
           channel_update = excluded.channel_update, updated_at = now()
         WHERE excluded.timestamp > p.timestamp
         RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM up) AS ok,
              EXISTS (SELECT 1 FROM ${this.s}.graph_channels WHERE short_channel_id = $1) AS known`,
      [
        toDb(p.shortChannelId),
        p.direction,
        p.timestamp,
        p.disabled,
        p.cltvExpiryDelta,
        p.htlcMinimumMsat.toString(),
        p.htlcMaximumMsat.toString(),
        p.feeBaseMsat.toString(),
        p.feeProportionalMillionths.toString(),
        p.channelUpdate,
      ],
    );
    const row = r.rows[0] as { ok: boolean; known: boolean } | undefined;
    if (row?.ok) return "stored";
    return row?.known ? "stale" : "unknown";
  }

  async policy(scid: bigint, direction: 0 | 1): Promise<GraphPolicy | undefined> {
    const r = await this.pool.query<PolicyDbRow>(
      `SELECT ${POLICY_COLUMNS} FROM ${this.s}.graph_policies WHERE short_channel_id = $1 AND direction = $2`,
      [toDb(scid), direction],
    );
    return r.rows[0] ? toPolicy(r.rows[0]) : undefined;
  }

  /**
   * Stores a node_announcement if newer (one statement): "stored", "stale", or "unknown" when no
   * channel of the graph has that node.
   */
  async putNode(n: GraphNode): Promise<"stored" | "stale" | "unknown"> {
    const r = await this.pool.query<{ ok: boolean; known: boolean }>(
      `WITH known AS (
         SELECT EXISTS (SELECT 1 FROM ${this.s}.graph_channels WHERE node_1 = $1 OR node_2 = $1) AS k),
       up AS (
         INSERT INTO ${this.s}.graph_nodes AS n (node_id, timestamp, alias, addresses, node_announcement)
         SELECT $1, $2, $3, $4::jsonb, $5 FROM known WHERE k
         ON CONFLICT (node_id) DO UPDATE SET timestamp = excluded.timestamp, alias = excluded.alias,
           addresses = excluded.addresses, node_announcement = excluded.node_announcement, updated_at = now()
         WHERE excluded.timestamp > n.timestamp
         RETURNING 1)
       SELECT EXISTS (SELECT 1 FROM up) AS ok, (SELECT k FROM known) AS known`,
      [n.nodeId, n.timestamp, n.alias, JSON.stringify(n.addresses), n.nodeAnnouncement],
    );
    const row = r.rows[0];
    if (row?.ok) return "stored";
    return row?.known ? "stale" : "unknown";
  }

  async nodeTimestamp(nodeId: string): Promise<number | undefined> {
    const r = await this.pool.query<{ t: string }>(
      `SELECT timestamp::text AS t FROM ${this.s}.graph_nodes WHERE node_id = $1`,
      [nodeId],
    );
    return r.rows[0] ? Number(r.rows[0].t) : undefined;
  }

  /**
   * What a new peer gets (at most `max` messages): each channel's announcement followed by its
   * policies, then the node announcements, as stored pkts.
   */
  async everything(max: number): Promise<Buffer[]> {
    const r = await this.pool.query<{ b: Buffer }>(
      `SELECT b FROM (
         SELECT announcement AS b, short_channel_id AS k, 0 AS o, 0 AS d FROM ${this.s}.graph_channels
         UNION ALL
         SELECT channel_update, short_channel_id, 1, direction FROM ${this.s}.graph_policies
         UNION ALL
         SELECT node_announcement, NULL, 2, 0 FROM ${this.s}.graph_nodes) x
       ORDER BY (o = 2), k, o, d LIMIT $1`,
      [max],
    );
    return r.rows.map((x) => x.b);
  }
}
