import { sat, txidToInternal } from "@ln/bitcoin";
import type { Locktime, OutPoint, Sat } from "@ln/bitcoin";
import { absoluteExpiry, EMPTY_PUSH, LOCKTIME_THRESHOLD, p2shScriptSig, relativeDelay } from "@ln/scripts";
import { Transaction } from "bitcoinjs-lib";
import { TX_VERSION } from "./commitment.js";
import { encodeSignature, p2shSighash, type SignatureRequest } from "./sign.js";

/** A P2SH output of a commitment we can spend, and by which path (DESIGN.md 5). */
export interface P2shCoin {
  outpoint: OutPoint;
  amount: Sat;
  redeemScript: Buffer;
  /** The key that signs for this path. */
  pubkey: Buffer;
}

export type SpendPath =
  /** Our to-owner output after its CSV delay: <sig> OP_0, the empty push taking the ELSE branch. */
  | { kind: "delayed"; delay: Locktime }
  /** An HTLC with R: at once on their commitment, after our delay on ours. */
  | { kind: "htlc_redeem"; preimage: Buffer; delay?: Locktime }
  /** An HTLC back after its expiry, plus our delay when it is on our own commitment. */
  | { kind: "htlc_timeout"; expiry: Locktime; delay?: Locktime }
  /** Any revocable output of a revoked commitment, with its revocation preimage. */
  | { kind: "revocation"; preimage: Buffer }
  /** A single-key output (`<key> OP_CHECKSIG`): their commitment's to-other output, a close output. */
  | { kind: "key" };

export interface SpendInput {
  coin: P2shCoin;
  path: SpendPath;
}

export class SpendError extends Error {
  override readonly name = "SpendError";
}

/** 32 bytes whose HASH160 matches neither R nor the revocation preimage: the timeout branch. */
const NOT_A_PREIMAGE = Buffer.alloc(32);
/** Worst-case DER signature with its sighash byte, for sizing before signing. */
const MAX_SIG_BYTES = 73;

function pushesAfterSig(path: SpendPath): (Buffer | number)[] {
  switch (path.kind) {
    case "delayed":
      return [EMPTY_PUSH];
    case "htlc_redeem":
    case "revocation":
      if (path.preimage.length !== 32)
        throw new SpendError(`a preimage is 32 bytes, got ${path.preimage.length}`);
      return [path.preimage];
    case "htlc_timeout":
      return [NOT_A_PREIMAGE];
    case "key":
      return [];
  }
}

/** BIP125: an input with nSequence below 0xfffffffe signals that its transaction may be replaced. */
export const RBF_SEQUENCE = 0xffff_fffd;

export interface SpendOptions {
  /** Signal opt-in replace-by-fee on every input (justice is fee-bumped by replacement, DESIGN.md 7). */
  replaceable?: boolean;
}

function sequenceOf(path: SpendPath, opts: SpendOptions): number {
  if ((path.kind === "delayed" || path.kind === "htlc_redeem" || path.kind === "htlc_timeout") && path.delay)
    return relativeDelay(path.delay); // a BIP68 value, always below RBF_SEQUENCE
  if (opts.replaceable) return RBF_SEQUENCE; // also not final, so nLockTime stays enforced
  // Not final, so that nLockTime is enforced; otherwise final.
  return path.kind === "htlc_timeout" ? 0xffff_fffe : 0xffff_ffff;
}

function locktimeOf(inputs: readonly SpendInput[]): number {
  let locktime = 0;
  let kind: "height" | "time" | undefined;
  for (const { path } of inputs) {
    if (path.kind !== "htlc_timeout") continue;
    const value = absoluteExpiry(path.expiry);
    const k = value < LOCKTIME_THRESHOLD ? "height" : "time";
    if (kind && kind !== k)
      throw new SpendError("cannot time out height- and time-locked HTLCs in one transaction");
    kind = k;
    locktime = Math.max(locktime, value);
  }
  return locktime;
}

/**
 * The spending transaction's size once signed, with worst-case signatures: what `buildSpend` and
 * `buildJustice` pay `feeRate` for (the signer checks a justice fee rate with it).
 */
export function signedSize(
  tx: Transaction,
  inputs: readonly { coin: Pick<P2shCoin, "redeemScript">; path: SpendPath }[],
): number {
  const sized = tx.clone();
  inputs.forEach((input, i) => sized.setInputScript(i, scriptSig(input, Buffer.alloc(MAX_SIG_BYTES))));
  return sized.byteLength();
}

const scriptSig = (input: { coin: Pick<P2shCoin, "redeemScript">; path: SpendPath }, sig: Buffer): Buffer =>
  p2shScriptSig([sig, ...pushesAfterSig(input.path)], input.coin.redeemScript);

export interface Spend {
  /** Unsigned; `finalizeSpend` adds the scriptSigs. */
  tx: Transaction;
  inputs: readonly SpendInput[];
  fee: Sat;
  /** One per input, for whoever holds the keys (the signer). */
  requests: SignatureRequest[];
}

/**
 * Sweeps P2SH coins by their paths to one output script, paying `feeRate` satoshi per 1000 bytes
 * of the signed size (worst-case signatures).
 */
export function buildSpend(
  inputs: readonly SpendInput[],
  destination: Uint8Array,
  feeRate: number,
  opts: SpendOptions = {},
): Spend {
  if (inputs.length === 0) throw new SpendError("nothing to spend");
  const tx = new Transaction();
  tx.version = TX_VERSION;
  tx.locktime = locktimeOf(inputs);
  for (const { coin, path } of inputs)
    tx.addInput(txidToInternal(coin.outpoint.txid), coin.outpoint.vout, sequenceOf(path, opts));
  const total = inputs.reduce<bigint>((a, i) => a + i.coin.amount, 0n);
  tx.addOutput(destination, 0n);
  const fee = sat((BigInt(signedSize(tx, inputs)) * BigInt(feeRate) + 999n) / 1000n);
  if (total - fee < 546n)
    throw new SpendError(`the coins (${total} sat) do not cover the fee (${fee} sat) plus a non-dust output`);
  tx.outs[0]!.value = total - fee;
  const requests = inputs.map((input, inputIndex) => ({
    inputIndex,
    digest: p2shSighash(tx, inputIndex, input.coin.redeemScript),
    pubkey: input.coin.pubkey,
  }));
  return { tx, inputs, fee, requests };
}

/** Adds the scriptSigs, one compact signature per input in input order. */
export function finalizeSpend(spend: Spend, compactSigs: readonly Uint8Array[]): Transaction {
  if (compactSigs.length !== spend.inputs.length) throw new SpendError("one signature per input");
  const signed = spend.tx.clone();
  spend.inputs.forEach((input, i) =>
    signed.setInputScript(i, scriptSig(input, encodeSignature(compactSigs[i]!))),
  );
  return signed;
}

/** Standard transactions stay below 100,000 bytes (bitcoin Core's MAX_STANDARD_TX_WEIGHT / 4). */
export const MAX_STANDARD_TX_BYTES = 100_000;

/**
 * Justice for a revoked commitment: every revocable output by its revocation path, in as many
 * transactions as it takes to keep each below 100,000 bytes.
 */
export function buildJustice(
  inputs: readonly SpendInput[],
  destination: Uint8Array,
  feeRate: number,
  maxBytes = MAX_STANDARD_TX_BYTES,
  opts: SpendOptions = {},
): Spend[] {
  // Sizes add up per input: outpoint 36 + sequence 4 + the scriptSig with its length prefix;
  // 9 bytes cover version, locktime and counts; the one output is 8 + 1 + script.
  const fixed = 4 + 4 + 3 + 3 + 8 + 1 + destination.length;
  const chunks: SpendInput[][] = [];
  let current: SpendInput[] = [];
  let bytes = fixed;
  for (const input of inputs) {
    const sigLength = scriptSig(input, Buffer.alloc(MAX_SIG_BYTES)).length;
    const inputBytes = 40 + varintSize(sigLength) + sigLength;
    if (current.length > 0 && bytes + inputBytes >= maxBytes) {
      chunks.push(current);
      current = [];
      bytes = fixed;
    }
    current.push(input);
    bytes += inputBytes;
  }
  if (current.length > 0) chunks.push(current);
  return chunks.map((chunk) => buildSpend(chunk, destination, feeRate, opts));
}

const varintSize = (n: number): number => (n < 0xfd ? 1 : n <= 0xffff ? 3 : 5);
