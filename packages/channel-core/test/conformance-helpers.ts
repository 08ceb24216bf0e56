/**
 * Helpers for the conformance tests (docs/CONFORMANCE.md): inject a crafted `pkt` as a
 * misbehaving peer would, and assert what the draft requires of the node that receives it.
 */
import { msat, sha256, type Locktime, type Sat } from "@ln/bitcoin";
import type { Broadcast, Command, FailureCode, Output, RejectionCode } from "@ln/channel-core";
import type { Pkt, PktOf } from "@ln/proto";
import { anchorSighash, buildClose, signDigest, type CloseParams } from "@ln/tx";
import { expect } from "vitest";
import { openPair, R, rHash, type Pair, type TestNode } from "./harness.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/** Feeds a crafted pkt to `n`; nothing may escape `step`. */
export function inject(p: Pair, n: TestNode, pkt: Pkt): Output[] {
  let out: Output[] = [];
  expect(() => {
    out = p.input(n, { type: "pkt", pkt });
  }).not.toThrow();
  return out;
}

/**
 * `n` failed the channel (draft 6.3): it sent one `error` (none when it was answering the peer's
 * `error`), output `failed`, and is in phase "failed". Returns what it broadcast.
 */
export function expectFailed(
  n: TestNode,
  out: Output[],
  code?: FailureCode,
  opts: { sendsError?: boolean } = {},
): Broadcast {
  const failed = out.filter((o) => o.type === "failed");
  expect(failed).toHaveLength(1);
  if (code) expect(failed[0]).toMatchObject({ type: "failed", code });
  expect(n.state.phase).toBe("failed");
  expect(n.state.failure).toBeDefined();
  const errors = out.filter((o) => o.type === "send" && o.pkt.kind === "error");
  expect(errors).toHaveLength(opts.sendsError === false ? 0 : 1);
  if (opts.sendsError !== false) {
    // An informative error: it names the problem.
    const e = errors[0] as Extract<Output, { type: "send" }>;
    expect(e.pkt.kind === "error" && (e.pkt.problem ?? "").length).toBeGreaterThan(0);
  }
  const broadcasts = out.filter((o) => o.type === "broadcast");
  expect(broadcasts.length).toBeLessThanOrEqual(1);
  const b = broadcasts[0];
  return b?.type === "broadcast" ? b.broadcast : { tx: "nothing" };
}

/** The command is rejected with a reason; the state does not change and nothing is sent. */
export function expectRejected(p: Pair, n: TestNode, command: Command, code: RejectionCode): string {
  const before = n.state;
  const sent = n.sent.length;
  const out = p.input(n, { type: "command", command });
  expect(out).toHaveLength(1);
  const r = out[0];
  expect(r).toMatchObject({ type: "command_rejected", command: command.kind, code });
  expect(n.state).toEqual(before);
  expect(n.sent.length).toBe(sent);
  return r?.type === "command_rejected" ? r.problem : "";
}

/** Runs a command that must be accepted. */
export function run(p: Pair, n: TestNode, command: Command): Output[] {
  const out = p.input(n, { type: "command", command });
  expect(out.filter((o) => o.type === "command_rejected")).toEqual([]);
  return out;
}

export const addHtlc = (
  p: Pair,
  n: TestNode,
  which: number,
  amountMsat: number | bigint,
  expiry: Locktime = { blocks: 2000 },
): Output[] =>
  run(p, n, { kind: "add_htlc", amountMsat: msat(BigInt(amountMsat)), rHash: rHash(which), expiry });

/** A crafted update_add_htlc, as a peer would send it. */
export const addPkt = (
  id: bigint,
  amountMsat: number | bigint,
  which = 1,
  expiry: Locktime = { blocks: 2000 },
): PktOf<"update_add_htlc"> => ({
  kind: "update_add_htlc",
  id,
  amountMsat: msat(BigInt(amountMsat)),
  rHash: sha256(R(which)),
  expiry,
  route: Buffer.alloc(0),
});

/** The last message `n` sent. */
export const lastSent = (n: TestNode): Pkt | undefined => n.sent[n.sent.length - 1];

/** A signature that is well-formed but signs nothing of this channel. */
export const badSig = (): Buffer => signDigest(Buffer.alloc(32, 0x77), Buffer.alloc(32, 0x01));

/** Flips one bit of a signature. */
export const tamper = (sig: Buffer): Buffer => {
  const s = Buffer.from(sig);
  s[40] = (s[40] ?? 0) ^ 1;
  return s;
};

/** The close transaction as `victim` would build it for `fee`, signed by the other node's key. */
export function closeSigFor(p: Pair, victim: TestNode, fee: Sat): Buffer {
  const s = victim.state;
  const peer = p.peerOf(victim);
  if (!s.localCommit || !s.anchor || !s.remote) throw new Error("no channel");
  const params: CloseParams = {
    anchor: {
      outpoint: s.anchor.outpoint,
      amount: s.anchor.amount,
      commitKeys: [Buffer.from(s.local.commitKey, "hex"), Buffer.from(s.remote.commitKey, "hex")],
    },
    a: { finalKey: Buffer.from(s.local.finalKey, "hex"), msat: s.localCommit.localMsat },
    b: { finalKey: Buffer.from(s.remote.finalKey, "hex"), msat: s.localCommit.remoteMsat },
    closeFee: fee,
  };
  const c = buildClose(params);
  return signDigest(peer.signer.commitPriv, anchorSighash(c.tx, c.anchorRedeemScript));
}

/**
 * An open channel where both nodes hold funds: A pays B 100,000 sat through an HTLC (R(99)) first.
 * `autoCommit` on unless asked otherwise.
 */
export function fundedPair(autoCommit = true): Pair {
  const p = openPair({ policy: { autoCommit } });
  addHtlc(p, p.a, 99, 100_000_000);
  settleCommitted(p);
  const id = p.b.state.localCommit?.htlcs[0]?.id as bigint;
  run(p, p.b, { kind: "fulfill_htlc", id, r: hex(R(99)) });
  settleCommitted(p);
  expect(p.b.state.localCommit?.localMsat).toBe(100_000_000n);
  expect(p.a.state.localCommit?.htlcs).toEqual([]);
  return p;
}

/** Delivers everything and, without autoCommit, commits both ways until both commitments agree. */
export function settleCommitted(p: Pair): void {
  for (let i = 0; i < 10; i++) {
    p.settle();
    let any = false;
    for (const n of [p.a, p.b]) {
      const out = p.input(n, { type: "command", command: { kind: "commit" } });
      if (!out.some((o) => o.type === "command_rejected")) any = true;
      p.settle();
    }
    if (!any) return;
  }
  throw new Error("commitments did not converge");
}

/** The current commitment `n` would broadcast, as the draft 6.3 broadcast it expects. */
export function expectLatestCommitment(n: TestNode, b: Broadcast): void {
  expect(b.tx).toBe("commitment");
  if (b.tx !== "commitment") return;
  expect(b.number).toBe(n.state.localCommit?.number);
  expect(b.theirSig).toBe(n.state.localCommit?.theirSig);
  expect(b.theirSig.length).toBeGreaterThan(0);
}
