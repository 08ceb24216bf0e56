import { msatToSatFloor, sat, sumSat, txidToInternal } from "@ln/bitcoin";
import type { Locktime, Msat, OutPoint, Sat } from "@ln/bitcoin";
import {
  anchorScript,
  EMPTY_PUSH,
  htlcOfferedScript,
  htlcReceivedScript,
  p2shOutput,
  p2shScriptSig,
  toOtherScript,
  toOwnerScript,
} from "@ln/scripts";
import { Transaction } from "bitcoinjs-lib";
import { commitmentBytecount, feeForBytes, isDust, isDustMsat, splitFee } from "./fees.js";
import { encodeSignature, p2shSighash } from "./sign.js";

export const TX_VERSION = 2; // BIP68 relative locks need version 2 in spends; we use it throughout
const FINAL_SEQUENCE = 0xffff_ffff;

/** The anchor output a commitment or close spends. */
export interface AnchorInput {
  outpoint: OutPoint;
  amount: Sat;
  /** Both nodes' commit keys (any order: the script sorts them). */
  commitKeys: readonly [Uint8Array, Uint8Array];
}

export interface CommitmentHtlc {
  id: bigint;
  /** true: offered by the commitment's owner; false: offered to it. */
  offeredByOwner: boolean;
  amountMsat: Msat;
  rHash: Uint8Array;
  expiry: Locktime;
}

/** One side's commitment transaction, as draft 3 and DESIGN.md 5 define it. */
export interface CommitmentParams {
  anchor: AnchorInput;
  ownerFinal: Uint8Array;
  otherFinal: Uint8Array;
  /** The owner's revocation hash for this commitment. */
  revocationHash: Uint8Array;
  /** The delay the other node asked for (DESIGN.md 6): the to-owner output and both HTLC scripts. */
  delay: Locktime;
  /** To-final balances before the fee. */
  ownerMsat: Msat;
  otherMsat: Msat;
  htlcs: readonly CommitmentHtlc[];
  /** Satoshi per 1000 bytes. */
  feeRate: number;
}

export type CommitmentOutput =
  | { kind: "to_owner" | "to_other"; vout: number; amount: Sat; redeemScript: Buffer }
  | {
      kind: "htlc_offered" | "htlc_received";
      vout: number;
      amount: Sat;
      redeemScript: Buffer;
      htlc: CommitmentHtlc;
    };

export interface Commitment {
  /** Unsigned: the anchor input's scriptSig is empty until `finalizeAnchorSpend`. */
  tx: Transaction;
  outputs: CommitmentOutput[];
  /** Draft 3.6's fee, the one the split is based on. */
  fee: Sat;
  /** What the transaction actually leaves to miners: the fee plus dust and rounding. */
  paidFee: Sat;
  bytecount: number;
  anchorRedeemScript: Buffer;
}

export class CommitmentError extends Error {
  override readonly name = "CommitmentError";
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
type Pending = DistributiveOmit<CommitmentOutput, "vout"> & { script: Buffer };

/** BIP69 output order: amount, then scriptPubKey bytes. */
function bip69(a: { amount: Sat; script: Buffer }, b: { amount: Sat; script: Buffer }): number {
  return a.amount < b.amount ? -1 : a.amount > b.amount ? 1 : Buffer.compare(a.script, b.script);
}

function spendAnchor(anchor: AnchorInput): Transaction {
  const tx = new Transaction();
  tx.version = TX_VERSION;
  tx.addInput(txidToInternal(anchor.outpoint.txid), anchor.outpoint.vout, FINAL_SEQUENCE);
  return tx;
}

function addSorted(tx: Transaction, pending: Pending[]): CommitmentOutput[] {
  return pending.sort(bip69).map(({ script, ...o }) => {
    const vout = tx.addOutput(script, o.amount);
    return { ...o, vout } as CommitmentOutput;
  });
}

/** Builds a commitment transaction: a pure function of the channel state it is given. */
export function buildCommitment(p: CommitmentParams): Commitment {
  const keys = {
    revocationHash: p.revocationHash,
    delay: p.delay,
    ownerFinal: p.ownerFinal,
    otherFinal: p.otherFinal,
  };
  const live = p.htlcs.filter((h) => !isDustMsat(h.amountMsat));
  const bytecount = commitmentBytecount(live.length);
  const fee = feeForBytes(bytecount, p.feeRate);
  const htlcTotal = p.htlcs.reduce<bigint>((a, h) => a + h.amountMsat, 0n);
  if (p.ownerMsat + p.otherMsat + htlcTotal > p.anchor.amount * 1000n)
    throw new CommitmentError(
      `balances and HTLCs (${p.ownerMsat + p.otherMsat + htlcTotal} msat) exceed the anchor (${p.anchor.amount} sat)`,
    );
  const split = splitFee(p.ownerMsat, p.otherMsat, fee);
  const pending: Pending[] = [];
  const owner = msatToSatFloor(split.owner);
  const other = msatToSatFloor(split.other);
  if (!isDust(owner)) {
    const redeemScript = toOwnerScript(keys);
    pending.push({ kind: "to_owner", amount: owner, redeemScript, script: p2shOutput(redeemScript) });
  }
  if (!isDust(other)) {
    const redeemScript = toOtherScript(p.otherFinal);
    pending.push({ kind: "to_other", amount: other, redeemScript, script: p2shOutput(redeemScript) });
  }
  for (const htlc of live) {
    const params = { ...keys, rHash: htlc.rHash, expiry: htlc.expiry };
    const redeemScript = htlc.offeredByOwner ? htlcOfferedScript(params) : htlcReceivedScript(params);
    pending.push({
      kind: htlc.offeredByOwner ? "htlc_offered" : "htlc_received",
      amount: msatToSatFloor(htlc.amountMsat),
      redeemScript,
      htlc,
      script: p2shOutput(redeemScript),
    });
  }
  const tx = spendAnchor(p.anchor);
  const outputs = addSorted(tx, pending);
  const paidFee = sat(p.anchor.amount - sumSat(outputs.map((o) => o.amount)));
  return { tx, outputs, fee, paidFee, bytecount, anchorRedeemScript: anchorScript(...p.anchor.commitKeys) };
}

/** Draft 4.2: the close transaction pays both final keys, `closeFee` split as in 3.6. */
export interface CloseParams {
  anchor: AnchorInput;
  /** Final keys and balances; which side is "a" does not matter (outputs are BIP69-sorted). */
  a: { finalKey: Uint8Array; msat: Msat };
  b: { finalKey: Uint8Array; msat: Msat };
  closeFee: Sat;
}

export function buildClose(p: CloseParams): {
  tx: Transaction;
  anchorRedeemScript: Buffer;
  outputs: CommitmentOutput[];
} {
  if (p.closeFee % 2n !== 0n) throw new CommitmentError(`close_fee must be even, got ${p.closeFee}`);
  const split = splitFee(p.a.msat, p.b.msat, p.closeFee);
  const pending: Pending[] = [];
  for (const [msat, finalKey] of [
    [split.owner, p.a.finalKey],
    [split.other, p.b.finalKey],
  ] as const) {
    const amount = msatToSatFloor(msat);
    if (isDust(amount)) continue;
    const redeemScript = toOtherScript(finalKey);
    pending.push({ kind: "to_other", amount, redeemScript, script: p2shOutput(redeemScript) });
  }
  const tx = spendAnchor(p.anchor);
  return { tx, outputs: addSorted(tx, pending), anchorRedeemScript: anchorScript(...p.anchor.commitKeys) };
}

/** The digest both commit keys sign to spend the anchor with `tx` (commitment or close). */
export const anchorSighash = (tx: Transaction, anchorRedeemScript: Uint8Array): Buffer =>
  p2shSighash(tx, 0, anchorRedeemScript);

/**
 * Puts both signatures on the anchor input: OP_0 <sig> <sig> <redeem>, the signatures in the
 * order of their keys in the 2-of-2 (CHECKMULTISIG needs that order).
 */
export function finalizeAnchorSpend(
  tx: Transaction,
  anchorRedeemScript: Uint8Array,
  signatures: readonly { pubkey: Uint8Array; compact: Uint8Array }[],
): Transaction {
  if (signatures.length !== 2) throw new CommitmentError("the anchor needs both signatures");
  const sorted = [...signatures].sort((x, y) => Buffer.compare(x.pubkey, y.pubkey));
  const signed = tx.clone();
  signed.setInputScript(
    0,
    p2shScriptSig([EMPTY_PUSH, ...sorted.map((s) => encodeSignature(s.compact))], anchorRedeemScript),
  );
  return signed;
}
