/** anchorMatches against the P2SH 2-of-2 built independently with bitcoinjs-lib's payments. */
import { anchorMatches, checkAnchor } from "@ln/gossip";
import { payments } from "bitcoinjs-lib";
import { describe, expect, it } from "vitest";
import { keyPair } from "./helpers.js";

const k1 = keyPair("commit 1").pub;
const k2 = keyPair("commit 2").pub;
const k3 = keyPair("commit 3").pub;

/** DESIGN.md 5: the anchor is the 2-of-2 of the two commit keys in byte order, paid by P2SH. */
function p2sh2of2(a: Buffer, b: Buffer): Buffer {
  const pubkeys = [a, b].sort(Buffer.compare);
  return Buffer.from(payments.p2sh({ redeem: payments.p2ms({ m: 2, pubkeys }) }).output!);
}

describe("anchorMatches", () => {
  it("takes the P2SH 2-of-2 of the two commit keys, whichever order they are given in", () => {
    const script = p2sh2of2(k1, k2);
    expect(anchorMatches({ script, valueSat: 100_000n }, k1, k2)).toBe(true);
    expect(anchorMatches({ script, valueSat: 100_000n }, k2, k1)).toBe(true);
  });

  it("refuses another key's 2-of-2, the keys unsorted, a bare multisig, a P2WSH of it", () => {
    expect(anchorMatches({ script: p2sh2of2(k1, k3), valueSat: 1n }, k1, k2)).toBe(false);
    const unsorted = [k1, k2].sort(Buffer.compare).reverse();
    const wrongOrder = Buffer.from(
      payments.p2sh({ redeem: payments.p2ms({ m: 2, pubkeys: unsorted }) }).output!,
    );
    expect(anchorMatches({ script: wrongOrder, valueSat: 1n }, k1, k2)).toBe(false);
    const bare = Buffer.from(payments.p2ms({ m: 2, pubkeys: [k1, k2].sort(Buffer.compare) }).output!);
    expect(anchorMatches({ script: bare, valueSat: 1n }, k1, k2)).toBe(false);
    const wsh = Buffer.from(
      payments.p2wsh({ redeem: payments.p2ms({ m: 2, pubkeys: [k1, k2].sort(Buffer.compare) }) }).output!,
    );
    expect(anchorMatches({ script: wsh, valueSat: 1n }, k1, k2)).toBe(false);
    expect(anchorMatches({ script: p2sh2of2(k1, k2), valueSat: 1n }, k1, Buffer.alloc(32))).toBe(false);
  });

  it("checkAnchor: not found, not the 2-of-2, spent, in that order", () => {
    const script = p2sh2of2(k1, k2);
    expect(
      checkAnchor({ found: false, unspent: false, script: Buffer.alloc(0), valueSat: 0n }, k1, k2),
    ).toMatchObject({ code: "ANCHOR_NOT_FOUND" });
    expect(
      checkAnchor({ found: true, unspent: true, script: p2sh2of2(k1, k3), valueSat: 1n }, k1, k2),
    ).toMatchObject({
      code: "ANCHOR_MISMATCH",
    });
    expect(checkAnchor({ found: true, unspent: false, script, valueSat: 1n }, k1, k2)).toMatchObject({
      code: "ANCHOR_SPENT",
    });
    expect(checkAnchor({ found: true, unspent: true, script, valueSat: 1n }, k1, k2)).toEqual({ ok: true });
  });
});
