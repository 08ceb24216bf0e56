/** Gossip (DESIGN.md 10): a peer's gossip pkts decoded, checked and verified; BOLT #4's bare channel_update. */
import { createHash } from "node:crypto";
import { msat } from "@ln/bitcoin";
import {
  channelAnnouncementDigest,
  channelUpdateDigest,
  checkTimestamp,
  decodeChannelUpdate,
  encodeChannelUpdate,
  forwardingNode,
  GossipError,
  nodeAnnouncementDigest,
  verifyChannelAnnouncement,
  verifyChannelUpdate,
  verifyNodeAnnouncement,
  type ChannelAnnouncement,
  type ChannelUpdate,
  type GossipCheck,
  type NodeAnnouncement,
} from "@ln/gossip";
import { decodePkt, encodePkt, WireError, type Pkt } from "@ln/proto";
import * as ecc from "tiny-secp256k1";
import { ACCEPTED, check, codedErrors, rejected, type TargetSpec, type Verdict } from "../target.js";

function keyPair(label: string): { priv: Buffer; pub: Buffer } {
  const priv = createHash("sha256").update(label).digest();
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
}
const sign = (priv: Buffer, digest: Buffer): Buffer => Buffer.from(ecc.sign(digest, priv));

const [node1, node2] = [keyPair("node a"), keyPair("node b")].sort((x, y) =>
  Buffer.compare(x.pub, y.pub),
) as [{ priv: Buffer; pub: Buffer }, { priv: Buffer; pub: Buffer }];
const commit1 = keyPair("commit 1");
const commit2 = keyPair("commit 2");
const NOW = 1_700_000_000;

function announcement(): ChannelAnnouncement {
  const a: ChannelAnnouncement = {
    shortChannelId: 0x0000_6e00_0001_0002n,
    nodeId1: node1.pub,
    nodeId2: node2.pub,
    commitKey1: commit1.pub,
    commitKey2: commit2.pub,
    nodeSig1: Buffer.alloc(64),
    nodeSig2: Buffer.alloc(64),
    commitSig1: Buffer.alloc(64),
    commitSig2: Buffer.alloc(64),
  };
  const d = channelAnnouncementDigest(a);
  return {
    ...a,
    nodeSig1: sign(node1.priv, d),
    nodeSig2: sign(node2.priv, d),
    commitSig1: sign(commit1.priv, d),
    commitSig2: sign(commit2.priv, d),
  };
}

function update(direction: 0 | 1, disabled: boolean): ChannelUpdate {
  const u: ChannelUpdate = {
    shortChannelId: 0x0000_6e00_0001_0002n,
    direction,
    timestamp: NOW - 10,
    disabled,
    cltvExpiryDelta: 40,
    htlcMinimumMsat: msat(1000n),
    htlcMaximumMsat: msat(4_000_000_000n),
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 100n,
    sig: Buffer.alloc(64),
  };
  return { ...u, sig: sign((direction === 0 ? node1 : node2).priv, channelUpdateDigest(u)) };
}

function node(n: { priv: Buffer; pub: Buffer }, addresses: string[]): NodeAnnouncement {
  const a: NodeAnnouncement = {
    nodeId: n.pub,
    timestamp: NOW - 5,
    alias: "alice ⚡",
    addresses,
    sig: Buffer.alloc(64),
  };
  return { ...a, sig: sign(n.priv, nodeAnnouncementDigest(a)) };
}

/** Signed gossip pkts, every field rule met. */
export function gossipPkts(): Promise<Pkt[]> {
  return Promise.resolve([
    { kind: "channel_announcement", ...announcement() },
    { kind: "channel_update", ...update(0, false) },
    { kind: "channel_update", ...update(1, true) },
    { kind: "node_announcement", ...node(node1, ["127.0.0.1:9735", "[::1]:9736", "node.example:9735"]) },
    { kind: "node_announcement", ...node(node2, []) },
  ]);
}

const verdict = (c: GossipCheck): Verdict => (c.ok ? ACCEPTED : rejected(`GossipCheck:${c.code}`));

export const gossipTarget: TargetSpec = {
  name: "gossip",
  weight: 60,
  what: "byte 0 even: a pkt decoded then its gossip checked and its signatures verified; odd: BOLT #4's bare channel_update",
  async create() {
    const ann = announcement();
    const pkts = await gossipPkts();
    const corpus = [
      ...pkts.map((p) => Buffer.concat([Buffer.from([0]), encodePkt(p)])),
      Buffer.concat([Buffer.from([1]), encodeChannelUpdate(update(0, false))]),
      Buffer.concat([Buffer.from([1]), encodeChannelUpdate(update(1, false))]),
    ];
    return {
      name: "gossip",
      corpus,
      protoFrom: 1,
      typed: codedErrors(WireError, GossipError),
      run(input) {
        const rest = input.subarray(1);
        if ((input[0] ?? 0) % 2 === 1) {
          const u = decodeChannelUpdate(rest);
          check(
            decodeChannelUpdate(encodeChannelUpdate(u)).timestamp === u.timestamp,
            "a bare update does not round-trip",
          );
          return verdict(verifyChannelUpdate(u, forwardingNode(ann, u)));
        }
        const p = decodePkt(rest);
        switch (p.kind) {
          case "channel_announcement":
            return verdict(verifyChannelAnnouncement(p));
          case "channel_update": {
            const t = checkTimestamp(p.timestamp, { nowSeconds: NOW });
            return t.ok ? verdict(verifyChannelUpdate(p, forwardingNode(ann, p))) : verdict(t);
          }
          case "node_announcement": {
            const t = checkTimestamp(p.timestamp, { nowSeconds: NOW });
            return t.ok ? verdict(verifyNodeAnnouncement(p)) : verdict(t);
          }
          default:
            return rejected("not gossip");
        }
      },
    };
  },
};
