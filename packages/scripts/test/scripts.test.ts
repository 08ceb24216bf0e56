import { hash160, ripemd160 } from "@ln/bitcoin";
import {
  anchorScript,
  htlcOfferedScript,
  htlcReceivedScript,
  p2shOutput,
  relativeDelay,
  absoluteExpiry,
  scriptNumber,
  TimelockError,
  toOtherScript,
  toOwnerScript,
} from "@ln/scripts";
import { script } from "bitcoinjs-lib";
import { describe, expect, it } from "vitest";

// Opcodes by value (BIP/bitcoin Core script.h), written out so the expectations do not come from
// the library under test.
const OP = {
  0: "00",
  2: "52",
  HASH160: "a9",
  EQUAL: "87",
  EQUALVERIFY: "88",
  IF: "63",
  NOTIF: "64",
  ELSE: "67",
  ENDIF: "68",
  CHECKSIG: "ac",
  CHECKMULTISIG: "ae",
  CSV: "b2",
  CLTV: "b1",
  DROP: "75",
  "2DROP": "6d",
  SIZE: "82",
  DUP: "76",
  SWAP: "7c",
  ADD: "93",
} as const;

const K1 = "02" + "11".repeat(32);
const K2 = "03" + "22".repeat(32);
const push33 = (k: string): string => `21${k}`;
const push20 = (h: Buffer): string => `14${h.toString("hex")}`;
const REV = Buffer.alloc(32, 0xaa);
const RH = Buffer.alloc(32, 0xbb);

/** Minimal pushes of numbers, by hand (CScriptNum: little-endian, sign bit in the last byte). */
const numbers: [number, string][] = [
  [0, "00"], // OP_0
  [1, "51"], // OP_1
  [16, "60"], // OP_16
  [17, "0111"],
  [127, "017f"],
  [128, "028000"], // 0x80 alone would be -0
  [200, "02c800"], // 0xc8 alone would be -72
  [255, "02ff00"],
  [256, "020001"],
  [32767, "02ff7f"],
  [32768, "03008000"],
  [500000000, "040065cd1d"],
];

describe("minimal CScriptNum pushes", () => {
  it.each(numbers)("%d", (n, hex) => {
    expect(Buffer.from(script.compile([scriptNumber(n)])).toString("hex")).toBe(hex);
  });
});

describe("timelocks", () => {
  it("blocks are the number itself; seconds are BIP68 512-second units with the type flag, rounded up", () => {
    expect(relativeDelay({ blocks: 144 })).toBe(144);
    expect(relativeDelay({ seconds: 512 })).toBe((1 << 22) | 1);
    expect(relativeDelay({ seconds: 513 })).toBe((1 << 22) | 2);
    expect(relativeDelay({ seconds: 3600 })).toBe((1 << 22) | 8);
    expect(() => relativeDelay({ blocks: 65536 })).toThrow(TimelockError);
    expect(() => relativeDelay({ seconds: 65536 * 512 })).toThrow(TimelockError);
  });
  it("absolute expiries are heights below 500000000 or unix times from it", () => {
    expect(absoluteExpiry({ blocks: 1351 })).toBe(1351);
    expect(absoluteExpiry({ seconds: 500000000 })).toBe(500000000);
    expect(() => absoluteExpiry({ blocks: 500000000 })).toThrow(TimelockError);
    expect(() => absoluteExpiry({ seconds: 499999999 })).toThrow(TimelockError);
  });
});

describe("script templates (DESIGN.md 5), byte for byte", () => {
  it("anchor: OP_2 <k1> <k2> OP_2 OP_CHECKMULTISIG with keys in byte order", () => {
    const expected = OP[2] + push33(K1) + push33(K2) + OP[2] + OP.CHECKMULTISIG;
    expect(anchorScript(Buffer.from(K2, "hex"), Buffer.from(K1, "hex")).toString("hex")).toBe(expected);
    expect(anchorScript(Buffer.from(K1, "hex"), Buffer.from(K2, "hex")).toString("hex")).toBe(expected);
    // 71 bytes, as draft 3.6 counts it
    expect(expected.length / 2).toBe(71);
  });

  const keys = (delay: number) => ({
    revocationHash: REV,
    delay: { blocks: delay },
    ownerFinal: Buffer.from(K1, "hex"),
    otherFinal: Buffer.from(K2, "hex"),
  });

  it.each([
    [0, "00"],
    [16, "60"],
    [17, "0111"],
    [127, "017f"],
    [128, "028000"],
    [200, "02c800"],
  ])("to-owner with delay %d", (delay, num) => {
    const expected =
      OP.HASH160 +
      push20(ripemd160(REV)) +
      OP.EQUAL +
      OP.IF +
      push33(K2) +
      OP.ELSE +
      num +
      OP.CSV +
      OP.DROP +
      push33(K1) +
      OP.ENDIF +
      OP.CHECKSIG;
    expect(toOwnerScript(keys(delay)).toString("hex")).toBe(expected);
  });

  it("to-owner with a delay in seconds (BIP68 time units: 1<<22 | 8 = 0x400008)", () => {
    const s = toOwnerScript({ ...keys(0), delay: { seconds: 4096 } }).toString("hex");
    expect(s).toContain(`03080040${OP.CSV}`);
  });

  it("to-other: <their_final> OP_CHECKSIG", () => {
    expect(toOtherScript(Buffer.from(K2, "hex")).toString("hex")).toBe(push33(K2) + OP.CHECKSIG);
  });

  it.each([
    [17, "0111", 500000000, "040065cd1d"],
    [200, "02c800", 128, "028000"],
  ])("HTLC offered by the owner, delay %d, expiry %d", (delay, dnum, expiry, enum_) => {
    const expected =
      OP.SIZE +
      "0120" +
      OP.EQUALVERIFY +
      OP.HASH160 +
      OP.DUP +
      push20(ripemd160(RH)) +
      OP.EQUAL +
      OP.SWAP +
      push20(ripemd160(REV)) +
      OP.EQUAL +
      OP.ADD +
      OP.IF +
      push33(K2) +
      OP.ELSE +
      enum_ +
      OP.CLTV +
      dnum +
      OP.CSV +
      OP["2DROP"] +
      push33(K1) +
      OP.ENDIF +
      OP.CHECKSIG;
    const expiryLock = expiry >= 500000000 ? { seconds: expiry } : { blocks: expiry };
    expect(htlcOfferedScript({ ...keys(delay), rHash: RH, expiry: expiryLock }).toString("hex")).toBe(
      expected,
    );
  });

  it.each([
    [17, "0111", 500000000, "040065cd1d"],
    [200, "02c800", 16, "60"],
  ])("HTLC offered to the owner, delay %d, expiry %d", (delay, dnum, expiry, enum_) => {
    const expected =
      OP.SIZE +
      "0120" +
      OP.EQUALVERIFY +
      OP.HASH160 +
      OP.DUP +
      push20(ripemd160(RH)) +
      OP.EQUAL +
      OP.IF +
      dnum +
      OP.CSV +
      OP["2DROP"] +
      push33(K1) +
      OP.ELSE +
      push20(ripemd160(REV)) +
      OP.EQUAL +
      OP.NOTIF +
      enum_ +
      OP.CLTV +
      OP.DROP +
      OP.ENDIF +
      push33(K2) +
      OP.ENDIF +
      OP.CHECKSIG;
    const expiryLock = expiry >= 500000000 ? { seconds: expiry } : { blocks: expiry };
    expect(htlcReceivedScript({ ...keys(delay), rHash: RH, expiry: expiryLock }).toString("hex")).toBe(
      expected,
    );
  });

  it("P2SH: OP_HASH160 <hash160(redeem)> OP_EQUAL, 23 bytes", () => {
    const redeem = toOtherScript(Buffer.from(K2, "hex"));
    const out = p2shOutput(redeem).toString("hex");
    expect(out).toBe(OP.HASH160 + push20(hash160(redeem)) + OP.EQUAL);
    expect(out.length / 2).toBe(23);
  });

  it("refuses keys that are not 33 bytes and hashes that are not 32", () => {
    expect(() => toOtherScript(Buffer.alloc(32, 2))).toThrow(/33-byte/);
    expect(() => toOwnerScript({ ...keys(1), revocationHash: Buffer.alloc(20) })).toThrow(/32-byte/);
  });
});
