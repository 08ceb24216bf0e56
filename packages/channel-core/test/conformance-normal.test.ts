/**
 * Conformance, draft section 3 (normal operation) and the revocation hashes the core receives
 * (section 5): every MUST / MUST NOT, from both sides. See docs/CONFORMANCE.md.
 */
import { msat, sha256 } from "@ln/bitcoin";
import { MAX_OFFERED_HTLCS, stagedViews } from "@ln/channel-core";
import type { PktOf } from "@ln/proto";
import { commitmentIndex, generateFromSeed } from "@ln/shachain";
import { beforeAll, describe, expect, it } from "vitest";
import {
  addHtlc,
  addPkt,
  badSig,
  expectFailed,
  expectLatestCommitment,
  expectRejected,
  fundedPair,
  inject,
  run,
  settleCommitted,
  tamper,
} from "./conformance-helpers.js";
import { openPair, Pair, R, rHash, type TestNode } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const block = (p: Pair, n: TestNode, height: number) =>
  p.input(n, {
    type: "chain",
    event: { kind: "block", height, time: 1_700_000_000 + (height - 1000) * 600 },
  });

/** The next message in flight to `to`, which must be of `kind`. */
function inFlight<K extends PktOf<"update_commit" | "update_revocation">["kind"]>(
  p: Pair,
  to: TestNode,
  kind: K,
): PktOf<K> {
  const m = p.wire[to.name][0];
  if (m?.kind !== kind) throw new Error(`expected ${kind} in flight, found ${m?.kind ?? "nothing"}`);
  return m as PktOf<K>;
}

describe("3.1 HTLC deadlines", () => {
  // Height 1000; the delay B asked for is 144 blocks, the margin 6: an expiry at block E can be
  // offered while height < E - 150, and fails the channel once height >= E - 150.
  it("we do not offer an HTLC after its deadline (blocks)", () => {
    const p = openPair();
    const problem = expectRejected(
      p,
      p.a,
      {
        kind: "add_htlc",
        amountMsat: msat(1_000_000),
        rHash: rHash(1),
        expiry: { blocks: 1150 },
      },
      "EXPIRY_TOO_SOON",
    );
    // The refusal says what would do: 1000 + 144 + 6 + 1.
    expect(problem).toContain("block 1151 or later");
    addHtlc(p, p.a, 1, 1_000_000, { blocks: 1151 });
  });

  it("we do not offer an HTLC after its deadline (seconds)", () => {
    const p = openPair();
    const now = p.a.state.chain.time;
    // The delay in blocks counts 1200 s a block against an expiry in seconds (slow blocks).
    const deadline = now + 144 * 1200 + 3600;
    const problem = expectRejected(
      p,
      p.a,
      {
        kind: "add_htlc",
        amountMsat: msat(1_000_000),
        rHash: rHash(1),
        expiry: { seconds: deadline },
      },
      "EXPIRY_TOO_SOON",
    );
    expect(problem).toContain(`${deadline + 1} (unix seconds) or later`);
    addHtlc(p, p.a, 1, 1_000_000, { seconds: deadline + 1 });
  });

  it("fails the connection when an HTLC we offered is past its deadline in our current commitment", () => {
    const p = openPair({ policy: { autoCommit: true } });
    addHtlc(p, p.a, 1, 1_000_000, { blocks: 2000 });
    p.settle();
    expect(block(p, p.a, 1849).some((o) => o.type === "failed")).toBe(false);
    const b = expectFailed(p.a, block(p, p.a, 1850), "HTLC_DEADLINE");
    expectLatestCommitment(p.a, b);
    expect(p.a.state.localCommit?.htlcs).toHaveLength(1);
  });

  it("fails the connection when the HTLC is only in the other node's current commitment", () => {
    const p = openPair();
    addHtlc(p, p.a, 1, 1_000_000, { blocks: 2000 });
    run(p, p.a, { kind: "commit" });
    p.settle(); // B's commitment holds it, A's does not
    expect(p.a.state.localCommit?.htlcs).toEqual([]);
    expect(p.a.state.remoteCommit?.htlcs).toHaveLength(1);
    expectFailed(p.a, block(p, p.a, 1850), "HTLC_DEADLINE");
  });

  it("an HTLC offered to us past its deadline is not our failure", () => {
    const p = fundedPair();
    addHtlc(p, p.b, 1, 1_000_000, { blocks: 2000 });
    p.settle();
    block(p, p.a, 1900);
    expect(p.a.state.phase).toBe("normal");
  });
});

describe("3.2 update_add_htlc: amounts", () => {
  it("fails the connection when the peer offers an amount it cannot pay", () => {
    const p = openPair(); // B holds nothing
    expectFailed(p.a, inject(p, p.a, addPkt(0n, 1000)), "PROTOCOL_VIOLATION");
  });

  it("fails the connection when the peer cannot pay its half of the fee in both commitments", () => {
    const p = fundedPair(); // B holds 100,000 sat; with one HTLC the fee is 3700 sat, half 1850
    expectFailed(p.a, inject(p, p.a, addPkt(0n, 98_151_000)));
    const q = fundedPair();
    inject(q, q.a, addPkt(0n, 98_150_000));
    expect(q.a.state.phase).toBe("normal");
  });

  it("fails the connection on amount_msat 0", () => {
    const p = fundedPair();
    expectFailed(p.a, inject(p, p.a, addPkt(0n, 0)));
  });

  it("we do not offer an amount we cannot pay in both commitments", () => {
    const p = fundedPair();
    expectRejected(
      p,
      p.b,
      {
        kind: "add_htlc",
        amountMsat: msat(98_151_000),
        rHash: rHash(1),
        expiry: { blocks: 2000 },
      },
      "INSUFFICIENT_FUNDS",
    );
    addHtlc(p, p.b, 1, 98_150_000);
    expectRejected(
      p,
      p.b,
      {
        kind: "add_htlc",
        amountMsat: msat(1_000),
        rHash: rHash(2),
        expiry: { blocks: 2000 },
      },
      "INSUFFICIENT_FUNDS",
    );
  });

  it("we do not offer amount_msat 0 or above 32 bits", () => {
    const p = openPair();
    for (const amount of [0n, 0x1_0000_0000n])
      expectRejected(
        p,
        p.a,
        {
          kind: "add_htlc",
          amountMsat: msat(amount),
          rHash: rHash(1),
          expiry: { blocks: 2000 },
        },
        "AMOUNT_OUT_OF_RANGE",
      );
  });
});

describe("3.2 update_add_htlc: id", () => {
  it("fails the connection on an id equal to a staged HTLC's", () => {
    const p = fundedPair();
    inject(p, p.a, addPkt(5n, 1000));
    expectFailed(p.a, inject(p, p.a, addPkt(5n, 2000, 2)));
  });

  it("fails the connection on an id equal to a committed HTLC's", () => {
    const p = fundedPair();
    addHtlc(p, p.b, 1, 1_000_000);
    p.settle();
    const id = p.a.state.localCommit?.htlcs[0]?.id as bigint;
    const b = expectFailed(p.a, inject(p, p.a, addPkt(id, 2000, 2)));
    expectLatestCommitment(p.a, b);
  });

  it("accepts an id used before once that HTLC has left both commitments (only a SHOULD)", () => {
    const p = fundedPair();
    // B's first HTLC in fundedPair was A's, id 0; A's id 0 is gone. B now reuses its own id 0.
    addHtlc(p, p.b, 1, 1_000_000);
    p.settle();
    run(p, p.a, { kind: "fail_htlc", id: 0n, reason: "00" });
    p.settle();
    expect(p.a.state.localCommit?.htlcs).toEqual([]);
    inject(p, p.a, addPkt(0n, 1000, 3));
    expect(p.a.state.phase).toBe("normal");
  });

  it("our ids are unique: a counter, never reused after removal", () => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000);
    addHtlc(p, p.a, 2, 1_000_000);
    p.settle();
    const ids = p.a.sent
      .filter((m) => m.kind === "update_add_htlc")
      .map((m) => (m.kind === "update_add_htlc" ? m.id : -1n));
    expect(ids).toEqual([0n, 1n, 2n]);
  });
});

describe("3.2 at most 1500 offered HTLCs in either commitment", () => {
  /** A offers 1500 dust HTLCs (1 sat each: no outputs, so commitments stay small), all committed. */
  function fullPair(): Pair {
    const p = openPair();
    for (let batch = 0; batch < MAX_OFFERED_HTLCS / 100; batch++) {
      for (let i = 0; i < 100; i++) addHtlc(p, p.a, 1, 1000);
      settleCommitted(p);
    }
    expect(p.a.state.localCommit?.htlcs).toHaveLength(MAX_OFFERED_HTLCS);
    expect(p.b.state.localCommit?.htlcs).toHaveLength(MAX_OFFERED_HTLCS);
    return p;
  }
  let full: Pair;
  let snapshot: { a: TestNode; b: TestNode };
  beforeAll(() => {
    full = fullPair();
    snapshot = { a: { ...full.a, sent: [...full.a.sent] }, b: { ...full.b, sent: [...full.b.sent] } };
  }, 120_000);
  /** The full pair as it was built (states are immutable values; the outboxes are copied). */
  const fresh = (): Pair => {
    for (const [n, s] of [
      [full.a, snapshot.a],
      [full.b, snapshot.b],
    ] as const) {
      n.state = s.state;
      n.sent = [...s.sent];
    }
    full.wire.A = [];
    full.wire.B = [];
    return full;
  };

  it("we do not add the 1501st", { timeout: 60_000 }, () => {
    const p = fresh();
    const problem = expectRejected(
      p,
      p.a,
      {
        kind: "add_htlc",
        amountMsat: msat(1000),
        rHash: rHash(2),
        expiry: { blocks: 2000 },
      },
      "TOO_MANY_HTLCS",
    );
    expect(problem).toMatch(/1500/);
  });

  it("fails the connection when the peer adds the 1501st", { timeout: 60_000 }, () => {
    const p = fresh();
    const b = expectFailed(p.b, inject(p, p.b, addPkt(BigInt(MAX_OFFERED_HTLCS), 1000, 2)));
    expectLatestCommitment(p.b, b);
  });

  it("counts staged HTLCs too: the 1501st may not even be staged", { timeout: 60_000 }, () => {
    const p = fresh();
    // Remove one (staged, not committed): the staged commitment has 1499, so one more fits.
    run(p, p.b, { kind: "fail_htlc", id: 0n, reason: "" });
    p.settle();
    expect(stagedViews(p.a.state).local.htlcs).toHaveLength(1499);
    addHtlc(p, p.a, 2, 1000);
    expectRejected(
      p,
      p.a,
      {
        kind: "add_htlc",
        amountMsat: msat(1000),
        rHash: rHash(2),
        expiry: { blocks: 2000 },
      },
      "TOO_MANY_HTLCS",
    );
  });
});

describe("3.3 update_fulfill_htlc and update_fail_htlc", () => {
  /** A has offered B HTLC 1 (R(1)), committed in both. */
  function withHtlc(): { p: Pair; id: bigint } {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 10_000_000);
    p.settle();
    const id = p.a.state.localCommit?.htlcs[0]?.id as bigint;
    expect(p.b.state.localCommit?.htlcs).toHaveLength(1);
    return { p, id };
  }

  it("fails the connection on update_fulfill_htlc with an r that does not hash to the HTLC", () => {
    const { p, id } = withHtlc();
    const out = inject(p, p.a, { kind: "update_fulfill_htlc", id, r: R(2) });
    expectLatestCommitment(p.a, expectFailed(p.a, out));
    expect(out.some((o) => o.type === "htlc_result")).toBe(false);
  });

  it("fails the connection on update_fulfill_htlc for an id not in its current commitment", () => {
    const { p } = withHtlc();
    expectFailed(p.a, inject(p, p.a, { kind: "update_fulfill_htlc", id: 7n, r: R(1) }));
  });

  it("fails the connection on update_fail_htlc for an id not in its current commitment", () => {
    const { p } = withHtlc();
    expectFailed(p.a, inject(p, p.a, { kind: "update_fail_htlc", id: 7n, reason: Buffer.alloc(0) }));
  });

  it("fails the connection on removal of an HTLC only staged, not yet in its current commitment", () => {
    const p = fundedPair(false);
    addHtlc(p, p.a, 1, 10_000_000);
    p.settle();
    expectFailed(p.a, inject(p, p.a, { kind: "update_fulfill_htlc", id: 1n, r: R(1) }));
  });

  it("fails the connection when the peer removes an HTLC it offered itself", () => {
    const p = fundedPair();
    addHtlc(p, p.b, 1, 1_000_000);
    p.settle();
    const id = p.a.state.localCommit?.htlcs[0]?.id as bigint;
    // id 0 is B's HTLC; A has no HTLC 0 of its own any more.
    expect(id).toBe(0n);
    expectFailed(p.a, inject(p, p.a, { kind: "update_fail_htlc", id, reason: Buffer.alloc(0) }));
  });

  it("fails the connection on a second removal of the same HTLC", () => {
    const { p, id } = withHtlc();
    inject(p, p.a, { kind: "update_fail_htlc", id, reason: Buffer.alloc(0) });
    expectFailed(p.a, inject(p, p.a, { kind: "update_fulfill_htlc", id, r: R(1) }));
  });

  it("we do not fulfill with a wrong r, an unknown id, an uncommitted HTLC, or twice", () => {
    const { p, id } = withHtlc();
    expectRejected(p, p.b, { kind: "fulfill_htlc", id, r: hex(R(2)) }, "WRONG_PREIMAGE");
    expectRejected(p, p.b, { kind: "fulfill_htlc", id: 9n, r: hex(R(1)) }, "UNKNOWN_HTLC");
    expectRejected(p, p.b, { kind: "fail_htlc", id: 9n, reason: "" }, "UNKNOWN_HTLC");
    // An HTLC of our own is not ours to remove.
    addHtlc(p, p.b, 3, 1_000_000);
    p.settle();
    expectRejected(p, p.b, { kind: "fulfill_htlc", id: 0n, r: hex(R(3)) }, "UNKNOWN_HTLC");
    run(p, p.b, { kind: "fulfill_htlc", id, r: hex(R(1)) });
    expectRejected(p, p.b, { kind: "fail_htlc", id, reason: "" }, "HTLC_ALREADY_REMOVED");
    const q = fundedPair(false);
    addHtlc(q, q.a, 1, 1_000_000);
    q.settle();
    expectRejected(q, q.b, { kind: "fulfill_htlc", id: 1n, r: hex(R(1)) }, "UNKNOWN_HTLC");
  });

  it("reports the failure reason bitwise, once, when the removal is in every commitment", () => {
    const p = fundedPair(false);
    addHtlc(p, p.a, 1, 10_000_000);
    settleCommitted(p);
    const reason = "deadbeef00ff";
    run(p, p.b, { kind: "fail_htlc", id: 1n, reason });
    expect(p.wire.A[0]).toMatchObject({ kind: "update_fail_htlc", reason: Buffer.from(reason, "hex") });
    const results = () => p.a.log.filter((o) => o.type === "htlc_result" && o.result.kind === "failed");
    p.settle();
    expect(results()).toEqual([]);
    run(p, p.b, { kind: "commit" });
    p.settle(); // A's commitment no longer has it; B's still does
    expect(results()).toEqual([]);
    run(p, p.a, { kind: "commit" });
    p.settle();
    // With the HTLC as A offered it (addHtlc: R(1)'s hash, 10,000,000 msat), for the payment record.
    expect(results()).toEqual([
      {
        type: "htlc_result",
        id: 1n,
        offerer: "local",
        result: { kind: "failed", reason },
        htlc: {
          id: 1n,
          offerer: "local",
          amountMsat: 10_000_000n,
          rHash: rHash(1),
          expiry: { blocks: 2000 },
        },
      },
    ]);
    settleCommitted(p);
    expect(results()).toHaveLength(1);
  });

  it("reports a fulfillment at once: R in hand", () => {
    const { p, id } = withHtlc();
    const out = inject(p, p.a, { kind: "update_fulfill_htlc", id, r: R(1) });
    expect(out).toContainEqual({
      type: "htlc_result",
      id,
      offerer: "local",
      result: { kind: "fulfilled", r: hex(R(1)) },
      htlc: { id, offerer: "local", amountMsat: 10_000_000n, rHash: rHash(1), expiry: { blocks: 2000 } },
    });
  });
});

describe("3.4 update_fee", () => {
  it("fails the connection on an update_fee above the policy (MAY)", () => {
    const p = openPair();
    expectFailed(p.a, inject(p, p.a, { kind: "update_fee", feeRate: 1_000_001 }), "POLICY");
  });

  it("fails the connection on an update_fee below the policy", () => {
    const p = openPair();
    expectFailed(p.b, inject(p, p.b, { kind: "update_fee", feeRate: 999 }), "POLICY");
  });

  it("we do not send an update_fee outside our policy", () => {
    const p = openPair();
    expectRejected(p, p.a, { kind: "update_fee", feeRate: 999 }, "FEE_RATE_OUT_OF_POLICY");
    expectRejected(p, p.a, { kind: "update_fee", feeRate: 1_000_001 }, "FEE_RATE_OUT_OF_POLICY");
  });

  it("an update_fee is a staged change that applies to both commitments", () => {
    const p = openPair({ policy: { autoCommit: true } });
    run(p, p.a, { kind: "update_fee", feeRate: 20_000 });
    p.settle();
    for (const n of [p.a, p.b]) {
      expect(n.state.localCommit?.feeRate).toBe(20_000);
      expect(n.state.remoteCommit?.feeRate).toBe(20_000);
    }
  });
});

describe("3.5 update_commit", () => {
  it("fails the connection on an update_commit without any update", () => {
    const p = openPair();
    const out = inject(p, p.b, { kind: "update_commit", sig: badSig(), ack: BigInt(p.b.state.sentCount) });
    expectLatestCommitment(p.b, expectFailed(p.b, out));
  });

  it("we do not send an update_commit without any update", () => {
    const p = openPair();
    expectRejected(p, p.a, { kind: "commit" }, "NOTHING_TO_COMMIT");
    const q = fundedPair(true);
    expectRejected(q, q.a, { kind: "commit" }, "NOTHING_TO_COMMIT");
    expectRejected(q, q.b, { kind: "commit" }, "NOTHING_TO_COMMIT");
    // Every update_commit each sent in fundedPair was accepted (the receiver checks) and answered.
    for (const n of [q.a, q.b]) {
      const commits = n.sent.filter((m) => m.kind === "update_commit").length;
      const revocations = q.peerOf(n).sent.filter((m) => m.kind === "update_revocation").length;
      expect(commits).toBeGreaterThan(0);
      expect(revocations).toBe(commits);
    }
  });

  it("fails the connection when sig does not sign the new commitment", () => {
    const p = openPair();
    addHtlc(p, p.a, 1, 1_000_000);
    run(p, p.a, { kind: "commit" });
    p.deliver(p.b); // the add
    const c = inFlight(p, p.b, "update_commit");
    p.wire.B.shift();
    const b = expectFailed(p.b, inject(p, p.b, { ...c, sig: tamper(c.sig) }));
    expectLatestCommitment(p.b, b);
    expect(b.tx === "commitment" && b.number).toBe(0n);
    expect(p.b.signer.revealed).toEqual([]);
  });

  it("fails the connection when sig signs a commitment without our acknowledged updates", () => {
    const p = fundedPair(false);
    addHtlc(p, p.b, 1, 1_000_000);
    p.deliver(p.a);
    addHtlc(p, p.a, 2, 1_000_000);
    run(p, p.a, { kind: "commit" }); // covers B's add (acked)
    p.deliver(p.b); // A's add
    const c = inFlight(p, p.b, "update_commit");
    p.wire.B.shift();
    // Claim B's add was not acknowledged: the signed commitment is not the one B builds.
    expectFailed(p.b, inject(p, p.b, { ...c, ack: c.ack === undefined ? 0n : c.ack - 1n }));
  });

  it("we send one update_commit at a time: the next needs the peer's next revocation hash", () => {
    const p = openPair();
    addHtlc(p, p.a, 1, 1_000_000);
    run(p, p.a, { kind: "commit" });
    addHtlc(p, p.a, 2, 1_000_000);
    expect(expectRejected(p, p.a, { kind: "commit" }, "AWAITING_REVOCATION")).toMatch(/revocation/);
    p.settle();
    run(p, p.a, { kind: "commit" });
  });
});

describe("3.5 update_revocation", () => {
  function revocationInFlight(): { p: Pair; rev: PktOf<"update_revocation"> } {
    const p = openPair();
    addHtlc(p, p.a, 1, 1_000_000);
    run(p, p.a, { kind: "commit" });
    p.deliver(p.b);
    p.deliver(p.b);
    return { p, rev: inFlight(p, p.a, "update_revocation") };
  }

  it("fails the connection when the preimage does not hash to the old commitment's revocation hash", () => {
    const { p, rev } = revocationInFlight();
    p.wire.A.shift();
    const b = expectFailed(p.a, inject(p, p.a, { ...rev, revocationPreimage: R(5) }));
    expectLatestCommitment(p.a, b);
    expect(p.a.log.some((o) => o.type === "revoked")).toBe(false);
  });

  it("stops as behind, broadcasting nothing, on the preimage of a later commitment (DESIGN.md 6: the peer holds a state we lost)", () => {
    const { p, rev } = revocationInFlight();
    p.wire.A.shift();
    const out = inject(p, p.a, { ...rev, revocationPreimage: p.b.signer.preimage(1n) });
    expect(out.filter((o) => o.type === "broadcast")).toEqual([]);
    expect(p.a.state.phase).toBe("behind");
  });

  it("fails the connection on an update_revocation when no commitment of ours awaits one", () => {
    const { p, rev } = revocationInFlight();
    p.deliver(p.a);
    expectFailed(p.a, inject(p, p.a, rev));
  });

  it("a valid revocation gives the watchtower record for the revoked commitment", () => {
    const { p, rev } = revocationInFlight();
    const out = p.deliver(p.a);
    expect(out).toContainEqual(
      expect.objectContaining({ type: "revoked", number: 0n, preimage: hex(rev.revocationPreimage) }),
    );
  });

  it("we never broadcast a revoked commitment: failing broadcasts the latest, never revealed", () => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000);
    p.settle();
    for (const n of [p.a, p.b]) {
      const number = n.state.localCommit?.number as bigint;
      expect(number).toBeGreaterThan(1n);
      const b = expectFailed(
        n,
        p.input(n, { type: "command", command: { kind: "force_close" } }),
        "OPERATOR",
      );
      expectLatestCommitment(n, b);
      expect(n.signer.revealed).not.toContain(number);
      expect(n.signer.revealed).toEqual(Array.from({ length: Number(number) }, (_, i) => BigInt(i)));
    }
  });
});

describe("5 revocation hashes, as received", () => {
  it("fails the connection on a preimage that matches its hash but does not derive the earlier ones", () => {
    const p = new Pair();
    // B announces a hash for its commitment 1 from another seed; its commitment 0 is genuine.
    const other = generateFromSeed(Buffer.alloc(32, 0x55), commitmentIndex(1n));
    const oc = p.wire.A[0];
    if (oc?.kind !== "open_channel") throw new Error("no open_channel");
    p.wire.A[0] = { ...oc, nextRevocationHash: sha256(other) };
    p.settle();
    p.anchorDepth(1);
    p.settle();
    expect(p.a.state.phase).toBe("normal");
    // A signs B's commitments 1 and 2; "B" answers by hand.
    addHtlc(p, p.a, 1, 1_000_000);
    run(p, p.a, { kind: "commit" });
    p.wire.B = [];
    inject(p, p.a, {
      kind: "update_revocation",
      revocationPreimage: p.b.signer.preimage(0n),
      nextRevocationHash: sha256(R(9)),
    });
    expect(p.a.state.phase).toBe("normal");
    addHtlc(p, p.a, 2, 1_000_000);
    run(p, p.a, { kind: "commit" });
    const out = inject(p, p.a, {
      kind: "update_revocation",
      revocationPreimage: other,
      nextRevocationHash: sha256(R(9)),
    });
    expect(expectFailed(p.a, out).tx).toBe("commitment");
    expect(p.a.state.failure?.problem).toMatch(/derive/);
  });
});
