import { DUST_LIMIT_SAT, msatToSatFloor, satToMsat, sat } from "@ln/bitcoin";
import type { Msat, Sat } from "@ln/bitcoin";

/** Draft 3.6: the fixed worst-case commitment size, with both to-final outputs counted. */
export const COMMITMENT_BASE_BYTES = 338;
/** Draft 3.6: each non-dust HTLC output adds one 32-byte P2SH output. */
export const HTLC_OUTPUT_BYTES = 32;

/** Draft 3.6's bytecount: 338 + 32 per non-dust HTLC, whatever the real size. */
export const commitmentBytecount = (nonDustHtlcs: number): number =>
  COMMITMENT_BASE_BYTES + HTLC_OUTPUT_BYTES * nonDustHtlcs;

/**
 * Draft 3.6: bytes * fee_rate / 1000 truncated to an even number of satoshis, i.e.
 * floor(bytes * rate / 2000) * 2. `feeRate` is satoshi per 1000 bytes (`update_fee.fee_rate`).
 */
export function feeForBytes(bytes: number, feeRate: number): Sat {
  return sat(((BigInt(bytes) * BigInt(feeRate)) / 2000n) * 2n);
}

export const isDust = (amount: Sat): boolean => amount < DUST_LIMIT_SAT;
export const isDustMsat = (amount: Msat): boolean => isDust(msatToSatFloor(amount));

/** What each to-final output pays toward the fee (draft 3.6's three rules). */
export interface FeeSplit {
  /** The two to-final balances after the fee, still in msat (outputs round down later). */
  owner: Msat;
  other: Msat;
}

/**
 * Draft 3.6: if each side can afford half the fee from its to-final output, each pays half;
 * otherwise the side that cannot is reduced to zero and the other pays what remains, down to
 * zero. (When neither can afford half, both end at zero whichever is taken first.)
 */
export function splitFee(owner: Msat, other: Msat, fee: Sat): FeeSplit {
  const feeMsat = satToMsat(fee);
  const half = feeMsat / 2n; // fee is even in satoshi, so this is whole satoshis
  if (owner >= half && other >= half) return { owner: (owner - half) as Msat, other: (other - half) as Msat };
  const ownerIsShort = owner < half;
  const short = ownerIsShort ? owner : other;
  const rich = ownerIsShort ? other : owner;
  const remaining = feeMsat - short;
  const richAfter = (rich > remaining ? rich - remaining : 0n) as Msat;
  const zero = 0n as Msat;
  return ownerIsShort ? { owner: zero, other: richAfter } : { owner: richAfter, other: zero };
}
