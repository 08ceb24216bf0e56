/**
 * Conformance, draft section 4 (channel close): every MUST / MUST NOT, from both sides, and
 * what a failure during the negotiation broadcasts (6.3 case 3). See docs/CONFORMANCE.md.
 */
import { msat, sat, type Sat } from "@ln/bitcoin";
import type { Broadcast, ChannelPolicy, Output } from "@ln/channel-core";
import type { PktOf } from "@ln/proto";
import { describe, expect, it } from "vitest";
import {
  addHtlc,
  addPkt,
  closeSigFor,
  expectFailed,
  expectLatestCommitment,
  expectRejected,
  fundedPair,
  inject,
  run,
} from "./conformance-helpers.js";
import { openPair, Pair, rHash, type TestNode } from "./harness.js";

// Both commitments: 338 bytes at 10,000 sat/kB = 3380 sat. A starts at 2000 sat/kB (676 sat),
// B at 8000 sat/kB (2704 sat).
const COMMITMENT_FEE = 3380n;
const closingPair = (a: Partial<ChannelPolicy> = {}, b: Partial<ChannelPolicy> = {}): Pair =>
  openPair({
    policy: { autoCommit: true, closeFeeRate: 2000, ...a },
    policyB: { autoCommit: true, closeFeeRate: 8000, ...b },
  });

const closeSigs = (n: TestNode): PktOf<"close_signature">[] =>
  n.sent.filter((m): m is PktOf<"close_signature"> => m.kind === "close_signature");
const closedOut = (n: TestNode): Broadcast | undefined => {
  const c = n.log.find((o) => o.type === "closed");
  return c?.type === "closed" ? c.broadcast : undefined;
};

/** A sent close_clearing and its first offer (676); B's clearing reached A, B's offer is dropped. */
function negotiating(a: Partial<ChannelPolicy> = {}): Pair {
  const p = closingPair(a);
  run(p, p.a, { kind: "close" });
  p.deliver(p.b); // B replies close_clearing and offers
  expect(p.wire.A.map((m) => m.kind)).toEqual(["close_clearing", "close_signature"]);
  p.deliver(p.a); // B's close_clearing: A offers
  p.wire.A = [];
  p.wire.B = [];
  return p;
}
const offer = (p: Pair, to: TestNode, fee: bigint, signedFee: bigint = fee): Output[] =>
  inject(p, to, { kind: "close_signature", closeFee: sat(fee), sig: closeSigFor(p, to, sat(signedFee)) });

describe("4.1 close_clearing", () => {
  it("fails the connection on update_add_htlc after the peer's close_clearing", () => {
    const p = fundedPair();
    inject(p, p.a, { kind: "close_clearing" });
    expect(p.a.state.phase).toBe("clearing");
    const b = expectFailed(p.a, inject(p, p.a, addPkt(0n, 1_000_000)));
    expectLatestCommitment(p.a, b);
  });

  it("fails the connection on a second close_clearing", () => {
    const p = fundedPair();
    inject(p, p.a, { kind: "close_clearing" });
    expectFailed(p.a, inject(p, p.a, { kind: "close_clearing" }));
  });

  it("we send no update_add_htlc after our close_clearing", () => {
    const p = fundedPair();
    run(p, p.b, { kind: "close" });
    expectRejected(
      p,
      p.b,
      {
        kind: "add_htlc",
        amountMsat: msat(1000),
        rHash: rHash(1),
        expiry: { blocks: 2000 },
      },
      "CHANNEL_CLOSING",
    );
  });

  it("we send no update_add_htlc after the peer's close_clearing (so none after acknowledging it)", () => {
    const p = fundedPair();
    run(p, p.a, { kind: "close" });
    p.deliver(p.b);
    expectRejected(
      p,
      p.b,
      {
        kind: "add_htlc",
        amountMsat: msat(1000),
        rHash: rHash(1),
        expiry: { blocks: 2000 },
      },
      "CHANNEL_CLOSING",
    );
  });

  it("we send one close_clearing only: a second close is rejected, and we reply to theirs once", () => {
    const p = closingPair();
    run(p, p.a, { kind: "close" });
    expectRejected(p, p.a, { kind: "close" }, "CLOSE_ALREADY_STARTED");
    p.settle();
    expectRejected(p, p.b, { kind: "close" }, "CHANNEL_CLOSED");
    for (const n of [p.a, p.b]) expect(n.sent.filter((m) => m.kind === "close_clearing")).toHaveLength(1);
  });

  it("both sending close_clearing at once is fine: one each, and the close completes", () => {
    const p = closingPair();
    run(p, p.a, { kind: "close" });
    run(p, p.b, { kind: "close" });
    p.settle();
    for (const n of [p.a, p.b]) {
      expect(n.sent.filter((m) => m.kind === "close_clearing")).toHaveLength(1);
      expect(n.state.phase).toBe("closed");
    }
  });

  it("responds with update_fail_htlc to an HTLC received after it sent close_clearing", () => {
    const p = fundedPair();
    run(p, p.a, { kind: "close" });
    addHtlc(p, p.b, 1, 1_000_000); // crosses A's close_clearing
    const id = p.b.state.nextHtlcId - 1n;
    p.settle();
    expect(p.a.sent).toContainEqual({ kind: "update_fail_htlc", id, reason: expect.any(Buffer) });
    expect(p.a.log.some((o) => o.type === "htlc_added" && o.offerer === "remote" && o.id === id)).toBe(false);
    expect(p.b.log).toContainEqual(
      expect.objectContaining({
        type: "htlc_result",
        id,
        result: expect.objectContaining({ kind: "failed" }),
      }),
    );
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["closed", "closed"]);
  });
});

describe("4.2 close_signature: the receiver's checks", () => {
  it("fails the connection on an odd close_fee", () => {
    const p = negotiating();
    expectLatestCommitment(p.a, expectFailed(p.a, offer(p, p.a, 1001n, 1000n)));
  });

  it("fails the connection on a close_fee above the final commitment's fee", () => {
    const p = negotiating();
    expectFailed(p.a, offer(p, p.a, COMMITMENT_FEE + 2n));
  });

  it("accepts a close_fee equal to the final commitment's fee", () => {
    const p = negotiating();
    offer(p, p.a, COMMITMENT_FEE);
    expect(p.a.state.phase).toBe("clearing");
  });

  it("fails the connection when sig does not sign the close transaction with that fee", () => {
    const p = negotiating();
    expectFailed(p.a, offer(p, p.a, 1002n, 1000n));
  });

  it("fails the connection on a counter-offer not strictly between the last two offers", () => {
    const p = negotiating();
    offer(p, p.a, 2000n); // A (at 676) counters (676 + 2000) / 2 = 1338
    expect(closeSigs(p.a).map((s) => s.closeFee)).toEqual([676n, 1338n]);
    expectFailed(p.a, offer(p, p.a, 2100n));
    const q = negotiating();
    offer(q, q.a, 2000n);
    expectFailed(q.a, offer(q, q.a, 1000n));
    const r = negotiating();
    offer(r, r.a, 2000n);
    expectFailed(r.a, offer(r, r.a, 2000n)); // the same offer again is not between either
  });

  it("fails the connection on close_signature before any close_clearing", () => {
    const p = openPair();
    expectFailed(p.a, offer(p, p.a, 1000n));
  });

  it("fails the connection on close_signature while HTLCs remain", () => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000);
    p.settle();
    run(p, p.a, { kind: "close" });
    p.wire.B = [];
    expectFailed(p.a, offer(p, p.a, 1000n));
  });

  it("accepting our own last offer ends the negotiation: closed, with the close transaction", () => {
    const p = negotiating();
    offer(p, p.a, 2000n);
    const out = offer(p, p.a, 1338n);
    const closed = out.find((o) => o.type === "closed");
    expect(closed).toMatchObject({ type: "closed", broadcast: { tx: "close", closeFee: 1338n } });
    expect(p.a.state.phase).toBe("closed");
  });
});

describe("4.2 close_signature: what we send", () => {
  it("the negotiation converges: both agree on a fee and output closed with the same close transaction", () => {
    const p = closingPair();
    run(p, p.a, { kind: "close" });
    p.settle();
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["closed", "closed"]);
    const a = closedOut(p.a);
    const b = closedOut(p.b);
    expect(a?.tx).toBe("close");
    expect(b?.tx).toBe("close");
    if (a?.tx !== "close" || b?.tx !== "close") return;
    expect(a.closeFee).toBe(b.closeFee);
    expect(a.closeFee).toBe(1690n);
    // The two nodes built the same transaction (a and b are each node's own side).
    expect(a.params.a).toEqual(b.params.b);
    expect(p.a.log.some((o) => o.type === "failed") || p.b.log.some((o) => o.type === "failed")).toBe(false);
  });

  it("converges when one side's estimate is far above the other's", () => {
    const p = closingPair({ closeFeeRate: 1000 }, { closeFeeRate: 100_000 });
    run(p, p.b, { kind: "close" });
    p.settle();
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["closed", "closed"]);
  });

  it("every close_fee we send is even, at most the commitment fee, and each counter-offer strictly between", () => {
    const p = closingPair({ closeFeeRate: 1000 }, { closeFeeRate: 100_000 });
    run(p, p.a, { kind: "close" });
    p.settle();
    for (const n of [p.a, p.b]) {
      const fees = closeSigs(n).map((s) => s.closeFee);
      const theirs = closeSigs(p.peerOf(n)).map((s) => s.closeFee);
      expect(fees.length).toBeGreaterThan(0);
      for (const f of fees) {
        expect(f % 2n).toBe(0n);
        expect(f).toBeLessThanOrEqual(COMMITMENT_FEE);
      }
      // Each later offer lies strictly between our previous one and one of theirs, or equals theirs.
      for (let i = 1; i < fees.length; i++) {
        const prev = fees[i - 1] as Sat;
        const f = fees[i] as Sat;
        expect(theirs.some((t) => t === f || (f - prev) * (f - t) < 0n)).toBe(true);
      }
    }
  });

  it("our first offer is capped at the smaller commitment fee; a received offer at the larger", () => {
    // B's commitment pays its own initial_fee_rate, 20,000 sat/kB (6760 sat); A's 10,000 (3380 sat).
    const p = new Pair({ policy: { autoCommit: true, closeFeeRate: 50_000 }, policyB: { autoCommit: true } });
    const oc = p.wire.A[0];
    if (oc?.kind !== "open_channel") throw new Error("no open_channel");
    p.wire.A[0] = { ...oc, initialFeeRate: 20_000 };
    p.b.state = { ...p.b.state, local: { ...p.b.state.local, initialFeeRate: 20_000 } };
    p.settle();
    p.anchorDepth(1);
    p.settle();
    expect([p.a.state.localCommit?.feeRate, p.a.state.remoteCommit?.feeRate]).toEqual([10_000, 20_000]);
    run(p, p.a, { kind: "close" });
    p.deliver(p.b);
    p.deliver(p.a); // B's close_clearing: A offers
    p.wire.A = [];
    expect(closeSigs(p.a).map((s) => s.closeFee)).toEqual([3380n]);
    offer(p, p.a, 6760n);
    expect(p.a.state.phase).toBe("clearing");
    const q = negotiating();
    expectFailed(q.a, offer(q, q.a, 3382n));
    p.wire.B = [];
  });

  it("a received offer above the larger commitment fee fails the connection", () => {
    const p = new Pair({ policy: { autoCommit: true }, policyB: { autoCommit: true } });
    const oc = p.wire.A[0];
    if (oc?.kind !== "open_channel") throw new Error("no open_channel");
    p.wire.A[0] = { ...oc, initialFeeRate: 20_000 };
    p.b.state = { ...p.b.state, local: { ...p.b.state.local, initialFeeRate: 20_000 } };
    p.settle();
    p.anchorDepth(1);
    p.settle();
    run(p, p.a, { kind: "close" });
    p.deliver(p.b);
    p.deliver(p.a);
    p.wire.A = [];
    expectFailed(p.a, offer(p, p.a, 6762n));
  });
});

describe("6.3 failing during the close negotiation", () => {
  it("broadcasts the close transaction from the last valid close_signature received", () => {
    const p = negotiating();
    offer(p, p.a, 2000n);
    const sig = closeSigFor(p, p.a, sat(1800n));
    inject(p, p.a, { kind: "close_signature", closeFee: sat(1800n), sig });
    const b = expectFailed(p.a, offer(p, p.a, 1001n, 1000n));
    expect(b).toMatchObject({ tx: "close", closeFee: 1800n, theirSig: sig.toString("hex") });
  });

  it("broadcasts the latest commitment when no valid close_signature was received", () => {
    const p = negotiating();
    expectLatestCommitment(p.a, expectFailed(p.a, offer(p, p.a, 2000n, 1998n)));
  });

  it("receiving error after a valid close_signature: no error back, the close transaction", () => {
    const p = negotiating();
    offer(p, p.a, 2000n);
    const out = inject(p, p.a, { kind: "error", problem: "bye" });
    expect(expectFailed(p.a, out, "PEER_ERROR", { sendsError: false })).toMatchObject({
      tx: "close",
      closeFee: 2000n,
    });
  });
});
