import { payments, script, Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";

export const SIGHASH_ALL = Transaction.SIGHASH_ALL;

/** One signature a transaction needs: the digest, and whose key must sign it. */
export interface SignatureRequest {
  inputIndex: number;
  /** The 32-byte SIGHASH_ALL digest. */
  digest: Buffer;
  /** The public key that must sign. */
  pubkey: Buffer;
}

/** Signs a digest: RFC 6979, low-S, 64-byte compact. Where the private key lives (the signer). */
export function signDigest(priv: Uint8Array, digest: Uint8Array): Buffer {
  return Buffer.from(ecc.sign(digest, priv));
}

/** A compact signature as a script push: low-S DER plus the SIGHASH_ALL byte. */
export function encodeSignature(compact: Uint8Array): Buffer {
  if (compact.length !== 64) throw new Error(`a compact signature is 64 bytes, got ${compact.length}`);
  return Buffer.from(script.signature.encode(lowS(compact), SIGHASH_ALL));
}

const CURVE_ORDER = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** BIP62 low-S: s above n/2 becomes n - s (the same signature's other form); standardness requires it. */
export function lowS(compact: Uint8Array): Buffer {
  const out = Buffer.from(compact);
  const s = BigInt(`0x${out.subarray(32).toString("hex")}`);
  if (s > CURVE_ORDER / 2n)
    Buffer.from((CURVE_ORDER - s).toString(16).padStart(64, "0"), "hex").copy(out, 32);
  return out;
}

/** The DER signature from a script push, back as 64-byte compact (for checking a peer's signature). */
export function decodeSignature(pushed: Uint8Array): Buffer {
  return Buffer.from(script.signature.decode(pushed).signature);
}

/** SIGHASH_ALL digest for a legacy (P2SH) input spending `redeemScript`. */
export const p2shSighash = (tx: Transaction, inputIndex: number, redeemScript: Uint8Array): Buffer =>
  Buffer.from(tx.hashForSignature(inputIndex, redeemScript, SIGHASH_ALL));

/** SIGHASH_ALL digest (BIP143) for a P2WPKH input of `value` satoshi. */
export function p2wpkhSighash(
  tx: Transaction,
  inputIndex: number,
  pubkey: Uint8Array,
  value: bigint,
): Buffer {
  const scriptCode = payments.p2pkh({ pubkey }).output as Uint8Array;
  return Buffer.from(tx.hashForWitnessV0(inputIndex, scriptCode, value, SIGHASH_ALL));
}

/** Checks a compact signature over a digest (strict: low-S only). */
export function verifyDigest(pubkey: Uint8Array, digest: Uint8Array, compact: Uint8Array): boolean {
  try {
    return ecc.verify(digest, pubkey, compact, true);
  } catch {
    return false;
  }
}
