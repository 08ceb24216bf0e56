/**
 * The fee bound of a justice transaction (SignJustice). Every input spends an output of the
 * revoked commitment, whose amounts the signer knows from the rebuilt commitment, and every output
 * pays our keys: what is not paid back is the fee. It is bounded two ways, so that a compromised
 * caller (or a tower bumping without end) cannot burn what justice takes: a fee-rate ceiling over
 * the signed size (the size `buildJustice` pays for, worst-case signatures), and a share of the
 * value taken.
 */
import { signedSize, type Commitment, type SpendPath } from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";
import { invalid, refuse } from "./errors.js";

/** Default SIGNER_MAX_JUSTICE_FEE_RATE: satoshi per 1000 bytes (500 sat/vB). */
export const DEFAULT_MAX_JUSTICE_FEE_RATE = 500_000;
/** Default SIGNER_MAX_JUSTICE_FEE_PERCENT: at most half of the value taken goes to fees. */
export const DEFAULT_MAX_JUSTICE_FEE_PERCENT = 50;

export interface JusticeFeeBounds {
  /** Satoshi per 1000 bytes of the signed size. */
  maxJusticeFeeRate?: number | undefined;
  /** Percent (1 to 100) of the inputs' total. */
  maxJusticeFeePercent?: number | undefined;
}

/** The revocation path's size: a 32-byte preimage after the signature; a to-other output takes none. */
const REVOCATION: SpendPath = { kind: "revocation", preimage: Buffer.alloc(32) };
const KEY: SpendPath = { kind: "key" };

/** `spent[i]`: the commitment output input i spends. */
export function checkJusticeFee(
  channel: number,
  tx: Transaction,
  spent: readonly Commitment["outputs"][number][],
  bounds: JusticeFeeBounds,
): void {
  const inTotal = spent.reduce<bigint>((a, o) => a + o.amount, 0n);
  const outTotal = tx.outs.reduce<bigint>((a, o) => a + o.value, 0n);
  if (outTotal > inTotal) throw invalid(`the outputs (${outTotal} sat) exceed the inputs (${inTotal} sat)`);
  const fee = inTotal - outTotal;
  const size = signedSize(
    tx,
    spent.map((o) => ({ coin: o, path: o.kind === "to_other" ? KEY : REVOCATION })),
  );
  const rate = BigInt(bounds.maxJusticeFeeRate ?? DEFAULT_MAX_JUSTICE_FEE_RATE);
  const byRate = (BigInt(size) * rate + 999n) / 1000n; // as buildSpend rounds
  if (fee > byRate)
    throw refuse(
      "JUSTICE_FEE_TOO_HIGH",
      `channel ${channel}: justice fee ${fee} sat for ${size} bytes is above ${rate} sat per 1000 bytes (SIGNER_MAX_JUSTICE_FEE_RATE)`,
    );
  const percent = BigInt(bounds.maxJusticeFeePercent ?? DEFAULT_MAX_JUSTICE_FEE_PERCENT);
  if (fee * 100n > inTotal * percent)
    throw refuse(
      "JUSTICE_FEE_TOO_HIGH",
      `channel ${channel}: justice fee ${fee} sat is above ${percent}% of the ${inTotal} sat taken (SIGNER_MAX_JUSTICE_FEE_PERCENT)`,
    );
}
