/**
 * Amounts as branded bigints. Satoshis and millisatoshis never mix without one of the
 * named conversions below; commitment outputs round msat down to whole satoshis (draft 3.2).
 */
declare const satBrand: unique symbol;
declare const msatBrand: unique symbol;

/** A whole number of satoshis. */
export type Sat = bigint & { readonly [satBrand]: true };
/** A whole number of millisatoshis. */
export type Msat = bigint & { readonly [msatBrand]: true };

export class AmountError extends Error {
  override readonly name = "AmountError";
  constructor(
    readonly code: "NEGATIVE" | "NOT_INTEGER",
    readonly value: unknown,
  ) {
    super(`amount ${String(value)} is ${code === "NEGATIVE" ? "negative" : "not a whole number"}`);
  }
}

function toWhole(value: bigint | number): bigint {
  if (typeof value === "number" && !Number.isSafeInteger(value)) throw new AmountError("NOT_INTEGER", value);
  const v = BigInt(value);
  if (v < 0n) throw new AmountError("NEGATIVE", value);
  return v;
}

export const sat = (value: bigint | number): Sat => toWhole(value) as Sat;
export const msat = (value: bigint | number): Msat => toWhole(value) as Msat;

export const MSAT_PER_SAT = 1000n;

/** Exact: every satoshi is 1000 millisatoshi. */
export const satToMsat = (s: Sat): Msat => (s * MSAT_PER_SAT) as Msat;
/** Rounds down to whole satoshis, as commitment transactions do (draft 3.2). */
export const msatToSatFloor = (m: Msat): Sat => (m / MSAT_PER_SAT) as Sat;

/** Draft 2.2 and DESIGN.md 9.6: so that every msat amount of a channel fits in 32 bits. */
export const MAX_ANCHOR_SAT = sat(4294967n);
/** DESIGN.md 5: outputs below this are dust and are left out. */
export const DUST_LIMIT_SAT = sat(546n);

export const sumSat = (xs: readonly Sat[]): Sat => xs.reduce<bigint>((a, b) => a + b, 0n) as Sat;
export const sumMsat = (xs: readonly Msat[]): Msat => xs.reduce<bigint>((a, b) => a + b, 0n) as Msat;
