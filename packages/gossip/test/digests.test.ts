/**
 * The byte layouts the gossip signatures sign (README.md), rebuilt here by hand with Buffer
 * writes and node:crypto's SHA256 applied twice, independently of the package's own layout code.
 */
import {
  channelAnnouncementDigest,
  channelUpdateDigest,
  GossipError,
  nodeAnnouncementDigest,
} from "@ln/gossip";
import { msat } from "@ln/bitcoin";
import { describe, expect, it } from "vitest";
import { sha256d, unsignedAnnouncement, unsignedNode, unsignedUpdate } from "./helpers.js";

describe("the signed digests", () => {
  it("channel_announcement: SHA256d(61 || scid u64be || node_id_1 || node_id_2 || commit_key_1 || commit_key_2)", () => {
    const a = unsignedAnnouncement(0x0102030405060708n);
    const layout = Buffer.concat([
      Buffer.from([61]),
      Buffer.from("0102030405060708", "hex"),
      a.nodeId1,
      a.nodeId2,
      a.commitKey1,
      a.commitKey2,
    ]);
    expect(layout.length).toBe(141);
    expect(channelAnnouncementDigest(a).toString("hex")).toBe(sha256d(layout).toString("hex"));
    // The signatures are not part of it.
    const signedOtherwise = { ...a, nodeSig1: Buffer.alloc(64, 1) };
    expect(channelAnnouncementDigest(signedOtherwise)).toEqual(channelAnnouncementDigest(a));
  });

  it("channel_update: 43 bytes, every field at its place", () => {
    const u = unsignedUpdate({
      shortChannelId: 0x0000_6e00_0001_0002n,
      direction: 1,
      timestamp: 0x65_53_f1_00,
      disabled: true,
      cltvExpiryDelta: 144,
      htlcMinimumMsat: msat(1n),
      htlcMaximumMsat: msat(0x1_0000_0000n),
      feeBaseMsat: msat(0xfffffffen),
      feeProportionalMillionths: 0x01020304n,
    });
    const hex =
      "3f" + // 63
      "00006e0000010002" + // short_channel_id
      "01" + // direction
      "6553f100" + // timestamp
      "01" + // disabled
      "00000090" + // cltv_expiry_delta 144
      "0000000000000001" + // htlc_minimum_msat
      "0000000100000000" + // htlc_maximum_msat
      "fffffffe" + // fee_base_msat
      "01020304"; // fee_proportional_millionths
    expect(hex.length / 2).toBe(43);
    expect(channelUpdateDigest(u)).toEqual(sha256d(Buffer.from(hex, "hex")));
    expect(channelUpdateDigest({ ...u, disabled: false })).toEqual(
      sha256d(Buffer.from(hex.slice(0, 28) + "00" + hex.slice(30), "hex")),
    );
  });

  it("node_announcement: node id, timestamp, alias and each address with u16 lengths", () => {
    const n = unsignedNode(unsignedAnnouncement().nodeId1, {
      timestamp: 7,
      alias: "é",
      addresses: ["a:1", "[::1]:2"],
    });
    const u16 = (x: number): Buffer => Buffer.from([x >> 8, x & 0xff]);
    const layout = Buffer.concat([
      Buffer.from([65]),
      n.nodeId,
      Buffer.from([0, 0, 0, 7]),
      u16(2),
      Buffer.from([0xc3, 0xa9]), // "é" in UTF-8
      u16(2),
      u16(3),
      Buffer.from("a:1", "ascii"),
      u16(7),
      Buffer.from("[::1]:2", "ascii"),
    ]);
    expect(nodeAnnouncementDigest(n)).toEqual(sha256d(layout));
    // No address: the count 0 and nothing after it.
    expect(nodeAnnouncementDigest({ ...n, addresses: [] })).toEqual(
      sha256d(Buffer.concat([layout.subarray(0, 1 + 33 + 4 + 2 + 2), u16(0)])),
    );
  });

  it("the three kinds never share a layout: each starts with its pkt field number", () => {
    const a = unsignedAnnouncement();
    const digests = [
      channelAnnouncementDigest(a),
      channelUpdateDigest(unsignedUpdate()),
      nodeAnnouncementDigest(unsignedNode(a.nodeId1)),
    ].map((d) => d.toString("hex"));
    expect(new Set(digests).size).toBe(3);
  });

  it("a value out of its field's range is a GossipError, not a wrong digest", () => {
    expect(() => channelUpdateDigest(unsignedUpdate({ feeBaseMsat: msat(2n ** 32n) }))).toThrow(GossipError);
    expect(() => channelUpdateDigest(unsignedUpdate({ timestamp: -1 }))).toThrow(GossipError);
    expect(() => channelAnnouncementDigest({ ...unsignedAnnouncement(), nodeId1: Buffer.alloc(32) })).toThrow(
      GossipError,
    );
  });
});
