import { sha256, sha256d, sha256Of32Into } from "@ln/bitcoin";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";

/** Node's streaming API, the way these were computed before the one-shot call. */
const reference = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();

describe("sha256", () => {
  it("the FIPS 180-2 test vectors", () => {
    expect(sha256(Buffer.from("abc")).toString("hex")).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(sha256(new Uint8Array(0)).toString("hex")).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    // Bitcoin's genesis block header hashes (SHA256d) to the genesis block hash, displayed reversed.
    const genesis = Buffer.from(
      "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c",
      "hex",
    );
    expect(Buffer.from(sha256d(genesis)).reverse().toString("hex")).toBe(
      "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f",
    );
  });

  it("equals the streaming digest on any bytes, views included", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), fc.nat({ max: 8 }), (b, cut) => {
        const view = b.subarray(Math.min(cut, b.length));
        expect(sha256(view).equals(reference(view))).toBe(true);
      }),
      { numRuns: 500 },
    );
  });
});

describe("sha256Of32Into", () => {
  const thirtyTwo = fc.uint8Array({ minLength: 32, maxLength: 32 });

  it("equals SHA256 of the 32 bytes, truncated to len, written where asked and nowhere else", () => {
    fc.assert(
      fc.property(
        thirtyTwo,
        fc.nat({ max: 7 }),
        fc.nat({ max: 7 }),
        fc.integer({ min: 0, max: 32 }),
        (msg, from, at, len) => {
          const data = Buffer.concat([Buffer.alloc(from, 0xaa), msg, Buffer.alloc(3, 0xbb)]);
          const out = Buffer.alloc(at + 40, 0x5c);
          sha256Of32Into(data, from, out, at, len);
          const want = reference(msg).subarray(0, len);
          expect(out.subarray(at, at + len).equals(want)).toBe(true);
          expect(out.subarray(0, at).every((x) => x === 0x5c)).toBe(true);
          expect(out.subarray(at + len).every((x) => x === 0x5c)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("known values: all zeros, all ones, and a hash of a hash as in a txid", () => {
    const out = Buffer.alloc(32);
    sha256Of32Into(Buffer.alloc(32), 0, out, 0);
    expect(out.toString("hex")).toBe("66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925");
    sha256Of32Into(Buffer.alloc(32, 0xff), 0, out, 0);
    expect(out.equals(reference(Buffer.alloc(32, 0xff)))).toBe(true);
    const inner = sha256(Buffer.from("abc"));
    sha256Of32Into(inner, 0, out, 0);
    expect(out.equals(sha256d(Buffer.from("abc")))).toBe(true);
  });

  it("refuses a message shorter than 32 bytes or an output that does not fit", () => {
    expect(() => sha256Of32Into(Buffer.alloc(31), 0, Buffer.alloc(32), 0)).toThrow(RangeError);
    expect(() => sha256Of32Into(Buffer.alloc(40), 9, Buffer.alloc(32), 0)).toThrow(RangeError);
    expect(() => sha256Of32Into(Buffer.alloc(32), 0, Buffer.alloc(31), 0)).toThrow(RangeError);
    expect(() => sha256Of32Into(Buffer.alloc(32), 0, Buffer.alloc(32), 1, 32)).toThrow(RangeError);
    expect(() => sha256Of32Into(Buffer.alloc(32), 0, Buffer.alloc(32), 0, 33)).toThrow(RangeError);
  });
});
