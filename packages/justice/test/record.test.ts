/**
 * Sealing and opening revocation records (DESIGN.md 7). Locator and key are derived here with
 * node:crypto from a normalized txid computed here too: SHA256d of the transaction with its
 * scriptSigs emptied, by hand.
 */
import { createHash } from "node:crypto";
import { msat, sha256 } from "@ln/bitcoin";
import { anchorSighash, buildCommitment, finalizeAnchorSpend, type CommitmentParams } from "@ln/tx";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import type { Transaction } from "bitcoinjs-lib";
import fc from "fast-check";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { encodeRevocationRecordMsg } from "@ln/proto";
import {
  decodeSealedRecord,
  defaultSweepScript,
  encodeSealedRecord,
  locatorInto,
  locatorOf,
  normalizedTxidBytes,
  openRecord,
  planJustice,
  RecordError,
  recordKey,
  sealRecord,
  type RevocationRecord,
} from "../src/index.js";
import { fakeAnchor, htlcFor, peer, peerParams, R, us } from "./fixtures.js";

const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash("sha256");
  parts.forEach((p) => h.update(p));
  return h.digest();
};

/** Independent of @ln/tx: serialize with every scriptSig empty, SHA256d, internal order. */
function ntxidByHand(tx: Transaction): Buffer {
  const bare = tx.clone();
  for (const input of bare.ins) input.script = Buffer.alloc(0);
  return sha(sha(bare.toBuffer()));
}

const preimage = R(0x77);
const params: CommitmentParams = peerParams(
  fakeAnchor(),
  [htlcFor(1, true, 20_000, { blocks: 500_100 }), htlcFor(2, false, 30_000, { seconds: 1_700_000_000 })],
  preimage,
);
const record: RevocationRecord = {
  signerChannel: 7,
  revokedNumber: (1n << 48n) + 3n,
  revocationPreimage: preimage,
  params,
  sweepScript: defaultSweepScript(params),
};
const commitment = buildCommitment(params);
/** The commitment signed by both: what the breach would look like. */
function signed(extraEntropy?: Buffer): Transaction {
  const digest = anchorSighash(commitment.tx, commitment.anchorRedeemScript);
  const sig = (priv: Buffer): Buffer =>
    Buffer.from(extraEntropy ? ecc.sign(digest, priv, extraEntropy) : ecc.sign(digest, priv));
  return finalizeAnchorSpend(commitment.tx, commitment.anchorRedeemScript, [
    { pubkey: peer.commit.pub, compact: sig(peer.commit.priv) },
    { pubkey: us.commit.pub, compact: sig(us.commit.priv) },
  ]);
}
const ntxid = ntxidByHand(signed());

const code = (f: () => unknown): string | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    if (!(e instanceof RecordError)) throw e;
    return e.code;
  }
};

describe("normalized txid, locator and key", () => {
  it("the ntxid is SHA256d of the scriptSig-less transaction, internal order, malleation-proof", () => {
    const a = signed();
    const b = signed(Buffer.alloc(32, 9));
    expect(a.getId()).not.toBe(b.getId());
    expect(normalizedTxidBytes(a)).toEqual(ntxid);
    expect(normalizedTxidBytes(b)).toEqual(ntxid);
    expect(normalizedTxidBytes(commitment.tx)).toEqual(ntxid);
    // Internal order: the hash itself; display order reversed would be a different buffer.
    expect(normalizedTxidBytes(a)).not.toEqual(Buffer.from(ntxid).reverse());
  });

  it("locator = SHA256(ntxid)[0..16), key = SHA256(ntxid || ntxid)", () => {
    expect(locatorOf(ntxid)).toEqual(sha(ntxid).subarray(0, 16));
    expect(recordKey(ntxid)).toEqual(sha(ntxid, ntxid));
    expect(code(() => locatorOf(Buffer.alloc(31)))).toBe("MALFORMED");
  });

  it("locatorInto writes locatorOf's 16 bytes where asked, reading the ntxid where told", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.nat({ max: 40 }),
        fc.nat({ max: 40 }),
        (n, from, at) => {
          const ntxids = Buffer.concat([Buffer.alloc(from, 7), n, Buffer.alloc(5, 8)]);
          const out = Buffer.alloc(at + 16 + 16, 0x5c);
          locatorInto(ntxids, from, out, at);
          expect(out.subarray(at, at + 16)).toEqual(sha(n).subarray(0, 16));
          expect(out.subarray(at, at + 16)).toEqual(locatorOf(n));
          expect(out.subarray(0, at).every((x) => x === 0x5c)).toBe(true);
          expect(out.subarray(at + 16).every((x) => x === 0x5c)).toBe(true);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe("sealRecord / openRecord", () => {
  const nonce = Buffer.alloc(24, 0x5a);
  const sealed = sealRecord(record, nonce);

  it("round trip, with a blob anyone holding the ntxid can decrypt by hand", () => {
    expect(sealed.locator).toEqual(sha(ntxid).subarray(0, 16));
    expect(sealed.blob[0]).toBe(1);
    expect(sealed.blob.subarray(1, 25)).toEqual(nonce);
    const plain = xchacha20poly1305(sha(ntxid, ntxid), nonce).decrypt(sealed.blob.subarray(25));
    expect(Buffer.from(plain)).toEqual(
      encodeRevocationRecordMsg({
        ...record,
        params: {
          ...params,
          anchor: {
            outpoint: params.anchor.outpoint,
            amountSat: params.anchor.amount,
            commitKeys: [peer.commit.pub, us.commit.pub],
          },
          ownerFinal: peer.final.pub,
          otherFinal: us.final.pub,
          revocationHash: sha256(preimage),
          htlcs: params.htlcs.map((h) => ({ ...h, rHash: Buffer.from(h.rHash) })),
        },
      }),
    );
    const opened = openRecord(sealed.blob, ntxid);
    expect(opened).toEqual(record);
    expect(opened.params.htlcs[1]!.expiry).toEqual({ seconds: 1_700_000_000 });
    expect(opened.revokedNumber).toBe((1n << 48n) + 3n);
  });

  it("a random nonce by default: two seals differ, both open", () => {
    const a = sealRecord(record);
    const b = sealRecord(record);
    expect(a.blob.equals(b.blob)).toBe(false);
    expect(a.locator).toEqual(b.locator);
    expect(openRecord(b.blob, ntxid)).toEqual(record);
  });

  it("a flipped bit anywhere after the version byte: UNAUTHENTIC; in the version byte: BAD_VERSION", () => {
    for (let i = 0; i < sealed.blob.length; i++)
      for (const bit of [0, 7]) {
        const bad = Buffer.from(sealed.blob);
        bad[i]! ^= 1 << bit;
        expect(code(() => openRecord(bad, ntxid))).toBe(i === 0 ? "BAD_VERSION" : "UNAUTHENTIC");
      }
  });

  it("another ntxid: UNAUTHENTIC", () => {
    const other = Buffer.from(ntxid);
    other[31]! ^= 1;
    expect(code(() => openRecord(sealed.blob, other))).toBe("UNAUTHENTIC");
    expect(code(() => openRecord(sealed.blob, Buffer.from(ntxid).reverse()))).toBe("UNAUTHENTIC");
  });

  it("truncated or empty: MALFORMED", () => {
    expect(code(() => openRecord(Buffer.alloc(0), ntxid))).toBe("MALFORMED");
    expect(code(() => openRecord(sealed.blob.subarray(0, 40), ntxid))).toBe("MALFORMED");
  });

  it("an authentic record of another commitment: MISMATCH", () => {
    // Encrypted by hand under this ntxid's key, but the params build a different commitment.
    const other = encodeRevocationRecordMsg({
      ...record,
      params: {
        ...params,
        anchor: {
          ...params.anchor,
          amountSat: params.anchor.amount,
          commitKeys: [peer.commit.pub, us.commit.pub],
        },
        ownerFinal: peer.final.pub,
        otherFinal: us.final.pub,
        revocationHash: sha256(preimage),
        feeRate: 3000,
        htlcs: [],
      },
    });
    const blob = Buffer.concat([
      Buffer.of(1),
      nonce,
      xchacha20poly1305(sha(ntxid, ntxid), nonce).encrypt(other),
    ]);
    expect(code(() => openRecord(blob, ntxid))).toBe("MISMATCH");
  });

  it("an authentic plaintext that is not a record: MALFORMED", () => {
    const blob = Buffer.concat([
      Buffer.of(1),
      nonce,
      xchacha20poly1305(sha(ntxid, ntxid), nonce).encrypt(Buffer.from("hello")),
    ]);
    expect(code(() => openRecord(blob, ntxid))).toBe("MALFORMED");
  });

  it("a preimage that does not hash to the revocation hash is refused at sealing", () => {
    expect(code(() => sealRecord({ ...record, revocationPreimage: R(0x78) }))).toBe("MISMATCH");
  });

  it("the NATS message round-trips; a locator of another length is MALFORMED", () => {
    expect(decodeSealedRecord(encodeSealedRecord(sealed))).toEqual(sealed);
    const bad = encodeSealedRecord({ locator: Buffer.alloc(15), blob: sealed.blob });
    expect(code(() => decodeSealedRecord(bad))).toBe("MALFORMED");
    expect(code(() => decodeSealedRecord(Buffer.of(0xff)))).toBe("MALFORMED");
  });

  it("fuzz: random bytes and mutations throw only RecordError", () => {
    const wire = encodeSealedRecord(sealed);
    const mutate = (base: Buffer) =>
      fc
        .array(
          fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom("set", "cut", "insert")),
          {
            minLength: 1,
            maxLength: 4,
          },
        )
        .map((ops) => {
          let b = Buffer.from(base);
          for (const [at, v, op] of ops) {
            const i = at % (b.length + 1);
            if (op === "set" && i < b.length) b[i] = v;
            else if (op === "cut") b = b.subarray(0, i);
            else b = Buffer.concat([b.subarray(0, i), Buffer.of(v), b.subarray(i)]);
          }
          return b;
        });
    const onlyRecordErrors = (f: () => unknown): void => {
      try {
        f();
      } catch (e) {
        expect(e).toBeInstanceOf(RecordError);
      }
    };
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 600 }).map(Buffer.from), mutate(wire)), (bytes) => {
        onlyRecordErrors(() => decodeSealedRecord(bytes));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(
        fc.oneof(
          fc.uint8Array({ maxLength: 600 }).map(Buffer.from),
          fc.uint8Array({ maxLength: 600 }).map((b) => Buffer.concat([Buffer.of(1), b])),
          mutate(sealed.blob),
        ),
        (blob) => {
          onlyRecordErrors(() => openRecord(blob, ntxid));
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe("planJustice with nothing of the cheater's", () => {
  it("a revoked commitment paying only us: NOTHING_TO_TAKE (our output is the wallet's)", () => {
    const preimage = R(0x77);
    const params = {
      ...peerParams(fakeAnchor(), [], preimage),
      ownerMsat: msat(0n),
      otherMsat: msat(1_000_000_000n),
    };
    const breach = buildCommitment(params).tx;
    expect(breach.outs).toHaveLength(1);
    const record = {
      signerChannel: 1,
      revokedNumber: 3n,
      revocationPreimage: preimage,
      params,
      sweepScript: defaultSweepScript(params),
    };
    expect(() => planJustice(record, breach, 2000)).toThrow(
      expect.objectContaining({ name: "JusticeError", code: "NOTHING_TO_TAKE" }),
    );
  });
});
