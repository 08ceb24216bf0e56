import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  ShortChannelIdError,
  formatShortChannelId,
  parseShortChannelId,
  shortChannelId,
  shortChannelIdFromBigint,
  shortChannelIdToBigint,
} from "@ln/bitcoin";

const codeOf = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    if (e instanceof ShortChannelIdError) return e.code;
    throw e;
  }
  return undefined;
};

describe("short_channel_id (BOLT #7)", () => {
  // BOLT #7's example: block 539268, tx 845, output 1. By hand: 539268 = 0x083a84 (3 bytes),
  // 845 = 0x00034d (3 bytes), 1 = 0x0001 (2 bytes), concatenated big-endian.
  const example = { height: 539268, txIndex: 845, outputIndex: 1 };
  const exampleBigint = 0x083a84_00034d_0001n;

  it("packs height, tx index and output index big-endian into 8 bytes", () => {
    expect(shortChannelIdToBigint(example)).toBe(exampleBigint);
    expect(shortChannelIdFromBigint(exampleBigint)).toEqual(example);
    expect(shortChannelIdToBigint({ height: 103, txIndex: 1, outputIndex: 0 })).toBe(0x000067_000001_0000n);
    expect(shortChannelIdToBigint({ height: 0xffffff, txIndex: 0xffffff, outputIndex: 0xffff })).toBe(
      0xffffffffffffffffn,
    );
  });

  it("shows and reads HEIGHTxINDEXxOUTPUT", () => {
    expect(formatShortChannelId(example)).toBe("539268x845x1");
    expect(parseShortChannelId("539268x845x1")).toEqual(example);
    expect(parseShortChannelId("103x1x0")).toEqual({ height: 103, txIndex: 1, outputIndex: 0 });
    expect(parseShortChannelId("0x0x0")).toEqual({ height: 0, txIndex: 0, outputIndex: 0 });
    expect(parseShortChannelId("16777215x16777215x65535")).toEqual({
      height: 16777215,
      txIndex: 16777215,
      outputIndex: 65535,
    });
  });

  it("refuses text that is not the format, and parts beyond their bytes", () => {
    for (const bad of [
      "",
      "1x2",
      "1x2x3x4",
      "1:2:3",
      "01x2x3",
      "1x2x-3",
      "1.5x2x3",
      " 1x2x3",
      "1X2X3",
      "axbxc",
    ])
      expect(
        codeOf(() => parseShortChannelId(bad)),
        bad,
      ).toBe("BAD_FORMAT");
    for (const big of ["16777216x0x0", "0x16777216x0", "0x0x65536", "99999999x0x0"])
      expect(
        codeOf(() => parseShortChannelId(big)),
        big,
      ).toBe("OUT_OF_RANGE");
    expect(codeOf(() => shortChannelId(0, 0, 65536))).toBe("OUT_OF_RANGE");
    expect(codeOf(() => shortChannelId(-1, 0, 0))).toBe("OUT_OF_RANGE");
    expect(codeOf(() => shortChannelIdToBigint({ height: 1.5, txIndex: 0, outputIndex: 0 }))).toBe(
      "OUT_OF_RANGE",
    );
    expect(codeOf(() => shortChannelIdFromBigint(-1n))).toBe("OUT_OF_RANGE");
    expect(codeOf(() => shortChannelIdFromBigint(1n << 64n))).toBe("OUT_OF_RANGE");
  });

  it("round-trips through the 64-bit number and the text", () => {
    const scid = fc.record({
      height: fc.integer({ min: 0, max: 0xffffff }),
      txIndex: fc.integer({ min: 0, max: 0xffffff }),
      outputIndex: fc.integer({ min: 0, max: 0xffff }),
    });
    fc.assert(
      fc.property(scid, (s) => {
        const b = shortChannelIdToBigint(s);
        expect(b >= 0n && b < 1n << 64n).toBe(true);
        expect(shortChannelIdFromBigint(b)).toEqual(s);
        expect(parseShortChannelId(formatShortChannelId(s))).toEqual(s);
      }),
    );
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), (b) => {
        expect(shortChannelIdToBigint(shortChannelIdFromBigint(b))).toBe(b);
      }),
    );
  });
});
