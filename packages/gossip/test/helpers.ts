import { createHash } from "node:crypto";
import { msat } from "@ln/bitcoin";
import type { ChannelAnnouncement, ChannelUpdate, NodeAnnouncement } from "@ln/gossip";
import * as ecc from "tiny-secp256k1";

export const sha256d = (b: Buffer): Buffer =>
  createHash("sha256").update(createHash("sha256").update(b).digest()).digest();

/** A key pair from a label: the secret is SHA256(label). */
export function keyPair(label: string): { priv: Buffer; pub: Buffer } {
  const priv = createHash("sha256").update(label).digest();
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true)!) };
}

export const sign = (priv: Buffer, digest: Buffer): Buffer => Buffer.from(ecc.sign(digest, priv));

/** The two nodes of a channel, in node id order (node 1 first), with their commit keys. */
export function twoNodes(): {
  node1: { priv: Buffer; pub: Buffer };
  node2: { priv: Buffer; pub: Buffer };
  commit1: { priv: Buffer; pub: Buffer };
  commit2: { priv: Buffer; pub: Buffer };
} {
  const [a, b] = [keyPair("node a"), keyPair("node b")].sort((x, y) => Buffer.compare(x.pub, y.pub)) as [
    { priv: Buffer; pub: Buffer },
    { priv: Buffer; pub: Buffer },
  ];
  return { node1: a, node2: b, commit1: keyPair("commit of node 1"), commit2: keyPair("commit of node 2") };
}

const NO_SIG = Buffer.alloc(64);

export function unsignedAnnouncement(scid = 0x0000_6e00_0001_0002n): ChannelAnnouncement {
  const n = twoNodes();
  return {
    shortChannelId: scid,
    nodeId1: n.node1.pub,
    nodeId2: n.node2.pub,
    commitKey1: n.commit1.pub,
    commitKey2: n.commit2.pub,
    nodeSig1: NO_SIG,
    nodeSig2: NO_SIG,
    commitSig1: NO_SIG,
    commitSig2: NO_SIG,
  };
}

export function unsignedUpdate(over: Partial<ChannelUpdate> = {}): ChannelUpdate {
  return {
    shortChannelId: 0x0000_6e00_0001_0002n,
    direction: 0,
    timestamp: 1_700_000_000,
    disabled: false,
    cltvExpiryDelta: 40,
    htlcMinimumMsat: msat(1000n),
    htlcMaximumMsat: msat(4_000_000_000n),
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 100n,
    sig: NO_SIG,
    ...over,
  };
}

export function unsignedNode(nodeId: Buffer, over: Partial<NodeAnnouncement> = {}): NodeAnnouncement {
  return {
    nodeId,
    timestamp: 1_700_000_000,
    alias: "alice ⚡",
    addresses: ["127.0.0.1:9735", "[::1]:9736", "node.example:9735"],
    sig: NO_SIG,
    ...over,
  };
}
