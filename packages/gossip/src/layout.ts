/**
 * The byte layouts the gossip signatures sign (README.md): fixed, big-endian, each starting with
 * its message's pkt field number so that no layout of one kind is also one of another.
 */
import { createHash } from "node:crypto";
import type { ChannelAnnouncement, ChannelUpdate, NodeAnnouncement } from "@ln/proto";
import { GossipError } from "./errors.js";

export const CHANNEL_ANNOUNCEMENT_TAG = 61;
export const CHANNEL_UPDATE_TAG = 63;
export const NODE_ANNOUNCEMENT_TAG = 65;

/** The fields of each message its signatures cover: all but the signatures. */
export type ChannelAnnouncementFields = Omit<
  ChannelAnnouncement,
  "nodeSig1" | "nodeSig2" | "commitSig1" | "commitSig2"
>;
export type ChannelUpdateFields = Omit<ChannelUpdate, "sig">;
export type NodeAnnouncementFields = Omit<NodeAnnouncement, "sig">;

const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();
export const sha256d = (b: Uint8Array): Buffer => sha256(sha256(b));

function u8(n: number): Buffer {
  return Buffer.from([n]);
}
function u16(n: number, what: string): Buffer {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff)
    throw new GossipError("MALFORMED", `${what}: ${n} is not a uint16`);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
}
function u32(n: number | bigint, what: string): Buffer {
  const v = BigInt(n);
  if (v < 0n || v > 0xffff_ffffn) throw new GossipError("MALFORMED", `${what}: ${n} is not a uint32`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(Number(v));
  return b;
}
function u64(n: bigint, what: string): Buffer {
  if (n < 0n || n > 0xffff_ffff_ffff_ffffn)
    throw new GossipError("MALFORMED", `${what}: ${n} is not a uint64`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
}
function key(k: Buffer, what: string): Buffer {
  if (k.length !== 33) throw new GossipError("MALFORMED", `${what}: a key is 33 bytes, got ${k.length}`);
  return k;
}

/** 61 || scid u64 || node_id_1 || node_id_2 || commit_key_1 || commit_key_2: 141 bytes. */
export function channelAnnouncementLayout(a: ChannelAnnouncementFields): Buffer {
  return Buffer.concat([
    u8(CHANNEL_ANNOUNCEMENT_TAG),
    u64(a.shortChannelId, "short_channel_id"),
    key(a.nodeId1, "node_id_1"),
    key(a.nodeId2, "node_id_2"),
    key(a.commitKey1, "commit_key_1"),
    key(a.commitKey2, "commit_key_2"),
  ]);
}

/**
 * 63 || scid u64 || direction u8 || timestamp u32 || disabled u8 || cltv_expiry_delta u32 ||
 * htlc_minimum_msat u64 || htlc_maximum_msat u64 || fee_base_msat u32 ||
 * fee_proportional_millionths u32: 43 bytes.
 */
export function channelUpdateLayout(u: ChannelUpdateFields): Buffer {
  if (u.direction !== 0 && u.direction !== 1)
    throw new GossipError("MALFORMED", `direction: ${String(u.direction)} is not 0 or 1`);
  return Buffer.concat([
    u8(CHANNEL_UPDATE_TAG),
    u64(u.shortChannelId, "short_channel_id"),
    u8(u.direction),
    u32(u.timestamp, "timestamp"),
    u8(u.disabled ? 1 : 0),
    u32(u.cltvExpiryDelta, "cltv_expiry_delta"),
    u64(u.htlcMinimumMsat, "htlc_minimum_msat"),
    u64(u.htlcMaximumMsat, "htlc_maximum_msat"),
    u32(u.feeBaseMsat, "fee_base_msat"),
    u32(u.feeProportionalMillionths, "fee_proportional_millionths"),
  ]);
}

/**
 * 65 || node_id || timestamp u32 || alias length u16 || alias (UTF-8) || address count u16 ||
 * each address: length u16 || bytes (UTF-8).
 */
export function nodeAnnouncementLayout(n: NodeAnnouncementFields): Buffer {
  const alias = Buffer.from(n.alias, "utf8");
  const parts = [
    u8(NODE_ANNOUNCEMENT_TAG),
    key(n.nodeId, "node_id"),
    u32(n.timestamp, "timestamp"),
    u16(alias.length, "alias length"),
    alias,
    u16(n.addresses.length, "address count"),
  ];
  n.addresses.forEach((a, i) => {
    const b = Buffer.from(a, "utf8");
    parts.push(u16(b.length, `addresses[${i}] length`), b);
  });
  return Buffer.concat(parts);
}

/** The digest all four signatures of a channel_announcement sign. */
export const channelAnnouncementDigest = (a: ChannelAnnouncementFields): Buffer =>
  sha256d(channelAnnouncementLayout(a));
/** The digest the forwarding node's key signs. */
export const channelUpdateDigest = (u: ChannelUpdateFields): Buffer => sha256d(channelUpdateLayout(u));
/** The digest the node key signs. */
export const nodeAnnouncementDigest = (n: NodeAnnouncementFields): Buffer =>
  sha256d(nodeAnnouncementLayout(n));
