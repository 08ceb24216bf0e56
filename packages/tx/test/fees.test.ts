import { msat, sat, txidFromHex } from "@ln/bitcoin";
import type { Msat } from "@ln/bitcoin";
import { p2shOutput } from "@ln/scripts";
import {
  buildClose,
  buildCommitment,
  commitmentBytecount,
  feeForBytes,
  splitFee,
  type CommitmentHtlc,
  type CommitmentParams,
} from "@ln/tx";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";

describe("draft 3.6 fee arithmetic", () => {
  it("the draft's own example: 402 bytes at fee rate 1112 is 446 satoshi", () => {
    expect(feeForBytes(402, 1112)).toBe(446n);
  });
  it("rounds down to an even number of satoshis", () => {
    expect(feeForBytes(338, 1000)).toBe(338n);
    expect(feeForBytes(339, 1000)).toBe(338n); // 339 -> even below
    expect(feeForBytes(1, 1999)).toBe(0n); // 1.999 -> 0
    expect(feeForBytes(1, 2000)).toBe(2n);
  });
  it("bytecount: 338 + 32 per non-dust HTLC; 1500 HTLCs give 48338", () => {
    expect(commitmentBytecount(0)).toBe(338);
    expect(commitmentBytecount(1500)).toBe(48338);
    expect(feeForBytes(commitmentBytecount(1500), 1000)).toBe(48338n);
  });

  const m = (n: number): Msat => msat(n);
  it("rule 1: both afford half", () => {
    expect(splitFee(m(1_000_000), m(2_000_000), sat(446))).toEqual({ owner: 777_000n, other: 1_777_000n });
  });
  it("rule 2: one cannot afford half: it pays all it has, the other the rest", () => {
    expect(splitFee(m(100_000), m(1_000_000), sat(446))).toEqual({ owner: 0n, other: 654_000n });
    expect(splitFee(m(1_000_000), m(222_999), sat(446))).toEqual({ owner: 776_999n, other: 0n });
  });
  it("rule 2: neither can afford half: both to zero", () => {
    expect(splitFee(m(100_000), m(200_000), sat(446))).toEqual({ owner: 0n, other: 0n });
  });
  it("rule 2: the other cannot cover the remainder: it goes to zero too", () => {
    expect(splitFee(m(0), m(300_000), sat(446))).toEqual({ owner: 0n, other: 0n });
  });
});

const key = (fill: number): Buffer =>
  Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, fill), true) as Uint8Array);
const base = (over: Partial<CommitmentParams> = {}): CommitmentParams => ({
  anchor: {
    outpoint: { txid: txidFromHex("11".repeat(32)), vout: 0 },
    amount: sat(1_000_000),
    commitKeys: [key(1), key(2)],
  },
  ownerFinal: key(3),
  otherFinal: key(4),
  revocationHash: Buffer.alloc(32, 5),
  delay: { blocks: 144 },
  ownerMsat: msat(600_000_000),
  otherMsat: msat(400_000_000),
  htlcs: [],
  feeRate: 1112,
  ...over,
});
const htlc = (id: number, amountMsat: number, offeredByOwner = true): CommitmentHtlc => ({
  id: BigInt(id),
  offeredByOwner,
  amountMsat: msat(amountMsat),
  rHash: Buffer.alloc(32, id),
  expiry: { blocks: 500 },
});

describe("commitment transaction", () => {
  it("splits the fee, rounds msat down, orders outputs by BIP69", () => {
    const c = buildCommitment(
      base({
        ownerMsat: msat(600_000_999),
        otherMsat: msat(399_000_000),
        htlcs: [htlc(1, 700_000), htlc(2, 299_001, false)],
      }),
    );
    // one non-dust HTLC (700 sat); the 299 sat one is dust: 338 + 32 = 370 bytes at 1112 -> 410 sat
    expect(c.bytecount).toBe(370);
    expect(c.fee).toBe(410n);
    const amounts = c.outputs.map((o) => o.amount);
    expect(amounts).toEqual([700n, 398_795n, 599_795n]);
    expect(c.outputs.map((o) => o.kind)).toEqual(["htlc_offered", "to_other", "to_owner"]);
    expect(c.tx.outs.map((o) => o.value)).toEqual(amounts);
    // the dust HTLC, the rounding and the fee all go to miners
    expect(c.paidFee).toBe(1_000_000n - 700n - 398_795n - 599_795n);
    c.outputs.forEach((o) =>
      expect(Buffer.from(c.tx.outs[o.vout]!.script).equals(p2shOutput(o.redeemScript))).toBe(true),
    );
  });

  it("orders equal amounts by scriptPubKey", () => {
    const c = buildCommitment(
      base({
        ownerMsat: msat(0),
        otherMsat: msat(0),
        htlcs: [htlc(1, 1_000_000), htlc(2, 1_000_000), htlc(3, 1_000_000, false)],
        feeRate: 0,
      }),
    );
    const scripts = c.tx.outs.map((o) => Buffer.from(o.script).toString("hex"));
    expect([...scripts].sort()).toEqual(scripts);
  });

  it("leaves out a to-final output that is dust after the fee (rule 3)", () => {
    const c = buildCommitment(base({ ownerMsat: msat(700_000), otherMsat: msat(999_300_000) }));
    // 338 bytes at 1112: floor(375.856 / 2) * 2 = 374; each pays 187; the owner's 513 sat is dust
    expect(c.fee).toBe(374n);
    expect(c.outputs.map((o) => [o.kind, o.amount])).toEqual([["to_other", 999_113n]]);
  });

  it("keeps the fee unchanged when dust HTLCs already pay fee", () => {
    const without = buildCommitment(base());
    const withDust = buildCommitment(base({ ownerMsat: msat(599_500_000), htlcs: [htlc(9, 500_000)] }));
    expect(withDust.fee).toBe(without.fee);
    expect(withDust.bytecount).toBe(338);
    expect(withDust.outputs).toHaveLength(2);
    // the dust HTLC's 500 sat go to miners on top of the unchanged fee
    expect(withDust.paidFee - without.paidFee).toBe(500n);
  });

  it("refuses balances above the anchor", () => {
    expect(() =>
      buildCommitment(base({ ownerMsat: msat(600_000_001), otherMsat: msat(400_000_000) })),
    ).toThrow(/exceed/);
  });
});

describe("close transaction", () => {
  it("pays both final keys with close_fee split as in 3.6, and refuses an odd fee", () => {
    const anchor = base().anchor;
    const c = buildClose({
      anchor,
      a: { finalKey: key(3), msat: msat(600_000_000) },
      b: { finalKey: key(4), msat: msat(400_000_000) },
      closeFee: sat(1000),
    });
    expect(c.outputs.map((o) => o.amount)).toEqual([399_500n, 599_500n]);
    expect(() =>
      buildClose({
        anchor,
        a: { finalKey: key(3), msat: msat(1) },
        b: { finalKey: key(4), msat: msat(1) },
        closeFee: sat(999),
      }),
    ).toThrow(/even/);
  });
});
