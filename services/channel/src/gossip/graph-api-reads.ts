/*~ The graph as the operator reads it (GET /v1/graph): the gossip tables of migration 21 and our
 * own channels, public or private, merged into one list of nodes and one of channels. Routing
 * reads the graph elsewhere (graph-reads.ts); this is for display only. */
import { msat, sat, type Msat, type Sat } from "@ln/bitcoin";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import type { ForwardingPolicy } from "../forwarding/policy.js";

/** One direction of a channel: the forwarding node's channel_update (BOLT #7). */
export interface GraphPolicy {
  disabled: boolean;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
  htlcMinimumMsat: Msat;
  /** Undefined for our own direction of a channel not announced. */
  htlcMaximumMsat: Msat | undefined;
  timestamp: number | undefined;
}

export interface GraphNode {
  nodeId: string;
  /** From its node_announcement; undefined without one. */
  alias: string | undefined;
  addresses: string[];
  timestamp: number | undefined;
  ours: boolean;
}

export interface GraphChannel {
  /** BOLT #7 packing (unsigned); undefined for our channel whose anchor is not in a block yet. */
  shortChannelId: bigint | undefined;
  /** node1 < node2 (hex); policies[0] is node1 forwarding to node2, policies[1] the reverse. */
  node1: string;
  node2: string;
  capacitySat: Sat;
  /** In the gossip graph. */
  announced: boolean;
  ours: boolean;
  /** Our channel id, for our own. */
  channelId: string | undefined;
  policies: [GraphPolicy | undefined, GraphPolicy | undefined];
}

export interface Graph {
  nodeId: string;
  nodes: GraphNode[];
  channels: GraphChannel[];
}

/** One of our channels as the merge needs it. */
export interface OwnChannel {
  id: string;
  peerNodeId: string;
  shortChannelId: bigint | undefined;
  capacitySat: Sat;
  /** Our forwarding policy on it, and whether we forward over it now (normal phase). */
  policy: ForwardingPolicy;
  usable: boolean;
}

export interface AnnouncedGraph {
  nodes: Omit<GraphNode, "ours">[];
  channels: Omit<GraphChannel, "ours" | "channelId">[];
}

interface ChannelDbRow {
  short_channel_id: string;
  node_1: string;
  node_2: string;
  capacity_sat: string;
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
}
interface NodeDbRow {
  node_id: string;
  timestamp: string;
  alias: string;
  addresses: unknown;
}

/** The gossip tables (migration 21) as they are; scids read back unsigned. */
export async function readAnnouncedGraph(pool: pg.Pool, schema: string): Promise<AnnouncedGraph> {
  const s = quoteSchema(schema);
  const [channels, policies, nodes] = await Promise.all([
    pool.query<ChannelDbRow>(
      `SELECT short_channel_id, node_1, node_2, capacity_sat FROM ${s}.graph_channels ORDER BY short_channel_id`,
    ),
    pool.query<PolicyDbRow>(
      `SELECT short_channel_id, direction, timestamp, disabled, cltv_expiry_delta, htlc_minimum_msat,
              htlc_maximum_msat, fee_base_msat, fee_proportional_millionths
         FROM ${s}.graph_policies`,
    ),
    pool.query<NodeDbRow>(
      `SELECT node_id, timestamp, alias, addresses FROM ${s}.graph_nodes ORDER BY node_id`,
    ),
  ]);
  const byScid = new Map<string, [GraphPolicy | undefined, GraphPolicy | undefined]>();
  for (const p of policies.rows) {
    const pair = byScid.get(p.short_channel_id) ?? [undefined, undefined];
    pair[p.direction === 0 ? 0 : 1] = {
      disabled: p.disabled,
      feeBaseMsat: msat(BigInt(p.fee_base_msat)),
      feeProportionalMillionths: BigInt(p.fee_proportional_millionths),
      cltvExpiryDelta: p.cltv_expiry_delta,
      htlcMinimumMsat: msat(BigInt(p.htlc_minimum_msat)),
      htlcMaximumMsat: msat(BigInt(p.htlc_maximum_msat)),
      timestamp: Number(p.timestamp),
    };
    byScid.set(p.short_channel_id, pair);
  }
  return {
    nodes: nodes.rows.map((n) => ({
      nodeId: n.node_id,
      alias: n.alias,
      addresses: Array.isArray(n.addresses) ? n.addresses.filter((a) => typeof a === "string") : [],
      timestamp: Number(n.timestamp),
    })),
    channels: channels.rows.map((c) => ({
      shortChannelId: BigInt.asUintN(64, BigInt(c.short_channel_id)),
      node1: c.node_1,
      node2: c.node_2,
      capacitySat: sat(BigInt(c.capacity_sat)),
      announced: true,
      policies: byScid.get(c.short_channel_id) ?? [undefined, undefined],
    })),
  };
}

/**
 * The operator's graph: the announced one, each channel of ours marked (and given our direction's
 * policy when gossip has none yet), our channels the graph lacks (private, or not announced yet)
 * added, and every node that ends a channel listed, announced or not. Sorted by node id and by
 * short channel id (ours without one last).
 */
export function operatorGraph(
  announced: AnnouncedGraph,
  ourNodeId: string,
  own: readonly OwnChannel[],
): Graph {
  const ownByScid = new Map(
    own.flatMap((c) => (c.shortChannelId === undefined ? [] : [[c.shortChannelId, c]])),
  );
  const ourPolicy = (c: OwnChannel): GraphPolicy => ({
    disabled: !c.usable,
    feeBaseMsat: c.policy.feeBaseMsat,
    feeProportionalMillionths: c.policy.feeProportionalMillionths,
    cltvExpiryDelta: c.policy.cltvExpiryDelta,
    htlcMinimumMsat: c.policy.htlcMinimumMsat,
    htlcMaximumMsat: undefined,
    timestamp: undefined,
  });
  const seen = new Set<string>();
  const channels: GraphChannel[] = announced.channels.map((g) => {
    const mine = g.shortChannelId === undefined ? undefined : ownByScid.get(g.shortChannelId);
    if (mine) seen.add(mine.id);
    const policies: GraphChannel["policies"] = [...g.policies];
    const ourSide = g.node1 === ourNodeId ? 0 : g.node2 === ourNodeId ? 1 : undefined;
    if (mine && ourSide !== undefined) policies[ourSide] ??= ourPolicy(mine);
    return {
      ...g,
      policies,
      ours: g.node1 === ourNodeId || g.node2 === ourNodeId,
      channelId: mine?.id,
    };
  });
  for (const c of own) {
    if (seen.has(c.id)) continue;
    const weAreFirst = ourNodeId < c.peerNodeId;
    channels.push({
      shortChannelId: c.shortChannelId,
      node1: weAreFirst ? ourNodeId : c.peerNodeId,
      node2: weAreFirst ? c.peerNodeId : ourNodeId,
      capacitySat: c.capacitySat,
      announced: false,
      ours: true,
      channelId: c.id,
      policies: weAreFirst ? [ourPolicy(c), undefined] : [undefined, ourPolicy(c)],
    });
  }
  channels.sort((a, b) =>
    a.shortChannelId === undefined || b.shortChannelId === undefined
      ? Number(a.shortChannelId === undefined) - Number(b.shortChannelId === undefined) ||
        (a.channelId ?? "").localeCompare(b.channelId ?? "")
      : a.shortChannelId < b.shortChannelId
        ? -1
        : a.shortChannelId > b.shortChannelId
          ? 1
          : 0,
  );

  const nodes = new Map<string, GraphNode>();
  const add = (nodeId: string): void => {
    if (!nodes.has(nodeId))
      nodes.set(nodeId, {
        nodeId,
        alias: undefined,
        addresses: [],
        timestamp: undefined,
        ours: nodeId === ourNodeId,
      });
  };
  for (const n of announced.nodes) nodes.set(n.nodeId, { ...n, ours: n.nodeId === ourNodeId });
  add(ourNodeId);
  for (const c of channels) {
    add(c.node1);
    add(c.node2);
  }
  return {
    nodeId: ourNodeId,
    nodes: [...nodes.values()].sort((a, b) => (a.nodeId < b.nodeId ? -1 : a.nodeId > b.nodeId ? 1 : 0)),
    channels,
  };
}
