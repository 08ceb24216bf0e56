/**
 * The forwarding rules of DESIGN.md 10 (forwarding/rules.ts), with numbers worked out by hand: the
 * fee is base + amount * ppm / 10^6 of the amount forwarded, the cltv delta separates the two
 * expiries, and draft 3.1 wants the outgoing HTLC settled, at the latest
 * max(expiry, now + delay) + margin, before the incoming one's deadline expiry - delay - margin.
 */
import { msat } from "@ln/bitcoin";
import { describe, expect, it } from "vitest";
import { forwardingFee } from "../src/forwarding/policy.js";
import {
  decideForward,
  finalHopFailure,
  invoicePaymentProblem,
  type NextChannel,
} from "../src/forwarding/rules.js";

const policy = {
  feeBaseMsat: msat(1000n),
  feeProportionalMillionths: 100n,
  cltvExpiryDelta: 40,
  htlcMinimumMsat: msat(5000n),
};
// Any bytes stand for our signed channel_update: the rules only carry them.
const update = Buffer.from("0a0b0c", "hex");
const next: NextChannel = {
  phase: "normal",
  delay: { blocks: 10 },
  policy,
  peerConnected: true,
  channelUpdate: update,
};
const ctx = { height: 1000, incomingDelay: { blocks: 10 }, margin: { blocks: 6, seconds: 3600 } };
// 1,000,000 msat forwarded: 1000 + 1,000,000 * 100 / 1,000,000 = 1100 msat of fee.
const payload = { amtToForwardMsat: 1_000_000n, outgoingCltvValue: 1160, shortChannelId: 42n };
const incoming = { amountMsat: msat(1_001_100n), expiry: { blocks: 1200 } };

describe("decideForward", () => {
  it("forwards exactly what the payload says when the fee and the expiries are right", () => {
    expect(forwardingFee(policy, msat(1_000_000n))).toBe(1100n);
    expect(forwardingFee(policy, msat(9_999n))).toBe(1000n); // 0.9999 msat rounds down
    expect(decideForward(incoming, payload, next, ctx)).toEqual({
      ok: true,
      amountMsat: 1_000_000n,
      expiry: 1160,
    });
  });

  it("refuses one msat of fee short: fee_insufficient with the incoming amount", () => {
    const d = decideForward({ ...incoming, amountMsat: msat(1_001_099n) }, payload, next, ctx);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.failure).toMatchObject({ name: "fee_insufficient", htlcMsat: 1_001_099n });
  });

  it("refuses an outgoing amount larger than the incoming one", () => {
    const d = decideForward({ ...incoming, amountMsat: msat(999_999n) }, payload, next, ctx);
    expect(!d.ok && d.failure.name).toBe("fee_insufficient");
  });

  it("refuses below the next channel's HTLC minimum", () => {
    const d = decideForward(incoming, { ...payload, amtToForwardMsat: 4999n }, next, ctx);
    expect(!d.ok && d.failure).toMatchObject({ name: "amount_below_minimum", htlcMsat: 1_001_100n });
  });

  it("refuses an outgoing expiry less than cltv_expiry_delta before the incoming one", () => {
    const d = decideForward(incoming, { ...payload, outgoingCltvValue: 1161 }, next, ctx);
    expect(!d.ok && d.failure).toMatchObject({ name: "incorrect_cltv_expiry", cltvExpiry: 1200 });
    const seconds = decideForward({ ...incoming, expiry: { seconds: 1_800_000_000 } }, payload, next, ctx);
    expect(!seconds.ok && seconds.failure.name).toBe("incorrect_cltv_expiry");
  });

  it("refuses when the outgoing HTLC could settle after the incoming one's deadline (draft 3.1)", () => {
    // Incoming deadline: 1200 - 10 - 6 = 1184. At height 1168: max(1160, 1178) + 6 = 1184, still in time.
    expect(decideForward(incoming, payload, next, { ...ctx, height: 1168 }).ok).toBe(true);
    // At 1169: max(1160, 1179) + 6 = 1185 > 1184.
    const d = decideForward(incoming, payload, next, { ...ctx, height: 1169 });
    expect(!d.ok && d.failure.name).toBe("expiry_too_soon");
    // A longer delay on the outgoing channel moves it the same way: 1000 + 179 + 6 = 1185.
    const slow = decideForward(incoming, payload, { ...next, delay: { blocks: 179 } }, ctx);
    expect(!slow.ok && slow.failure.name).toBe("expiry_too_soon");
  });

  it("names the next channel's trouble: none, closed, or not ready", () => {
    expect(decideForward(incoming, payload, undefined, ctx)).toMatchObject({
      ok: false,
      failure: { name: "unknown_next_peer" },
    });
    for (const phase of ["closed", "failed", "behind"] as const)
      expect(decideForward(incoming, payload, { ...next, phase }, ctx)).toMatchObject({
        ok: false,
        failure: { name: "permanent_channel_failure" },
      });
    for (const phase of ["opening", "clearing"] as const)
      expect(decideForward(incoming, payload, { ...next, phase }, ctx)).toMatchObject({
        ok: false,
        failure: { name: "temporary_channel_failure" },
      });
  });
});

describe("decideForward and gossip", () => {
  it("carries our latest channel_update in each failure that takes one (BOLT #4 UPDATE flag)", () => {
    const cases = [
      decideForward({ ...incoming, amountMsat: msat(1_001_099n) }, payload, next, ctx),
      decideForward(incoming, { ...payload, amtToForwardMsat: 4999n }, next, ctx),
      decideForward(incoming, { ...payload, outgoingCltvValue: 1161 }, next, ctx),
      decideForward(incoming, payload, { ...next, phase: "opening" }, ctx),
    ];
    expect(cases.map((d) => !d.ok && d.failure.name)).toEqual([
      "fee_insufficient",
      "amount_below_minimum",
      "incorrect_cltv_expiry",
      "temporary_channel_failure",
    ]);
    for (const d of cases)
      expect(!d.ok && "channelUpdate" in d.failure && d.failure.channelUpdate).toEqual(update);
  });

  it("refuses with temporary_channel_failure when the next channel's peer is not connected", () => {
    const d = decideForward(incoming, payload, { ...next, peerConnected: false }, ctx);
    expect(d).toMatchObject({
      ok: false,
      failure: { name: "temporary_channel_failure", channelUpdate: update },
    });
  });
});

describe("finalHopFailure", () => {
  const final = { amtToForwardMsat: 1_000_000n, outgoingCltvValue: 1160 };
  it("takes an HTLC paying at least the payload's amount, expiring no earlier than it says", () => {
    expect(
      finalHopFailure({ amountMsat: msat(1_000_000n), expiry: { blocks: 1160 } }, final),
    ).toBeUndefined();
    expect(
      finalHopFailure({ amountMsat: msat(1_000_001n), expiry: { blocks: 1170 } }, final),
    ).toBeUndefined();
  });
  it("refuses less than the payload's amount, or an earlier expiry", () => {
    expect(finalHopFailure({ amountMsat: msat(999_999n), expiry: { blocks: 1160 } }, final)).toEqual({
      name: "final_incorrect_htlc_amount",
      incomingHtlcMsat: 999_999n,
    });
    expect(finalHopFailure({ amountMsat: msat(1_000_000n), expiry: { blocks: 1159 } }, final)).toEqual({
      name: "final_incorrect_cltv_expiry",
      cltvExpiry: 1159,
    });
  });
});

describe("invoicePaymentProblem (BOLT #4 final node, against our BOLT #11 invoice)", () => {
  const secret = Buffer.alloc(32, 7);
  const invoice = {
    amountMsat: msat(100_000n),
    status: "open" as const,
    paymentSecret: secret,
    expiresAt: new Date("2030-01-01T01:00:00Z"),
    minFinalCltvExpiryDelta: 50,
  };
  const at = { height: 1000, now: new Date("2030-01-01T00:00:00Z") };
  // Tip 1000 + delta 50: an expiry of 1050 is the earliest accepted.
  const htlc = (amount: bigint, expiry = 1050) => ({ amountMsat: msat(amount), expiry: { blocks: expiry } });
  const paying = (amount: bigint, s: Buffer = secret, total = amount) => ({
    amtToForwardMsat: amount,
    outgoingCltvValue: 1050,
    paymentData: { paymentSecret: s, totalMsat: total },
  });

  it("accepts the invoice's amount, up to twice it, with the secret and an expiry of tip + delta", () => {
    expect(invoicePaymentProblem(htlc(100_000n), paying(100_000n), invoice, at)).toBeUndefined();
    expect(invoicePaymentProblem(htlc(200_000n), paying(200_000n), invoice, at)).toBeUndefined();
    // Any amount: no bound either way.
    const any = { ...invoice, amountMsat: msat(0n) };
    expect(invoicePaymentProblem(htlc(1n), paying(1n), any, at)).toBeUndefined();
    expect(invoicePaymentProblem(htlc(10_000_000n), paying(10_000_000n), any, at)).toBeUndefined();
  });

  it("refuses 1 msat short, 1 msat above twice, another secret, no payment_data, a split total", () => {
    expect(invoicePaymentProblem(htlc(99_999n), paying(99_999n), invoice, at)).toMatch(/below the invoice/);
    expect(invoicePaymentProblem(htlc(200_001n), paying(200_001n), invoice, at)).toMatch(/more than twice/);
    expect(invoicePaymentProblem(htlc(100_000n), paying(100_000n, Buffer.alloc(32)), invoice, at)).toMatch(
      /payment secret/,
    );
    const { paymentData: _none, ...bare } = paying(100_000n);
    expect(invoicePaymentProblem(htlc(100_000n), bare, invoice, at)).toMatch(/no payment_data/);
    expect(invoicePaymentProblem(htlc(100_000n), paying(100_000n, secret, 300_000n), invoice, at)).toMatch(
      /multi-part/,
    );
  });

  it("refuses an expiry one block before tip + delta, an expired invoice, a paid one", () => {
    expect(invoicePaymentProblem(htlc(100_000n, 1049), paying(100_000n), invoice, at)).toMatch(
      /before height 1050/,
    );
    const late = { height: 1000, now: new Date("2030-01-01T01:00:00Z") }; // at expiresAt: expired
    expect(invoicePaymentProblem(htlc(100_000n), paying(100_000n), invoice, late)).toMatch(/expired/);
    expect(
      invoicePaymentProblem(htlc(100_000n), paying(100_000n), { ...invoice, status: "settled" }, at),
    ).toMatch(/already paid/);
  });
});
