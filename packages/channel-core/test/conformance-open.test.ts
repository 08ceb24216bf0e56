/**
 * Conformance, draft section 2 (channel establishment): every MUST / MUST NOT, from both sides.
 * See docs/CONFORMANCE.md for the rule-by-rule table.
 */
import { msat, sat } from "@ln/bitcoin";
import type { Pkt, PktOf } from "@ln/proto";
import { step } from "@ln/channel-core";
import { describe, expect, it } from "vitest";
import {
  addPkt,
  badSig,
  expectFailed,
  expectLatestCommitment,
  expectRejected,
  inject,
  tamper,
} from "./conformance-helpers.js";
import { Pair, rHash } from "./harness.js";

/** The open_channel in flight to `to`. */
function openChannelTo(p: Pair, to: "A" | "B"): PktOf<"open_channel"> {
  const m = p.wire[to][0];
  if (m?.kind !== "open_channel") throw new Error("no open_channel in flight");
  return m;
}

/** Replaces the message in flight to `to` at `index`. */
function replaceInFlight(p: Pair, to: "A" | "B", index: number, pkt: Pkt): void {
  p.wire[to][index] = pkt;
}

/** A's open_anchor, produced once A has B's open_channel; B has not seen A's open_channel yet. */
function upToOpenAnchor(): { p: Pair; anchor: PktOf<"open_anchor"> } {
  const p = new Pair();
  p.deliver(p.a); // B's open_channel -> A builds the anchor, signs B's commitment, sends open_anchor
  expect(p.wire.B.map((m) => m.kind)).toEqual(["open_channel", "open_anchor"]);
  p.deliver(p.b); // A's open_channel
  const anchor = p.wire.B[0];
  if (anchor?.kind !== "open_anchor") throw new Error("no open_anchor");
  return { p, anchor };
}

/** Up to B's open_commit_sig in flight to A. */
function upToOpenCommitSig(): { p: Pair; sig: PktOf<"open_commit_sig"> } {
  const { p } = upToOpenAnchor();
  p.deliver(p.b);
  const sig = p.wire.A[0];
  if (sig?.kind !== "open_commit_sig") throw new Error("no open_commit_sig");
  return { p, sig };
}

const noBuild = (p: Pair): void => {
  expect(p.a.log.some((o) => o.type === "build_anchor" || o.type === "broadcast_anchor")).toBe(false);
};

describe("2.1 open_channel: anch", () => {
  it("the acceptor fails the connection when the creator's open_channel says WONT_CREATE_ANCHOR", () => {
    const p = new Pair();
    const pkt = { ...openChannelTo(p, "B"), anch: "WONT_CREATE_ANCHOR" as const };
    p.wire.B.shift();
    const b = expectFailed(p.b, inject(p, p.b, pkt), "PROTOCOL_VIOLATION");
    expect(b).toEqual({ tx: "nothing" });
  });

  it("the creator fails the connection when the acceptor's open_channel says WILL_CREATE_ANCHOR", () => {
    const p = new Pair();
    const pkt = { ...openChannelTo(p, "A"), anch: "WILL_CREATE_ANCHOR" as const };
    p.wire.A.shift();
    const b = expectFailed(p.a, inject(p, p.a, pkt), "PROTOCOL_VIOLATION");
    expect(b).toEqual({ tx: "nothing" });
    noBuild(p);
  });

  it("our open_channel sets anch by role: WILL_CREATE_ANCHOR for the creator, WONT for the acceptor", () => {
    const p = new Pair();
    expect(p.a.sent[0]).toMatchObject({ kind: "open_channel", anch: "WILL_CREATE_ANCHOR" });
    expect(p.b.sent[0]).toMatchObject({ kind: "open_channel", anch: "WONT_CREATE_ANCHOR" });
  });
});

describe("2.1 open_channel: negotiation fields", () => {
  it("rejects a delay in blocks above the policy (maxDelayBlocks)", () => {
    const p = new Pair();
    replaceInFlight(p, "A", 0, { ...openChannelTo(p, "A"), delay: { blocks: 2017 } });
    const b = expectFailed(p.a, p.deliver(p.a), "POLICY");
    expect(b).toEqual({ tx: "nothing" });
    noBuild(p);
  });

  it("rejects a delay in seconds above the policy (maxDelaySeconds)", () => {
    const p = new Pair();
    replaceInFlight(p, "B", 0, { ...openChannelTo(p, "B"), delay: { seconds: 14 * 24 * 3600 + 512 } });
    expectFailed(p.b, p.deliver(p.b), "POLICY");
  });

  it("accepts a delay at the policy's limit", () => {
    const p = new Pair();
    replaceInFlight(p, "B", 0, { ...openChannelTo(p, "B"), delay: { blocks: 2016 } });
    p.deliver(p.b);
    expect(p.b.state.phase).toBe("opening");
    expect(p.b.state.remote?.delay).toEqual({ blocks: 2016 });
  });

  it("rejects a min_depth above the policy (MAY reject)", () => {
    const p = new Pair();
    replaceInFlight(p, "A", 0, { ...openChannelTo(p, "A"), minDepth: 101 });
    expectFailed(p.a, p.deliver(p.a), "POLICY");
    noBuild(p);
  });

  it("fails the connection on an initial_fee_rate that is unnecessarily large", () => {
    const p = new Pair();
    replaceInFlight(p, "B", 0, { ...openChannelTo(p, "B"), initialFeeRate: 1_000_001 });
    expectFailed(p.b, p.deliver(p.b), "POLICY");
  });

  it("fails the connection on an initial_fee_rate too small for timely processing", () => {
    const p = new Pair();
    replaceInFlight(p, "A", 0, { ...openChannelTo(p, "A"), initialFeeRate: 999 });
    expectFailed(p.a, p.deliver(p.a), "POLICY");
    noBuild(p);
  });

  it("fails the connection on a second open_channel", () => {
    const p = new Pair();
    const again = openChannelTo(p, "A");
    p.deliver(p.a);
    expectFailed(p.a, inject(p, p.a, again), "PROTOCOL_VIOLATION");
  });

  it("fails the connection when the peer's commit_key is our own", () => {
    const p = new Pair();
    replaceInFlight(p, "A", 0, {
      ...openChannelTo(p, "A"),
      commitKey: Buffer.from(p.a.signer.commitKey, "hex"),
    });
    expectFailed(p.a, p.deliver(p.a));
  });
});

describe("2.1 bitcoin_pubkey fields", () => {
  const bad: [string, Buffer][] = [
    ["32 bytes", Buffer.alloc(32, 2)],
    ["uncompressed prefix 04", Buffer.concat([Buffer.from([4]), Buffer.alloc(32, 1)])],
    ["not a point on the curve", Buffer.concat([Buffer.from([2]), Buffer.alloc(32, 0xff)])],
  ];
  for (const [what, key] of bad) {
    it(`fails the connection on a commit_key that is ${what}`, () => {
      const p = new Pair();
      replaceInFlight(p, "A", 0, { ...openChannelTo(p, "A"), commitKey: key });
      expect(expectFailed(p.a, p.deliver(p.a))).toEqual({ tx: "nothing" });
      noBuild(p);
    });
    it(`fails the connection on a final_key that is ${what}`, () => {
      const p = new Pair();
      replaceInFlight(p, "B", 0, { ...openChannelTo(p, "B"), finalKey: key });
      expectFailed(p.b, p.deliver(p.b));
    });
  }

  it("our own open_channel carries valid compressed keys", () => {
    const p = new Pair();
    for (const n of [p.a, p.b]) {
      const m = n.sent[0];
      if (m?.kind !== "open_channel") throw new Error("no open_channel");
      for (const k of [m.commitKey, m.finalKey]) {
        expect(k.length).toBe(33);
        expect([2, 3]).toContain(k[0]);
      }
    }
  });
});

describe("2.2 open_anchor", () => {
  it("the creator does not broadcast the anchor before it holds open_commit_sig", () => {
    const { p } = upToOpenAnchor();
    expect(p.a.log.some((o) => o.type === "build_anchor")).toBe(true);
    expect(p.a.log.some((o) => o.type === "broadcast_anchor")).toBe(false);
    p.deliver(p.b); // open_anchor -> B signs
    expect(p.a.log.some((o) => o.type === "broadcast_anchor")).toBe(false);
    p.deliver(p.a); // open_commit_sig
    expect(p.a.log.filter((o) => o.type === "broadcast_anchor")).toHaveLength(1);
  });

  it("the creator failing before open_commit_sig broadcasts nothing (6.3 case 1)", () => {
    const { p } = upToOpenAnchor();
    const b = expectFailed(p.a, inject(p, p.a, { kind: "error", problem: "no" }), "PEER_ERROR", {
      sendsError: false,
    });
    expect(b).toEqual({ tx: "nothing" });
    expect(p.a.log.some((o) => o.type === "broadcast_anchor")).toBe(false);
  });

  it("the receiver fails the connection if commit_sig does not sign its initial commitment", () => {
    const { p, anchor } = upToOpenAnchor();
    p.wire.B.shift();
    const out = inject(p, p.b, { ...anchor, commitSig: tamper(anchor.commitSig) });
    expect(expectFailed(p.b, out, "PROTOCOL_VIOLATION")).toEqual({ tx: "nothing" });
    expect(p.b.sent.some((m) => m.kind === "open_commit_sig")).toBe(false);
  });

  it("the receiver fails the connection on a well-formed signature by another key", () => {
    const { p, anchor } = upToOpenAnchor();
    p.wire.B.shift();
    expectFailed(p.b, inject(p, p.b, { ...anchor, commitSig: badSig() }));
  });

  it("the receiver fails the connection if amount does not cover the initial commitment fees (MAY)", () => {
    const { p, anchor } = upToOpenAnchor();
    p.wire.B.shift();
    // 338 bytes at 10,000 sat/kB: 3380 sat each.
    const out = inject(p, p.b, { ...anchor, amount: sat(3379) });
    expect(expectFailed(p.b, out)).toEqual({ tx: "nothing" });
  });

  it("the receiver fails the connection if amount exceeds 4294967 satoshi (MAY)", () => {
    const { p, anchor } = upToOpenAnchor();
    p.wire.B.shift();
    expectFailed(p.b, inject(p, p.b, { ...anchor, amount: sat(4_294_968) }));
  });

  it("our creator never offers an amount that cannot pay the initial commitment fees", () => {
    const p = new Pair({ fundingSat: sat(3000) });
    p.deliver(p.a);
    expect(p.a.sent.some((m) => m.kind === "open_anchor")).toBe(false);
    expect(p.a.state.phase).toBe("failed");
    expect(p.a.log.some((o) => o.type === "broadcast_anchor")).toBe(false);
  });

  it("our creator refuses to fund an anchor above 4294967 satoshi, and accepts exactly that", () => {
    expect(() => new Pair({ fundingSat: sat(4_294_968) })).toThrow(/4294967/);
    const p = new Pair({ fundingSat: sat(4_294_967) });
    p.settle();
    expect(p.a.sent.find((m) => m.kind === "open_anchor")).toMatchObject({ amount: 4_294_967n });
    expect(p.b.state.phase).toBe("opening");
  });

  it("fails the connection on open_anchor from the node that does not create the anchor", () => {
    const { p, anchor } = upToOpenAnchor();
    expectFailed(p.a, inject(p, p.a, anchor));
  });

  it("fails the connection on open_anchor before open_channel", () => {
    const { p, anchor } = upToOpenAnchor();
    const q = new Pair();
    expectFailed(q.b, inject(q, q.b, anchor));
    expect(p.b.state.phase).toBe("opening");
  });

  it("fails the connection on a second open_anchor", () => {
    const { p, anchor } = upToOpenAnchor();
    p.deliver(p.b);
    expectFailed(p.b, inject(p, p.b, anchor));
  });
});

describe("2.3 open_commit_sig", () => {
  it("the anchor creator fails the connection if sig does not sign its initial commitment", () => {
    const { p, sig } = upToOpenCommitSig();
    p.wire.A.shift();
    const b = expectFailed(p.a, inject(p, p.a, { ...sig, sig: tamper(sig.sig) }), "PROTOCOL_VIOLATION");
    expect(b).toEqual({ tx: "nothing" });
    expect(p.a.log.some((o) => o.type === "broadcast_anchor")).toBe(false);
  });

  it("the anchor creator broadcasts the anchor upon a valid signature (SHOULD) and watches it", () => {
    const { p } = upToOpenCommitSig();
    const out = p.deliver(p.a);
    expect(out.map((o) => o.type)).toEqual(["broadcast_anchor", "watch_anchor"]);
  });

  it("resume asks again for the anchor's depth while the opening waits for it, and not after", () => {
    const { p } = upToOpenCommitSig();
    const watched = p.deliver(p.a).find((o) => o.type === "watch_anchor");
    expect(watched).toMatchObject({ type: "watch_anchor" });
    // A depth report may have gone to a replica that no longer runs the channel.
    expect(step(p.a.state, { type: "resume" }).outputs).toEqual([watched]);
    p.input(p.a, { type: "chain", event: { kind: "anchor_depth", depth: 100 } });
    expect(p.a.state.opening.sentComplete).toBe(true);
    expect(step(p.a.state, { type: "resume" }).outputs).toEqual([]);
  });

  it("fails the connection on open_commit_sig sent to the acceptor", () => {
    const { p, sig } = upToOpenCommitSig();
    expectFailed(p.b, inject(p, p.b, sig));
  });

  it("fails the connection on a second open_commit_sig", () => {
    const { p, sig } = upToOpenCommitSig();
    p.deliver(p.a);
    expectFailed(p.a, inject(p, p.a, sig));
  });
});

describe("2.4 open_complete", () => {
  it("does not begin normal operation until it has both sent and received open_complete", () => {
    const p = new Pair();
    p.settle();
    p.input(p.a, { type: "chain", event: { kind: "anchor_depth", depth: 1 } });
    expect(p.a.sent.map((m) => m.kind)).toContain("open_complete");
    expect(p.a.state.phase).toBe("opening"); // sent, not received
    expectRejected(
      p,
      p.a,
      {
        kind: "add_htlc",
        amountMsat: msat(1000),
        rHash: rHash(1),
        expiry: { blocks: 2000 },
      },
      "CHANNEL_OPENING",
    );
    p.deliver(p.b);
    expect(p.b.state.phase).toBe("opening"); // received, not sent
    expectRejected(p, p.b, { kind: "close" }, "CHANNEL_OPENING");
    p.input(p.b, { type: "chain", event: { kind: "anchor_depth", depth: 1 } });
    expect(p.b.state.phase).toBe("normal");
    p.deliver(p.a);
    expect(p.a.state.phase).toBe("normal");
  });

  it("fails the connection on normal-operation messages before both open_complete", () => {
    const p = new Pair();
    p.settle();
    const lc = p.b.state.localCommit;
    const b = expectFailed(p.b, inject(p, p.b, addPkt(0n, 1000)));
    // B signed the anchor: the latest commitment is what it can broadcast (6.3).
    expect(lc).toBeDefined();
    expectLatestCommitment(p.b, b);
  });

  it("fails the connection on normal-operation messages after only one open_complete", () => {
    const p = new Pair();
    p.settle();
    p.input(p.a, { type: "chain", event: { kind: "anchor_depth", depth: 1 } });
    expectFailed(p.a, inject(p, p.a, { kind: "close_clearing" }));
  });

  it("fails the connection on open_complete before the anchor is signed", () => {
    const { p } = upToOpenAnchor();
    expectFailed(p.a, inject(p, p.a, { kind: "open_complete" }));
    const q = new Pair();
    expectFailed(q.b, inject(q, q.b, { kind: "open_complete" }));
  });

  it("fails the connection on a second open_complete", () => {
    const p = new Pair();
    p.settle();
    p.input(p.a, { type: "chain", event: { kind: "anchor_depth", depth: 1 } });
    p.deliver(p.b);
    expectFailed(p.b, inject(p, p.b, { kind: "open_complete" }));
  });

  it("waits for the larger of both min_depths before sending open_complete", () => {
    const p = new Pair();
    // B asks for 3 confirmations (and means it).
    replaceInFlight(p, "A", 0, { ...openChannelTo(p, "A"), minDepth: 3 });
    p.b.state = { ...p.b.state, local: { ...p.b.state.local, minDepth: 3 } };
    p.settle();
    for (const depth of [1, 2]) {
      p.anchorDepth(depth);
      expect(p.a.sent.some((m) => m.kind === "open_complete")).toBe(false);
      expect(p.b.sent.some((m) => m.kind === "open_complete")).toBe(false);
    }
    p.anchorDepth(3);
    p.settle();
    expect([p.a.state.phase, p.b.state.phase]).toEqual(["normal", "normal"]);
    expect(p.a.log.find((o) => o.type === "watch_anchor")).toMatchObject({ depth: 3 });
  });

  it("fails the connection if open_complete does not come in time (MAY)", () => {
    const p = new Pair();
    p.settle();
    p.input(p.a, { type: "chain", event: { kind: "anchor_depth", depth: 1 } });
    p.wire.B = [];
    const out = p.input(p.a, {
      type: "chain",
      event: { kind: "block", height: 1000 + 145, time: 1_800_000_000 },
    });
    const b = expectFailed(p.a, out, "TIMEOUT");
    expectLatestCommitment(p.a, b);
  });

  it("does not fail the opening before the timeout", () => {
    const p = new Pair();
    p.settle();
    p.input(p.a, { type: "chain", event: { kind: "block", height: 1000 + 144, time: 1_800_000_000 } });
    expect(p.a.state.phase).toBe("opening");
  });
});
