/**
 * Property tests: whatever a peer sends, the decoders only throw OnionError (peelOnion only rejects
 * with one); a built onion peels back to its payloads; an error made at any hop is read as that hop's.
 */
import { createHmac } from "node:crypto";
import fc from "fast-check";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import {
  buildOnion,
  createErrorPacket,
  decodeErrorPacket,
  decodeFailReason,
  decodeFailure,
  decodeHopPayload,
  encodeFailure,
  encodeHopPayload,
  FAILURE_CODES,
  OnionError,
  peelOnion,
  wrapErrorPacket,
  type Failure,
  type FailureName,
  type HopPayload,
} from "@ln/onion";
import { craft, localEcdh, sha256 } from "./helpers.js";

const bytes = (min: number, max: number) =>
  fc.uint8Array({ minLength: min, maxLength: max }).map((b) => Buffer.from(b));
const privKey = fc
  .uint8Array({ minLength: 32, maxLength: 32 })
  .filter((k) => ecc.isPrivate(k))
  .map((k) => Buffer.from(k));
const ad = Buffer.alloc(32, 0x42);

/** Runs f; if it throws, the error must be an OnionError. */
function onlyOnionError(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof OnionError)) throw e;
  }
}

const payload: fc.Arbitrary<HopPayload> = fc.record(
  {
    amtToForwardMsat: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
    outgoingCltvValue: fc.integer({ min: 0, max: 0xffff_ffff }),
    shortChannelId: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
    paymentData: fc.record({
      paymentSecret: bytes(32, 32),
      totalMsat: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
    }),
  },
  { requiredKeys: ["amtToForwardMsat", "outgoingCltvValue"] },
);

describe("decoders on arbitrary bytes throw only OnionError", () => {
  it("decodeHopPayload, decodeFailure, decodeFailReason", () => {
    fc.assert(
      fc.property(bytes(0, 400), (b) => {
        onlyOnionError(() => decodeHopPayload(b));
        onlyOnionError(() => decodeFailure(b));
        onlyOnionError(() => decodeFailReason(b));
      }),
      { numRuns: 3000 },
    );
  });

  it("decodeHopPayload on a valid prefix with random TLVs after it", () => {
    fc.assert(
      fc.property(bytes(0, 300), (tail) => {
        const b = Buffer.concat([Buffer.from([tail.length + 6]), Buffer.from("02012a040105", "hex"), tail]);
        onlyOnionError(() => decodeHopPayload(b));
      }),
      { numRuns: 2000 },
    );
  });

  it("decodeFailure after every known code", () => {
    const codes = Object.values(FAILURE_CODES);
    fc.assert(
      fc.property(fc.constantFrom(...codes), bytes(0, 80), (code, data) => {
        const b = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), data]);
        onlyOnionError(() => decodeFailure(b));
      }),
      { numRuns: 2000 },
    );
  });

  it("decodeErrorPacket with random secrets", () => {
    fc.assert(
      fc.property(fc.array(bytes(32, 32), { maxLength: 4 }), bytes(0, 600), (secrets, b) => {
        onlyOnionError(() => decodeErrorPacket(secrets, b));
      }),
      { numRuns: 500 },
    );
  });

  it("decodeErrorPacket on packets whose HMAC matches around a random body", () => {
    fc.assert(
      fc.property(bytes(32, 32), bytes(0, 400), (secret, body) => {
        // Sealed as createErrorPacket would, but around an arbitrary body (its lengths included).
        const packet = wrapErrorPacket(secret, Buffer.concat([hmacUm(secret, body), body]));
        onlyOnionError(() => decodeErrorPacket([secret], packet));
      }),
      { numRuns: 500 },
    );
  });
});

const hmacUm = (secret: Buffer, body: Buffer): Buffer =>
  createHmac("sha256", createHmac("sha256", "um").update(secret).digest()).update(body).digest();

describe("peelOnion rejects only with OnionError", () => {
  const key = sha256(Buffer.from("fuzz node"));
  const pub = Buffer.from(ecc.pointFromScalar(key, true)!);
  const { packet } = buildOnion({
    sessionKey: sha256(Buffer.from("fuzz session")),
    hops: [
      {
        nodeId: pub,
        payload: encodeHopPayload({ amtToForwardMsat: 5n, outgoingCltvValue: 9, shortChannelId: 3n }),
      },
      { nodeId: pub, payload: encodeHopPayload({ amtToForwardMsat: 5n, outgoingCltvValue: 9 }) },
    ],
    associatedData: ad,
  });

  it("random packets, of the right length or not", async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(bytes(1366, 1366), bytes(0, 1400)), async (b) => {
        const r = await peelOnion(b, ad, localEcdh(key)).then(
          () => undefined,
          (e: unknown) => e,
        );
        if (r !== undefined) expect(r).toBeInstanceOf(OnionError);
      }),
      { numRuns: 300 },
    );
  });

  it("packets with a valid HMAC around random hop payloads (what a peer can make for us)", async () => {
    const sessionKey = sha256(Buffer.from("fuzz crafted"));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          bytes(0, 1300),
          // A payload length near the limits, then anything.
          fc
            .tuple(fc.integer({ min: 0, max: 1400 }), bytes(0, 1300))
            .map(([n, rest]) => Buffer.concat([Buffer.from([0xfd, n >> 8, n & 0xff]), rest])),
          // A plausible start, then random TLVs.
          fc
            .tuple(fc.integer({ min: 6, max: 252 }), bytes(0, 300))
            .map(([n, rest]) => Buffer.concat([Buffer.from([n]), Buffer.from("02012a040105", "hex"), rest])),
        ),
        async (start) => {
          const clear = Buffer.alloc(1300);
          start.subarray(0, 1300).copy(clear);
          const { packet } = craft(clear, pub, sessionKey, ad);
          const r = await peelOnion(packet, ad, localEcdh(key)).then(
            (p) => p,
            (e: unknown) => e,
          );
          if (r instanceof Error) {
            expect(r).toBeInstanceOf(OnionError);
            expect((r as OnionError).code).toBe("INVALID_PAYLOAD");
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it("a real packet with bytes changed, and the ECDH failing or not", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 1365 }), fc.integer({ min: 0, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.boolean(),
        async (changes, ecdhFails) => {
          const b = Buffer.from(packet);
          for (const [at, v] of changes) b[at] = v;
          const ecdh = ecdhFails ? () => Promise.reject(new Error("down")) : localEcdh(key);
          const r = await peelOnion(b, ad, ecdh).then(
            () => undefined,
            (e: unknown) => e,
          );
          if (r !== undefined) expect(r).toBeInstanceOf(OnionError);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("round trips", () => {
  it("an onion built for random hops gives each hop its payload and its shared secret, the last one final", async () => {
    await fc.assert(
      fc.asyncProperty(
        privKey,
        fc.array(fc.tuple(privKey, payload), { minLength: 1, maxLength: 8 }),
        bytes(0, 64),
        async (sessionKey, route, assoc) => {
          // Every hop but the last forwards, so it needs a short_channel_id.
          const hops = route.map(([, p], i) =>
            i < route.length - 1 && p.shortChannelId === undefined ? { ...p, shortChannelId: 1n } : p,
          );
          const built = buildOnion({
            sessionKey,
            hops: route.map(([k], i) => ({
              nodeId: Buffer.from(ecc.pointFromScalar(k, true)!),
              payload: encodeHopPayload(hops[i]!),
            })),
            associatedData: assoc,
          });
          let packet = built.packet;
          for (const [i, [k]] of route.entries()) {
            const p = await peelOnion(packet, assoc, localEcdh(k));
            expect(p.payload).toEqual(hops[i]);
            expect(p.sharedSecret).toEqual(built.sharedSecrets[i]);
            expect(p.kind).toBe(i === route.length - 1 ? "final" : "forward");
            if (p.kind === "forward") packet = p.next;
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  const noData = (Object.keys(FAILURE_CODES) as FailureName[]).filter((n) =>
    [
      "invalid_realm",
      "temporary_node_failure",
      "permanent_node_failure",
      "permanent_channel_failure",
      "unknown_next_peer",
      "expiry_too_far",
      "mpp_timeout",
    ].includes(n),
  );
  const failure: fc.Arbitrary<Failure> = fc.oneof(
    fc.constantFrom(...noData).map((name) => ({ name }) as Failure),
    fc.record({
      name: fc.constant("fee_insufficient" as const),
      htlcMsat: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
      channelUpdate: bytes(0, 300),
    }),
    fc.record({
      name: fc.constant("incorrect_cltv_expiry" as const),
      cltvExpiry: fc.integer({ min: 0, max: 0xffff_ffff }),
      channelUpdate: bytes(0, 10),
    }),
    fc.record({
      name: fc.constant("invalid_onion_payload" as const),
      type: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
      offset: fc.integer({ min: 0, max: 0xffff }),
    }),
    fc.record({
      name: fc.constant("incorrect_or_unknown_payment_details" as const),
      htlcMsat: fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn }),
      height: fc.integer({ min: 0, max: 0xffff_ffff }),
    }),
  );

  it("an error created at random hop i and wrapped by hops i-1..0 decodes to hop i and its failure", () => {
    fc.assert(
      fc.property(
        fc.array(bytes(32, 32), { minLength: 1, maxLength: 20 }),
        fc.nat(),
        failure,
        (secrets, n, f) => {
          const at = n % secrets.length;
          let packet = createErrorPacket(secrets[at]!, encodeFailure(f));
          for (let i = at - 1; i >= 0; i--) packet = wrapErrorPacket(secrets[i]!, packet);
          expect(decodeErrorPacket(secrets, packet)).toEqual({ hop: at, failure: f });
        },
      ),
      { numRuns: 300 },
    );
  });
});
