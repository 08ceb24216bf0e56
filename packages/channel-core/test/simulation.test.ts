/**
 * Two honest cores through a model of the transport: in order per direction, any interleaving
 * between directions, random operator actions on both sides, disconnects and reconnects with
 * `authenticate.ack` and retransmission at any point. fast-check prints the seed of a failure.
 */
import { msat, sha256 } from "@ln/bitcoin";
import type { Pkt } from "@ln/proto";
import {
  deserializeState,
  serializeState,
  type ChannelState,
  type CommitmentView,
  type Output,
} from "@ln/channel-core";
import { buildCommitment } from "@ln/tx";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { openPair, R, rHash, type Pair, type TestNode } from "./harness.js";

type Who = "A" | "B";
type Action =
  | { t: "add"; who: Who; preimage: number; amountMsat: number }
  | { t: "fulfill"; who: Who; pick: number }
  | { t: "fail"; who: Who; pick: number }
  | { t: "fee"; who: Who; rate: number }
  | { t: "commit"; who: Who }
  | { t: "deliver"; to: Who }
  | { t: "settle" }
  | { t: "round" }
  | { t: "disconnect" }
  | { t: "reconnect" };

const who = fc.constantFrom<Who>("A", "B");
const action: fc.Arbitrary<Action> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("add" as const),
      who,
      preimage: fc.integer({ min: 1, max: 200 }),
      amountMsat: fc.oneof(fc.integer({ min: 1, max: 600_000 }), fc.integer({ min: 1, max: 60_000_000 })),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("fulfill" as const), who, pick: fc.nat() }) },
  { weight: 1, arbitrary: fc.record({ t: fc.constant("fail" as const), who, pick: fc.nat() }) },
  {
    weight: 1,
    arbitrary: fc.record({
      t: fc.constant("fee" as const),
      who,
      rate: fc.integer({ min: 1000, max: 60_000 }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ t: fc.constant("commit" as const), who }) },
  { weight: 8, arbitrary: fc.record({ t: fc.constant("deliver" as const), to: who }) },
  { weight: 1, arbitrary: fc.constant({ t: "settle" as const }) },
  { weight: 2, arbitrary: fc.constant({ t: "round" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "disconnect" as const }) },
  { weight: 1, arbitrary: fc.constant({ t: "reconnect" as const }) },
);

const TOTAL_MSAT = 1_000_000_000n;

function viewTotal(v: CommitmentView): bigint {
  return v.localMsat + v.remoteMsat + v.htlcs.reduce((a, h) => a + h.amountMsat, 0n);
}

/** Our view of the peer's commitment, from the peer's side. */
function mirrored(v: CommitmentView): unknown {
  return {
    number: v.number,
    localMsat: v.remoteMsat,
    remoteMsat: v.localMsat,
    feeRate: v.feeRate,
    htlcs: v.htlcs
      .map((h) => ({ ...h, offerer: h.offerer === "local" ? "remote" : "local" }))
      .sort((x, y) => (x.offerer + x.id).localeCompare(y.offerer + y.id)),
  };
}
const plain = (v: CommitmentView): unknown => ({
  number: v.number,
  localMsat: v.localMsat,
  remoteMsat: v.remoteMsat,
  feeRate: v.feeRate,
  htlcs: [...v.htlcs].sort((x, y) => (x.offerer + x.id).localeCompare(y.offerer + y.id)),
});

function checkInvariants(p: Pair): void {
  for (const n of [p.a, p.b]) {
    expect(n.state.phase, `${n.name} failed: ${n.state.failure?.problem}`).toBe("normal");
    const s = n.state;
    for (const v of [s.localCommit, s.remoteCommit, s.remotePending])
      if (v) expect(viewTotal(v)).toBe(TOTAL_MSAT);
  }
  // A commitment signed by both: both nodes hold the same contents for it.
  for (const [owner, other] of [
    [p.a, p.b],
    [p.b, p.a],
  ] as const) {
    const mine = owner.state.localCommit as CommitmentView;
    const theirs = [other.state.remoteCommit, other.state.remotePending].find(
      (v) => v?.number === mine.number,
    );
    expect(theirs, `${other.name} has no view of ${owner.name}'s commitment ${mine.number}`).toBeDefined();
    expect(mirrored(theirs as CommitmentView)).toEqual(plain(mine));
  }
}

/** Every HTLC result is reported once, and only for an HTLC that was added. */
function checkResults(n: TestNode, peer: TestNode): void {
  const results = n.log.filter(
    (o): o is Extract<Output, { type: "htlc_result" }> => o.type === "htlc_result",
  );
  const keys = results.map((r) => `${r.offerer}:${r.id}`);
  expect(new Set(keys).size).toBe(keys.length);
  const added = new Set(
    n.log
      .filter((o) => o.type === "htlc_added")
      .map((o) => (o.type === "htlc_added" ? `${o.offerer}:${o.id}` : "")),
  );
  for (const k of keys) expect(added.has(k)).toBe(true);
  // A fulfilment's R hashes to the r_hash of the HTLC: the one we offered (our own
  // update_add_htlc), or the one the peer offered (its update_add_htlc, as we received it).
  const addOf = (m: Pkt): [bigint, string] | [] =>
    m.kind === "update_add_htlc" ? [m.id, m.rHash.toString("hex")] : [];
  const hashOf = {
    local: new Map(n.sent.flatMap((m) => [addOf(m)].filter((x) => x.length === 2))),
    remote: new Map(peer.sent.flatMap((m) => [addOf(m)].filter((x) => x.length === 2))),
  };
  for (const r of results) {
    // Each result carries its HTLC as it was added (what the money record needs).
    const add = n.log.find((o) => o.type === "htlc_added" && o.offerer === r.offerer && o.id === r.id);
    expect(r.htlc).toEqual(add?.type === "htlc_added" ? add.htlc : undefined);
    expect(r.htlc?.rHash).toBe(hashOf[r.offerer].get(r.id));
    if (r.result.kind === "fulfilled")
      expect(sha256(Buffer.from(r.result.r, "hex")).toString("hex")).toBe(hashOf[r.offerer].get(r.id));
  }
}

/** After convergence every HTLC we offered is either still in our commitment or resolved, not both. */
function checkNoneLost(n: TestNode): void {
  const offered = n.log.flatMap((o) => (o.type === "htlc_added" && o.offerer === "local" ? [o.id] : []));
  const resolved = n.log.flatMap((o) => (o.type === "htlc_result" && o.offerer === "local" ? [o.id] : []));
  const open = (n.state.localCommit?.htlcs ?? []).filter((h) => h.offerer === "local").map((h) => h.id);
  expect([...resolved, ...open].sort()).toEqual([...offered].sort());
}

/** Every preimage the peer revealed hashes to the revocation hash its commitment used. */
function checkRevocations(n: TestNode, peer: TestNode): void {
  for (const o of n.log)
    if (o.type === "revoked")
      expect(sha256(Buffer.from(o.preimage, "hex")).toString("hex")).toBe(
        peer.signer.revocationHash(o.number),
      );
}

/** No node signs a commitment that does not pay its fee (unless neither side has anything left to pay it with). */
function checkSignedCommitments(n: TestNode): void {
  for (const o of n.log)
    if (o.type === "signer" && o.request.kind === "sign_remote_commitment") {
      const c = buildCommitment(o.request.params);
      const toFinals = c.outputs.filter((x) => x.kind === "to_owner" || x.kind === "to_other").length;
      expect(c.paidFee >= c.fee || toFinals === 0).toBe(true);
    }
}

const node = (p: Pair, w: Who): TestNode => (w === "A" ? p.a : p.b);

function incoming(s: ChannelState): bigint[] {
  const inBoth = (s.localCommit?.htlcs ?? []).filter(
    (h) =>
      h.offerer === "remote" && s.remoteCommit?.htlcs.some((x) => x.offerer === "remote" && x.id === h.id),
  );
  return inBoth.map((h) => h.id);
}

function run(p: Pair, a: Action): void {
  switch (a.t) {
    case "add":
      p.input(node(p, a.who), {
        type: "command",
        command: {
          kind: "add_htlc",
          amountMsat: msat(a.amountMsat),
          rHash: rHash(a.preimage),
          expiry: { blocks: 5000 },
        },
      });
      return;
    case "fulfill":
    case "fail": {
      const n = node(p, a.who);
      const ids = incoming(n.state);
      if (ids.length === 0) return;
      const id = ids[a.pick % ids.length] as bigint;
      const htlc = n.state.localCommit?.htlcs.find((h) => h.offerer === "remote" && h.id === id);
      const preimage =
        Array.from({ length: 250 }, (_, i) => i + 1).find((i) => rHash(i) === htlc?.rHash) ?? 0;
      p.input(n, {
        type: "command",
        command:
          a.t === "fulfill"
            ? { kind: "fulfill_htlc", id, r: R(preimage).toString("hex") }
            : { kind: "fail_htlc", id, reason: "6e6f" },
      });
      return;
    }
    case "fee":
      p.input(node(p, a.who), { type: "command", command: { kind: "update_fee", feeRate: a.rate } });
      return;
    case "commit":
      p.input(node(p, a.who), { type: "command", command: { kind: "commit" } });
      return;
    case "deliver":
      if (p.pending(node(p, a.to)) > 0) p.deliver(node(p, a.to));
      return;
    case "settle":
      if (p.connected) p.settle();
      return;
    case "round": // a full commit/revoke round both ways, when connected
      if (!p.connected) return;
      for (const n of [p.a, p.b, p.a]) {
        p.input(n, { type: "command", command: { kind: "commit" } });
        p.settle();
      }
      return;
    case "disconnect":
      if (p.connected) p.disconnect();
      return;
    case "reconnect":
      if (!p.connected) p.reconnect();
      return;
  }
}

/** Reconnects, then delivers and commits until nothing changes: both commitments converge. */
function quiesce(p: Pair): void {
  if (!p.connected) p.reconnect();
  for (let i = 0; i < 50; i++) {
    p.settle();
    const before = p.a.sent.length + p.b.sent.length;
    p.input(p.a, { type: "command", command: { kind: "commit" } });
    p.settle();
    p.input(p.b, { type: "command", command: { kind: "commit" } });
    p.settle();
    if (p.a.sent.length + p.b.sent.length === before) return;
  }
  throw new Error("did not converge");
}

/** A channel where A has paid B 400,000 sat, so both sides can offer HTLCs. */
function fundedPair(autoCommit: boolean): Pair {
  const p = openPair({ policy: { autoCommit } });
  p.input(p.a, {
    type: "command",
    command: { kind: "add_htlc", amountMsat: msat(400_000_000), rHash: rHash(250), expiry: { blocks: 5000 } },
  });
  quiesce(p);
  const id = p.b.state.localCommit?.htlcs[0]?.id as bigint;
  p.input(p.b, { type: "command", command: { kind: "fulfill_htlc", id, r: R(250).toString("hex") } });
  quiesce(p);
  expect(p.b.state.localCommit?.localMsat).toBe(400_000_000n);
  return p;
}

describe("two-node simulation", () => {
  it("keeps every invariant under random actions, interleavings, disconnects and reconnects", () => {
    fc.assert(
      fc.property(
        fc.boolean(),
        fc.array(action, { minLength: 1, maxLength: 100, size: "max" }),
        (autoCommit, actions) => {
          const p = fundedPair(autoCommit);
          for (const a of actions) {
            run(p, a);
            checkInvariants(p);
          }
          quiesce(p);
          checkInvariants(p);
          // Converged: both nodes hold the same two commitments.
          expect(mirrored(p.b.state.remoteCommit as CommitmentView)).toEqual(
            plain(p.a.state.localCommit as CommitmentView),
          );
          expect(mirrored(p.a.state.remoteCommit as CommitmentView)).toEqual(
            plain(p.b.state.localCommit as CommitmentView),
          );
          expect(p.a.state.localCommit?.htlcs.length).toBe(p.b.state.localCommit?.htlcs.length);
          for (const [n, peer] of [
            [p.a, p.b],
            [p.b, p.a],
          ] as const) {
            checkResults(n, peer);
            checkNoneLost(n);
            // State is plain data that survives Postgres: JSON and back, losslessly.
            expect(deserializeState(serializeState(n.state))).toEqual(n.state);
            checkRevocations(n, peer);
            checkSignedCommitments(n);
          }
        },
      ),
      { numRuns: 1000 },
    );
  }, 600_000);
});
