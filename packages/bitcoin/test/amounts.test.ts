import { describe, expect, it } from "vitest";
import {
  AmountError,
  msat,
  msatToSatFloor,
  sat,
  satToMsat,
  txidFromHex,
  txidFromInternal,
  txidToInternal,
} from "@ln/bitcoin";

describe("amounts", () => {
  it("rounds msat down to whole satoshis", () => {
    expect(msatToSatFloor(msat(1999n))).toBe(1n);
    expect(msatToSatFloor(msat(1000n))).toBe(1n);
    expect(msatToSatFloor(msat(999n))).toBe(0n);
  });
  it("converts sat to msat exactly", () => {
    expect(satToMsat(sat(4294967n))).toBe(4294967000n);
  });
  it("refuses negative and fractional amounts", () => {
    expect(() => sat(-1n)).toThrow(AmountError);
    expect(() => msat(1.5)).toThrow(AmountError);
  });
});

describe("txid byte order", () => {
  it("reverses between internal and display order", () => {
    const internal = Buffer.alloc(32);
    internal[0] = 0xab;
    const txid = txidFromInternal(internal);
    expect(txid.endsWith("ab")).toBe(true);
    expect(txidToInternal(txid)).toEqual(internal);
    expect(txidFromHex(txid.toUpperCase())).toBe(txid);
  });
});
