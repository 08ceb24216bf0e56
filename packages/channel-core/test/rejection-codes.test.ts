/* Every RejectionCode the core declares is produced by a real refusal, and each refusal leaves the
 * state unchanged and sends nothing (expectRejected checks both). The Record makes a new code fail
 * to compile until a refusal that produces it is listed here. */
import { msat } from "@ln/bitcoin";
import { REJECTION_CODES, type RejectionCode } from "@ln/channel-core";
import { describe, expect, it } from "vitest";
import { addHtlc, expectRejected, fundedPair, run, settleCommitted } from "./conformance-helpers.js";
import { openPair, Pair, R, rHash } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const add = (amount: bigint, expiry: { blocks: number } | { seconds: number } = { blocks: 2000 }) =>
  ({ kind: "add_htlc", amountMsat: msat(amount), rHash: rHash(1), expiry }) as const;

/** A pair where B holds A's HTLC for R(1), committed in both commitments. */
function withReceived(): { p: Pair; id: bigint } {
  const p = fundedPair();
  addHtlc(p, p.a, 1, 10_000_000);
  p.settle();
  const id = p.b.state.localCommit?.htlcs.find((h) => h.offerer === "remote")?.id;
  if (id === undefined) throw new Error("B holds no HTLC");
  return { p, id };
}

const REFUSALS: Record<RejectionCode, (code: RejectionCode) => void> = {
  CHANNEL_OPENING: (code) => {
    const p = new Pair();
    p.settle();
    expectRejected(p, p.a, add(1000n), code);
  },
  CHANNEL_CLOSING: (code) => {
    const p = openPair({ policy: { autoCommit: true } });
    run(p, p.a, { kind: "close" });
    expectRejected(p, p.a, add(1000n), code);
  },
  CHANNEL_CLOSED: (code) => {
    const p = openPair();
    run(p, p.a, { kind: "force_close" });
    expect(p.a.state.phase).toBe("failed");
    expectRejected(p, p.a, { kind: "close" }, code);
  },
  CHANNEL_BEHIND: (code) => {
    const p = openPair();
    p.input(p.a, { type: "behind", problem: "signer ahead" });
    expectRejected(p, p.a, add(1000n), code);
  },
  CLOSE_ALREADY_STARTED: (code) => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000); // an HTLC in flight keeps the channel clearing
    settleCommitted(p);
    run(p, p.a, { kind: "close" });
    expectRejected(p, p.a, { kind: "close" }, code);
  },
  AMOUNT_OUT_OF_RANGE: (code) => expectRejected(...openA(), add(0n), code),
  INVALID_R_HASH: (code) => expectRejected(...openA(), { ...add(1000n), rHash: "ab".repeat(31) }, code),
  ROUTE_TOO_LONG: (code) => expectRejected(...openA(), { ...add(1000n), route: "00".repeat(1367) }, code),
  INVALID_EXPIRY: (code) => expectRejected(...openA(), add(1000n, { seconds: 12 }), code),
  // Height 1000, delay 144 blocks: an expiry of 1150 cannot be redeemed on chain in time (draft 3.1).
  EXPIRY_TOO_SOON: (code) => expectRejected(...openA(), add(1000n, { blocks: 1150 }), code),
  // The 1501st HTLC takes 1500 adds: conformance-normal.test.ts, "we do not add the 1501st".
  TOO_MANY_HTLCS: () => undefined,
  // B holds nothing before fundedPair pays it, A holds all 1,000,000 sat less the fee.
  INSUFFICIENT_FUNDS: (code) => expectRejected(...openB(), add(1000n), code),
  UNKNOWN_HTLC: (code) => {
    const { p } = withReceived();
    expectRejected(p, p.b, { kind: "fulfill_htlc", id: 77n, r: hex(R(1)) }, code);
  },
  HTLC_ALREADY_REMOVED: (code) => {
    const { p, id } = withReceived();
    run(p, p.b, { kind: "fail_htlc", id, reason: "" });
    expectRejected(p, p.b, { kind: "fulfill_htlc", id, r: hex(R(1)) }, code);
  },
  WRONG_PREIMAGE: (code) => {
    const { p, id } = withReceived();
    expectRejected(p, p.b, { kind: "fulfill_htlc", id, r: hex(R(2)) }, code);
  },
  REASON_TOO_LONG: (code) => {
    const { p, id } = withReceived();
    expectRejected(p, p.b, { kind: "fail_htlc", id, reason: "00".repeat(293) }, code);
  },
  FEE_RATE_OUT_OF_POLICY: (code) => expectRejected(...openA(), { kind: "update_fee", feeRate: 1 }, code),
  NOTHING_TO_COMMIT: (code) => expectRejected(...openA(), { kind: "commit" }, code),
  AWAITING_REVOCATION: (code) => {
    const p = openPair();
    addHtlc(p, p.a, 1, 1_000_000);
    run(p, p.a, { kind: "commit" });
    addHtlc(p, p.a, 2, 1_000_000);
    expectRejected(p, p.a, { kind: "commit" }, code);
  },
};

function openA(): [Pair, Pair["a"]] {
  const p = openPair();
  return [p, p.a];
}
function openB(): [Pair, Pair["b"]] {
  const p = openPair();
  return [p, p.b];
}

describe("rejection codes", () => {
  it("lists each code once", () => {
    expect(new Set(REJECTION_CODES).size).toBe(REJECTION_CODES.length);
    expect(Object.keys(REFUSALS).sort()).toEqual([...REJECTION_CODES].sort());
  });

  it.each(REJECTION_CODES.filter((c) => c !== "TOO_MANY_HTLCS"))("%s comes from a real refusal", (code) => {
    REFUSALS[code](code);
  });
});
