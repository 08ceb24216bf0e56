/** The bare channel_update of BOLT #4 failures: its bytes, and fuzzing its decoder. */
import { msat } from "@ln/bitcoin";
import { decodeChannelUpdate, encodeChannelUpdate, GossipError, type ChannelUpdate } from "@ln/gossip";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { unsignedUpdate } from "./helpers.js";

const S = Buffer.from(Array.from({ length: 64 }, (_, i) => 0x40 + i));
// signature: eight fixed64 fields (tags 09 .. 41), each the next 8 bytes as they are.
const SIG = ["09", "11", "19", "21", "29", "31", "39", "41"]
  .map((t, i) => t + S.subarray(i * 8, i * 8 + 8).toString("hex"))
  .join("");

function gossipCode(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof GossipError) return e.code;
    throw e;
  }
  return undefined;
}

describe("encodeChannelUpdate / decodeChannelUpdate", () => {
  const u: ChannelUpdate = unsignedUpdate({
    shortChannelId: 0x0102030405060708n,
    direction: 0,
    timestamp: 1,
    disabled: true,
    cltvExpiryDelta: 6,
    htlcMinimumMsat: msat(0n),
    htlcMaximumMsat: msat(300n),
    feeBaseMsat: msat(0n),
    feeProportionalMillionths: 1n,
    sig: S,
  });
  // Hand-derived: 09 scid LE | 10 00 | 18 01 | 20 01 | 28 06 | 30 00 | 38 ac02 | 40 00 | 48 01 | 52 48 sig
  const hex =
    `090807060504030201` +
    `1000` +
    `1801` +
    `2001` +
    `2806` +
    `3000` +
    `38ac02` +
    `4000` +
    `4801` +
    `5248${SIG}`;

  it("is the protobuf channel_update message, field by field", () => {
    expect(encodeChannelUpdate(u).toString("hex")).toBe(hex);
    expect(decodeChannelUpdate(Buffer.from(hex, "hex"))).toEqual(u);
  });

  it("an out-of-range field: GossipError MALFORMED on both sides", () => {
    expect(gossipCode(() => encodeChannelUpdate({ ...u, feeBaseMsat: msat(2n ** 32n) }))).toBe("MALFORMED");
    expect(gossipCode(() => encodeChannelUpdate({ ...u, sig: Buffer.alloc(63) }))).toBe("MALFORMED");
    expect(gossipCode(() => decodeChannelUpdate(Buffer.from(hex.replace("1000", "1005"), "hex")))).toBe(
      "MALFORMED",
    );
    expect(gossipCode(() => decodeChannelUpdate(Buffer.alloc(0)))).toBe("MALFORMED");
  });

  it("fuzz: random bytes decode to an update that re-encodes to itself, or throw GossipError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 160 }), (b) => {
        let d: ChannelUpdate;
        try {
          d = decodeChannelUpdate(b);
        } catch (e) {
          if (e instanceof GossipError) return;
          throw e;
        }
        expect(decodeChannelUpdate(encodeChannelUpdate(d))).toEqual(d);
      }),
      { numRuns: 20000 },
    );
  });

  it("fuzz: mutations of a valid update (flips, insertions, deletions) never throw anything else", () => {
    const seed = Buffer.from(hex, "hex");
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(fc.constantFrom("flip", "insert", "delete"), fc.nat(), fc.integer({ min: 0, max: 255 })),
          {
            minLength: 1,
            maxLength: 4,
          },
        ),
        (edits) => {
          let b = Buffer.from(seed);
          for (const [op, at, v] of edits) {
            const i = at % (b.length + 1);
            if (op === "flip" && b.length > 0) b[i % b.length] = b[i % b.length]! ^ (v | 1);
            else if (op === "insert") b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
            else if (op === "delete") b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
          }
          try {
            decodeChannelUpdate(b);
          } catch (e) {
            if (!(e instanceof GossipError)) throw e;
            expect(e.code).toBe("MALFORMED");
          }
        },
      ),
      { numRuns: 20000 },
    );
  });
});
