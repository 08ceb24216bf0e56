/** Peeling an onion (BOLT #4 "Packet Forwarding"): every way it fails and what it sends back. */
import { describe, expect, it } from "vitest";
import {
  buildOnion,
  encodeHopPayload,
  ONION_PACKET_BYTES,
  OnionError,
  peelOnion,
  type Ecdh,
  type HopPayload,
  type OnionHop,
} from "@ln/onion";
import { caught, craft, hex, localEcdh, node, sha256 } from "./helpers.js";

const ad = Buffer.alloc(32, 0x42);
const sessionKey = sha256(Buffer.from("session"));
const alice = node("alice");
const bob = node("bob");
const forward = (scid: bigint): HopPayload => ({
  amtToForwardMsat: 1000n,
  outgoingCltvValue: 700,
  shortChannelId: scid,
});
const final: HopPayload = { amtToForwardMsat: 1000n, outgoingCltvValue: 650 };

/** Never called: the onion must be refused before the ECDH. */
const noEcdh: Ecdh = () => Promise.reject(new Error("ECDH called"));

async function onionError(p: Promise<unknown>): Promise<OnionError> {
  const e = await caught(() => p);
  expect(e).toBeInstanceOf(OnionError);
  return e as OnionError;
}

describe("peelOnion", () => {
  const two = buildOnion({
    sessionKey,
    hops: [
      { nodeId: alice.pub, payload: encodeHopPayload(forward(77n)) },
      { nodeId: bob.pub, payload: encodeHopPayload(final) },
    ],
    associatedData: ad,
  });

  it("a route of two: alice forwards (with bob's packet), bob is final; the shared secrets are the payer's", async () => {
    const a = await peelOnion(two.packet, ad, localEcdh(alice.priv));
    expect(a).toMatchObject({ kind: "forward", payload: forward(77n), sharedSecret: two.sharedSecrets[0] });
    if (a.kind !== "forward") throw new Error("not a forward");
    const b = await peelOnion(a.next, ad, localEcdh(bob.priv));
    expect(b).toEqual({ kind: "final", payload: final, sharedSecret: two.sharedSecrets[1] });
  });

  it("a packet that is not 1366 bytes: INVALID_LENGTH, invalid_onion_version over the bytes received", async () => {
    for (const packet of [
      two.packet.subarray(0, ONION_PACKET_BYTES - 1),
      Buffer.concat([two.packet, hex("00")]),
      Buffer.alloc(0),
    ]) {
      const e = await onionError(peelOnion(packet, ad, noEcdh));
      expect(e.code).toBe("INVALID_LENGTH");
      expect(e.failure).toEqual({ name: "invalid_onion_version", sha256OfOnion: sha256(packet) });
      expect(e.sharedSecret).toBeUndefined();
    }
  });

  it("version 1: INVALID_VERSION, invalid_onion_version", async () => {
    const packet = Buffer.from(two.packet);
    packet[0] = 1;
    const e = await onionError(peelOnion(packet, ad, noEcdh));
    expect(e.code).toBe("INVALID_VERSION");
    expect(e.failure).toEqual({ name: "invalid_onion_version", sha256OfOnion: sha256(packet) });
  });

  it("an ephemeral key that is not a compressed point: INVALID_KEY, invalid_onion_key, no shared secret", async () => {
    const notOnCurve = Buffer.from(two.packet);
    Buffer.alloc(33, 0).copy(notOnCurve, 1); // prefix 0
    const xNotOnCurve = Buffer.from(two.packet);
    hex("02" + "00".repeat(31) + "07").copy(xNotOnCurve, 1); // x = 7: x^3 + 7 = 350 is not a square mod p
    for (const packet of [notOnCurve, xNotOnCurve]) {
      const e = await onionError(peelOnion(packet, ad, noEcdh));
      expect(e.code).toBe("INVALID_KEY");
      expect(e.failure).toEqual({ name: "invalid_onion_key", sha256OfOnion: sha256(packet) });
      expect(e.sharedSecret).toBeUndefined();
    }
  });

  it("any changed byte after the key: INVALID_HMAC, invalid_onion_hmac with the shared secret", async () => {
    for (const at of [34, 700, 1333, 1365]) {
      const packet = Buffer.from(two.packet);
      packet[at] = packet[at]! ^ 1;
      const e = await onionError(peelOnion(packet, ad, localEcdh(alice.priv)));
      expect(e.code).toBe("INVALID_HMAC");
      expect(e.failure).toEqual({ name: "invalid_onion_hmac", sha256OfOnion: sha256(packet) });
      expect(e.sharedSecret).toEqual(two.sharedSecrets[0]);
    }
  });

  it("a failing ECDH is ECDH_FAILED with no failure to send (the onion was not found bad)", async () => {
    for (const ecdh of [
      noEcdh,
      (() => Promise.resolve(Buffer.alloc(31))) as Ecdh,
      (() => {
        throw new Error("sync");
      }) as Ecdh,
    ]) {
      const e = await onionError(peelOnion(two.packet, ad, ecdh));
      expect(e.code).toBe("ECDH_FAILED");
      expect(e.failure).toBeUndefined();
    }
  });

  it("a forward without short_channel_id: invalid_onion_payload type 6, with the shared secret", async () => {
    const { packet, sharedSecrets } = buildOnion({
      sessionKey,
      hops: [
        { nodeId: alice.pub, payload: encodeHopPayload(final) },
        { nodeId: bob.pub, payload: encodeHopPayload(final) },
      ],
      associatedData: ad,
    });
    const e = await onionError(peelOnion(packet, ad, localEcdh(alice.priv)));
    expect(e.code).toBe("INVALID_PAYLOAD");
    expect(e.failure).toEqual({ name: "invalid_onion_payload", type: 6n, offset: 0 });
    expect(e.sharedSecret).toEqual(sharedSecrets[0]);
  });

  it("an undecodable payload: invalid_onion_payload with its type and offset, and the shared secret", async () => {
    const { packet, sharedSecrets } = buildOnion({
      sessionKey,
      hops: [{ nodeId: alice.pub, payload: hex("08 02012a 040105 0a00") }], // unknown even type 10
      associatedData: ad,
    });
    const e = await onionError(peelOnion(packet, ad, localEcdh(alice.priv)));
    expect(e.code).toBe("INVALID_PAYLOAD");
    expect(e.failure).toEqual({ name: "invalid_onion_payload", type: 10n, offset: 7 });
    expect(e.sharedSecret).toEqual(sharedSecrets[0]);
  });

  it("a payload that fits with its HMAC in 1300 bytes is read; one byte more is invalid_onion_payload", async () => {
    // 02012a 040105 then odd type 11 with 1255 bytes: 3 + 3 + 1 + 3 + 1255 = 1265, prefix fd04f1, 3 + 1265 + 32 = 1300.
    const fits = Buffer.alloc(1300);
    hex("fd04f1 02012a 040105 0b fd04e7").copy(fits);
    const ok = craft(fits, alice.pub, sessionKey, ad);
    expect(await peelOnion(ok.packet, ad, localEcdh(alice.priv))).toEqual({
      kind: "final",
      payload: { amtToForwardMsat: 42n, outgoingCltvValue: 5 },
      sharedSecret: ok.secret,
    });
    const over = Buffer.alloc(1300);
    hex("fd04f2 02012a 040105 0b fd04e8").copy(over);
    const bad = craft(over, alice.pub, sessionKey, ad);
    const e = await onionError(peelOnion(bad.packet, ad, localEcdh(alice.priv)));
    expect(e.code).toBe("INVALID_PAYLOAD");
    expect(e.failure).toEqual({ name: "invalid_onion_payload", type: 0n, offset: 0 });
    expect(e.sharedSecret).toEqual(bad.secret);
  });
});

describe("buildOnion", () => {
  const hop = (i: number): OnionHop => ({
    nodeId: node(`hop ${i}`).pub,
    payload: encodeHopPayload(forward(BigInt(i))),
  });

  it("25 hops of 19-byte payloads fill 1275 of the 1300 bytes and every hop peels; 26 are ROUTE_TOO_LONG", async () => {
    const hops = Array.from({ length: 25 }, (_, i) => hop(i));
    expect(hops[0]!.payload.length).toBe(19);
    let { packet } = buildOnion({ sessionKey, hops, associatedData: ad });
    for (let i = 0; i < 25; i++) {
      const p = await peelOnion(packet, ad, localEcdh(node(`hop ${i}`).priv));
      expect(p.payload).toEqual(forward(BigInt(i)));
      expect(p.kind).toBe(i === 24 ? "final" : "forward");
      if (p.kind === "forward") packet = p.next;
    }
    const e = await caught(() => buildOnion({ sessionKey, hops: [...hops, hop(25)], associatedData: ad }));
    expect(e).toMatchObject({ name: "OnionError", code: "ROUTE_TOO_LONG" });
  });

  it("refuses no hop, a node id that is not a point, a payload whose prefix is wrong, a bad session key", async () => {
    const cases = [
      { sessionKey, hops: [], associatedData: ad },
      {
        sessionKey,
        hops: [{ nodeId: hex("02" + "00".repeat(31) + "07"), payload: hop(0).payload }],
        associatedData: ad,
      },
      {
        sessionKey,
        hops: [{ nodeId: bob.pub.subarray(0, 32), payload: hop(0).payload }],
        associatedData: ad,
      },
      { sessionKey, hops: [{ nodeId: alice.pub, payload: hex("05 02012a 040105") }], associatedData: ad },
      { sessionKey: Buffer.alloc(32), hops: [hop(0)], associatedData: ad },
    ];
    for (const c of cases) expect(await caught(() => buildOnion(c))).toMatchObject({ code: "INVALID_ROUTE" });
  });
});
