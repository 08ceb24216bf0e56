/**
 * The outputs money records are written from (DESIGN.md 11): each step that offers, fulfils or
 * fails an HTLC reports the HTLC itself (amount, r_hash, expiry) with R or the failure reason,
 * so the shell never reads the core's logs. Expected values are the commands' own inputs.
 */
import { msat } from "@ln/bitcoin";
import { htlcsToSettle, ourFulfilments, peerFulfilments, step, type Output } from "@ln/channel-core";
import { describe, expect, it } from "vitest";
import { addHtlc, run } from "./conformance-helpers.js";
import { openPair, R, rHash } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const results = (out: Output[]): Extract<Output, { type: "htlc_result" }>[] =>
  out.filter((o): o is Extract<Output, { type: "htlc_result" }> => o.type === "htlc_result");

/** A pays B 7,000,000 msat against R(3), expiry block 2000, committed on both sides. */
function committedToB(): ReturnType<typeof openPair> {
  const p = openPair({ policy: { autoCommit: true } });
  addHtlc(p, p.a, 3, 7_000_000);
  p.settle();
  return p;
}

const offered = (offerer: "local" | "remote") => ({
  id: 0n,
  offerer,
  amountMsat: 7_000_000n,
  rHash: rHash(3),
  expiry: { blocks: 2000 },
});

describe("money records: what the core reports", () => {
  it("an offered HTLC is reported with its amount, r_hash and expiry in the step that offers it", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const out = run(p, p.a, {
      kind: "add_htlc",
      amountMsat: msat(7_000_000n),
      rHash: rHash(3),
      expiry: { blocks: 2000 },
    });
    expect(out.filter((o) => o.type === "htlc_added")).toEqual([
      { type: "htlc_added", id: 0n, offerer: "local", route: "", htlc: offered("local") },
    ]);
  });

  it("an HTLC continuing a forward names its row, in the step that offers it (the row is claimed there)", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const out = run(p, p.a, {
      kind: "add_htlc",
      amountMsat: msat(7_000_000n),
      rHash: rHash(3),
      expiry: { blocks: 2000 },
      route: "ab".repeat(1366),
      forward: 17n,
    });
    expect(out.filter((o) => o.type === "htlc_added")).toEqual([
      {
        type: "htlc_added",
        id: 0n,
        offerer: "local",
        route: "ab".repeat(1366),
        htlc: offered("local"),
        forward: 17n,
      },
    ]);
    // The peer sees the onion, never our row.
    p.settle();
    expect(p.b.log.filter((o) => o.type === "htlc_added")).toEqual([
      { type: "htlc_added", id: 0n, offerer: "remote", route: "ab".repeat(1366), htlc: offered("remote") },
    ]);
  });

  it("our fulfil reports R with the HTLC, in the step that stages it (the invoice is settled there)", () => {
    const p = committedToB();
    const out = run(p, p.b, { kind: "fulfill_htlc", id: 0n, r: hex(R(3)) });
    expect(results(out)).toEqual([
      {
        type: "htlc_result",
        id: 0n,
        offerer: "remote",
        result: { kind: "fulfilled", r: hex(R(3)) },
        htlc: offered("remote"),
      },
    ]);
    // The payer learns R from the update_fulfill_htlc: its payment succeeded, reported once.
    p.settle();
    expect(results(p.a.log)).toEqual([
      {
        type: "htlc_result",
        id: 0n,
        offerer: "local",
        result: { kind: "fulfilled", r: hex(R(3)) },
        htlc: offered("local"),
      },
    ]);
  });

  it("our fail reports the reason with the HTLC; the payer's failure comes once it is irrevocable", () => {
    const p = committedToB();
    const reason = hex(Buffer.from("no such invoice"));
    const out = run(p, p.b, { kind: "fail_htlc", id: 0n, reason });
    expect(results(out)).toEqual([
      {
        type: "htlc_result",
        id: 0n,
        offerer: "remote",
        result: { kind: "failed", reason },
        htlc: offered("remote"),
      },
    ]);
    // A sees nothing while the HTLC is still in one of the commitments...
    const onReceipt = p.deliver(p.a);
    expect(results(onReceipt)).toEqual([]);
    p.settle();
    // ... then its failure, with the HTLC, once the removal is in every commitment.
    expect(results(p.a.log)).toEqual([
      {
        type: "htlc_result",
        id: 0n,
        offerer: "local",
        result: { kind: "failed", reason },
        htlc: offered("local"),
      },
    ]);
    expect(p.a.state.localCommit?.htlcs).toEqual([]);
    expect(p.a.state.remoteCommit?.htlcs).toEqual([]);
  });

  it("htlcsToSettle: the peer's HTLCs committed on both sides with no removal of ours staged", () => {
    const p = openPair({ policy: { autoCommit: true } });
    addHtlc(p, p.a, 3, 7_000_000);
    // Only staged: not B's to decide yet.
    p.deliver(p.b);
    expect(htlcsToSettle(p.b.state)).toEqual([]);
    p.settle();
    expect(htlcsToSettle(p.b.state)).toEqual([offered("remote")]);
    // Our own offers are never B's to settle from A's side.
    expect(htlcsToSettle(p.a.state)).toEqual([]);
    run(p, p.b, { kind: "fulfill_htlc", id: 0n, r: hex(R(3)) });
    expect(htlcsToSettle(p.b.state)).toEqual([]);
    // R stays known while our removal is staged (what an on-chain claim would need)...
    expect(ourFulfilments(p.b.state)).toEqual([{ id: 0n, r: hex(R(3)) }]);
    // ... and on the payer's side once received, while the removal is staged there.
    p.deliver(p.a);
    expect(peerFulfilments(p.a.state)).toEqual([{ id: 0n, r: hex(R(3)) }]);
    p.settle();
    expect(ourFulfilments(p.b.state)).toEqual([]);
    expect(peerFulfilments(p.a.state)).toEqual([]);
  });

  it("an HTLC the core fails itself (expiry too soon) is neither to settle nor reported", () => {
    const p = openPair({
      policy: { autoCommit: true, deadlineMarginBlocks: 0, deadlineMarginSeconds: 0 },
      policyB: { autoCommit: true },
    });
    // Expiry 1146 at height 1000, delay 144: A's deadline (margin 0) is 1002, still ahead, so A
    // offers it; B's (margin 6) is 996, already passed, so B fails it at once.
    addHtlc(p, p.a, 3, 7_000_000, { blocks: 1146 });
    // Deliver step by step: at no point may B be asked to settle it.
    while (p.pending(p.a) + p.pending(p.b) > 0) {
      p.deliver(p.pending(p.b) > 0 ? p.b : p.a);
      expect(htlcsToSettle(p.b.state)).toEqual([]);
    }
    expect(p.b.sent.filter((m) => m.kind === "update_fail_htlc")).toHaveLength(1);
    expect(p.b.log.filter((o) => o.type === "htlc_added" || o.type === "htlc_result")).toEqual([]);
    expect(step(p.b.state, { type: "resume" }).outputs.filter((o) => o.type === "htlc_result")).toEqual([]);
  });
});
