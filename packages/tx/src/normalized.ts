import { sha256, sha256d, sha256Of32Into, txidFromInternal, type Txid } from "@ln/bitcoin";
import { Transaction } from "bitcoinjs-lib";

/**
 * DESIGN.md 7: SHA256d of the transaction with every scriptSig (and witness) emptied. A P2SH
 * commitment's txid depends on the broadcaster's re-signable half of the scriptSig; this does not.
 */
export function normalizedTxid(tx: Transaction): Txid {
  const bare = tx.clone();
  bare.ins.forEach((_, i) => {
    bare.setInputScript(i, Buffer.alloc(0));
    bare.setWitness(i, []);
  });
  return txidFromInternal(sha256d(bare.toBuffer()));
}

/** A serialization normalizedTxidOfRaw cannot read: truncated, a bad varint, trailing bytes. */
export class TxParseError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TxParseError";
  }
}

/** Reused output of normalizedSerialization (hashed before its callers return); larger ones get their own. */
const scratch = Buffer.allocUnsafe(65536);

/**
 * normalizedTxid of a serialized transaction, in internal byte order, without building a
 * Transaction: one pass copying what the normalized (legacy, empty scriptSigs, no witness)
 * serialization keeps. The tower runs this on every transaction of every block, where parsing
 * and cloning through bitcoinjs cost several times the hashing; hence also no allocation per
 * field (a block's worth of small views and closures keeps the garbage collector busy).
 *
 * Accepts what bitcoinjs's Transaction.fromBuffer accepts, except non-canonical varints (which
 * Bitcoin Core refuses too); for those it returns the same bytes as txidToInternal(normalizedTxid).
 */
export function normalizedTxidOfRaw(raw: Uint8Array): Buffer {
  return sha256d(normalizedSerialization(raw));
}

/** The serialization normalizedTxid hashes, in a buffer reused by the next call. */
function normalizedSerialization(raw: Uint8Array): Buffer {
  const n = raw.length;
  // Never longer than the input: a scriptSig shrinks to its empty length byte, marker and flag go.
  const out = n <= scratch.length ? scratch : Buffer.allocUnsafe(n);
  if (n < 4) throw truncated("the version", n);
  for (let k = 0; k < 4; k++) out[k] = raw[k]!;
  let o = 4;
  let p = 4;
  // bitcoinjs's test: a 0x00 0x01 after the version is the segwit marker and flag.
  const segwit = p + 2 <= n && raw[p] === 0x00 && raw[p + 1] === 0x01;
  if (segwit) p += 2;

  const ins = varint(raw, p, "the input count");
  for (let end = p + varintSize(raw[p]!); p < end;) out[o++] = raw[p++]!; // canonical: same bytes
  for (let i = 0; i < ins; i++) {
    if (p + 36 > n) throw truncated(`input ${i}`, n);
    for (const end = p + 36; p < end;) out[o++] = raw[p++]!; // outpoint
    p = skipSlice(raw, p, `the scriptSig of input ${i}`);
    out[o++] = 0x00; // the empty scriptSig
    if (p + 4 > n) throw truncated(`input ${i}`, n);
    for (const end = p + 4; p < end;) out[o++] = raw[p++]!; // sequence
  }
  const outputsFrom = p;
  const outs = varint(raw, p, "the output count");
  p += varintSize(raw[p]!);
  for (let i = 0; i < outs; i++) {
    if (p + 8 > n) throw truncated(`output ${i}`, n);
    p = skipSlice(raw, p + 8, `the script of output ${i}`);
  }
  out.set(raw.subarray(outputsFrom, p), o); // the count and every output as they are
  o += p - outputsFrom;
  if (segwit) {
    let items = 0;
    for (let i = 0; i < ins; i++) {
      const count = varint(raw, p, `the witness of input ${i}`);
      p += varintSize(raw[p]!);
      items += count;
      for (let k = 0; k < count; k++) p = skipSlice(raw, p, `witness item ${k} of input ${i}`);
    }
    // bitcoinjs refuses a marker with no witness at all, as Core does.
    if (items === 0) throw new TxParseError("segwit marker without witness data");
  }
  if (p + 4 > n) throw truncated("the locktime", n);
  for (const end = p + 4; p < end;) out[o++] = raw[p++]!;
  if (p !== n) throw new TxParseError(`${n - p} bytes after the transaction`);
  return out.subarray(0, o);
}

/** Reused input of normalizedTxidOfHexInto (read before it returns); larger ones get their own. */
const decoded = Buffer.allocUnsafe(65536);

/**
 * normalizedTxidOfRaw(Buffer.from(hex, "hex")), its 32 bytes written to out at `at`, for a block's
 * worth of transactions: the hex decoded into a reused buffer and the outer SHA256 computed in
 * place, so nothing per transaction is left for the garbage collector but the inner hash. Like
 * Buffer.from, the decoding stops at the first character that is not hex (what precedes it is then
 * read as the transaction, and most likely refused).
 */
export function normalizedTxidOfHexInto(hex: string, out: Uint8Array, at: number): void {
  const len = hex.length >>> 1;
  const into = len <= decoded.length ? decoded : Buffer.allocUnsafe(len);
  const n = into.write(hex, 0, len, "hex");
  sha256Of32Into(sha256(normalizedSerialization(into.subarray(0, n))), 0, out, at);
}

const truncated = (what: string, n: number): TxParseError =>
  new TxParseError(`transaction truncated in ${what} (${n} bytes)`);

/** Bytes of the CompactSize starting with this byte. */
const varintSize = (first: number): number =>
  first < 0xfd ? 1 : first === 0xfd ? 3 : first === 0xfe ? 5 : 9;

/** The canonical CompactSize at p (as a count or length: at most 2^32 - 1). */
function varint(raw: Uint8Array, p: number, what: string): number {
  const n = raw.length;
  if (p >= n) throw truncated(what, n);
  const first = raw[p]!;
  if (first < 0xfd) return first;
  if (p + varintSize(first) > n) throw truncated(what, n);
  if (first === 0xfd) {
    const v = raw[p + 1]! | (raw[p + 2]! << 8);
    if (v < 0xfd) throw new TxParseError(`non-canonical varint in ${what}`);
    return v;
  }
  if (first === 0xfe) {
    const v = (raw[p + 1]! | (raw[p + 2]! << 8) | (raw[p + 3]! << 16)) + raw[p + 4]! * 0x1000000;
    if (v <= 0xffff) throw new TxParseError(`non-canonical varint in ${what}`);
    return v;
  }
  if ((raw[p + 5]! | raw[p + 6]! | raw[p + 7]! | raw[p + 8]!) === 0)
    throw new TxParseError(`non-canonical varint in ${what}`);
  // Above 2^32: more than any count or length that fits in what is left.
  throw new TxParseError(`varint in ${what} too large (${n} bytes)`);
}

/** Past the length-prefixed bytes at p. */
function skipSlice(raw: Uint8Array, p: number, what: string): number {
  const len = varint(raw, p, what);
  const end = p + varintSize(raw[p]!) + len;
  if (end > raw.length) throw truncated(what, raw.length);
  return end;
}
