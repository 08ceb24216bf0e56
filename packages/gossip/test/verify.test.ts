/**
 * Signatures made here with tiny-secp256k1 from known keys over hand-built layouts (helpers.ts)
 * verify; any tampered field, a wrong key, or a high-S twin fails with BAD_SIGNATURE.
 */
import {
  checkTimestamp,
  forwardingNode,
  verifyChannelAnnouncement,
  verifyChannelUpdate,
  verifyNodeAnnouncement,
  type ChannelAnnouncement,
  type ChannelUpdate,
} from "@ln/gossip";
import { msat } from "@ln/bitcoin";
import { describe, expect, it } from "vitest";
import {
  keyPair,
  sha256d,
  sign,
  twoNodes,
  unsignedAnnouncement,
  unsignedNode,
  unsignedUpdate,
} from "./helpers.js";

const N = BigInt("0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141");

/** The same signature with S replaced by N - S: valid ECDSA, but not low-S. */
function highS(sig: Buffer): Buffer {
  const s = BigInt(`0x${sig.subarray(32).toString("hex")}`);
  return Buffer.concat([sig.subarray(0, 32), Buffer.from((N - s).toString(16).padStart(64, "0"), "hex")]);
}

const n = twoNodes();

function signedAnnouncement(): ChannelAnnouncement {
  const a = unsignedAnnouncement();
  const layout = Buffer.concat([
    Buffer.from([61]),
    Buffer.from(a.shortChannelId.toString(16).padStart(16, "0"), "hex"),
    a.nodeId1,
    a.nodeId2,
    a.commitKey1,
    a.commitKey2,
  ]);
  const d = sha256d(layout);
  return {
    ...a,
    nodeSig1: sign(n.node1.priv, d),
    nodeSig2: sign(n.node2.priv, d),
    commitSig1: sign(n.commit1.priv, d),
    commitSig2: sign(n.commit2.priv, d),
  };
}

function updateLayout(u: ChannelUpdate): Buffer {
  const b = Buffer.alloc(43);
  b.writeUInt8(63, 0);
  b.writeBigUInt64BE(u.shortChannelId, 1);
  b.writeUInt8(u.direction, 9);
  b.writeUInt32BE(u.timestamp, 10);
  b.writeUInt8(u.disabled ? 1 : 0, 14);
  b.writeUInt32BE(u.cltvExpiryDelta, 15);
  b.writeBigUInt64BE(u.htlcMinimumMsat, 19);
  b.writeBigUInt64BE(u.htlcMaximumMsat, 27);
  b.writeUInt32BE(Number(u.feeBaseMsat), 35);
  b.writeUInt32BE(Number(u.feeProportionalMillionths), 39);
  return b;
}
const signedUpdate = (priv: Buffer, over: Partial<ChannelUpdate> = {}): ChannelUpdate => {
  const u = unsignedUpdate(over);
  return { ...u, sig: sign(priv, sha256d(updateLayout(u))) };
};

describe("channel_announcement", () => {
  it("verifies with all four signatures; each one tampered or high-S fails", () => {
    const a = signedAnnouncement();
    expect(verifyChannelAnnouncement(a)).toEqual({ ok: true });
    for (const f of ["nodeSig1", "nodeSig2", "commitSig1", "commitSig2"] as const) {
      const flipped = Buffer.from(a[f]);
      flipped[10]! ^= 1;
      expect(verifyChannelAnnouncement({ ...a, [f]: flipped })).toMatchObject({
        ok: false,
        code: "BAD_SIGNATURE",
      });
      expect(verifyChannelAnnouncement({ ...a, [f]: highS(a[f]) })).toMatchObject({
        ok: false,
        code: "BAD_SIGNATURE",
      });
    }
    // Node 1's signature where node 2's belongs.
    expect(verifyChannelAnnouncement({ ...a, nodeSig2: a.nodeSig1 })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
  });

  it("a changed field (scid, a commit key) no longer verifies", () => {
    const a = signedAnnouncement();
    expect(verifyChannelAnnouncement({ ...a, shortChannelId: a.shortChannelId + 1n })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
    expect(verifyChannelAnnouncement({ ...a, commitKey2: keyPair("someone else").pub })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
  });

  it("node ids out of order or equal: MALFORMED before any signature", () => {
    const a = signedAnnouncement();
    const swapped = {
      ...a,
      nodeId1: a.nodeId2,
      nodeId2: a.nodeId1,
      nodeSig1: a.nodeSig2,
      nodeSig2: a.nodeSig1,
    };
    expect(verifyChannelAnnouncement(swapped)).toMatchObject({ ok: false, code: "MALFORMED" });
    expect(verifyChannelAnnouncement({ ...a, nodeId2: a.nodeId1 })).toMatchObject({
      ok: false,
      code: "MALFORMED",
    });
  });
});

describe("channel_update", () => {
  it("signed by the forwarding node of its direction", () => {
    const a = signedAnnouncement();
    const u0 = signedUpdate(n.node1.priv, { direction: 0 });
    const u1 = signedUpdate(n.node2.priv, { direction: 1 });
    expect(forwardingNode(a, u0)).toEqual(n.node1.pub);
    expect(forwardingNode(a, u1)).toEqual(n.node2.pub);
    expect(verifyChannelUpdate(u0, forwardingNode(a, u0))).toEqual({ ok: true });
    expect(verifyChannelUpdate(u1, forwardingNode(a, u1))).toEqual({ ok: true });
    // The other node's key, or the update with its direction flipped: not valid.
    expect(verifyChannelUpdate(u0, n.node2.pub)).toMatchObject({ code: "BAD_SIGNATURE" });
    expect(verifyChannelUpdate({ ...u0, direction: 1 }, n.node1.pub)).toMatchObject({
      code: "BAD_SIGNATURE",
    });
  });

  it("every field is covered: changing any one breaks the signature", () => {
    const u = signedUpdate(n.node1.priv);
    const changed: Partial<ChannelUpdate>[] = [
      { shortChannelId: u.shortChannelId ^ 1n },
      { timestamp: u.timestamp + 1 },
      { disabled: true },
      { cltvExpiryDelta: u.cltvExpiryDelta + 1 },
      { htlcMinimumMsat: msat(u.htlcMinimumMsat + 1n) },
      { htlcMaximumMsat: msat(u.htlcMaximumMsat - 1n) },
      { feeBaseMsat: msat(u.feeBaseMsat + 1n) },
      { feeProportionalMillionths: u.feeProportionalMillionths + 1n },
    ];
    for (const c of changed)
      expect(verifyChannelUpdate({ ...u, ...c }, n.node1.pub), JSON.stringify(Object.keys(c))).toMatchObject({
        code: "BAD_SIGNATURE",
      });
    expect(verifyChannelUpdate({ ...u, sig: highS(u.sig) }, n.node1.pub)).toMatchObject({
      code: "BAD_SIGNATURE",
    });
  });

  it("htlc_minimum above htlc_maximum is MALFORMED", () => {
    const u = signedUpdate(n.node1.priv, { htlcMinimumMsat: msat(10n), htlcMaximumMsat: msat(9n) });
    expect(verifyChannelUpdate(u, n.node1.pub)).toMatchObject({ ok: false, code: "MALFORMED" });
  });

  it("a signature that is not even a curve point's: BAD_SIGNATURE, not an exception", () => {
    const u = { ...unsignedUpdate(), sig: Buffer.alloc(64, 0xff) };
    expect(verifyChannelUpdate(u, n.node1.pub)).toMatchObject({ code: "BAD_SIGNATURE" });
    expect(verifyChannelUpdate(u, Buffer.alloc(33, 2))).toMatchObject({ code: "BAD_SIGNATURE" });
  });
});

describe("node_announcement", () => {
  const node = keyPair("node a");
  function signed(over: Parameters<typeof unsignedNode>[1] = {}) {
    const x = unsignedNode(node.pub, over);
    const alias = Buffer.from(x.alias, "utf8");
    const parts = [Buffer.from([65]), x.nodeId, Buffer.alloc(4), Buffer.alloc(2), alias, Buffer.alloc(2)];
    parts[2]!.writeUInt32BE(x.timestamp);
    parts[3]!.writeUInt16BE(alias.length);
    parts[5]!.writeUInt16BE(x.addresses.length);
    for (const a of x.addresses) {
      const len = Buffer.alloc(2);
      len.writeUInt16BE(Buffer.byteLength(a));
      parts.push(len, Buffer.from(a));
    }
    return { ...x, sig: sign(node.priv, sha256d(Buffer.concat(parts))) };
  }

  it("verifies; a changed alias, address or timestamp does not", () => {
    const x = signed();
    expect(verifyNodeAnnouncement(x)).toEqual({ ok: true });
    expect(verifyNodeAnnouncement({ ...x, alias: "mallory" })).toMatchObject({ code: "BAD_SIGNATURE" });
    expect(verifyNodeAnnouncement({ ...x, addresses: x.addresses.slice(1) })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
    expect(verifyNodeAnnouncement({ ...x, timestamp: x.timestamp + 1 })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
    expect(verifyNodeAnnouncement({ ...x, nodeId: keyPair("node b").pub })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
  });

  it("an alias over 32 bytes, five addresses, or an address that is not host:port: MALFORMED", () => {
    expect(verifyNodeAnnouncement(signed({ alias: "x".repeat(32) }))).toEqual({ ok: true });
    expect(verifyNodeAnnouncement(signed({ alias: "é".repeat(17) }))).toMatchObject({ code: "MALFORMED" }); // 34 bytes
    expect(verifyNodeAnnouncement(signed({ addresses: ["a:1", "b:2", "c:3", "d:4"] }))).toEqual({ ok: true });
    expect(verifyNodeAnnouncement(signed({ addresses: ["a:1", "b:2", "c:3", "d:4", "e:5"] }))).toMatchObject({
      code: "MALFORMED",
    });
    for (const bad of ["nohost", ":9735", "a:0", "a:65536", "a b:1", "[::1]", "a:01"])
      expect(verifyNodeAnnouncement(signed({ addresses: [bad] })), bad).toMatchObject({ code: "MALFORMED" });
  });
});

describe("timestamps", () => {
  it("must be newer than the stored one and at most an hour ahead of our clock", () => {
    const now = 1_700_000_000;
    expect(checkTimestamp(now, { nowSeconds: now })).toEqual({ ok: true });
    expect(checkTimestamp(now, { nowSeconds: now, stored: now - 1 })).toEqual({ ok: true });
    expect(checkTimestamp(now, { nowSeconds: now, stored: now })).toMatchObject({ code: "STALE_TIMESTAMP" });
    expect(checkTimestamp(now - 5, { nowSeconds: now, stored: now })).toMatchObject({
      code: "STALE_TIMESTAMP",
    });
    expect(checkTimestamp(now + 3600, { nowSeconds: now })).toEqual({ ok: true });
    expect(checkTimestamp(now + 3601, { nowSeconds: now })).toMatchObject({ code: "FUTURE_TIMESTAMP" });
    expect(checkTimestamp(now + 61, { nowSeconds: now, maxFutureSeconds: 60 })).toMatchObject({
      code: "FUTURE_TIMESTAMP",
    });
  });
});
