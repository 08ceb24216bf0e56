import { createHash, randomBytes } from "node:crypto";
import { msat, sat, sha256, sha256Of32Into, txidFromHex, txidToInternal } from "@ln/bitcoin";
import { p2shOutput, toOtherScript } from "@ln/scripts";
import { buildCommitment, normalizedTxid, type CommitmentParams } from "@ln/tx";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import type { Transaction } from "bitcoinjs-lib";
import {
  decodeRevocationRecordMsg,
  decodeSealedRecordMsg,
  encodeRevocationRecordMsg,
  encodeSealedRecordMsg,
  LOCATOR_BYTES,
  type RevocationRecordMsg,
} from "@ln/proto";

/** What the tower needs to punish a breach of the peer's commitment `revokedNumber` (DESIGN.md 7). */
export interface RevocationRecord {
  /** The signer's channel index (SignJustice's `channel`). */
  signerChannel: number;
  revokedNumber: bigint;
  /** 32 bytes; SHA256 of it is `params.revocationHash`. */
  revocationPreimage: Buffer;
  /** The peer's revoked commitment: owner = the peer, other = us. */
  params: CommitmentParams;
  /** Where justice pays. */
  sweepScript: Buffer;
}

/** A record as published on NATS: the tower files it under `locator` until a breach opens it. */
export interface SealedRecord {
  locator: Buffer;
  blob: Buffer;
}

/**
 * BAD_VERSION: the blob's first byte is not a version we know. UNAUTHENTIC: decryption failed (a
 * changed blob, or a key from another ntxid). MALFORMED: not a record (bad framing, protobuf or
 * field). MISMATCH: a well-formed record that does not fit its commitment (preimage or ntxid).
 */
export type RecordErrorCode = "BAD_VERSION" | "UNAUTHENTIC" | "MALFORMED" | "MISMATCH";

export class RecordError extends Error {
  override readonly name = "RecordError";
  constructor(
    readonly code: RecordErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export const RECORD_VERSION = 1;
export const NONCE_BYTES = 24;
const TAG_BYTES = 16;
const NTXID_BYTES = 32;

/** P2SH(<our final key> OP_CHECKSIG): the output our wallet already watches and the signer accepts. */
export const defaultSweepScript = (params: CommitmentParams): Buffer =>
  p2shOutput(toOtherScript(params.otherFinal));

/**
 * The normalized txid (DESIGN.md 7) as 32 bytes in internal order: the SHA256d output itself, not
 * reversed (the display hex of `normalizedTxid` is these bytes reversed).
 */
export const normalizedTxidBytes = (tx: Transaction): Buffer => txidToInternal(normalizedTxid(tx));

const sha = (...parts: Uint8Array[]): Buffer => {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
};

function checkNtxid(ntxid: Uint8Array): void {
  if (ntxid.length !== NTXID_BYTES)
    throw new RecordError("MALFORMED", `a normalized txid is ${NTXID_BYTES} bytes, got ${ntxid.length}`);
}

/** First 16 bytes of SHA256(ntxid), ntxid in internal order. */
export function locatorOf(ntxid: Uint8Array): Buffer {
  checkNtxid(ntxid);
  return sha256(ntxid).subarray(0, LOCATOR_BYTES);
}

/**
 * locatorOf the 32 bytes at ntxids[from..from+32), written to out at `at`: nothing allocated, for
 * the locators of every transaction in a block.
 */
export function locatorInto(ntxids: Uint8Array, from: number, out: Uint8Array, at: number): void {
  sha256Of32Into(ntxids, from, out, at, LOCATOR_BYTES);
}

/** SHA256(ntxid || ntxid), ntxid in internal order: only whoever saw the commitment can derive it. */
export function recordKey(ntxid: Uint8Array): Buffer {
  checkNtxid(ntxid);
  return sha(ntxid, ntxid);
}

/** The revoked commitment's normalized txid, rebuilt from its parameters. */
export const commitmentNtxid = (params: CommitmentParams): Buffer =>
  normalizedTxidBytes(buildCommitment(params).tx);

function checkPreimage(r: RevocationRecord): void {
  if (r.revocationPreimage.length !== 32 || !sha256(r.revocationPreimage).equals(r.params.revocationHash))
    throw new RecordError(
      "MISMATCH",
      `channel ${r.signerChannel}: the revocation preimage of commitment ${r.revokedNumber} does not hash to its revocation hash`,
    );
}

const toMsg = (r: RevocationRecord): RevocationRecordMsg => ({
  signerChannel: r.signerChannel,
  revokedNumber: r.revokedNumber,
  revocationPreimage: r.revocationPreimage,
  params: {
    anchor: {
      outpoint: { txid: r.params.anchor.outpoint.txid, vout: r.params.anchor.outpoint.vout },
      amountSat: r.params.anchor.amount,
      commitKeys: [Buffer.from(r.params.anchor.commitKeys[0]), Buffer.from(r.params.anchor.commitKeys[1])],
    },
    ownerFinal: Buffer.from(r.params.ownerFinal),
    otherFinal: Buffer.from(r.params.otherFinal),
    revocationHash: Buffer.from(r.params.revocationHash),
    delay: r.params.delay,
    ownerMsat: r.params.ownerMsat,
    otherMsat: r.params.otherMsat,
    htlcs: r.params.htlcs.map((h) => ({
      id: h.id,
      offeredByOwner: h.offeredByOwner,
      amountMsat: h.amountMsat,
      rHash: Buffer.from(h.rHash),
      expiry: h.expiry,
    })),
    feeRate: r.params.feeRate,
  },
  sweepScript: r.sweepScript,
});

const fromMsg = (m: RevocationRecordMsg): RevocationRecord => ({
  signerChannel: m.signerChannel,
  revokedNumber: m.revokedNumber,
  revocationPreimage: m.revocationPreimage,
  params: {
    anchor: {
      outpoint: { txid: txidFromHex(m.params.anchor.outpoint.txid), vout: m.params.anchor.outpoint.vout },
      amount: sat(m.params.anchor.amountSat),
      commitKeys: m.params.anchor.commitKeys,
    },
    ownerFinal: m.params.ownerFinal,
    otherFinal: m.params.otherFinal,
    revocationHash: m.params.revocationHash,
    delay: m.params.delay,
    ownerMsat: msat(m.params.ownerMsat),
    otherMsat: msat(m.params.otherMsat),
    htlcs: m.params.htlcs.map((h) => ({ ...h, amountMsat: msat(h.amountMsat) })),
    feeRate: m.params.feeRate,
  },
  sweepScript: m.sweepScript,
});

/**
 * Encrypts a record under the key of its commitment's normalized txid: blob = 1 || nonce (24) ||
 * XChaCha20-Poly1305(plaintext = tower.revocation_record) with its tag. The nonce is random unless
 * given (tests); a key is used for one record, so a repeated nonce would only repeat a blob.
 */
export function sealRecord(r: RevocationRecord, nonce: Uint8Array = randomBytes(NONCE_BYTES)): SealedRecord {
  if (nonce.length !== NONCE_BYTES)
    throw new RangeError(`the nonce is ${NONCE_BYTES} bytes, got ${nonce.length}`);
  checkPreimage(r);
  const ntxid = commitmentNtxid(r.params);
  const ciphertext = xchacha20poly1305(recordKey(ntxid), nonce).encrypt(encodeRevocationRecordMsg(toMsg(r)));
  return {
    locator: locatorOf(ntxid),
    blob: Buffer.concat([Buffer.of(RECORD_VERSION), nonce, ciphertext]),
  };
}

/**
 * Decrypts a blob with the key of `ntxid` (a breach's normalizedTxidBytes) and checks that the
 * record's parameters rebuild a commitment with that normalized txid. Throws only RecordError.
 */
export function openRecord(blob: Uint8Array, ntxid: Buffer): RevocationRecord {
  checkNtxid(ntxid);
  if (blob.length === 0) throw new RecordError("MALFORMED", "empty blob");
  if (blob[0] !== RECORD_VERSION) throw new RecordError("BAD_VERSION", `unknown record version ${blob[0]}`);
  if (blob.length < 1 + NONCE_BYTES + TAG_BYTES)
    throw new RecordError(
      "MALFORMED",
      `a blob is at least ${1 + NONCE_BYTES + TAG_BYTES} bytes, got ${blob.length}`,
    );
  let plaintext: Uint8Array;
  try {
    const nonce = blob.subarray(1, 1 + NONCE_BYTES);
    plaintext = xchacha20poly1305(recordKey(ntxid), nonce).decrypt(blob.subarray(1 + NONCE_BYTES));
  } catch (e) {
    throw new RecordError("UNAUTHENTIC", "the blob does not decrypt under this normalized txid's key", {
      cause: e,
    });
  }
  let record: RevocationRecord;
  try {
    record = fromMsg(decodeRevocationRecordMsg(plaintext));
  } catch (e) {
    throw new RecordError("MALFORMED", `not a revocation record: ${(e as Error).message}`, { cause: e });
  }
  checkPreimage(record);
  let rebuilt: Buffer;
  try {
    rebuilt = commitmentNtxid(record.params);
  } catch (e) {
    throw new RecordError("MALFORMED", `the record's commitment cannot be built: ${(e as Error).message}`, {
      cause: e,
    });
  }
  if (!rebuilt.equals(ntxid))
    throw new RecordError(
      "MISMATCH",
      `channel ${record.signerChannel}: commitment ${record.revokedNumber} has another normalized txid`,
    );
  return record;
}

export const encodeSealedRecord = (s: SealedRecord): Buffer => encodeSealedRecordMsg(s);

/** The NATS payload; throws RecordError MALFORMED (the locator must be 16 bytes). */
export function decodeSealedRecord(bytes: Uint8Array): SealedRecord {
  try {
    return decodeSealedRecordMsg(bytes);
  } catch (e) {
    throw new RecordError("MALFORMED", (e as Error).message, { cause: e });
  }
}
