/** Error packets (BOLT #4 "Returning Errors") and the fail reason's two forms (our draft's fail_reason). */
import { createCipheriv } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  createErrorPacket,
  decodeErrorPacket,
  decodeFailReason,
  encodeFailure,
  encodeMalformedReason,
  OnionError,
  wrapErrorPacket,
} from "@ln/onion";
import { caught, hex, hmac, sha256 } from "./helpers.js";

const secrets = [0, 1, 2].map((i) => sha256(Buffer.from(`secret ${i}`)));

/** The ammag layer and the um HMAC computed with node:crypto alone. */
const ammag = (secret: Buffer, b: Buffer): Buffer => {
  const stream = createCipheriv("chacha20", hmac(Buffer.from("ammag"), secret), Buffer.alloc(16)).update(
    Buffer.alloc(b.length),
  );
  return Buffer.from(b.map((x, i) => x ^ stream[i]!));
};
const sealed = (secret: Buffer, body: Buffer): Buffer =>
  ammag(secret, Buffer.concat([hmac(hmac(Buffer.from("um"), secret), body), body]));

describe("error packets", () => {
  it("a message over 256 bytes is not padded: HMAC, u16 length, message, u16 pad length 0", () => {
    const message = Buffer.concat([hex("4009"), Buffer.alloc(298, 7)]);
    const packet = createErrorPacket(secrets[2]!, message);
    expect(packet.length).toBe(32 + 2 + 300 + 2);
    expect(packet.equals(sealed(secrets[2]!, Buffer.concat([hex("012c"), message, hex("0000")])))).toBe(true);
    expect(
      decodeErrorPacket(secrets, wrapErrorPacket(secrets[0]!, wrapErrorPacket(secrets[1]!, packet))),
    ).toEqual({
      hop: 2,
      failure: { name: "unknown", code: 0x4009, data: Buffer.alloc(298, 7) },
    });
  });

  it("the hop that made it is found whichever it is; wrapping is its own inverse", () => {
    const message = encodeFailure({
      name: "fee_insufficient",
      htlcMsat: 1000n,
      channelUpdate: Buffer.alloc(0),
    });
    for (let at = 0; at < 3; at++) {
      let packet = createErrorPacket(secrets[at]!, message);
      for (let i = at - 1; i >= 0; i--) packet = wrapErrorPacket(secrets[i]!, packet);
      expect(decodeErrorPacket(secrets, packet).hop).toBe(at);
      expect(wrapErrorPacket(secrets[0]!, wrapErrorPacket(secrets[0]!, packet)).equals(packet)).toBe(true);
    }
  });

  it("a changed byte, a missing layer or a secret not of the route: UNREADABLE_ERROR", async () => {
    const packet = createErrorPacket(secrets[1]!, hex("2002"));
    const wrapped = wrapErrorPacket(secrets[0]!, packet);
    const changed = Buffer.from(wrapped);
    changed[100] = changed[100]! ^ 1;
    for (const [ss, p] of [
      [secrets, changed],
      [secrets, packet], // hop 0 did not add its layer
      [[sha256(Buffer.from("other")), secrets[1]!], packet],
      [secrets, Buffer.alloc(0)],
      [[], wrapped],
    ] as const) {
      const e = await caught(() => decodeErrorPacket([...ss], p));
      expect(e).toMatchObject({ name: "OnionError", code: "UNREADABLE_ERROR" });
    }
  });

  it("a packet whose HMAC matches but whose lengths or message are wrong: INVALID_FAILURE naming the hop", async () => {
    const bodies = [
      Buffer.concat([hex("0100"), Buffer.alloc(10)]), // failure length overruns
      Buffer.concat([hex("0002 2002 00fd"), Buffer.alloc(254)]), // pad length 253, 254 bytes follow
      Buffer.concat([hex("0003 100c00 00fd"), Buffer.alloc(253)]), // fee_insufficient cut short
    ];
    for (const body of bodies) {
      const e = await caught(() =>
        decodeErrorPacket(secrets, wrapErrorPacket(secrets[0]!, sealed(secrets[1]!, body))),
      );
      expect(e).toBeInstanceOf(OnionError);
      expect(e).toMatchObject({ code: "INVALID_FAILURE", hop: 1 });
    }
  });
});

describe("fail reasons", () => {
  const sha = Buffer.alloc(32, 0x11);

  it("a malformed reason is the BADONION code and the sha256 of the onion, 34 bytes", () => {
    expect(encodeMalformedReason(0xc005, sha).toString("hex")).toBe("c005" + "11".repeat(32));
    expect(decodeFailReason(encodeMalformedReason(0xc006, sha))).toEqual({
      kind: "malformed",
      failure: { name: "invalid_onion_key", sha256OfOnion: sha },
    });
    // An unknown BADONION code is kept raw.
    expect(decodeFailReason(encodeMalformedReason(0xc018, sha))).toEqual({
      kind: "malformed",
      failure: { name: "unknown", code: 0xc018, data: sha },
    });
    for (const [code, s] of [
      [0x4005, sha],
      [0x1c005, sha],
      [0xc005, sha.subarray(1)],
    ] as const)
      expect(() => encodeMalformedReason(code, s)).toThrow(
        expect.objectContaining({ code: "INVALID_FAILURE" }),
      );
  });

  it("292 bytes or more is an error packet; a 34-byte reason without BADONION, or any other length, is INVALID_FAIL_REASON", async () => {
    const packet = createErrorPacket(secrets[0]!, hex("2002"));
    expect(packet.length).toBe(292);
    expect(decodeFailReason(packet)).toEqual({ kind: "packet", packet });
    expect(decodeFailReason(Buffer.alloc(400))).toEqual({ kind: "packet", packet: Buffer.alloc(400) });
    for (const b of [
      Buffer.concat([hex("2002"), sha]),
      Buffer.alloc(0),
      Buffer.alloc(33, 0xc0),
      Buffer.alloc(35, 0xc0),
      Buffer.alloc(291),
    ])
      expect(await caught(() => decodeFailReason(b))).toMatchObject({ code: "INVALID_FAIL_REASON" });
  });

  it("the hop before a node that could not peel turns the malformed reason into its own error packet", () => {
    const reason = decodeFailReason(encodeMalformedReason(0xc005, sha));
    if (reason.kind !== "malformed") throw new Error("not malformed");
    const packet = wrapErrorPacket(
      secrets[0]!,
      createErrorPacket(secrets[1]!, encodeFailure(reason.failure)),
    );
    expect(decodeErrorPacket(secrets, packet)).toEqual({
      hop: 1,
      failure: { name: "invalid_onion_hmac", sha256OfOnion: sha },
    });
  });
});
