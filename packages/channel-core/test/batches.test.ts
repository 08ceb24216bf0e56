/**
 * stepAll: several inputs as one step of the shell. Every input is applied as `step` applies it,
 * but our update_commit waits for the end of the batch, so one commitment covers all of its
 * updates (draft 3.5: update_commit covers every update sent and processed before it).
 */
import { msat, type Msat } from "@ln/bitcoin";
import { stepAll, type Input, type Output } from "@ln/channel-core";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { openPair, R, rHash, type Pair, type TestNode } from "./harness.js";

const add = (n: number, amount = 10_000_000n): Input => ({
  type: "command",
  command: { kind: "add_htlc", amountMsat: msat(amount), rHash: rHash(n), expiry: { blocks: 5000 } },
});
const kinds = (outs: readonly Output[]): string[] =>
  outs.map((o) =>
    o.type === "send" ? o.pkt.kind : o.type === "signer" ? `signer:${o.request.kind}` : o.type,
  );

/**
 * Feeds `inputs` to `n` in batches as the shell does: the outputs carried out (the harness's
 * signer answers at once), and the inputs a batch did not take given again in the next.
 */
function batch(p: Pair, n: TestNode, inputs: Input[]): Output[][] {
  const all: Output[][] = [];
  for (let left = inputs; left.length > 0;) {
    const r = stepAll(n.state, left);
    n.state = r.state;
    for (const outs of r.outputs) for (const o of outs) p.effect(n, o);
    all.push(...r.outputs);
    left = left.slice(r.outputs.length);
  }
  return all;
}

/** Delivers every message in flight in batches of at most `size` (per node, in order), until quiet. */
function settleInBatches(p: Pair, size: (n: TestNode) => number): void {
  for (let i = 0; i < 10_000; i++) {
    const n = p.pending(p.a) > 0 ? p.a : p.pending(p.b) > 0 ? p.b : undefined;
    if (!n) return;
    const pkts = p.wire[n.name].splice(0, Math.max(1, size(n)));
    batch(
      p,
      n,
      pkts.map((pkt) => ({ type: "pkt", pkt })),
    );
  }
  throw new Error("did not settle");
}

const balances = (n: TestNode): { local: Msat; remote: Msat; htlcs: number } => {
  const lc = n.state.localCommit;
  if (!lc) throw new Error("no commitment");
  return { local: lc.localMsat, remote: lc.remoteMsat, htlcs: lc.htlcs.length };
};

/** An open pair (auto-commit) where B has funds too: A paid B 400,000 sat. */
function fundedPair(): Pair {
  const p = openPair({ policy: { autoCommit: true } });
  p.input(p.a, add(1000, 400_000_000n));
  p.settle();
  p.input(p.b, { type: "command", command: { kind: "fulfill_htlc", id: 0n, r: R(1000).toString("hex") } });
  p.settle();
  return p;
}

describe("stepAll: a batch of inputs, one commitment", () => {
  it("twenty adds in one batch are one update_commit covering all twenty, asked for after the last", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const outs = stepAll(
      p.a.state,
      Array.from({ length: 20 }, (_, i) => add(i + 1)),
    );
    // Each add sends its update_add_htlc at once; the signer is asked once, after the twentieth.
    outs.outputs.slice(0, 19).forEach((o) => expect(kinds(o)).toEqual(["update_add_htlc", "htlc_added"]));
    expect(kinds(outs.outputs[19] ?? [])).toEqual([
      "update_add_htlc",
      "htlc_added",
      "signer:sign_remote_commitment",
    ]);
    const pending = outs.state.remotePending;
    const before = p.a.state.remoteCommit;
    expect(pending && before && pending.localUpdates - before.localUpdates).toBe(20);
    expect(pending?.htlcs).toHaveLength(20);
  });

  it("a batch ending in a rejected command still commits the updates before it", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const huge = add(99, 10n ** 15n); // far beyond the channel: rejected, changes nothing
    const outs = stepAll(p.a.state, [add(1), add(2), huge]);
    expect(kinds(outs.outputs[2] ?? [])).toEqual(["command_rejected", "signer:sign_remote_commitment"]);
    expect(outs.state.remotePending?.htlcs).toHaveLength(2);
  });

  it("an input that makes the state await the signer ends the batch: the rest are not taken", () => {
    const p = fundedPair();
    batch(p, p.a, [add(1)]); // A commits at once (the signer answers in the harness)
    // B: the add and A's commit, then two of B's own adds: the commit asks for B's revocation,
    // and the batch stops there; B's adds come again with the signer's answer.
    const atB = p.wire.B.splice(0).map((pkt): Input => ({ type: "pkt", pkt }));
    const r = stepAll(p.b.state, [...atB, add(11), add(12)]);
    expect(r.outputs).toHaveLength(2);
    expect(kinds(r.outputs[1] ?? [])).toEqual(["signer:reveal_revocation"]);
    expect(r.state.awaiting).toBe("reveal_revocation");
    expect(r.state.deferred).toEqual([]);
    const request = r.outputs[1]?.[0];
    if (request?.type !== "signer") throw new Error("no signer request");
    const answer: Input = { type: "signer", reply: p.b.signer.answer(request.request) };
    const next = stepAll(r.state, [answer, add(11), add(12)]);
    expect(next.outputs.map(kinds)).toEqual([
      ["update_revocation"],
      ["update_add_htlc", "htlc_added"],
      ["update_add_htlc", "htlc_added", "signer:sign_remote_commitment"],
    ]);
    p.b.state = next.state;
    for (const o of next.outputs.flat()) p.effect(p.b, o);
    p.settle();
    expect(balances(p.a).htlcs).toBe(3);
    expect(balances(p.b).htlcs).toBe(3);
  });

  it("inputs given while the state already awaits the signer are deferred in it, as step does", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const asked = stepAll(p.a.state, [add(1)]);
    expect(asked.state.awaiting).toBe("sign_remote_commitment");
    const r = stepAll(asked.state, [add(2), add(3)]);
    expect(r.outputs).toEqual([[], []]);
    expect(r.state.deferred).toHaveLength(2);
  });

  it("payments both ways fed in batches of any size end where one-at-a-time ends", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({ from: fc.constantFrom("A", "B"), amount: fc.integer({ min: 600, max: 50_000 }) }),
          {
            minLength: 1,
            maxLength: 30,
          },
        ),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 12 }),
        (payments, sizeA, sizeB) => {
          const run = (
            batched: boolean,
          ): { a: ReturnType<typeof balances>; b: ReturnType<typeof balances> } => {
            const p = openPair({ policy: { autoCommit: true } });
            // B needs funds to pay A: A pays B first, in one go.
            p.input(p.a, add(1000, 400_000_000n));
            p.settle();
            p.input(p.b, {
              type: "command",
              command: { kind: "fulfill_htlc", id: 0n, r: R(1000).toString("hex") },
            });
            p.settle();
            const adds = (from: "A" | "B"): Input[] =>
              payments
                .map((x, i) => ({ ...x, i }))
                .filter((x) => x.from === from)
                .map((x) => add(x.i + 1, BigInt(x.amount) * 1000n));
            if (batched) {
              batch(p, p.a, adds("A"));
              batch(p, p.b, adds("B"));
              settleInBatches(p, (n) => (n === p.a ? sizeA : sizeB));
            } else {
              for (const i of adds("A")) p.input(p.a, i);
              for (const i of adds("B")) p.input(p.b, i);
              p.settle();
            }
            // Every HTLC fulfilled by its receiver, in one batch per side.
            const fulfils = (n: TestNode): Input[] =>
              (n.state.localCommit?.htlcs ?? [])
                .filter((h) => h.offerer === "remote")
                .map((h) => ({
                  type: "command",
                  command: {
                    kind: "fulfill_htlc",
                    id: h.id,
                    r: R(payments.findIndex((_, i) => rHash(i + 1) === h.rHash) + 1).toString("hex"),
                  },
                }));
            if (batched) {
              batch(p, p.a, fulfils(p.a));
              batch(p, p.b, fulfils(p.b));
              settleInBatches(p, (n) => (n === p.a ? sizeB : sizeA));
            } else {
              for (const i of fulfils(p.a)) p.input(p.a, i);
              for (const i of fulfils(p.b)) p.input(p.b, i);
              p.settle();
            }
            return { a: balances(p.a), b: balances(p.b) };
          };
          const one = run(false);
          const many = run(true);
          expect(many).toEqual(one);
          expect(many.a.htlcs).toBe(0);
          // Both ends agree: A's local is B's remote.
          expect(many.a.local).toBe(many.b.remote);
          expect(many.a.remote).toBe(many.b.local);
        },
      ),
      { numRuns: 20 },
    );
  });
});
