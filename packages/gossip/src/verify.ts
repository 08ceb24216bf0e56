/** Signature checks of gossip messages: compact ECDSA over the SHA256d digests, low-S only. */
import type { ChannelAnnouncement, ChannelUpdate, NodeAnnouncement } from "@ln/proto";
import * as ecc from "tiny-secp256k1";
import { GossipError, OK, refuse, type GossipCheck } from "./errors.js";
import { channelAnnouncementDigest, channelUpdateDigest, nodeAnnouncementDigest } from "./layout.js";
import { checkChannelAnnouncement, checkChannelUpdate, checkNodeAnnouncement } from "./validate.js";

/** True iff `sig` (64-byte compact R || S) signs `digest` with `pubkey`; false for any bad input. */
export function verifySignature(digest: Uint8Array, pubkey: Uint8Array, sig: Uint8Array): boolean {
  try {
    // strict: a high-S signature is refused (the signer signs low-S).
    return sig.length === 64 && ecc.verify(digest, pubkey, sig, true);
  } catch {
    return false; // not a point, r or s out of range
  }
}

function digestOf<T>(f: (x: T) => Buffer, x: T): Buffer | GossipCheck {
  try {
    return f(x);
  } catch (e) {
    if (e instanceof GossipError) return refuse(e.code, e.problem);
    throw e;
  }
}

/** The field rules, then all four signatures over the one digest. */
export function verifyChannelAnnouncement(a: ChannelAnnouncement): GossipCheck {
  const rules = checkChannelAnnouncement(a);
  if (!rules.ok) return rules;
  const digest = digestOf(channelAnnouncementDigest, a);
  if (!Buffer.isBuffer(digest)) return digest;
  const sigs: [string, Buffer, Buffer][] = [
    ["node_sig_1", a.nodeId1, a.nodeSig1],
    ["node_sig_2", a.nodeId2, a.nodeSig2],
    ["commit_sig_1", a.commitKey1, a.commitSig1],
    ["commit_sig_2", a.commitKey2, a.commitSig2],
  ];
  for (const [name, key, sig] of sigs)
    if (!verifySignature(digest, key, sig))
      return refuse("BAD_SIGNATURE", `channel_announcement: ${name} does not sign it`);
  return OK;
}

/** The field rules, then the signature by `nodeId`: the forwarding node of `u.direction`. */
export function verifyChannelUpdate(u: ChannelUpdate, nodeId: Buffer): GossipCheck {
  const rules = checkChannelUpdate(u);
  if (!rules.ok) return rules;
  const digest = digestOf(channelUpdateDigest, u);
  if (!Buffer.isBuffer(digest)) return digest;
  return verifySignature(digest, nodeId, u.sig)
    ? OK
    : refuse("BAD_SIGNATURE", "channel_update: sig is not the forwarding node's");
}

export function verifyNodeAnnouncement(n: NodeAnnouncement): GossipCheck {
  const rules = checkNodeAnnouncement(n);
  if (!rules.ok) return rules;
  const digest = digestOf(nodeAnnouncementDigest, n);
  if (!Buffer.isBuffer(digest)) return digest;
  return verifySignature(digest, n.nodeId, n.sig)
    ? OK
    : refuse("BAD_SIGNATURE", "node_announcement: sig is not the node's");
}
