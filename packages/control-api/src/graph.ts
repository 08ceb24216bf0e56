/*~ GET /v1/graph: the network's graph as this node knows it (gossip's tables) plus our own
 * channels, public or not, for operators (lnctl graph, the console's graph view). */
import { Type, type TSchema } from "typebox";

const OrNull = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Decimal = (description: string) => Type.String({ pattern: "^(0|[1-9][0-9]{0,19})$", description });

/** One direction's channel_update (BOLT #7): what the forwarding node charges and requires. */
export const GraphPolicy = Type.Object({
  disabled: Type.Boolean(),
  feeBaseMsat: Decimal("msat"),
  feeProportionalMillionths: Type.Integer({ minimum: 0, description: "fee per million msat forwarded" }),
  cltvExpiryDelta: Type.Integer({ minimum: 0, maximum: 65_535, description: "blocks" }),
  htlcMinimumMsat: Decimal("msat"),
  htlcMaximumMsat: OrNull(Decimal("msat; null for our own unannounced direction")),
  timestamp: OrNull(
    Type.Integer({
      description: "the channel_update's unix seconds; null for our own unannounced direction",
    }),
  ),
});

export const GraphNode = Type.Object({
  nodeId: Type.String(),
  alias: OrNull(Type.String({ description: "from its node_announcement; null without one" })),
  addresses: Type.Array(Type.String({ description: "host:port" })),
  timestamp: OrNull(Type.Integer({ description: "its node_announcement's unix seconds" })),
  ours: Type.Boolean(),
});

export const GraphChannel = Type.Object({
  shortChannelId: OrNull(
    Type.String({
      pattern: "^[0-9]+x[0-9]+x[0-9]+$",
      description: "HEIGHTxINDEXxOUTPUT; null until in a block",
    }),
  ),
  shortChannelIdNumber: OrNull(Decimal("the BOLT #7 packing as an unsigned 64-bit decimal string")),
  node1: Type.String({ description: "the lesser node id (hex)" }),
  node2: Type.String(),
  capacitySat: Decimal("sat"),
  announced: Type.Boolean({ description: "in the gossip graph (a channel_announcement was accepted)" }),
  ours: Type.Boolean({ description: "one of our channels" }),
  channelId: OrNull(Type.String({ description: "our channel id, for our own channels" })),
  node1Policy: OrNull(GraphPolicy),
  node2Policy: OrNull(GraphPolicy),
});

export const Graph = Type.Object({
  nodeId: Type.String({ description: "our node id" }),
  nodes: Type.Array(GraphNode),
  channels: Type.Array(GraphChannel),
});
