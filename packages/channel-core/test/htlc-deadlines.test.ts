/**
 * Draft 3.1, redemption deadlines both ways (DESIGN.md 6): an HTLC we offered must be gone from
 * the commitments by `expiry - delay - margin`, so must one offered to us whose R we sent; an
 * incoming HTLC whose expiry is already inside that deadline is failed. Every height and time
 * below is worked out by hand from these numbers (the harness's and DEFAULT_POLICY's):
 *
 * - the channel opens at height 1000, block time 1,700,000,000;
 * - each node asks for a delay of 144 blocks, so every HTLC output on a node's own commitment
 *   waits 144 blocks (the other node's delay) on its own path;
 * - the margin is 6 blocks, or 3,600 seconds;
 * - a delay in blocks against an expiry in seconds counts 1,200 seconds a block (blocks twice
 *   as slow as the target): 144 blocks = 172,800 s.
 */
import { msat, type Locktime } from "@ln/bitcoin";
import { redemptionDeadline, type Output } from "@ln/channel-core";
import type { PktOf } from "@ln/proto";
import { describe, expect, it } from "vitest";
import {
  addHtlc,
  expectFailed,
  expectLatestCommitment,
  run,
  settleCommitted,
} from "./conformance-helpers.js";
import { openPair, R, rHash, type Pair, type TestNode } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const T0 = 1_700_000_000;

/** A block reaching `n` alone, at this height and block time. */
const blockAt = (p: Pair, n: TestNode, height: number, time: number): Output[] =>
  p.input(n, { type: "chain", event: { kind: "block", height, time } });
const noFailure = (out: Output[]): void => expect(out.filter((o) => o.type === "failed")).toEqual([]);

/**
 * A pays B an HTLC (R(1)) with `expiry`, committed both ways; B fulfils it and signs A's new
 * commitment, A revokes its old one but never signs B's: the removal stays out of B's commitment.
 */
function fulfilledButWithheld(expiry: Locktime): Pair {
  const p = openPair({ policy: { autoCommit: false } });
  addHtlc(p, p.a, 1, 5_000_000, expiry);
  settleCommitted(p);
  run(p, p.b, { kind: "fulfill_htlc", id: 0n, r: hex(R(1)) });
  run(p, p.b, { kind: "commit" });
  p.settle(); // A takes the fulfil and B's signature, and revokes; it signs nothing itself
  expect(p.a.log).toContainEqual(
    expect.objectContaining({ type: "htlc_result", id: 0n, result: { kind: "fulfilled", r: hex(R(1)) } }),
  );
  expect(p.b.state.remoteCommit?.htlcs).toEqual([]);
  expect(p.b.state.localCommit?.htlcs.map((h) => h.id)).toEqual([0n]);
  return p;
}

/** B's broadcast is its latest commitment, still holding A's HTLC (offered to B, the owner). */
function expectClaimableCommitment(p: Pair, out: Output[]): void {
  const b = expectFailed(p.b, out, "HTLC_DEADLINE");
  expectLatestCommitment(p.b, b);
  if (b.tx !== "commitment") return;
  expect(b.params.htlcs).toEqual([expect.objectContaining({ id: 0n, offeredByOwner: false })]);
}

describe("3.1 an HTLC offered to us whose R we sent must leave the commitments by its deadline", () => {
  it("fails the connection and broadcasts our commitment at expiry - delay - margin (blocks)", () => {
    // Expiry 2000: deadline 2000 - 144 - 6 = 1850. Broadcast at 1850, B's commitment confirms by
    // 1851 and its R path opens 144 blocks later (1995), before A's timeout (nLockTime 2000: 2001).
    const p = fulfilledButWithheld({ blocks: 2000 });
    noFailure(blockAt(p, p.b, 1849, T0 + 849 * 600));
    expect(p.b.state.phase).toBe("normal");
    expectClaimableCommitment(p, blockAt(p, p.b, 1850, T0 + 850 * 600));
  });

  it("fails the connection and broadcasts our commitment at expiry - delay - margin (seconds)", () => {
    // Expiry 1,700,400,000: deadline 1,700,400,000 - 172,800 - 3,600 = 1,700,223,600.
    const p = fulfilledButWithheld({ seconds: 1_700_400_000 });
    noFailure(blockAt(p, p.b, 1100, 1_700_223_599));
    expect(p.b.state.phase).toBe("normal");
    expectClaimableCommitment(p, blockAt(p, p.b, 1101, 1_700_223_600));
  });

  it("does nothing while the peer removes it in time", () => {
    const p = fulfilledButWithheld({ blocks: 2000 });
    run(p, p.a, { kind: "commit" });
    p.settle();
    expect(p.b.state.localCommit?.htlcs).toEqual([]);
    noFailure(blockAt(p, p.b, 1990, T0 + 990 * 600));
  });
});

describe("3.1 an HTLC we offered must leave every commitment that can reach the chain by its deadline", () => {
  it("fails the connection when it is only in the peer's signed, unrevoked next commitment (blocks)", () => {
    // A signed B's next commitment with the HTLC; B has it but never revokes its old one. B could
    // publish it: A goes on chain with its own (HTLC-free) commitment at 2000 - 144 - 6 = 1850.
    const p = openPair();
    addHtlc(p, p.a, 1, 5_000_000, { blocks: 2000 });
    run(p, p.a, { kind: "commit" });
    p.deliver(p.b); // update_add_htlc
    p.deliver(p.b); // update_commit; B's update_revocation is never delivered
    expect(p.a.state.remotePending?.htlcs.map((h) => h.id)).toEqual([0n]);
    expect(p.a.state.remoteCommit?.htlcs).toEqual([]);
    expect(p.a.state.localCommit?.htlcs).toEqual([]);
    noFailure(blockAt(p, p.a, 1849, T0 + 849 * 600));
    const b = expectFailed(p.a, blockAt(p, p.a, 1850, T0 + 850 * 600), "HTLC_DEADLINE");
    expectLatestCommitment(p.a, b);
  });

  it("fails the connection at its deadline in seconds, a delay in blocks counted as slow blocks", () => {
    // Expiry 1,700,400,000: deadline 1,700,400,000 - 172,800 - 3,600 = 1,700,223,600 (at 600 s a
    // block it would be 1,700,310,000: too late if blocks come slowly).
    const p = openPair({ policy: { autoCommit: true } });
    addHtlc(p, p.a, 1, 5_000_000, { seconds: 1_700_400_000 });
    p.settle();
    expect(p.a.state.localCommit?.htlcs).toHaveLength(1);
    noFailure(blockAt(p, p.a, 1100, 1_700_223_599));
    const b = expectFailed(p.a, blockAt(p, p.a, 1101, 1_700_223_600), "HTLC_DEADLINE");
    expectLatestCommitment(p.a, b);
  });
});

describe("3.1 an incoming HTLC whose expiry leaves less than the delay plus the margin is failed", () => {
  /** A (margin 0, so it offers these) pays B two HTLCs; B's margin is the default. */
  function offerTwo(tooSoon: Locktime, justEnough: Locktime): Pair {
    const p = openPair({
      policy: { autoCommit: true, deadlineMarginBlocks: 0, deadlineMarginSeconds: 0 },
      policyB: { autoCommit: true },
    });
    addHtlc(p, p.a, 1, 5_000_000, tooSoon);
    addHtlc(p, p.a, 2, 5_000_000, justEnough);
    p.settle();
    return p;
  }

  function expectFirstFailedSecondKept(p: Pair): void {
    const fails = p.b.sent.filter((m): m is PktOf<"update_fail_htlc"> => m.kind === "update_fail_htlc");
    expect(fails.map((m) => [m.id, m.reason.toString("utf8")])).toEqual([[0n, "expiry too soon"]]);
    // Never handed to the payee; the other one is.
    const added = p.b.log.flatMap((o) => (o.type === "htlc_added" ? [o.id] : []));
    expect(added).toEqual([1n]);
    expect(p.a.log).toContainEqual(
      expect.objectContaining({
        type: "htlc_result",
        id: 0n,
        offerer: "local",
        result: expect.objectContaining({ kind: "failed" }),
      }),
    );
    for (const n of [p.a, p.b])
      for (const v of [n.state.localCommit, n.state.remoteCommit])
        expect(v?.htlcs.map((h) => h.id)).toEqual([1n]);
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["normal", "normal"]);
  }

  it("blocks: at height 1000, expiry 1150 is failed (1000 >= 1150 - 144 - 6), 1151 kept", () => {
    expectFirstFailedSecondKept(offerTwo({ blocks: 1150 }, { blocks: 1151 }));
  });

  it("seconds: at 1,700,000,000, expiry 1,700,176,400 is failed (= now + 172,800 + 3,600), 1,700,176,401 kept", () => {
    expectFirstFailedSecondKept(offerTwo({ seconds: 1_700_176_400 }, { seconds: 1_700_176_401 }));
  });
});

describe("3.1 deadlines across units", () => {
  it("a delay in seconds counts whole 512-second units, and as fast blocks against a height", () => {
    // 86,400 s = 168.75 units of 512 s: 169 units = 86,528 s. As blocks at 300 s: 288.4 -> 289.
    const margin = { blocks: 6, seconds: 3600 };
    expect(redemptionDeadline({ blocks: 2000 }, { seconds: 86_400 }, margin)).toEqual({
      blocks: 2000 - 289 - 6,
    });
    expect(redemptionDeadline({ seconds: 1_700_400_000 }, { seconds: 86_400 }, margin)).toEqual({
      seconds: 1_700_400_000 - 86_528 - 3_600,
    });
    expect(redemptionDeadline({ seconds: 1_700_400_000 }, { blocks: 144 }, margin)).toEqual({
      seconds: 1_700_400_000 - 172_800 - 3_600,
    });
    expect(redemptionDeadline({ blocks: 2000 }, { blocks: 144 }, margin)).toEqual({ blocks: 1850 });
  });

  it("an expiry the payer may still offer is one the payee keeps: both use the same deadline", () => {
    const p = openPair({ policy: { autoCommit: true } });
    // 1151 - 144 - 6 = 1001 > 1000: A may offer it, and B keeps it.
    run(p, p.a, { kind: "add_htlc", amountMsat: msat(5_000_000), rHash: rHash(1), expiry: { blocks: 1151 } });
    p.settle();
    expect(p.b.sent.some((m) => m.kind === "update_fail_htlc")).toBe(false);
    expect(p.b.state.localCommit?.htlcs).toHaveLength(1);
  });
});
