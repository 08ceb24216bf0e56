/** Route math (payments/route.ts): payloads and the offered HTLC, against hand-computed numbers. */
import { msat } from "@ln/bitcoin";
import { describe, expect, it } from "vitest";
import { forwardingFee } from "../src/forwarding/policy.js";
import { NO_PAYMENT_SECRET, planRoute, RouteError, type RouteHop } from "../src/payments/route.js";

const B = `02${"bb".repeat(32)}`;
const C = `03${"cc".repeat(32)}`;
const D = `02${"dd".repeat(32)}`;
// 700x1x0, 710x2x1, 720x3x0 packed as BOLT #7: height << 40 | tx << 16 | output.
const SCID_B = (700n << 40n) | (1n << 16n);
const SCID_C = (710n << 40n) | (2n << 16n) | 1n;
const SCID_D = (720n << 40n) | (3n << 16n);

const hop = (nodeId: string, scid: bigint, base: bigint, ppm: bigint, delta: number): RouteHop => ({
  nodeId,
  shortChannelId: scid,
  feeBaseMsat: msat(base),
  feeProportionalMillionths: ppm,
  cltvExpiryDelta: delta,
});

const code = (f: () => unknown): string | undefined => {
  try {
    f();
  } catch (e) {
    return e instanceof RouteError ? e.code : `not a RouteError: ${String(e)}`;
  }
  return undefined;
};

describe("planRoute", () => {
  it("three hops: fees and deltas accumulate backwards from the payee", () => {
    // B charges 2000 + 250 ppm and 144 blocks for B->C; C charges 1000 + 100 ppm and 40 for C->D.
    const route = [
      hop(B, SCID_B, 0n, 0n, 0),
      hop(C, SCID_C, 2000n, 250n, 144),
      hop(D, SCID_D, 1000n, 100n, 40),
    ];
    const plan = planRoute(route, msat(1_000_000n), 1000);
    // D gets 1,000,000 at 1000. C receives 1,000,000 + 1000 + 100 = 1,001,100 at 1040.
    // B receives 1,001,100 + 2000 + floor(1,001,100 * 250 / 1e6 = 250.275) = 1,003,350 at 1184.
    expect(plan.amountMsat).toBe(1_003_350n);
    expect(plan.expiry).toBe(1184);
    expect(plan.hops.map((h) => [h.amountMsat, h.expiry])).toEqual([
      [1_003_350n, 1184],
      [1_001_100n, 1040],
      [1_000_000n, 1000],
    ]);
    expect(plan.hops.map((h) => h.payload)).toEqual([
      { amtToForwardMsat: 1_001_100n, outgoingCltvValue: 1040, shortChannelId: SCID_C },
      { amtToForwardMsat: 1_000_000n, outgoingCltvValue: 1000, shortChannelId: SCID_D },
      {
        amtToForwardMsat: 1_000_000n,
        outgoingCltvValue: 1000,
        paymentData: { paymentSecret: Buffer.alloc(32), totalMsat: 1_000_000n },
      },
    ]);
    expect(NO_PAYMENT_SECRET.equals(Buffer.alloc(32))).toBe(true);
    // The hops keep what was asked.
    expect(plan.hops.map((h) => [h.nodeId, h.shortChannelId])).toEqual([
      [B, SCID_B],
      [C, SCID_C],
      [D, SCID_D],
    ]);
  });

  it("a direct payee: the HTLC is the amount and expiry, the payload has payment_data only", () => {
    const plan = planRoute([hop(B, SCID_B, 0n, 0n, 0)], msat(5000n), 812);
    expect([plan.amountMsat, plan.expiry]).toEqual([5000n, 812]);
    expect(plan.hops[0]?.payload).toEqual({
      amtToForwardMsat: 5000n,
      outgoingCltvValue: 812,
      paymentData: { paymentSecret: Buffer.alloc(32), totalMsat: 5000n },
    });
  });

  it("the fee is base + floor(amount * ppm / 1e6) of the forwarded amount", () => {
    const p = { feeBaseMsat: msat(1n), feeProportionalMillionths: 1n };
    expect(forwardingFee(p, 999_999n)).toBe(1n); // 0.999999 floors to 0
    expect(forwardingFee(p, 1_000_000n)).toBe(2n);
    expect(forwardingFee({ feeBaseMsat: msat(0n), feeProportionalMillionths: 3_333n }, 3_000n)).toBe(9n); // 9.999
  });

  it("refuses an empty route, a first hop with a policy, bad hops and out-of-range results", () => {
    expect(code(() => planRoute([], msat(1n), 100))).toBe("EMPTY_ROUTE");
    expect(code(() => planRoute(new Array(21).fill(hop(B, SCID_B, 0n, 0n, 0)), msat(1n), 100))).toBe(
      "TOO_MANY_HOPS",
    );
    expect(code(() => planRoute([hop(B, SCID_B, 1n, 0n, 0)], msat(1n), 100))).toBe("FIRST_HOP_POLICY");
    expect(code(() => planRoute([hop(B, SCID_B, 0n, 0n, 6)], msat(1n), 100))).toBe("FIRST_HOP_POLICY");
    expect(code(() => planRoute([hop("02ab", SCID_B, 0n, 0n, 0)], msat(1n), 100))).toBe("INVALID_HOP");
    expect(
      code(() => planRoute([hop(B, SCID_B, 0n, 0n, 0), hop(C, SCID_C, 0n, 0n, 70_000)], msat(1n), 100)),
    ).toBe("INVALID_HOP");
    expect(code(() => planRoute([hop(B, SCID_B, 0n, 0n, 0)], msat(0n), 100))).toBe("OUT_OF_RANGE");
    expect(code(() => planRoute([hop(B, SCID_B, 0n, 0n, 0)], msat(1n), 500_000_000))).toBe("OUT_OF_RANGE");
    expect(
      code(() => planRoute([hop(B, SCID_B, 0n, 0n, 0), hop(C, SCID_C, 0n, 0n, 2)], msat(1n), 499_999_998)),
    ).toBe("OUT_OF_RANGE");
  });
});
