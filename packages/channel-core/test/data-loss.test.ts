/**
 * Data-loss protection (DESIGN.md 6): a node whose state was rolled back (a restored database)
 * finds itself behind its peer or its signer, never broadcasts its commitment (the peer may hold
 * its revocation), stops in phase "behind" and sends `error` so that the peer closes with its
 * latest commitment. Each detection rule is a test; see docs/CONFORMANCE.md.
 */
import { createHash } from "node:crypto";
import { ackFor, signerAhead, step, type ChannelState, type Output } from "@ln/channel-core";
import type { Pkt } from "@ln/proto";
import { buildCommitment } from "@ln/tx";
import { describe, expect, it } from "vitest";
import {
  addHtlc,
  badSig,
  expectFailed,
  expectLatestCommitment,
  fundedPair,
  inject,
  run,
  settleCommitted,
} from "./conformance-helpers.js";
import { R, type Pair, type TestNode } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** What a restore of `n`'s database to `snapshot` leaves: the state and the outbox of then. */
function restore(n: TestNode, snapshot: { state: ChannelState; sent: Pkt[] }): void {
  n.state = structuredClone(snapshot.state);
  n.sent = snapshot.sent.slice();
}
const snapshotOf = (n: TestNode): { state: ChannelState; sent: Pkt[] } => ({
  state: structuredClone(n.state),
  sent: n.sent.slice(),
});

/** `n` stopped as behind: one `error` sent, a `behind` output, no broadcast, phase "behind". */
function expectBehind(n: TestNode, out: Output[]): void {
  expect(out.filter((o) => o.type === "behind")).toHaveLength(1);
  expect(out.filter((o) => o.type === "broadcast" || o.type === "failed")).toEqual([]);
  expect(out.filter((o) => o.type === "send" && o.pkt.kind === "error")).toHaveLength(1);
  expect(n.state.phase).toBe("behind");
  expect(n.state.failure?.code).toBe("DATA_LOSS");
  expect(n.state.awaiting).toBeUndefined();
}

/** A pays B one HTLC of `msat` with preimage R(which), committed and removed on both sides. */
function pay(p: Pair, which: number, msat: number): void {
  addHtlc(p, p.a, which, msat);
  settleCommitted(p);
  const id = p.b.state.localCommit?.htlcs.find((h) => h.offerer === "remote")?.id as bigint;
  run(p, p.b, { kind: "fulfill_htlc", id, r: hex(R(which)) });
  settleCommitted(p);
}

/** P2SH(<key> OP_CHECKSIG), by hand: OP_HASH160 <HASH160(0x21 key 0xac)> OP_EQUAL. */
function toOtherScriptPubKey(keyHex: string): Buffer {
  const redeem = Buffer.concat([Buffer.from([0x21]), Buffer.from(keyHex, "hex"), Buffer.from([0xac])]);
  const h160 = createHash("ripemd160").update(createHash("sha256").update(redeem).digest()).digest();
  return Buffer.concat([Buffer.from([0xa9, 0x14]), h160, Buffer.from([0x87])]);
}

describe("behind the peer: the peer's ack counts messages we never sent", () => {
  it("authenticate: A, restored, stops without broadcasting; B closes with its latest commitment, paying A its latest balance", () => {
    const p = fundedPair();
    const snap = snapshotOf(p.a);
    pay(p, 1, 5_000_000);
    pay(p, 2, 7_000_000);
    const latestA = p.a.state.localCommit?.localMsat as bigint;
    const latestB = p.b.state.localCommit?.number as bigint;
    p.disconnect();
    restore(p.a, snap);
    expect(ackFor(p.b.state)).toBeGreaterThan(p.a.state.sentCount);

    p.connected = true;
    const out = p.input(p.a, { type: "reconnected", theirAck: ackFor(p.b.state) });
    expectBehind(p.a, out);
    // Nothing ever makes the stopped channel broadcast: blocks, the peer's messages, the anchor spend.
    p.block(1001);
    p.input(p.a, { type: "chain", event: { kind: "anchor_spent", txid: "bb".repeat(32), ours: false } });
    // The anchor spent (the peer closed): over, still DATA_LOSS, the peer's place free again.
    expect([p.a.state.phase, p.a.state.failure?.code]).toEqual(["failed", "DATA_LOSS"]);
    expect(p.input(p.a, { type: "behind", problem: "the signer refused: COMMITMENT_REVOKED" })).toEqual([]);

    // B sees A's lower ack (a violation for B) or A's error: either way B fails the connection
    // and broadcasts its latest commitment (draft 6.3).
    const bOut = p.input(p.b, { type: "reconnected", theirAck: ackFor(p.a.state) });
    while (p.pending(p.b) > 0) bOut.push(...p.deliver(p.b));
    while (p.pending(p.a) > 0) p.deliver(p.a);
    expect(p.a.log.filter((o) => o.type === "broadcast")).toEqual([]);
    expect(p.b.state.phase).toBe("failed");
    const broadcasts = bOut.flatMap((o) => (o.type === "broadcast" ? [o.broadcast] : []));
    expect(broadcasts).toHaveLength(1);
    const b = broadcasts[0]!;
    expectLatestCommitment(p.b, b);
    expect(b.tx === "commitment" && b.number).toBe(latestB);
    // That commitment pays A's latest balance less A's half of its fee to P2SH(<A final> OP_CHECKSIG).
    if (b.tx !== "commitment") return;
    const c = buildCommitment(b.params);
    const toA = c.tx.outs.filter((o) =>
      Buffer.from(o.script).equals(toOtherScriptPubKey(p.a.state.local.finalKey)),
    );
    expect(toA).toHaveLength(1);
    const outputsSat = c.tx.outs.reduce((s, o) => s + BigInt(o.value), 0n);
    const feeSat = (p.b.state.anchor?.amount as bigint) - outputsSat;
    expect(BigInt(toA[0]?.value ?? 0)).toBe(latestA / 1000n - feeSat / 2n);
  });

  it("an ack below what the peer acknowledged before is still an ordinary violation (we broadcast)", () => {
    const p = fundedPair();
    const ack = p.a.state.peerCommitAck;
    expect(ack).toBeGreaterThan(0);
    expectFailed(p.a, p.input(p.a, { type: "reconnected", theirAck: ack - 1 }));
  });

  it("update_commit: B signed with an ack counting A's add that A's restored state never sent", () => {
    const p = fundedPair(false);
    const snap = snapshotOf(p.a);
    addHtlc(p, p.a, 3, 2_000_000);
    p.deliver(p.b); // B processed A's add
    run(p, p.b, { kind: "commit" }); // and signs A's commitment with ack = A's sentCount
    const commit = p.wire.A.find((m) => m.kind === "update_commit");
    expect(commit?.kind === "update_commit" && Number(commit.ack)).toBe(p.a.state.sentCount);
    restore(p.a, snap);
    expectBehind(p.a, inject(p, p.a, commit as Pkt));
  });

  it("update_commit with an ack beyond what we sent is behind even with a bad signature (checked first)", () => {
    const p = fundedPair();
    expectBehind(
      p.a,
      inject(p, p.a, { kind: "update_commit", sig: badSig(), ack: BigInt(p.a.state.sentCount + 1) }),
    );
  });
});

describe("behind the peer: its revocation numbers are ahead of our state", () => {
  it("update_revocation of its current commitment, answering an update_commit our restored state lost", () => {
    const p = fundedPair(false);
    const snap = snapshotOf(p.a);
    addHtlc(p, p.a, 4, 2_000_000);
    run(p, p.a, { kind: "commit" });
    p.deliver(p.b); // the add
    p.deliver(p.b); // A's update_commit: B revokes its current commitment
    const revocation = p.wire.A.find((m) => m.kind === "update_revocation") as Pkt;
    expect(revocation).toBeDefined();
    restore(p.a, snap);
    expect(p.a.state.remotePending).toBeUndefined();
    expectBehind(p.a, inject(p, p.a, revocation));
  });

  it("update_revocation of the commitment after its current one (the peer holds a later one from us)", () => {
    const p = fundedPair();
    const snap = snapshotOf(p.a);
    const rc = p.a.state.remoteCommit?.number as bigint;
    pay(p, 5, 1_000_000);
    // B's revocation of its commitment rc + 1, as B sent it.
    const revocations = p.b.sent.filter((m) => m.kind === "update_revocation");
    const ofNext = revocations.find(
      (m) =>
        m.kind === "update_revocation" &&
        createHash("sha256").update(m.revocationPreimage).digest("hex") ===
          snap.state.remoteRevocationHash.next,
    );
    expect(ofNext).toBeDefined();
    expect(p.b.state.localCommit?.number).toBeGreaterThan(rc + 1n);
    restore(p.a, snap);
    expectBehind(p.a, inject(p, p.a, ofNext as Pkt));
  });

  it("a revocation that matches nothing we know stays an ordinary violation (we broadcast)", () => {
    const p = fundedPair();
    const out = inject(p, p.a, {
      kind: "update_revocation",
      revocationPreimage: R(77),
      nextRevocationHash: R(78),
    });
    expectLatestCommitment(p.a, expectFailed(p.a, out, "PROTOCOL_VIOLATION"));
  });
});

describe("behind the signer (signerAhead, compared by the shell at start)", () => {
  const status = (r?: bigint, l?: bigint, rem?: bigint) => ({
    highestRevealed: r,
    highestLocalSigned: l,
    highestRemoteSigned: rem,
  });

  it("the one step the shell's order allows is not behind; anything further is", () => {
    const p = fundedPair();
    const s = p.a.state;
    const lc = s.localCommit?.number as bigint;
    const rc = s.remoteCommit?.number as bigint;
    expect(lc).toBeGreaterThan(1n);
    expect(signerAhead(s, status(undefined, undefined, undefined))).toBeUndefined();
    // A reveal of N - 1 while the state holds N, the peer's next commitment signed: the crash windows.
    expect(signerAhead(s, status(lc - 1n, lc, rc + 1n))).toBeUndefined();
    expect(signerAhead(s, status(lc, lc, rc))).toMatch(/revealed/);
    expect(signerAhead(s, status(lc - 1n, lc + 1n, rc))).toMatch(/signed by the peer/);
    expect(signerAhead(s, status(lc - 1n, lc, rc + 2n))).toMatch(/signed the peer's commitment/);
  });

  it("a restored state is behind what the signer revealed since", () => {
    const p = fundedPair();
    const snap = snapshotOf(p.a);
    pay(p, 6, 1_000_000);
    const revealed = p.a.signer.revealed.reduce((m, x) => (x > m ? x : m), -1n);
    restore(p.a, snap);
    expect(signerAhead(p.a.state, status(revealed, undefined, undefined))).toBeDefined();
  });

  it("the shell's finding stops the channel: from normal with an error, from failed without a second one", () => {
    const p = fundedPair();
    expectBehind(p.a, p.input(p.a, { type: "behind", problem: "signer ahead" }));

    const q = fundedPair();
    expectFailed(q.a, q.input(q.a, { type: "command", command: { kind: "force_close" } }), "OPERATOR");
    // The signer refused that broadcast as revoked (COMMITMENT_REVOKED): the shell says so.
    const out = q.input(q.a, { type: "behind", problem: "COMMITMENT_REVOKED" });
    expect(out.filter((o) => o.type === "behind")).toHaveLength(1);
    expect(out.filter((o) => o.type === "send")).toEqual([]);
    expect(q.a.state.phase).toBe("behind");
  });
});

describe("a channel behind stays stopped", () => {
  it("ignores messages and connections, rejects commands, asks the signer nothing", () => {
    const p = fundedPair();
    expectBehind(p.a, p.input(p.a, { type: "behind", problem: "signer ahead" }));
    const sent = p.a.sent.length;
    expect(inject(p, p.a, { kind: "update_fee", feeRate: 5000 })).toEqual([]);
    expect(p.input(p.a, { type: "command", command: { kind: "close" } })).toMatchObject([
      { type: "command_rejected", command: "close", code: "CHANNEL_BEHIND" },
    ]);
    expect(p.input(p.a, { type: "reconnected", theirAck: p.a.state.sentCount + 5 })).toEqual([]);
    expect(step(p.a.state, { type: "resume" }).outputs).toEqual([]);
    expect(p.a.sent.length).toBe(sent);
    expect(p.a.state.phase).toBe("behind");
  });

  it("the operator's force close asks for our latest commitment (the signer's policy decides)", () => {
    const p = fundedPair();
    p.input(p.a, { type: "behind", problem: "peer ack ahead" });
    const out = p.input(p.a, { type: "command", command: { kind: "force_close" } });
    expectLatestCommitment(p.a, expectFailed(p.a, out, "OPERATOR", { sendsError: false }));
  });
});
