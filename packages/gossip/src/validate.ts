/** The field rules of gossip messages, as pure checks (DESIGN.md 10). */
import type { ChannelUpdate } from "@ln/proto";
import { OK, refuse, type GossipCheck } from "./errors.js";
import type { ChannelAnnouncementFields, ChannelUpdateFields, NodeAnnouncementFields } from "./layout.js";

export const MAX_ALIAS_BYTES = 32;
export const MAX_ADDRESSES = 4;
/** How far ahead of our clock a timestamp may be. */
export const DEFAULT_MAX_FUTURE_SECONDS = 3600;

/** node_id_1 < node_id_2 bytewise, so each channel has one announcement. */
export function checkChannelAnnouncement(a: ChannelAnnouncementFields): GossipCheck {
  const order = Buffer.compare(a.nodeId1, a.nodeId2);
  if (order === 0)
    return refuse("MALFORMED", "channel_announcement: node_id_1 and node_id_2 are the same node");
  if (order > 0) return refuse("MALFORMED", "channel_announcement: node_id_1 must sort before node_id_2");
  if (a.commitKey1.equals(a.commitKey2))
    return refuse("MALFORMED", "channel_announcement: commit_key_1 and commit_key_2 are the same key");
  return OK;
}

export function checkChannelUpdate(u: ChannelUpdateFields): GossipCheck {
  if (u.direction !== 0 && u.direction !== 1)
    return refuse("MALFORMED", `channel_update: direction ${String(u.direction)} is not 0 or 1`);
  if (u.htlcMinimumMsat > u.htlcMaximumMsat)
    return refuse(
      "MALFORMED",
      `channel_update: htlc_minimum_msat ${u.htlcMinimumMsat} exceeds htlc_maximum_msat ${u.htlcMaximumMsat}`,
    );
  return OK;
}

// host: a DNS name, an IPv4 address, or an IPv6 address in brackets; then a port 1..65535.
const ADDRESS = /^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):([1-9][0-9]{0,4})$/;

export function checkAddress(a: string): boolean {
  const m = ADDRESS.exec(a);
  return m !== null && Number(m[2]) <= 65535;
}

export function checkNodeAnnouncement(n: NodeAnnouncementFields): GossipCheck {
  const alias = Buffer.byteLength(n.alias, "utf8");
  if (alias > MAX_ALIAS_BYTES)
    return refuse("MALFORMED", `node_announcement: alias is ${alias} bytes, at most ${MAX_ALIAS_BYTES}`);
  if (n.addresses.length > MAX_ADDRESSES)
    return refuse(
      "MALFORMED",
      `node_announcement: ${n.addresses.length} addresses, at most ${MAX_ADDRESSES}`,
    );
  const bad = n.addresses.findIndex((a) => !checkAddress(a));
  if (bad >= 0) return refuse("MALFORMED", `node_announcement: addresses[${bad}] is not host:port`);
  return OK;
}

/**
 * Latest timestamp wins: a message must be newer than the one we hold (`stored`, absent if none)
 * and not more than `maxFutureSeconds` ahead of `nowSeconds`.
 */
export function checkTimestamp(
  timestamp: number,
  p: { nowSeconds: number; stored?: number | undefined; maxFutureSeconds?: number },
): GossipCheck {
  if (p.stored !== undefined && timestamp <= p.stored)
    return refuse("STALE_TIMESTAMP", `timestamp ${timestamp} is not newer than the stored ${p.stored}`);
  const ahead = p.maxFutureSeconds ?? DEFAULT_MAX_FUTURE_SECONDS;
  if (timestamp > p.nowSeconds + ahead)
    return refuse(
      "FUTURE_TIMESTAMP",
      `timestamp ${timestamp} is more than ${ahead} s after our clock (${p.nowSeconds})`,
    );
  return OK;
}

/** The node that forwards over a channel in an update's direction (and signs it). */
export const forwardingNode = (
  a: { nodeId1: Buffer; nodeId2: Buffer },
  u: Pick<ChannelUpdate, "direction">,
): Buffer => (u.direction === 0 ? a.nodeId1 : a.nodeId2);
