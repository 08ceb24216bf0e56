import { msat } from "@ln/bitcoin";
import type { Edge } from "@ln/pathfinding";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

/**
 * The network's graph as pathfinding takes it (migration 21): each direction of a public channel
 * whose latest channel_update is not disabled, one Edge from the forwarding node. Direction 0 is
 * node_1 forwarding to node_2. The capacity is the anchor's: how much of it is on which side is
 * not gossiped. Our own channels are added by the payer (payer.ts ownEdges) from their states.
 */
export async function loadEdges(pool: pg.Pool | pg.ClientBase, schema: string): Promise<Edge[]> {
  const q = quoteSchema(schema);
  const r = await pool.query<{
    short_channel_id: string;
    node_1: string;
    node_2: string;
    capacity_sat: string;
    direction: number;
    cltv_expiry_delta: number;
    htlc_minimum_msat: string;
    htlc_maximum_msat: string;
    fee_base_msat: string;
    fee_proportional_millionths: string;
  }>(
    `SELECT c.short_channel_id::text AS short_channel_id, c.node_1, c.node_2, c.capacity_sat::text AS capacity_sat,
            p.direction, p.cltv_expiry_delta, p.htlc_minimum_msat::text AS htlc_minimum_msat,
            p.htlc_maximum_msat::text AS htlc_maximum_msat, p.fee_base_msat::text AS fee_base_msat,
            p.fee_proportional_millionths::text AS fee_proportional_millionths
       FROM ${q}.graph_channels c JOIN ${q}.graph_policies p USING (short_channel_id)
      WHERE NOT p.disabled
      ORDER BY c.short_channel_id, p.direction`,
  );
  return r.rows.map((x) => {
    const [from, to] = x.direction === 0 ? [x.node_1, x.node_2] : [x.node_2, x.node_1];
    return {
      // Stored signed (migration 21): the BOLT #7 packing is the unsigned reading.
      shortChannelId: BigInt.asUintN(64, BigInt(x.short_channel_id)),
      from,
      to,
      capacityMsat: msat(BigInt(x.capacity_sat) * 1000n),
      policy: {
        feeBaseMsat: msat(BigInt(x.fee_base_msat)),
        feeProportionalMillionths: BigInt(x.fee_proportional_millionths),
        cltvExpiryDelta: x.cltv_expiry_delta,
        htlcMinimumMsat: msat(BigInt(x.htlc_minimum_msat)),
        htlcMaximumMsat: msat(BigInt(x.htlc_maximum_msat)),
      },
    };
  });
}
