import { MAX_ANCHOR_SAT, msat, sat, txidFromInternal } from "@ln/bitcoin";
import { decodePkt, encodePkt, MAX_FAIL_REASON_BYTES, MAX_ROUTE_BYTES, WireError, type Pkt } from "@ln/proto";
import fc from "fast-check";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { cases } from "./fixtures.js";

const bytesN = (n: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b));
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const u32 = fc.nat({ max: 0xffff_ffff });
// A valid compressed key: the public key of a random valid secret.
const key = bytesN(32)
  .filter((k) => ecc.isPrivate(k))
  .map((k) => Buffer.from(ecc.pointFromScalar(k, true) as Uint8Array));
const locktime = fc.oneof(
  u32.map((blocks) => ({ blocks })),
  u32.map((seconds) => ({ seconds })),
);
const blob = (maxLength: number): fc.Arbitrary<Buffer> =>
  fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
const withAck = <T extends object>(o: T, ack: bigint | null): T => (ack === null ? o : { ...o, ack });

const pkt: fc.Arbitrary<Pkt> = fc.oneof(
  fc
    .record({
      id: u64,
      amountMsat: fc.integer({ min: 1, max: 0xffff_ffff }).map(msat),
      rHash: bytesN(32),
      expiry: locktime,
      route: blob(MAX_ROUTE_BYTES),
    })
    .map((r) => ({ kind: "update_add_htlc" as const, ...r })),
  fc.record({ id: u64, r: bytesN(32) }).map((r) => ({ kind: "update_fulfill_htlc" as const, ...r })),
  fc
    .record({ id: u64, reason: blob(MAX_FAIL_REASON_BYTES) })
    .map((r) => ({ kind: "update_fail_htlc" as const, ...r })),
  u32.map((feeRate) => ({ kind: "update_fee" as const, feeRate })),
  fc
    .tuple(bytesN(64), fc.option(u64))
    .map(([sig, ack]) => withAck({ kind: "update_commit" as const, sig }, ack)),
  fc
    .record({ revocationPreimage: bytesN(32), nextRevocationHash: bytesN(32) })
    .map((r) => ({ kind: "update_revocation" as const, ...r })),
  fc
    .record({
      delay: locktime,
      revocationHash: bytesN(32),
      nextRevocationHash: bytesN(32),
      commitKey: key,
      finalKey: key,
      anch: fc.constantFrom("WILL_CREATE_ANCHOR" as const, "WONT_CREATE_ANCHOR" as const),
      minDepth: u32,
      initialFeeRate: u32,
    })
    .map((r) => ({ kind: "open_channel" as const, ...r })),
  fc
    .record({
      txid: bytesN(32).map(txidFromInternal),
      outputIndex: u32,
      amount: fc.bigInt({ min: 0n, max: MAX_ANCHOR_SAT }).map(sat),
      commitSig: bytesN(64),
    })
    .map((r) => ({ kind: "open_anchor" as const, ...r })),
  bytesN(64).map((sig) => ({ kind: "open_commit_sig" as const, sig })),
  fc
    .option(bytesN(32))
    .map((b) =>
      b === null ? { kind: "open_complete" as const } : { kind: "open_complete" as const, blockid: b },
    ),
  fc.constant({ kind: "close_clearing" as const }),
  fc
    .record({ closeFee: u64.map(sat), sig: bytesN(64) })
    .map((r) => ({ kind: "close_signature" as const, ...r })),
  fc
    .option(fc.string())
    .map((p) => (p === null ? { kind: "error" as const } : { kind: "error" as const, problem: p })),
  fc
    .tuple(key, bytesN(64), fc.option(u64))
    .map(([nodeId, sessionSig, ack]) => withAck({ kind: "authenticate" as const, nodeId, sessionSig }, ack)),
  fc
    .record({
      shortChannelId: u64,
      nodeId1: key,
      nodeId2: key,
      commitKey1: key,
      commitKey2: key,
      nodeSig1: bytesN(64),
      nodeSig2: bytesN(64),
      commitSig1: bytesN(64),
      commitSig2: bytesN(64),
    })
    .map((r) => ({ kind: "channel_announcement" as const, ...r })),
  fc
    .record({
      shortChannelId: u64,
      direction: fc.constantFrom(0 as const, 1 as const),
      timestamp: u32,
      disabled: fc.boolean(),
      cltvExpiryDelta: u32,
      htlcMinimumMsat: u64.map(msat),
      htlcMaximumMsat: u64.map(msat),
      feeBaseMsat: u32.map(msat),
      feeProportionalMillionths: u32.map(BigInt),
      sig: bytesN(64),
    })
    .map((r) => ({ kind: "channel_update" as const, ...r })),
  fc
    .record({
      nodeId: key,
      timestamp: u32,
      alias: fc.string({ unit: "grapheme", maxLength: 40 }),
      addresses: fc.array(fc.string({ maxLength: 30 }), { maxLength: 6 }),
      sig: bytesN(64),
    })
    .map((r) => ({ kind: "node_announcement" as const, ...r })),
);

/** A decoder may return a pkt or throw a WireError; anything else is a bug. */
function decodeOrWireError(b: Uint8Array): Pkt | WireError {
  try {
    return decodePkt(b);
  } catch (e) {
    if (e instanceof WireError) return e;
    throw e;
  }
}

describe("codec properties", () => {
  it("round-trips every valid pkt, and the bytes are canonical", () => {
    fc.assert(
      fc.property(pkt, (p) => {
        const bytes = encodePkt(p);
        const back = decodePkt(bytes);
        expect(back).toEqual(p);
        expect(encodePkt(back).equals(bytes)).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("fuzzing the decoder", () => {
  it("random bytes: a pkt or a WireError, never another exception", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (b) => {
        const r = decodeOrWireError(b);
        if (!(r instanceof WireError)) expect(decodePkt(encodePkt(r))).toEqual(r);
      }),
      { numRuns: 20000 },
    );
  });

  it("mutated valid messages (byte flips, insertions, deletions): a pkt or a WireError", () => {
    const seeds = cases.map(([, , hex]) => Buffer.from(hex, "hex"));
    const mutation = fc.tuple(
      fc.nat({ max: seeds.length - 1 }),
      fc.array(
        fc.tuple(fc.constantFrom("flip", "insert", "delete"), fc.nat(), fc.integer({ min: 0, max: 255 })),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
    );
    fc.assert(
      fc.property(mutation, ([which, edits]) => {
        let b = Buffer.from(seeds[which] as Buffer);
        for (const [op, at, v] of edits) {
          const i = at % (b.length + 1);
          if (op === "flip" && b.length > 0) b[i % b.length] = (b[i % b.length] as number) ^ (v | 1);
          else if (op === "insert") b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
          else if (op === "delete") b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
        }
        decodeOrWireError(b);
      }),
      { numRuns: 20000 },
    );
  });
});
