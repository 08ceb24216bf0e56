/**
 * Revocation preimages from one seed (draft section 5, DESIGN.md 9.1), and the receiver's compact
 * store (the shachain design of the draft's reference [5], as BOLT #3 appendix D specifies it).
 *
 * Bits are flipped from 63 down to 0: the draft's "for B in 0 to 63" contradicts its own reference,
 * and only highest-bit-first lets a receiver derive older preimages from newer ones.
 */
import { createHash } from "node:crypto";

/** The first commitment uses this index, the next one index - 1, and so on (draft 5). */
export const FIRST_INDEX = 0xffff_ffff_ffff_ffffn;
const INDEX_BITS = 64;

export type ShachainErrorCode =
  /** An index outside 0..2^64-1. */
  | "BAD_INDEX"
  /** A seed or secret that is not 32 bytes. */
  | "BAD_LENGTH"
  /** The inserted secret does not derive a secret already stored: the sender is lying or buggy. */
  | "SECRET_MISMATCH";

export class ShachainError extends Error {
  override readonly name = "ShachainError";
  constructor(
    readonly code: ShachainErrorCode,
    message: string,
  ) {
    super(message);
  }
}

function checkIndex(index: bigint): void {
  if (index < 0n || index > FIRST_INDEX)
    throw new ShachainError("BAD_INDEX", `index ${index} is not a 64-bit value`);
}

function check32(bytes: Uint8Array, what: string): void {
  if (bytes.length !== 32)
    throw new ShachainError("BAD_LENGTH", `${what} must be 32 bytes, got ${bytes.length}`);
}

/** Hashes `base` down the bits of `index` below `bits`, highest first (BOLT #3 derive_secret). */
function derive(base: Uint8Array, bits: number, index: bigint): Buffer {
  const p = Buffer.from(base);
  for (let b = bits - 1; b >= 0; b--) {
    if ((index >> BigInt(b)) & 1n) {
      p[b >> 3]! ^= 1 << (b & 7);
      createHash("sha256").update(p).digest().copy(p);
    }
  }
  return p;
}

/** The preimage for `index` (draft 5 `generate_from_seed`, bits 63 down to 0). */
export function generateFromSeed(seed: Uint8Array, index: bigint): Buffer {
  check32(seed, "a shachain seed");
  checkIndex(index);
  return derive(seed, INDEX_BITS, index);
}

/** The preimage of commitment number `n` (0 for the first commitment). */
export const commitmentIndex = (n: bigint): bigint => FIRST_INDEX - n;

/** One slot of the receiver store: a secret and the index it was received for. */
export interface ShachainSlot {
  readonly index: bigint;
  /** 32 bytes, hex. */
  readonly secret: string;
}

/**
 * The receiver's store as plain data: slot b holds the latest secret whose index has exactly b
 * trailing zero bits, from which every older index sharing its upper bits derives. 64 slots, plus
 * one for index 0, so at most 65 secrets stand for up to 2^64 of them.
 */
export interface ShachainStore {
  readonly slots: readonly (ShachainSlot | null)[];
}

export const emptyShachainStore = (): ShachainStore => ({ slots: [] });

/** How many trailing zero bits `index` has: the slot it goes in (BOLT #3 where_to_put_secret). */
function slotFor(index: bigint): number {
  for (let b = 0; b < INDEX_BITS; b++) if ((index >> BigInt(b)) & 1n) return b;
  return INDEX_BITS;
}

/**
 * Stores the secret for `index`, after checking it derives every secret in the lower slots.
 * Returns a new store; the old one is left untouched, also on error.
 */
export function insertSecret(store: ShachainStore, index: bigint, secret: Uint8Array): ShachainStore {
  checkIndex(index);
  check32(secret, "a revocation preimage");
  const slot = slotFor(index);
  for (let b = 0; b < slot; b++) {
    const known = store.slots[b];
    if (!known) continue;
    if (!derive(secret, slot, known.index).equals(Buffer.from(known.secret, "hex"))) {
      throw new ShachainError(
        "SECRET_MISMATCH",
        `the secret for index ${index} does not derive the one already stored for index ${known.index}`,
      );
    }
  }
  const slots = store.slots.slice();
  while (slots.length <= slot) slots.push(null);
  slots[slot] = { index, secret: Buffer.from(secret).toString("hex") };
  return { slots };
}

/** The secret for `index` if the store can derive it (it was inserted, or is older than one that was). */
export function deriveSecret(store: ShachainStore, index: bigint): Buffer | undefined {
  checkIndex(index);
  for (let b = 0; b < store.slots.length; b++) {
    const known = store.slots[b];
    if (!known) continue;
    const mask = ~((1n << BigInt(b)) - 1n) & FIRST_INDEX;
    if ((index & mask) === known.index) return derive(Buffer.from(known.secret, "hex"), b, index);
  }
  return undefined;
}
