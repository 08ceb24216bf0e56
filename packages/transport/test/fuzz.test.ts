import fc from "fast-check";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import {
  HandshakeError,
  InitiatorHandshake,
  localStaticEcdh,
  MAX_MESSAGE_BYTES,
  MessageCipher,
  ResponderHandshake,
  TransportError,
} from "@ln/transport";

const privKey = fc.uint8Array({ minLength: 32, maxLength: 32 }).filter((k) => ecc.isPrivate(k));

function pubOf(priv: Uint8Array): Buffer {
  const pub = ecc.pointFromScalar(priv, true);
  if (pub === null) throw new Error("invalid private key");
  return Buffer.from(pub);
}

// Fixed keys so single-bit-flip tests can replay one transcript many times.
const lsPriv = Buffer.alloc(32, 0x11);
const rsPriv = Buffer.alloc(32, 0x21);
const ePrivI = Buffer.alloc(32, 0x12);
const ePrivR = Buffer.alloc(32, 0x22);

const initiator = (): InitiatorHandshake =>
  new InitiatorHandshake({
    localStatic: pubOf(lsPriv),
    staticEcdh: localStaticEcdh(lsPriv),
    remoteStatic: pubOf(rsPriv),
    ephemeralPriv: ePrivI,
  });
const responder = (): ResponderHandshake =>
  new ResponderHandshake({
    localStatic: pubOf(rsPriv),
    staticEcdh: localStaticEcdh(rsPriv),
    ephemeralPriv: ePrivR,
  });

async function transcript(): Promise<{ act1: Buffer; act2: Buffer; act3: Buffer }> {
  const i = initiator();
  const r = responder();
  const act1 = await i.actOne();
  const act2 = await r.actOneThenTwo(act1);
  const { act3 } = await i.actTwoThenThree(act2);
  await r.actThree(act3);
  return { act1, act2, act3 };
}
const valid = await transcript();

/** Resolves if `run` succeeds; fails the property if it throws anything but `cls`. */
async function onlyThrows(
  cls: typeof HandshakeError | typeof TransportError,
  run: () => unknown,
): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (!(err instanceof cls)) throw new Error(`unexpected ${String(err)}`);
  }
}

/** Rejects with `cls` or fails. */
async function rejected(
  cls: typeof HandshakeError | typeof TransportError,
  run: () => unknown,
): Promise<void> {
  let threw = false;
  try {
    await run();
  } catch (err) {
    threw = true;
    expect(err).toBeInstanceOf(cls);
  }
  expect(threw).toBe(true);
}

function flip(buf: Buffer, bit: number): Buffer {
  const out = Buffer.from(buf);
  out[bit >> 3] = (out[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return out;
}

// Random bytes of any length, plus well-formed-looking acts (version 0, real point) to get past the cheap checks.
const actBytes = (len: number): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.uint8Array({ maxLength: 80 }),
    fc.uint8Array({ minLength: len, maxLength: len }),
    fc
      .tuple(privKey, fc.uint8Array({ minLength: len - 34, maxLength: len - 34 }))
      .map(([k, rest]) => Buffer.concat([Buffer.from([0]), pubOf(k), rest])),
    fc
      .uint8Array({ minLength: len - 1, maxLength: len - 1 })
      .map((rest) => Buffer.concat([Buffer.from([0]), rest])),
  );

describe("handshake fuzz", () => {
  it("actOneThenTwo only throws HandshakeError", async () => {
    await fc.assert(
      fc.asyncProperty(actBytes(50), (bytes) =>
        onlyThrows(HandshakeError, () => responder().actOneThenTwo(bytes)),
      ),
      { numRuns: 300 },
    );
  });
  it("actTwoThenThree only throws HandshakeError", async () => {
    await fc.assert(
      fc.asyncProperty(actBytes(50), async (bytes) => {
        const i = initiator();
        await i.actOne();
        await onlyThrows(HandshakeError, () => i.actTwoThenThree(bytes));
      }),
      { numRuns: 300 },
    );
  });
  it("actThree only throws HandshakeError", async () => {
    await fc.assert(
      fc.asyncProperty(actBytes(66), async (bytes) => {
        const r = responder();
        await r.actOneThenTwo(valid.act1);
        await onlyThrows(HandshakeError, () => r.actThree(bytes));
      }),
      { numRuns: 300 },
    );
  });

  // Exhaustive over every bit of each act.
  it("rejects every single-bit flip of act one", async () => {
    for (let bit = 0; bit < valid.act1.length * 8; bit++) {
      await rejected(HandshakeError, () => responder().actOneThenTwo(flip(valid.act1, bit)));
    }
  });
  it("rejects every single-bit flip of act two", async () => {
    for (let bit = 0; bit < valid.act2.length * 8; bit++) {
      const i = initiator();
      await i.actOne();
      await rejected(HandshakeError, () => i.actTwoThenThree(flip(valid.act2, bit)));
    }
  });
  it("rejects every single-bit flip of act three", async () => {
    for (let bit = 0; bit < valid.act3.length * 8; bit++) {
      const r = responder();
      await r.actOneThenTwo(valid.act1);
      await rejected(HandshakeError, () => r.actThree(flip(valid.act3, bit)));
    }
  });

  it("random initiator and responder agree on keys", async () => {
    await fc.assert(
      fc.asyncProperty(privKey, privKey, privKey, privKey, async (ls, rs, ei, er) => {
        const i = new InitiatorHandshake({
          localStatic: pubOf(ls),
          staticEcdh: localStaticEcdh(ls),
          remoteStatic: pubOf(rs),
          ephemeralPriv: ei,
        });
        const r = new ResponderHandshake({
          localStatic: pubOf(rs),
          staticEcdh: localStaticEcdh(rs),
          ephemeralPriv: er,
        });
        const act2 = await r.actOneThenTwo(await i.actOne());
        const { act3, result: ir } = await i.actTwoThenThree(act2);
        const rr = await r.actThree(act3);
        expect(act2.length).toBe(50);
        expect(act3.length).toBe(66);
        expect(ir.sendingKey).toEqual(rr.receivingKey);
        expect(ir.receivingKey).toEqual(rr.sendingKey);
        expect(ir.sendingKey).not.toEqual(ir.receivingKey);
        expect(ir.chainingKey).toEqual(rr.chainingKey);
        expect(ir.handshakeHash).toEqual(rr.handshakeHash);
        expect(i.handshakeHash).toEqual(r.handshakeHash);
        expect(rr.remoteStatic).toEqual(pubOf(ls));
        expect(ir.remoteStatic).toEqual(pubOf(rs));
        // Both directions carry traffic.
        const ping = ir.encryptor.encryptMessage(Buffer.from("ping"));
        expect(rr.decryptor.decryptLength(ping.subarray(0, 18))).toBe(4);
        expect(rr.decryptor.decryptBody(ping.subarray(18)).toString()).toBe("ping");
        const pong = rr.encryptor.encryptMessage(Buffer.from("pong"));
        expect(ir.decryptor.decryptLength(pong.subarray(0, 18))).toBe(4);
        expect(ir.decryptor.decryptBody(pong.subarray(18)).toString()).toBe("pong");
      }),
      { numRuns: 50 },
    );
  });
  it("random ephemeral keys (the default) also agree", async () => {
    const i = new InitiatorHandshake({
      localStatic: pubOf(lsPriv),
      staticEcdh: localStaticEcdh(lsPriv),
      remoteStatic: pubOf(rsPriv),
    });
    const r = new ResponderHandshake({ localStatic: pubOf(rsPriv), staticEcdh: localStaticEcdh(rsPriv) });
    const act1 = await i.actOne();
    expect(act1).not.toEqual(valid.act1);
    const { act3, result } = await i.actTwoThenThree(await r.actOneThenTwo(act1));
    expect((await r.actThree(act3)).receivingKey).toEqual(result.sendingKey);
  });
});

const key32 = fc.uint8Array({ minLength: 32, maxLength: 32 });

/** Deterministic filler so large messages need not come from fast-check byte by byte. */
function fill(len: number, seed: number): Buffer {
  const out = Buffer.allocUnsafe(len);
  let x = seed | 1;
  for (let j = 0; j < len; j++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[j] = x & 0xff;
  }
  return out;
}

describe("message cipher fuzz", () => {
  it("decryptLength and decryptBody only throw TransportError", async () => {
    await fc.assert(
      fc.asyncProperty(key32, key32, fc.uint8Array({ maxLength: 200 }), async (k, ck, bytes) => {
        const c = new MessageCipher(k, ck);
        await onlyThrows(TransportError, () => c.decryptLength(bytes));
        await onlyThrows(TransportError, () => c.decryptBody(bytes));
        await onlyThrows(TransportError, () => c.decryptLength(bytes.subarray(0, 18)));
      }),
      { numRuns: 500 },
    );
  });

  it("rejects any single-bit flip of a message", () => {
    fc.assert(
      fc.property(
        key32,
        key32,
        fc.uint8Array({ maxLength: 300 }),
        fc.nat(),
        fc.nat(500),
        (k, ck, msg, pick, skip) => {
          const enc = new MessageCipher(k, ck);
          const dec = new MessageCipher(k, ck);
          // Start at a random nonce so flips are tried across the rotation boundary too.
          for (let j = 0; j < skip; j++) {
            const w = enc.encryptMessage(new Uint8Array(0));
            dec.decryptLength(w.subarray(0, 18));
            dec.decryptBody(w.subarray(18));
          }
          const wire = enc.encryptMessage(msg);
          const bit = pick % (wire.length * 8);
          const bad = flip(wire, bit);
          if (bit < 18 * 8) {
            expect(() => dec.decryptLength(bad.subarray(0, 18))).toThrow(TransportError);
            expect(() => dec.decryptLength(bad.subarray(0, 18))).toThrow(/length header failed/);
          } else {
            expect(dec.decryptLength(bad.subarray(0, 18))).toBe(msg.length);
            expect(() => dec.decryptBody(bad.subarray(18))).toThrow(/message body failed/);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("round-trips random messages of 0..65535 bytes across key rotations", () => {
    const size = fc.oneof(fc.constantFrom(0, 1, MAX_MESSAGE_BYTES), fc.nat(MAX_MESSAGE_BYTES), fc.nat(64));
    fc.assert(
      fc.property(
        key32,
        key32,
        fc.array(size, { minLength: 1001, maxLength: 1200 }),
        fc.integer(),
        (k, ck, sizes, seed) => {
          const enc = new MessageCipher(k, ck);
          const dec = new MessageCipher(k, ck);
          sizes.forEach((len, j) => {
            const msg = fill(len, seed + j);
            const wire = enc.encryptMessage(msg);
            expect(wire.length).toBe(18 + len + 16);
            const n = dec.decryptLength(wire.subarray(0, 18));
            expect(n).toBe(len);
            expect(dec.decryptBody(wire.subarray(18, 18 + n + 16)).equals(msg)).toBe(true);
          });
          expect(enc.nonce).toBe(dec.nonce);
        },
      ),
      { numRuns: 4 },
    );
  });

  it("round-trips fully random small messages", () => {
    fc.assert(
      fc.property(
        key32,
        key32,
        fc.array(fc.uint8Array({ maxLength: 100 }), { maxLength: 50 }),
        (k, ck, msgs) => {
          const enc = new MessageCipher(k, ck);
          const dec = new MessageCipher(k, ck);
          for (const msg of msgs) {
            const wire = enc.encryptMessage(msg);
            dec.decryptLength(wire.subarray(0, 18));
            expect(dec.decryptBody(wire.subarray(18))).toEqual(Buffer.from(msg));
          }
        },
      ),
    );
  });

  it("refuses messages over 65535 bytes", () => {
    const c = new MessageCipher(Buffer.alloc(32, 1), Buffer.alloc(32, 2));
    expect(() => c.encryptMessage(new Uint8Array(MAX_MESSAGE_BYTES + 1))).toThrow(TransportError);
    expect(c.nonce).toBe(0);
    expect(c.encryptMessage(new Uint8Array(MAX_MESSAGE_BYTES)).length).toBe(MAX_MESSAGE_BYTES + 34);
  });
});
