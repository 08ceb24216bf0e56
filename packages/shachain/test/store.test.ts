import { createHash } from "node:crypto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  commitmentIndex,
  deriveSecret,
  emptyShachainStore,
  FIRST_INDEX,
  generateFromSeed,
  insertSecret,
  ShachainError,
} from "@ln/shachain";

/** An independent reading of draft 5 with the DESIGN.md 9.1 bit order: flip bit B of P, then hash. */
function reference(seed: Buffer, index: bigint): Buffer {
  let p = BigInt("0x" + Buffer.from(seed).reverse().toString("hex")); // bit B = bit (B mod 8) of byte B div 8
  for (let b = 63; b >= 0; b--) {
    if ((index >> BigInt(b)) & 1n) {
      p ^= 1n << BigInt(b);
      const bytes = Buffer.from(p.toString(16).padStart(64, "0"), "hex").reverse();
      p = BigInt("0x" + Buffer.from(createHash("sha256").update(bytes).digest()).reverse().toString("hex"));
    }
  }
  return Buffer.from(p.toString(16).padStart(64, "0"), "hex").reverse();
}

describe("generateFromSeed over the whole 64-bit index", () => {
  it("matches an independent computation for random seeds and indices, including bits above 47", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.bigInt(0n, FIRST_INDEX),
        (seed, index) => {
          expect(generateFromSeed(seed, index)).toEqual(reference(Buffer.from(seed), index));
        },
      ),
      { numRuns: 300 },
    );
  });
  it("starts at 2^64-1 and counts down", () => {
    expect(commitmentIndex(0n)).toBe(2n ** 64n - 1n);
    expect(commitmentIndex(1n)).toBe(2n ** 64n - 2n);
  });
  it("refuses indices outside 64 bits and seeds of the wrong size", () => {
    const seed = Buffer.alloc(32);
    expect(() => generateFromSeed(seed, 2n ** 64n)).toThrow(ShachainError);
    expect(() => generateFromSeed(seed, -1n)).toThrow(ShachainError);
    expect(() => generateFromSeed(Buffer.alloc(31), 0n)).toThrow(ShachainError);
  });
});

describe("the receiver store", () => {
  const seed = Buffer.alloc(32, 7);

  it("keeps at most 65 slots and derives every secret received, from the first commitment on", () => {
    let store = emptyShachainStore();
    const n = 2000n;
    for (let i = 0n; i < n; i++) {
      store = insertSecret(store, commitmentIndex(i), generateFromSeed(seed, commitmentIndex(i)));
      expect(store.slots.length).toBeLessThanOrEqual(65);
    }
    for (let i = 0n; i < n; i++) {
      expect(deriveSecret(store, commitmentIndex(i))).toEqual(generateFromSeed(seed, commitmentIndex(i)));
    }
    expect(deriveSecret(store, commitmentIndex(n))).toBeUndefined(); // not received yet
  });

  it("rejects a secret from another seed and leaves the store as it was", () => {
    let store = emptyShachainStore();
    store = insertSecret(store, commitmentIndex(0n), generateFromSeed(seed, commitmentIndex(0n)));
    const other = generateFromSeed(Buffer.alloc(32, 8), commitmentIndex(1n));
    const before = JSON.stringify(store, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v));
    expect(() => insertSecret(store, commitmentIndex(1n), other)).toThrow(
      expect.objectContaining({ code: "SECRET_MISMATCH" }),
    );
    expect(JSON.stringify(store, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).toBe(
      before,
    );
  });

  it("stores index 0 in the 65th slot and derives from it", () => {
    let store = emptyShachainStore();
    store = insertSecret(store, 1n, generateFromSeed(seed, 1n));
    store = insertSecret(store, 0n, generateFromSeed(seed, 0n));
    expect(store.slots.length).toBe(65);
    expect(deriveSecret(store, 1n)).toEqual(generateFromSeed(seed, 1n));
  });
});
