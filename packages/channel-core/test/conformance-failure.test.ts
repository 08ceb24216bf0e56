/**
 * Conformance, draft 1.2 (persistence and retransmission, the core's part), 6.1 (monitoring the
 * anchor) and 6.3 (failing the connection). See docs/CONFORMANCE.md.
 */
import { sat } from "@ln/bitcoin";
import { ackFor, step, type ChannelState } from "@ln/channel-core";
import { encodePkt, type Pkt } from "@ln/proto";
import { describe, expect, it } from "vitest";
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
} from "./conformance-helpers.js";
import { openPair, Pair, R } from "./harness.js";

const spent = (ours: boolean) =>
  ({ type: "chain", event: { kind: "anchor_spent", txid: "bb".repeat(32), ours } }) as const;

describe("1.2 continuing on a new transport", () => {
  it("continues a channel across a reconnect that lost messages in flight", () => {
    const p = fundedPair(false);
    addHtlc(p, p.a, 1, 1_000_000);
    run(p, p.a, { kind: "commit" });
    p.deliver(p.b); // the add arrives; the update_commit is lost
    p.disconnect();
    p.reconnect();
    settleCommitted(p);
    for (const n of [p.a, p.b]) {
      expect(n.state.phase).toBe("normal");
      expect(n.state.localCommit?.htlcs).toHaveLength(1);
      expect(n.state.remoteCommit?.htlcs).toHaveLength(1);
    }
  });

  it("continues an opening across a reconnect", () => {
    const p = new Pair();
    p.deliver(p.a); // B's open_channel; A's open_channel and open_anchor are lost
    p.disconnect();
    p.reconnect();
    p.settle();
    p.anchorDepth(1);
    p.settle();
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["normal", "normal"]);
  });

  it("our authenticate ack is the number of non-authenticate messages processed", () => {
    const p = fundedPair(false);
    expect(ackFor(p.a.state)).toBe(p.b.sent.length);
    expect(ackFor(p.b.state)).toBe(p.a.sent.length);
    addHtlc(p, p.a, 1, 1_000_000);
    addHtlc(p, p.a, 2, 1_000_000);
    p.deliver(p.b);
    p.disconnect();
    expect(ackFor(p.b.state)).toBe(p.a.sent.length - 1);
  });

  it("retransmits exactly the messages after the peer's ack, bitwise identical", () => {
    const p = fundedPair(false);
    addHtlc(p, p.a, 1, 1_000_000);
    addHtlc(p, p.a, 2, 2_000_000);
    run(p, p.a, { kind: "commit" });
    const sentBefore = p.a.state.sentCount;
    const original = p.a.sent.slice(-3).map(encodePkt);
    p.deliver(p.b);
    p.disconnect();
    const theirAck = ackFor(p.b.state);
    p.connected = true; // a new transport
    const out = p.input(p.a, { type: "reconnected", theirAck });
    expect(out).toEqual([{ type: "retransmit", afterSeq: theirAck }]);
    expect(p.a.state.sentCount).toBe(sentBefore); // nothing new is produced
    expect(p.wire.B.map(encodePkt)).toEqual(original.slice(1));
    p.input(p.b, { type: "reconnected", theirAck: ackFor(p.a.state) });
    settleCommitted(p);
    expect(p.b.state.localCommit?.htlcs).toHaveLength(2);
  });

  it("the acks we send never decrease: update_commit acks and authenticate acks", () => {
    const p = fundedPair(true);
    addHtlc(p, p.a, 1, 1_000_000);
    addHtlc(p, p.b, 2, 1_000_000);
    p.deliver(p.b);
    p.disconnect();
    const acks = [ackFor(p.a.state), ackFor(p.b.state)];
    p.reconnect();
    p.settle();
    expect(ackFor(p.a.state)).toBeGreaterThanOrEqual(acks[0] as number);
    expect(ackFor(p.b.state)).toBeGreaterThanOrEqual(acks[1] as number);
    for (const n of [p.a, p.b]) {
      const commitAcks = n.sent.flatMap((m) => (m.kind === "update_commit" ? [m.ack ?? 0n] : []));
      expect(commitAcks.length).toBeGreaterThan(2);
      expect([...commitAcks].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0))).toEqual(commitAcks);
    }
  });

  it("fails the connection when the peer's authenticate ack is lower than before", () => {
    const p = fundedPair();
    p.disconnect();
    p.reconnect();
    p.settle();
    const ack = p.a.state.peerAck;
    expect(ack).toBe(p.a.sent.length);
    const out = p.input(p.a, { type: "reconnected", theirAck: ack - 1 });
    expectLatestCommitment(p.a, expectFailed(p.a, out, "PROTOCOL_VIOLATION"));
    expect(out.some((o) => o.type === "retransmit")).toBe(false);
  });

  it("fails the connection when the peer's authenticate ack is lower than an update_commit ack it sent", () => {
    const p = fundedPair();
    const ack = p.a.state.peerCommitAck;
    expect(ack).toBeGreaterThan(0);
    expectFailed(p.a, p.input(p.a, { type: "reconnected", theirAck: ack - 1 }));
  });

  it("stops as behind, broadcasting nothing, when the peer acknowledges messages we never sent (DESIGN.md 6)", () => {
    const p = fundedPair();
    const out = p.input(p.b, { type: "reconnected", theirAck: p.b.state.sentCount + 1 });
    expect(out.filter((o) => o.type === "broadcast")).toEqual([]);
    expect(out.filter((o) => o.type === "send" && o.pkt.kind === "error")).toHaveLength(1);
    expect(p.b.state.phase).toBe("behind");
  });

  it("fails the connection when an update_commit's ack is lower than a previous one", () => {
    const p = fundedPair();
    addHtlc(p, p.b, 1, 1_000_000);
    p.deliver(p.a); // B's add; A will not answer it here
    p.wire.B = [];
    const ack = p.a.state.peerCommitAck;
    expect(ack).toBeGreaterThan(0);
    expectFailed(p.a, inject(p, p.a, { kind: "update_commit", sig: badSig(), ack: BigInt(ack - 1) }));
  });
});

describe("6.1 monitoring the anchor", () => {
  it("both nodes watch the anchor once it is signed", () => {
    const p = openPair();
    for (const n of [p.a, p.b]) expect(n.log.filter((o) => o.type === "watch_anchor")).toHaveLength(1);
  });

  it("fails the connection when someone else spends the anchor, in normal operation", () => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000);
    p.settle();
    const out = p.input(p.b, spent(false));
    expectLatestCommitment(p.b, expectFailed(p.b, out, "ANCHOR_SPENT"));
  });

  it("fails the connection when someone else spends the anchor, during the opening", () => {
    const p = new Pair();
    p.settle();
    expectFailed(p.a, p.input(p.a, spent(false)), "ANCHOR_SPENT");
  });

  it("fails the connection when someone else spends the anchor, while clearing", () => {
    const p = fundedPair();
    run(p, p.a, { kind: "close" });
    expectFailed(p.a, p.input(p.a, spent(false)), "ANCHOR_SPENT");
  });

  it("our own spend is not a failure; nor is any spend once closed or failed", () => {
    const p = openPair({ policy: { autoCommit: true } });
    p.input(p.a, spent(true));
    expect(p.a.state.phase).toBe("normal");
    run(p, p.a, { kind: "close" });
    p.settle();
    expect(p.a.state.phase).toBe("closed");
    expect(p.input(p.a, spent(false))).toEqual([]);
    expect(p.a.state.phase).toBe("closed");
    const q = openPair();
    q.input(q.a, { type: "command", command: { kind: "force_close" } });
    expect(q.input(q.a, spent(false))).toEqual([]);
  });
});

describe("6.3 failing the connection", () => {
  it("does not fail because communication is lost: the channel waits across blocks", () => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000, { blocks: 5000 });
    p.disconnect();
    for (let h = 1001; h < 1400; h += 50) p.block(h);
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["normal", "normal"]);
    p.reconnect();
    p.settle();
    expect(p.b.state.localCommit?.htlcs).toHaveLength(1);
  });

  it("fails on receiving error and sends no error back (before the anchor: broadcasts nothing)", () => {
    const p = new Pair();
    const out = inject(p, p.b, { kind: "error", problem: "bye" });
    expect(expectFailed(p.b, out, "PEER_ERROR", { sendsError: false })).toEqual({ tx: "nothing" });
    expect(p.b.sent.some((m) => m.kind === "error")).toBe(false);
  });

  it("fails on receiving error in normal operation: no error back, the latest commitment", () => {
    const p = fundedPair();
    addHtlc(p, p.a, 1, 1_000_000);
    p.settle();
    const out = inject(p, p.a, { kind: "error" });
    expectLatestCommitment(p.a, expectFailed(p.a, out, "PEER_ERROR", { sendsError: false }));
  });

  it("no HTLC ever: the latest commitment is broadcast (case 2)", () => {
    const p = openPair();
    expect(p.a.state.everHadHtlc).toBe(false);
    const b = expectFailed(
      p.a,
      p.input(p.a, { type: "command", command: { kind: "force_close" } }),
      "OPERATOR",
    );
    expectLatestCommitment(p.a, b);
    expect(b.tx === "commitment" && b.number).toBe(0n);
  });

  it("the acceptor, once it has signed, broadcasts its commitment 0 (the anchor may be out)", () => {
    const p = new Pair();
    p.settle();
    expectLatestCommitment(p.b, expectFailed(p.b, inject(p, p.b, { kind: "close_clearing" })));
  });

  it("a failed channel stays failed: no second error, commands rejected, messages ignored", () => {
    const p = fundedPair();
    expectFailed(p.a, inject(p, p.a, { kind: "update_fee", feeRate: 1 }));
    const sent = p.a.sent.length;
    expect(inject(p, p.a, addPkt(0n, 1000))).toEqual([]);
    expect(inject(p, p.a, { kind: "error" })).toEqual([]);
    expectRejected(p, p.a, { kind: "close" }, "CHANNEL_CLOSED");
    expect(p.a.sent.length).toBe(sent);
  });
});

describe("no input from the peer makes step throw", () => {
  const junk = (p: Pair): Pkt[] => {
    const oc = p.a.sent[0] as Pkt;
    return [
      addPkt(0n, 1000),
      addPkt(0n, 1_000_000_000_000),
      { kind: "update_fulfill_htlc", id: 0n, r: R(1) },
      { kind: "update_fail_htlc", id: 0n, reason: Buffer.alloc(3) },
      { kind: "update_fee", feeRate: 5000 },
      { kind: "update_commit", sig: badSig(), ack: 1n },
      { kind: "update_commit", sig: badSig(), ack: 1n << 62n },
      { kind: "update_commit", sig: badSig() },
      { kind: "update_revocation", revocationPreimage: R(1), nextRevocationHash: R(2) },
      oc,
      { ...oc, anch: "WONT_CREATE_ANCHOR" } as Pkt,
      {
        kind: "open_anchor",
        txid: "cc".repeat(32) as never,
        outputIndex: 0,
        amount: sat(1_000_000),
        commitSig: badSig(),
      },
      { kind: "open_commit_sig", sig: badSig() },
      { kind: "open_complete" },
      { kind: "close_clearing" },
      { kind: "close_signature", closeFee: sat(1000), sig: badSig() },
      { kind: "close_signature", closeFee: sat(1001), sig: badSig() },
      { kind: "update_commit", sig: Buffer.alloc(3) },
      { kind: "authenticate", nodeId: Buffer.alloc(33, 2), sessionSig: badSig(), ack: 0n },
      { kind: "error", problem: "x" },
    ];
  };
  const states = (): [string, Pair, ChannelState][] => {
    const fresh = new Pair();
    const opening = new Pair();
    opening.settle();
    const normal = fundedPair();
    addHtlc(normal, normal.a, 1, 1_000_000);
    normal.settle();
    const clearing = fundedPair();
    run(clearing, clearing.a, { kind: "close" });
    return [
      ["fresh creator", fresh, fresh.a.state],
      ["fresh acceptor", fresh, fresh.b.state],
      ["opening creator", opening, opening.a.state],
      ["opening acceptor", opening, opening.b.state],
      ["normal A", normal, normal.a.state],
      ["normal B", normal, normal.b.state],
      ["clearing A", clearing, clearing.a.state],
    ];
  };
  it("every kind of message, in every phase, fails or proceeds without an exception", () => {
    for (const [name, p, state] of states())
      for (const pkt of junk(p)) {
        let r: ReturnType<typeof step> | undefined;
        expect(() => (r = step(state, { type: "pkt", pkt })), `${name}: ${pkt.kind}`).not.toThrow();
        if (r?.state.phase === "failed") expect(r.outputs.some((o) => o.type === "failed")).toBe(true);
      }
  });
});
