/**
 * What a peer can make the core hold (issue 13, "a peer that costs us without bound"): the
 * updates it has not committed, the messages waiting for the signer, the routes of its HTLCs,
 * and an open_channel checked before anything is allocated for it.
 */
import { msat, sha256 } from "@ln/bitcoin";
import {
  ackFor,
  checkOpenChannel,
  DEFAULT_POLICY,
  MAX_OFFERED_HTLCS,
  serializeState,
  step,
  type ChannelState,
  type Output,
} from "@ln/channel-core";
import type { Pkt, PktOf } from "@ln/proto";
import { describe, expect, it } from "vitest";
import {
  addPkt,
  expectFailed,
  expectRejected,
  fundedPair,
  inject,
  run,
  settleCommitted,
} from "./conformance-helpers.js";
import { openPair, Pair, R, rHash, type TestNode } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const fee = (feeRate: number): Pkt => ({ kind: "update_fee", feeRate });

describe("open_channel is checked by a pure function before anything is allocated", () => {
  const G = Buffer.from("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "hex");
  const good: PktOf<"open_channel"> = {
    kind: "open_channel",
    delay: { blocks: 144 },
    revocationHash: Buffer.alloc(32, 1),
    nextRevocationHash: Buffer.alloc(32, 2),
    commitKey: G,
    finalKey: G,
    anch: "WILL_CREATE_ANCHOR",
    minDepth: 1,
    initialFeeRate: 10_000,
  };
  const p = DEFAULT_POLICY;
  it("accepts terms within the policy, from the creator of the connection", () => {
    expect(checkOpenChannel(good, p, "acceptor")).toEqual({ ok: true });
  });
  it.each([
    [
      "anch WONT_CREATE_ANCHOR from the creator",
      { anch: "WONT_CREATE_ANCHOR" as const },
      "PROTOCOL_VIOLATION",
    ],
    ["a delay above maxDelayBlocks", { delay: { blocks: p.maxDelayBlocks + 1 } }, "POLICY"],
    ["a delay above maxDelaySeconds", { delay: { seconds: p.maxDelaySeconds + 1 } }, "POLICY"],
    ["a min_depth above maxMinDepth", { minDepth: p.maxMinDepth + 1 }, "POLICY"],
    ["an initial_fee_rate below minFeeRate", { initialFeeRate: p.minFeeRate - 1 }, "POLICY"],
    ["an initial_fee_rate above maxFeeRate", { initialFeeRate: p.maxFeeRate + 1 }, "POLICY"],
    ["a commit_key of 32 bytes", { commitKey: G.subarray(1) }, "PROTOCOL_VIOLATION"],
  ])("refuses %s, with a code", (_what, change, code) => {
    const r = checkOpenChannel({ ...good, ...change }, p, "acceptor");
    expect(r).toMatchObject({ ok: false, code });
  });
  it("the core fails the connection on what the function refuses, with the same code", () => {
    const pair = new Pair();
    // B (the acceptor) has not processed A's open_channel yet: replace it with a bad one.
    pair.wire.B.shift();
    const out = inject(pair, pair.b, { ...good, minDepth: p.maxMinDepth + 1 });
    expectFailed(pair.b, out, "POLICY");
  });
});

/** A peer streams update_fee and never revokes our commitment: the updates stay uncommitted. */
function streamFees(p: Pair, n: TestNode, count: number): Output[] {
  let last: Output[] = [];
  for (let i = 0; i < count && n.state.phase === "normal"; i++) last = inject(p, n, fee(10_000 + (i % 100)));
  return last;
}

describe("the peer's uncommitted updates are bounded (maxPendingUpdates)", () => {
  it("the default leaves room for 1500 adds, 1500 removals and fee updates (draft 3.2)", () => {
    expect(DEFAULT_POLICY.maxPendingUpdates).toBeGreaterThanOrEqual(2 * MAX_OFFERED_HTLCS + 1);
  });

  it("fails the connection with TOO_MANY_UPDATES when the peer withholds its revocation and streams update_fee", () => {
    const bound = 40;
    const p = openPair({ policy: { autoCommit: true, maxPendingUpdates: bound } });
    // The first update_fee: A signs B's next commitment at once (autoCommit) and sends it; B
    // never revokes (nothing is delivered to B), so no commitment of B's includes the rest.
    inject(p, p.a, fee(11_000));
    expect(p.a.state.remotePending).toBeDefined();
    // Up to the bound, accepted...
    streamFees(p, p.a, bound - 1);
    expect(p.a.state.phase).toBe("normal");
    expect(p.a.state.remoteLog.entries).toHaveLength(bound);
    // ... one more fails the connection, with the code.
    const out = inject(p, p.a, fee(12_000));
    expectFailed(p.a, out, "TOO_MANY_UPDATES");
  });

  it("at the default bound too: the 3101st update_fee without a revocation fails the connection", () => {
    const p = openPair({ policy: { autoCommit: true } });
    inject(p, p.a, fee(11_000)); // signed for B at once; B never revokes
    streamFees(p, p.a, DEFAULT_POLICY.maxPendingUpdates - 1);
    expect(p.a.state.phase).toBe("normal");
    expect(p.a.state.remoteLog.entries).toHaveLength(3100);
    expectFailed(p.a, inject(p, p.a, fee(12_000)), "TOO_MANY_UPDATES");
  });

  it("applies to a channel stored before the bound existed (its policy lacks it): the default", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const { maxPendingUpdates: _dropped, ...older } = p.a.state.policy;
    p.a.state = { ...p.a.state, policy: older as typeof p.a.state.policy };
    inject(p, p.a, fee(11_000));
    expect(p.a.state.policy.maxPendingUpdates).toBe(DEFAULT_POLICY.maxPendingUpdates);
  });

  it("counts update_add_htlc too", () => {
    const bound = 6;
    const p = fundedPair(false); // B holds 100,000 sat to offer from
    p.a.state.policy.maxPendingUpdates = bound;
    for (let i = 0; i < bound; i++) inject(p, p.a, addPkt(BigInt(i), 1000, i + 1));
    expect(p.a.state.phase).toBe("normal");
    const out = inject(p, p.a, addPkt(99n, 1000, 50));
    expectFailed(p.a, out, "TOO_MANY_UPDATES");
  });

  it("a peer that commits and revokes is never near the bound: the log is pruned as both commitments include its updates", () => {
    const p = openPair({ policy: { autoCommit: true, maxPendingUpdates: 4 } });
    for (let i = 0; i < 200; i++) {
      run(p, p.b, { kind: "update_fee", feeRate: 10_000 + i });
      p.settle();
    }
    expect(p.a.state.phase).toBe("normal");
    expect(p.a.state.remoteLog.entries.length).toBeLessThanOrEqual(1);
  });
});

describe("the update logs stay short in a long normal run", () => {
  it("after every message of 150 payments both ways, each log holds at most the updates of one round", () => {
    const p = openPair({ policy: { autoCommit: true } });
    let most = 0;
    const watch = (): void => {
      for (const n of [p.a, p.b])
        most = Math.max(most, n.state.localLog.entries.length, n.state.remoteLog.entries.length);
    };
    const settleWatching = (): void => {
      while (p.pending(p.a) + p.pending(p.b) > 0) {
        p.deliver(p.pending(p.a) > 0 ? p.a : p.b);
        watch();
      }
    };
    for (let i = 0; i < 150; i++) {
      const [payer, payee] = i % 3 === 2 ? [p.b, p.a] : [p.a, p.b];
      run(p, payer, {
        kind: "add_htlc",
        amountMsat: msat(payer === p.a ? 5_000_000n : 1_000_000n),
        rHash: rHash(i % 250),
        expiry: { blocks: 2000 },
      });
      watch();
      settleWatching();
      const htlc = payee.state.localCommit?.htlcs.find((h) => h.offerer === "remote");
      run(p, payee, { kind: "fulfill_htlc", id: htlc?.id as bigint, r: hex(R(i % 250)) });
      watch();
      settleWatching();
    }
    // An add, its removal, no more: the log never grows with the channel's history.
    expect(most).toBeLessThanOrEqual(2);
    for (const n of [p.a, p.b]) {
      expect(n.state.localLog.base + n.state.remoteLog.base).toBe(300);
      expect(n.state.localCommit?.htlcs).toEqual([]);
    }
  });
});

describe("routes and fail reasons", () => {
  const onion = Buffer.alloc(1366, 0x5a);
  it("fails the connection on a route longer than the onion (FIELD_TOO_LONG at the codec)", () => {
    const p = openPair();
    const out = inject(p, p.a, { ...addPkt(0n, 1000), route: Buffer.alloc(1367) });
    expectFailed(p.a, out, "PROTOCOL_VIOLATION");
    expect(p.a.state.failure?.problem).toMatch(/route\.info/);
  });
  it("we do not offer a route longer than the onion, nor fail with a reason longer than the error packet", () => {
    const p = openPair();
    expectRejected(
      p,
      p.a,
      {
        kind: "add_htlc",
        amountMsat: msat(1000n),
        rHash: rHash(1),
        expiry: { blocks: 2000 },
        route: "00".repeat(1367),
      },
      "ROUTE_TOO_LONG",
    );
    run(p, p.a, {
      kind: "add_htlc",
      amountMsat: msat(1_000_000n),
      rHash: rHash(1),
      expiry: { blocks: 2000 },
      route: hex(onion),
    });
    settleCommitted(p);
    expect(p.b.state.localCommit?.htlcs).toHaveLength(1);
    expectRejected(p, p.b, { kind: "fail_htlc", id: 0n, reason: "00".repeat(293) }, "REASON_TOO_LONG");
    run(p, p.b, { kind: "fail_htlc", id: 0n, reason: "00".repeat(292) });
  });
  it("keeps an HTLC's route once, in its add, never in the commitment views, and reports it once", () => {
    const p = openPair({ policy: { autoCommit: true } });
    const route = hex(onion);
    const copies = (s: ChannelState): number => serializeState(s).split(route).length - 1;
    const out = run(p, p.a, {
      kind: "add_htlc",
      amountMsat: msat(1_000_000n),
      rHash: rHash(7),
      expiry: { blocks: 2000 },
      route,
    });
    // The HTLC as offered (for the payment record): the command's amount, r_hash and expiry.
    const htlc = { id: 0n, amountMsat: 1_000_000n, rHash: rHash(7), expiry: { blocks: 2000 } };
    expect(out).toContainEqual({
      type: "htlc_added",
      id: 0n,
      offerer: "local",
      route,
      htlc: { ...htlc, offerer: "local" },
    });
    let most = 0;
    let added: Output | undefined;
    while (p.pending(p.a) + p.pending(p.b) > 0) {
      const got = p.deliver(p.pending(p.a) > 0 ? p.a : p.b);
      added ??= got.find((o) => o.type === "htlc_added");
      most = Math.max(most, copies(p.a.state), copies(p.b.state));
    }
    // B learned the onion as it arrived...
    expect(added).toEqual({
      type: "htlc_added",
      id: 0n,
      offerer: "remote",
      route,
      htlc: { ...htlc, offerer: "remote" },
    });
    // ... kept it once at most (in its log), and not at all once both commitments hold the HTLC.
    expect(most).toBe(1);
    expect(p.b.state.localCommit?.htlcs).toHaveLength(1);
    expect(p.b.state.remoteCommit?.htlcs).toHaveLength(1);
    expect(copies(p.a.state) + copies(p.b.state)).toBe(0);
    expect(sha256(R(7)).toString("hex")).toBe(p.b.state.localCommit?.htlcs[0]?.rHash);
  });
});

describe("messages deferred while the signer is down are bounded (maxDeferredPkts)", () => {
  it("beyond the bound: dropped and not acknowledged, a disconnect asked, none taken out of order until the reconnect", () => {
    const bound = 5;
    const p = openPair({ policy: { autoCommit: false, maxDeferredPkts: bound } });
    inject(p, p.a, fee(11_000));
    // A signs B's commitment; its signer does not answer (down): the request stays out.
    const asked = step(p.a.state, { type: "command", command: { kind: "commit" } });
    const request = asked.outputs.find((o) => o.type === "signer");
    expect(asked.state.awaiting).toBe("sign_remote_commitment");
    let s = asked.state;
    const received = s.receivedCount;
    for (let i = 0; i < bound; i++) {
      const r = step(s, { type: "pkt", pkt: fee(12_000 + i) });
      expect(r.outputs).toEqual([]);
      s = r.state;
    }
    expect(s.deferred).toHaveLength(bound);
    expect(ackFor(s)).toBe(received + bound); // stored: the peer must not send these again
    // The next is not kept: the shell drops the connection.
    const over = step(s, { type: "pkt", pkt: fee(13_000) });
    expect(over.outputs).toEqual([{ type: "disconnect", problem: expect.any(String) }]);
    expect(over.state.deferred).toHaveLength(bound);
    expect(ackFor(over.state)).toBe(received + bound);
    // The signer answers: the deferred ones are processed; a later message of the old
    // connection still is not (its predecessor was dropped).
    const reply = request?.type === "signer" ? p.a.signer.answer(request.request) : undefined;
    const answered = step(over.state, { type: "signer", reply: reply as NonNullable<typeof reply> });
    expect(answered.state.receivedCount).toBe(received + bound);
    expect(answered.state.deferred).toEqual([]);
    const late = step(answered.state, { type: "pkt", pkt: fee(14_000) });
    expect(late.outputs.map((o) => o.type)).toEqual(["disconnect"]);
    expect(late.state.receivedCount).toBe(received + bound);
    // The reconnect: the peer resends from our ack (13_000 first), and we take it again.
    const back = step(late.state, { type: "reconnected", theirAck: late.state.sentCount });
    const again = step(back.state, { type: "pkt", pkt: fee(13_000) });
    expect(again.state.receivedCount).toBe(received + bound + 1);
    expect(again.state.phase).toBe("normal");
  });
});
