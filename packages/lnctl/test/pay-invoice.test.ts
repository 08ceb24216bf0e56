/**
 * `lnctl pay <invoice>`: its arguments, and what it prints of an invoice payment (format.ts). The
 * whole run against a node (posting, following the events, exit codes) is test/cross/paying.test.ts.
 */
import { describe, expect, it } from "vitest";
import { parseCommandLine } from "../src/cli.js";
import { formatAttempt, formatPaymentResult, type InvoicePaymentView } from "../src/format.js";

const INVOICE = "lnbcrt2500n1pexample";

describe("lnctl pay <invoice>: arguments", () => {
  it("takes the invoice and its options", () => {
    expect(
      parseCommandLine([
        "pay",
        INVOICE,
        "--max-fee",
        "5000",
        "--timeout",
        "30",
        "--allow-repeat",
        "--idempotency-key",
        "k1",
      ]),
    ).toEqual({
      ok: true,
      globals: { url: undefined, token: undefined, config: undefined, json: false },
      command: {
        name: "pay invoice",
        invoice: INVOICE,
        amountMsat: undefined,
        maxFeeMsat: 5000n,
        timeoutSeconds: 30,
        allowRepeat: true,
        idempotencyKey: "k1",
      },
    });
  });

  it("an amount for an invoice without one; no --allow-repeat means false", () => {
    const p = parseCommandLine(["pay", "LNBCRT1pexample", "--amount", "42_000"]);
    expect(p).toMatchObject({
      ok: true,
      command: { name: "pay invoice", amountMsat: 42_000n, allowRepeat: false },
    });
  });

  it("keeps the hash forms, and refuses the invoice options there", () => {
    const hash = "ab".repeat(32);
    expect(parseCommandLine(["pay", "chan-1", hash, "1000"])).toMatchObject({
      ok: true,
      command: { name: "pay", channelId: "chan-1", rHash: hash, amountMsat: 1000n },
    });
    expect(parseCommandLine(["pay", "chan-1", hash, "1000", "--max-fee", "10"])).toMatchObject({
      ok: false,
      message: expect.stringMatching(/--max-fee is for paying an invoice/) as string,
    });
  });

  it("refuses a bad timeout", () => {
    expect(parseCommandLine(["pay", INVOICE, "--timeout", "0"])).toMatchObject({ ok: false });
    expect(parseCommandLine(["pay", INVOICE, "--timeout", "3601"])).toMatchObject({ ok: false });
  });
});

const B = `03${"bb".repeat(32)}`;
const C = `02${"cc".repeat(32)}`;
const failed: InvoicePaymentView = {
  id: "ip-1",
  kind: "invoice",
  status: "failed",
  rHash: "00".repeat(32),
  payee: C,
  amountMsat: "1000000",
  maxFeeMsat: "11000",
  feeMsat: null,
  preimage: null,
  failure: "no route left: no path",
  deadline: "2026-01-01T00:01:00.000Z",
  allowRepeat: false,
  attempts: [
    {
      id: "chan:0",
      route: [
        { nodeId: B, shortChannelId: "1x2x0", amountMsat: "1001500", expiry: 200 },
        { nodeId: C, shortChannelId: "1x99x7", amountMsat: "1000000", expiry: 150 },
      ],
      amountMsat: "1001500",
      feeMsat: "1500",
      status: "failed",
      failure: { hop: 0, nodeId: B, code: 0x400a, name: "unknown_next_peer", description: "no such channel" },
      createdAt: "2026-01-01T00:00:01.000Z",
    },
  ],
  createdAt: "2026-01-01T00:00:00.000Z",
  finishedAt: "2026-01-01T00:00:02.000Z",
};

describe("lnctl pay <invoice>: output", () => {
  it("one line per attempt: route, fee, outcome", () => {
    const [a] = failed.attempts;
    if (!a) throw new Error("no attempt");
    expect(formatAttempt(1, a)).toBe(
      "attempt 1: 03bbbbbbbb… via 1x2x0 → 02cccccccc… via 1x99x7, fee 1,500 msat: failed: hop 0 (03bbbbbbbb…): unknown_next_peer (0x400a): no such channel\n",
    );
  });

  it("a failure lists every attempt's reason", () => {
    expect(formatPaymentResult(failed)).toBe(
      "payment failed: no route left: no path\nattempts:\n  1. 03bbbbbbbb… via 1x2x0 → 02cccccccc… via 1x99x7: hop 0 (03bbbbbbbb…): unknown_next_peer (0x400a): no such channel\n",
    );
  });
});
