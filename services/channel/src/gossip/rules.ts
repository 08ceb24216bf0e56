/**
 * The channel service's gossip decisions (DESIGN.md 10), pure: which of our channels to announce,
 * the half-signed announcements the two ends exchange, the channel_update our policy makes, when a
 * new one is due, and the order of the graph's rechecks. The shell is gossip.ts.
 *
 * Announcing a channel needs the four signatures of both ends. The anchor's creator (the one end
 * that knows whether the channel is private), once the channel is deep enough, sends the peer a
 * "half": the channel_announcement with only its own node and commit signatures filled, the other
 * two all zero. The acceptor, when it has the channel itself, adds its own two signatures (from its
 * signer), which makes the full announcement: it verifies it as any other, stores it and relays it
 * to every connected peer (the creator too, who then has it as well). A half that arrives again is
 * a duplicate.
 */
import { msat, shortChannelIdFromBigint, type Msat } from "@ln/bitcoin";
import type { ChannelAnnouncement, ChannelUpdate } from "@ln/gossip";
import type { ForwardingPolicy } from "../forwarding/policy.js";

/** A signature slot left empty in a half announcement. */
export const EMPTY_SIG = Buffer.alloc(64);

export const isEmptySig = (sig: Buffer): boolean => sig.equals(EMPTY_SIG);

/** Whether `a` is a half: some signature slot is empty. */
export const isHalf = (a: ChannelAnnouncement): boolean =>
  [a.nodeSig1, a.nodeSig2, a.commitSig1, a.commitSig2].some(isEmptySig);

/** Which node a half is signed by: 1 (node_id_1's two slots filled, node_id_2's empty), 2, or none. */
export function halfSignedBy(a: ChannelAnnouncement): 1 | 2 | undefined {
  const one = !isEmptySig(a.nodeSig1) && !isEmptySig(a.commitSig1);
  const two = !isEmptySig(a.nodeSig2) && !isEmptySig(a.commitSig2);
  if (one && isEmptySig(a.nodeSig2) && isEmptySig(a.commitSig2)) return 1;
  if (two && isEmptySig(a.nodeSig1) && isEmptySig(a.commitSig1)) return 2;
  return undefined;
}

/** Our place in a channel with `peer`: node_id_1 is the lower of the two 33-byte keys. */
export const weAreNode1 = (ours: Buffer, peer: Buffer): boolean => Buffer.compare(ours, peer) < 0;

/** The direction in which we forward over a channel with `peer` (0: node_id_1 forwards). */
export const ourDirection = (ours: Buffer, peer: Buffer): 0 | 1 => (weAreNode1(ours, peer) ? 0 : 1);

/** The announcement of a channel with our own signatures only (the other slots empty). */
export function halfAnnouncement(p: {
  shortChannelId: bigint;
  ourNodeId: Buffer;
  peerNodeId: Buffer;
  ourCommitKey: Buffer;
  peerCommitKey: Buffer;
  nodeSig: Buffer;
  commitSig: Buffer;
}): ChannelAnnouncement {
  const one = weAreNode1(p.ourNodeId, p.peerNodeId);
  return {
    shortChannelId: p.shortChannelId,
    nodeId1: one ? p.ourNodeId : p.peerNodeId,
    nodeId2: one ? p.peerNodeId : p.ourNodeId,
    commitKey1: one ? p.ourCommitKey : p.peerCommitKey,
    commitKey2: one ? p.peerCommitKey : p.ourCommitKey,
    nodeSig1: one ? p.nodeSig : EMPTY_SIG,
    nodeSig2: one ? EMPTY_SIG : p.nodeSig,
    commitSig1: one ? p.commitSig : EMPTY_SIG,
    commitSig2: one ? EMPTY_SIG : p.commitSig,
  };
}

const sameFields = (a: ChannelAnnouncement, b: ChannelAnnouncement): boolean =>
  a.shortChannelId === b.shortChannelId &&
  a.nodeId1.equals(b.nodeId1) &&
  a.nodeId2.equals(b.nodeId2) &&
  a.commitKey1.equals(b.commitKey1) &&
  a.commitKey2.equals(b.commitKey2);

/**
 * The full announcement from the two halves, or undefined when they do not announce the same
 * channel or do not fill complementary slots.
 */
export function combineHalves(
  a: ChannelAnnouncement,
  b: ChannelAnnouncement,
): ChannelAnnouncement | undefined {
  if (!sameFields(a, b)) return undefined;
  const [sa, sb] = [halfSignedBy(a), halfSignedBy(b)];
  if (sa === undefined || sb === undefined || sa === sb) return undefined;
  const [one, two] = sa === 1 ? [a, b] : [b, a];
  return { ...one, nodeSig2: two.nodeSig2, commitSig2: two.commitSig2 };
}

/** What of one of our channels decides whether we announce it. */
export interface OwnChannel {
  phase: string;
  shortChannelId: bigint | undefined;
  private: boolean;
}

/** Announced once normal, public, and its anchor at least `depth` blocks deep at `tipHeight`. */
export function announceable(c: OwnChannel, tipHeight: number, depth: number): boolean {
  if (c.phase !== "normal" || c.private || c.shortChannelId === undefined) return false;
  const { height } = shortChannelIdFromBigint(c.shortChannelId);
  return tipHeight - height + 1 >= depth;
}

/** The fields of our channel_update, as signed (no signature yet). */
export type UpdateFields = Omit<ChannelUpdate, "sig">;

/**
 * The clock, strictly after the last one we made (latest timestamp wins); undefined while that
 * would be ahead of the clock: never signed ahead of it, or a peer flapping its connection could
 * push our timestamps past what other nodes accept (FUTURE_TIMESTAMP). The next round makes it.
 */
export const nextTimestamp = (nowSeconds: number, last: number | undefined): number | undefined =>
  last === undefined || last < nowSeconds ? nowSeconds : undefined;

/** Our channel_update of a channel from its forwarding policy; at most its capacity per HTLC. */
export function updateFromPolicy(p: {
  shortChannelId: bigint;
  direction: 0 | 1;
  timestamp: number;
  disabled: boolean;
  policy: ForwardingPolicy;
  htlcMaximumMsat: Msat;
}): UpdateFields {
  return {
    shortChannelId: p.shortChannelId,
    direction: p.direction,
    timestamp: p.timestamp,
    disabled: p.disabled,
    cltvExpiryDelta: p.policy.cltvExpiryDelta,
    htlcMinimumMsat: p.policy.htlcMinimumMsat,
    htlcMaximumMsat: msat(
      p.htlcMaximumMsat < p.policy.htlcMinimumMsat ? p.policy.htlcMinimumMsat : p.htlcMaximumMsat,
    ),
    feeBaseMsat: p.policy.feeBaseMsat,
    feeProportionalMillionths: p.policy.feeProportionalMillionths,
  };
}

/**
 * Whether our channel_update must be made anew: none yet, a field differs from what we would
 * send now (a policy change, the peer gone or back), or the last is `refreshSeconds` old.
 */
export function updateDue(
  stored:
    (Omit<UpdateFields, "timestamp" | "shortChannelId" | "direction"> & { timestamp: number }) | undefined,
  wanted: Omit<UpdateFields, "timestamp" | "shortChannelId" | "direction">,
  nowSeconds: number,
  refreshSeconds: number,
): "none" | "changed" | "refresh" | undefined {
  if (stored === undefined) return "none";
  if (
    stored.disabled !== wanted.disabled ||
    stored.cltvExpiryDelta !== wanted.cltvExpiryDelta ||
    stored.htlcMinimumMsat !== wanted.htlcMinimumMsat ||
    stored.htlcMaximumMsat !== wanted.htlcMaximumMsat ||
    stored.feeBaseMsat !== wanted.feeBaseMsat ||
    stored.feeProportionalMillionths !== wanted.feeProportionalMillionths
  )
    return "changed";
  if (nowSeconds - stored.timestamp >= refreshSeconds) return "refresh";
  return undefined;
}

/** The alias of a node without GOSSIP_ALIAS: "ln-" and the first 8 hex digits of its id. */
export const defaultAlias = (nodeIdHex: string): string => `ln-${nodeIdHex.slice(0, 8)}`;

/**
 * The next `max` of `all` (sorted) after `cursor`, wrapping around: each tip rechecks a bounded
 * slice of the graph's channels, all of them in turn. Returns the slice and the next cursor.
 */
export function recheckSlice(
  all: readonly bigint[],
  cursor: bigint | undefined,
  max: number,
): { slice: bigint[]; cursor: bigint | undefined } {
  if (all.length === 0 || max <= 0) return { slice: [], cursor: undefined };
  const sorted = [...all].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  if (sorted.length <= max) return { slice: sorted, cursor: undefined };
  let start = cursor === undefined ? 0 : sorted.findIndex((x) => x > cursor);
  if (start < 0) start = 0;
  const slice: bigint[] = [];
  for (let i = 0; i < max; i++) slice.push(sorted[(start + i) % sorted.length] as bigint);
  return { slice, cursor: slice.at(-1) };
}
