import { sat, sumSat, txidFromHex, type Sat, type Txid } from "@ln/bitcoin";
import {
  buildCommitment,
  buildJustice,
  buildSpend,
  finalizeSpend,
  MAX_STANDARD_TX_BYTES,
  type CommitmentParams,
  type Spend,
  type SpendInput,
} from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";
import { normalizedTxidBytes, type RevocationRecord } from "./record.js";

/**
 * NOT_THIS_COMMITMENT: the breach is not the record's commitment (normalized txids differ).
 * UNAFFORDABLE: a justice transaction's coins do not cover its fee and a non-dust output.
 * FEE_NOT_HIGHER: a replacement must pay a higher fee rate than the plan it replaces.
 * BAD_SIGNATURES: not one signature per input.
 */
export type JusticeErrorCode =
  | "NOT_THIS_COMMITMENT"
  /** Only our own output is on it (the cheater had nothing): the wallet takes that. */
  | "NOTHING_TO_TAKE"
  | "UNAFFORDABLE"
  | "FEE_NOT_HIGHER"
  | "BAD_SIGNATURES";

export class JusticeError extends Error {
  override readonly name = "JusticeError";
  constructor(
    readonly code: JusticeErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

export interface JusticePlan {
  /** Unsigned, each below maxBytes, every input signalling replace-by-fee (BIP125). */
  spends: Spend[];
  /** The breach as it is on chain (possibly malleated): the txid the inputs spend. */
  breachTxid: Txid;
  /** What the justice outputs pay in total. */
  sweptSat: Sat;
  feeSat: Sat;
  /** Satoshi per 1000 bytes. */
  feeRate: number;
}

/**
 * Every revocable output of the revoked commitment as an input of justice, on the breach's own
 * txid: the to-owner output and both HTLC kinds, by the revocation path; our final key
 * (params.otherFinal) signs every one. The to-other output is ours already (it pays our final
 * key): the wallet sweeps it as it sweeps a close output, so justice never races the wallet.
 */
export function justiceInputs(record: RevocationRecord, breach: Transaction): SpendInput[] {
  const commitment = buildCommitment(record.params);
  const expected = normalizedTxidBytes(commitment.tx);
  if (!normalizedTxidBytes(breach).equals(expected))
    throw new JusticeError(
      "NOT_THIS_COMMITMENT",
      `transaction ${breach.getId()} is not channel ${record.signerChannel}'s revoked commitment ${record.revokedNumber}`,
    );
  const txid = txidFromHex(breach.getId());
  const pubkey = Buffer.from(record.params.otherFinal);
  const revocable = commitment.outputs.filter((o) => o.kind !== "to_other");
  if (revocable.length === 0)
    throw new JusticeError(
      "NOTHING_TO_TAKE",
      `the revoked commitment ${breach.getId()} has no output of the peer's: nothing to punish`,
    );
  return revocable.map((o) => ({
    coin: { outpoint: { txid, vout: o.vout }, amount: o.amount, redeemScript: o.redeemScript, pubkey },
    path: { kind: "revocation", preimage: record.revocationPreimage },
  }));
}

function planOf(spends: Spend[], breachTxid: Txid, feeRate: number): JusticePlan {
  return {
    spends,
    breachTxid,
    sweptSat: sumSat(spends.map((s) => sat(s.tx.outs[0]!.value))),
    feeSat: sumSat(spends.map((s) => s.fee)),
    feeRate,
  };
}

function affordable<T>(build: () => T): T {
  try {
    return build();
  } catch (e) {
    throw new JusticeError("UNAFFORDABLE", (e as Error).message, { cause: e });
  }
}

/**
 * Justice for a breach seen on chain (DESIGN.md 7): built after the breach, against its actual
 * txid, paying record.sweepScript at `feeRate` satoshi per 1000 bytes, split so that each
 * transaction stays below `maxBytes`.
 */
export function planJustice(
  record: RevocationRecord,
  breach: Transaction,
  feeRate: number,
  maxBytes: number = MAX_STANDARD_TX_BYTES,
): JusticePlan {
  const inputs = justiceInputs(record, breach);
  const spends = affordable(() =>
    buildJustice(inputs, record.sweepScript, feeRate, maxBytes, { replaceable: true }),
  );
  return planOf(spends, txidFromHex(breach.getId()), feeRate);
}

/**
 * The same transactions at a higher fee rate, for replacement (BIP125): each keeps its inputs
 * and destination and pays less to it, so each replaces exactly the one it was built from.
 */
export function replaceJustice(plan: JusticePlan, feeRate: number): JusticePlan {
  if (feeRate <= plan.feeRate)
    throw new JusticeError(
      "FEE_NOT_HIGHER",
      `a replacement needs a fee rate above ${plan.feeRate}, got ${feeRate}`,
    );
  const spends = plan.spends.map((s) =>
    affordable(() => buildSpend(s.inputs, s.tx.outs[0]!.script, feeRate, { replaceable: true })),
  );
  return planOf(spends, plan.breachTxid, feeRate);
}

/** Adds the scriptSigs: one compact signature by our final key per input, in input order. */
export function finalizeJustice(spend: Spend, compactSigs: readonly Uint8Array[]): Transaction {
  if (compactSigs.length !== spend.inputs.length)
    throw new JusticeError(
      "BAD_SIGNATURES",
      `${spend.inputs.length} inputs need ${spend.inputs.length} signatures, got ${compactSigs.length}`,
    );
  return finalizeSpend(spend, compactSigs);
}

/**
 * The parts of the signer's SignJusticeRequest, in domain form: @ln/signer-client is not a
 * dependency here, so the tower converts `params` with its `commitmentParamsMsg`. Justice pays
 * the channel's final key (defaultSweepScript), so `wallet_key_indexes` is empty unless the
 * record's sweepScript is a wallet key's, which only the tower's owner knows.
 */
export interface JusticeSignRequestFields {
  channel: number;
  revokedNumber: bigint;
  params: CommitmentParams;
  /** The breach as seen on chain. */
  commitmentTxHex: string;
  /** The unsigned justice transaction. */
  justiceTxHex: string;
}

export function justiceSignRequestFields(
  record: RevocationRecord,
  breach: Transaction,
  spend: Spend,
): JusticeSignRequestFields {
  return {
    channel: record.signerChannel,
    revokedNumber: record.revokedNumber,
    params: record.params,
    commitmentTxHex: breach.toHex(),
    justiceTxHex: spend.tx.toHex(),
  };
}
