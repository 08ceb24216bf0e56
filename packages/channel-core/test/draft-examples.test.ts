/**
 * The two worked examples of draft section 3, step by step, asserting both nodes' Committed and
 * Staged lists. Committed: the HTLCs in the node's own current commitment. Staged: the changes
 * waiting for its next one (what `stagedViews` adds to it), in the order the node learnt of them.
 */
import { msat } from "@ln/bitcoin";
import { stagedViews } from "@ln/channel-core";
import { describe, expect, it } from "vitest";
import { openPair, R, rHash, type Pair, type TestNode } from "./harness.js";

const LABEL: Record<string, string> = { [rHash(1)]: "X", [rHash(2)]: "Y" };

function lists(n: TestNode, seen: string[]): { committed: string[]; staged: string[] } {
  const committed = (n.state.localCommit?.htlcs ?? []).map((h) => LABEL[h.rHash] as string);
  const staged = stagedViews(n.state)
    .local.htlcs.map((h) => LABEL[h.rHash] as string)
    .filter((l) => !committed.includes(l));
  const order = (xs: string[]): string[] => [...xs].sort((x, y) => seen.indexOf(x) - seen.indexOf(y));
  return { committed: order(committed), staged: order(staged) };
}

function add(p: Pair, n: TestNode, which: 1 | 2 | 3, amountMsat = 10_000_000): void {
  const out = p.input(n, {
    type: "command",
    command: {
      kind: "add_htlc",
      amountMsat: msat(amountMsat),
      rHash: rHash(which),
      expiry: { blocks: 2000 },
    },
  });
  expect(out.filter((o) => o.type === "command_rejected")).toEqual([]);
}

const commit = (p: Pair, n: TestNode): void => {
  const out = p.input(n, { type: "command", command: { kind: "commit" } });
  expect(out.some((o) => o.type === "command_rejected")).toBe(false);
};
const nextKind = (p: Pair, to: TestNode): string | undefined => p.wire[to.name][0]?.kind;

/** B needs funds to offer Y: A pays it 100,000 sat first, and both sides commit that. */
function fundedPair(): Pair {
  const p = openPair({ policy: { autoCommit: false } });
  add(p, p.a, 3, 100_000_000);
  p.settle();
  commit(p, p.a);
  p.settle();
  commit(p, p.b);
  p.settle();
  const id = p.b.state.localCommit?.htlcs[0]?.id as bigint;
  p.input(p.b, { type: "command", command: { kind: "fulfill_htlc", id, r: R(3).toString("hex") } });
  p.settle();
  commit(p, p.b);
  p.settle();
  commit(p, p.a);
  p.settle();
  expect(p.a.state.localCommit?.htlcs).toEqual([]);
  expect(p.b.state.localCommit?.htlcs).toEqual([]);
  expect(p.b.state.localCommit?.localMsat).toBe(100_000_000n);
  return p;
}

describe("draft section 3, the simple exchange", () => {
  it("follows the Committed/Staged lists of both nodes", () => {
    const p = fundedPair();
    const seenA: string[] = [];
    const seenB: string[] = [];
    expect(lists(p.a, seenA)).toEqual({ committed: [], staged: [] });
    expect(lists(p.b, seenB)).toEqual({ committed: [], staged: [] });

    // A decides to offer a new HTLC X
    add(p, p.a, 1);
    seenA.push("X");
    expect(lists(p.a, seenA)).toEqual({ committed: [], staged: ["X"] });
    p.deliver(p.b); // ADD HTLC X ----->
    seenB.push("X");
    expect(lists(p.b, seenB)).toEqual({ committed: [], staged: ["X"] });

    // B decides to offer a new HTLC Y
    add(p, p.b, 2);
    seenB.push("Y");
    expect(lists(p.b, seenB)).toEqual({ committed: [], staged: ["X", "Y"] });
    p.deliver(p.a); // <----- ADD HTLC Y
    seenA.push("Y");
    expect(lists(p.a, seenA)).toEqual({ committed: [], staged: ["X", "Y"] });

    // A commits its update and the 1 update it got from B
    commit(p, p.a);
    expect(nextKind(p, p.b)).toBe("update_commit");
    p.deliver(p.b); // SIG 1 ----->
    expect(lists(p.b, seenB)).toEqual({ committed: ["X", "Y"], staged: [] });

    // B replies with the revocation preimage, and its own signature with one update from A
    expect(nextKind(p, p.a)).toBe("update_revocation");
    commit(p, p.b);
    p.deliver(p.a); // <----- REVOCATION
    expect(lists(p.a, seenA)).toEqual({ committed: [], staged: ["X", "Y"] });
    p.deliver(p.a); // <----- SIG 1
    expect(lists(p.a, seenA)).toEqual({ committed: ["X", "Y"], staged: [] });
    expect(nextKind(p, p.b)).toBe("update_revocation");
    p.deliver(p.b); // REVOCATION ----->
    expect(lists(p.b, seenB)).toEqual({ committed: ["X", "Y"], staged: [] });
    expect(p.pending(p.a) + p.pending(p.b)).toBe(0);
  });
});

describe("draft section 3, the crossing exchange", () => {
  it("A commits B's update but not its own until B's signature acknowledges it", () => {
    const p = fundedPair();
    const seenA: string[] = [];
    const seenB: string[] = [];

    add(p, p.b, 2); // B offers Y
    seenB.push("Y");
    expect(lists(p.b, seenB)).toEqual({ committed: [], staged: ["Y"] });
    p.deliver(p.a); // <----- ADD HTLC Y
    seenA.push("Y");
    expect(lists(p.a, seenA)).toEqual({ committed: [], staged: ["Y"] });

    // B signs before it sees X (SIG 0); A adds X and signs (SIG 1): the messages cross.
    commit(p, p.b);
    add(p, p.a, 1);
    seenA.push("X");
    expect(lists(p.a, seenA)).toEqual({ committed: [], staged: ["Y", "X"] });
    commit(p, p.a);

    p.deliver(p.a); // SIG 0 arrives at A
    // A commits B's update but not its own (B did not acknowledge X)
    expect(lists(p.a, seenA)).toEqual({ committed: ["Y"], staged: ["X"] });
    expect(p.wire.B.map((m) => m.kind)).toEqual(["update_add_htlc", "update_commit", "update_revocation"]);

    p.deliver(p.b); // ADD HTLC X at B
    seenB.push("X");
    expect(lists(p.b, seenB)).toEqual({ committed: [], staged: ["Y", "X"] });
    p.deliver(p.b); // SIG 1 at B: its own Y (acknowledged) and A's X
    expect(lists(p.b, seenB)).toEqual({ committed: ["Y", "X"], staged: [] });
    p.deliver(p.b); // A's REVOCATION of its old commitment
    expect(p.wire.A.map((m) => m.kind)).toEqual(["update_revocation"]);

    // B sends REVOCATION, then SIG 1 with A's update
    commit(p, p.b);
    p.deliver(p.a); // <----- REVOCATION
    expect(lists(p.a, seenA)).toEqual({ committed: ["Y"], staged: ["X"] });
    p.deliver(p.a); // <----- SIG 1
    expect(lists(p.a, seenA)).toEqual({ committed: ["Y", "X"], staged: [] });
    p.deliver(p.b); // REVOCATION ----->
    expect(lists(p.b, seenB)).toEqual({ committed: ["Y", "X"], staged: [] });
    expect(p.pending(p.a) + p.pending(p.b)).toBe(0);
  });
});
