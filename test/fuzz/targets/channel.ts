/**
 * The channel core's `step`, in every phase of a channel's life (opening, normal with HTLCs in
 * flight, awaiting a revocation, clearing, closing, closed), fed well-formed and malformed pkts.
 * It must never throw; the state it returns must be well-formed; and where the pkt breaks a MUST
 * of the draft, the node must answer `error` and fail the channel (draft 6.3). A few such MUSTs
 * are recognised here independently of the core, from what the scenario knows.
 */
import { sha256 } from "@ln/bitcoin";
import {
  deserializeState,
  serializeState,
  step,
  type ChannelState,
  type CommitmentView,
  type Input,
  type Output,
} from "@ln/channel-core";
import { decodePkt, encodePkt, MAX_FAIL_REASON_BYTES, WireError, type Pkt } from "@ln/proto";
import type { Rng } from "../rng.js";
import { ACCEPTED, check, codedErrors, rejected, type Target, type TargetSpec } from "../target.js";
import { scenario, type Scenario, type Snapshot } from "./scenario.js";
import type { TestSigner } from "../../../packages/channel-core/test/harness.js";

const PHASES = new Set(["opening", "normal", "clearing", "closed", "failed", "behind"]);
const isOver = (s: ChannelState): boolean =>
  s.phase === "failed" || s.phase === "closed" || s.phase === "behind";
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/**
 * Feeds the pkts in order, answering each signer request with the node's signer as the shell
 * would. `holdFirst`: the answers to the first pkt's requests wait until every pkt is in, so the
 * later ones arrive while the core awaits the signer (they are deferred, then taken in order).
 */
function drive(
  state: ChannelState,
  signer: TestSigner,
  pkts: readonly Pkt[],
  holdFirst = false,
): { state: ChannelState; outputs: Output[] } {
  let s = state;
  const outputs: Output[] = [];
  const queue: Input[] = pkts.map((pkt) => ({ type: "pkt", pkt }));
  let held: Input[] = [];
  for (let n = 0; queue.length > 0 || held.length > 0; n++) {
    check(n < 64, "the core keeps asking the signer: a loop without end?");
    if (queue.length === 0) {
      queue.push(...held);
      held = [];
    }
    const r = step(s, queue.shift() as Input);
    s = r.state;
    for (const o of r.outputs) {
      outputs.push(o);
      if (o.type !== "signer") continue;
      const reply: Input = { type: "signer", reply: signer.answer(o.request) };
      if (holdFirst && n === 0) held.push(reply);
      else queue.push(reply);
    }
  }
  signer.revealed.length = 0; // the test signer's record of reveals: not needed here
  return { state: s, outputs };
}

/** Money is neither made nor lost: each commitment's balances and HTLCs add up to the anchor. */
function checkCommitment(name: string, c: CommitmentView | undefined, capacityMsat: bigint): void {
  if (c === undefined) return;
  check(c.localMsat >= 0n && c.remoteMsat >= 0n, `${name}: a negative balance`);
  const total = c.htlcs.reduce(
    (t, h) => t + BigInt(h.amountMsat),
    BigInt(c.localMsat) + BigInt(c.remoteMsat),
  );
  check(total === capacityMsat, `${name}: ${total} msat in a channel of ${capacityMsat}`);
  check(
    new Set(c.htlcs.map((h) => `${h.offerer}:${h.id}`)).size === c.htlcs.length,
    `${name}: an HTLC twice`,
  );
}

function checkWellFormed(before: ChannelState, after: ChannelState, outputs: Output[]): void {
  check(PHASES.has(after.phase), `phase ${after.phase}`);
  if (after.phase === "failed" || after.phase === "behind")
    check(after.failure !== undefined, "failed without a reason");
  check(after.awaiting === undefined, "still awaiting the signer after its answers");
  // Sends are numbered one after another from where the state was (draft 1.2's counters).
  let seq = before.sentCount;
  for (const o of outputs)
    if (o.type === "send") check(o.seq === ++seq, `send seq ${o.seq}, expected ${seq}`);
  check(after.sentCount === seq, `sentCount ${after.sentCount} after sends up to ${seq}`);
  check(after.receivedCount >= before.receivedCount, "receivedCount went down");
  if (after.anchor) {
    const cap = BigInt(after.anchor.amount) * 1000n;
    checkCommitment("localCommit", after.localCommit, cap);
    checkCommitment("remoteCommit", after.remoteCommit, cap);
    checkCommitment("remotePending", after.remotePending, cap);
  }
  // The state goes to Postgres: it must survive the trip.
  const json = serializeState(after);
  check(serializeState(deserializeState(json)) === json, "the state does not survive serialisation");
}

/** A MUST of the draft this pkt breaks in every phase of the scenario, or undefined. */
function brokenMust(s: Scenario, snap: Snapshot, peer: TestSigner, pkt: Pkt): string | undefined {
  const cap = snap.state.anchor ? BigInt(snap.state.anchor.amount) * 1000n : 1_000_000_000n;
  switch (pkt.kind) {
    case "update_add_htlc":
      // Over the offerer's balance (draft 3.2; the core fails the connection, as it SHOULD).
      if (snap.peerOwnsNothing) return "an HTLC offered by a node with nothing in the channel";
      return BigInt(pkt.amountMsat) > cap ? "an HTLC over the channel's capacity" : undefined;
    case "update_fulfill_htlc":
      // No HTLC of the scenario has this r_hash: an unknown HTLC or a wrong preimage (draft 3.3).
      return s.rHashes.has(hex(sha256(pkt.r))) ? undefined : "a fulfil whose r matches no HTLC";
    case "update_revocation": {
      // Not a preimage of any of the peer's revocation hashes (draft 3.5, 5).
      const h = hex(sha256(pkt.revocationPreimage));
      for (let n = 0n; n < 64n; n++) if (peer.revocationHash(n) === h) return undefined;
      return "a revocation preimage of no commitment";
    }
    case "update_commit":
      // A signature neither node ever made signs no commitment (draft 3.5).
      return s.sigs.has(hex(pkt.sig)) ? undefined : "an update_commit signature that signs nothing";
    default:
      return undefined;
  }
}

function randomPkt(rng: Rng, peer: TestSigner, s: Scenario): Pkt {
  const small = (): bigint => BigInt(rng.below(6));
  const id = (): bigint => (rng.chance(0.8) ? small() : BigInt(rng.u32()) * BigInt(rng.u32()));
  const preimage = (): Buffer => (rng.chance(0.6) ? Buffer.alloc(32, 1 + rng.below(6)) : rng.bytes(32));
  const hash = (): Buffer => (rng.chance(0.6) ? sha256(Buffer.alloc(32, 1 + rng.below(6))) : rng.bytes(32));
  const sig = (): Buffer => (rng.chance(0.5) ? Buffer.from(rng.pick([...s.sigs]), "hex") : rng.bytes(64));
  switch (rng.below(9)) {
    case 0:
      return {
        kind: "update_add_htlc",
        id: id(),
        amountMsat: BigInt(
          rng.chance(0.5) ? 1 + rng.below(2_000_000_000) : 1 + rng.below(0xffff_ffff),
        ) as never,
        rHash: hash(),
        expiry: rng.chance(0.8)
          ? { blocks: 900 + rng.below(3000) }
          : { seconds: 500_000_000 + rng.below(0xffff_ffff - 500_000_000) },
        route: rng.bytes(rng.size(200)),
      };
    case 1:
      return { kind: "update_fulfill_htlc", id: id(), r: preimage() };
    case 2:
      return { kind: "update_fail_htlc", id: id(), reason: rng.bytes(rng.size(MAX_FAIL_REASON_BYTES)) };
    case 3:
      return { kind: "update_fee", feeRate: rng.chance(0.5) ? 1000 + rng.below(30_000) : rng.u32() };
    case 4:
      return rng.chance(0.5)
        ? { kind: "update_commit", sig: sig() }
        : { kind: "update_commit", sig: sig(), ack: small() * 3n };
    case 5: {
      const n = BigInt(rng.below(12));
      return {
        kind: "update_revocation",
        revocationPreimage: rng.chance(0.7) ? peer.preimage(n) : preimage(),
        nextRevocationHash: rng.chance(0.7) ? Buffer.from(peer.revocationHash(n + 2n), "hex") : hash(),
      };
    }
    case 6:
      return { kind: "close_clearing" };
    case 7:
      return { kind: "close_signature", closeFee: BigInt(rng.below(100_000)) as never, sig: sig() };
    default:
      return rng.pick(s.pkts);
  }
}

export const channelTarget: TargetSpec = {
  name: "channel-step",
  weight: 10,
  what: `bytes 0-1 pick one of the scenario's node states (every phase), byte 0's high bit to have the pkt arrive while the node awaits the signer; the rest is the pkt the peer sends it`,
  async create(): Promise<Target> {
    const s = await scenario();
    const { snapshots } = s;
    const signerOf = (n: "A" | "B"): TestSigner => (n === "A" ? s.pair.a.signer : s.pair.b.signer);
    const input = (i: number, pkt: Pkt, slow = false): Buffer =>
      Buffer.concat([Buffer.from([(i >> 8) | (slow ? 0x80 : 0), i & 0xff]), encodePkt(pkt)]);
    const corpus: Buffer[] = [];
    snapshots.forEach((snap, i) => {
      if (snap.next) corpus.push(input(i, snap.next));
    });
    return {
      name: "channel-step",
      corpus,
      protoFrom: 2,
      // Random well-formed pkts reach the core's rules; mutated bytes mostly stop at the decoder.
      freshPercent: 40,
      generate(rng) {
        const i = rng.below(snapshots.length);
        const snap = snapshots[i] as Snapshot;
        return input(i, randomPkt(rng, signerOf(snap.node === "A" ? "B" : "A"), s), rng.chance(0.25));
      },
      typed: codedErrors(WireError),
      run(bytes) {
        // Byte 0's high bit: the node is first given the pkt the peer sends next, and the fuzzed
        // one arrives while the node awaits the signer's answer to it.
        const slow = ((bytes[0] ?? 0) & 0x80) !== 0;
        const at = ((((bytes[0] ?? 0) & 0x7f) << 8) | (bytes[1] ?? 0)) % snapshots.length;
        const snap = snapshots[at] as Snapshot;
        const pkt = decodePkt(bytes.subarray(2));
        const peer = signerOf(snap.node === "A" ? "B" : "A");
        const own = signerOf(snap.node);
        const first = slow ? snap.next : undefined;
        // The state the fuzzed pkt meets, for the MUST checks: after the peer's next pkt, if any.
        const met = first ? drive(snap.state, own, [first]).state : snap.state;
        const { state, outputs } = drive(snap.state, own, first ? [first, pkt] : [pkt], first !== undefined);
        checkWellFormed(snap.state, state, outputs);
        const errors = outputs.filter((o) => o.type === "send" && o.pkt.kind === "error").length;
        const failed = outputs.find((o) => o.type === "failed");
        if (!isOver(met)) {
          const must = brokenMust(s, snap, peer, pkt);
          if (must !== undefined) {
            check(
              errors === 1 && isOver(state),
              `${must} in ${snap.label}: ${errors} error sent, phase ${state.phase}`,
            );
            return rejected(`MUST: ${must}`);
          }
          if (pkt.kind === "error")
            check(
              failed?.type === "failed" && failed.code === "PEER_ERROR" && errors === 0,
              "the peer's error not taken as its failure",
            );
          else if (failed)
            check(
              errors === 1,
              `failed (${failed.type === "failed" ? failed.code : ""}) with ${errors} error sent`,
            );
        } else check(errors === 0, `an error sent from ${met.phase}`);
        if (failed?.type === "failed") return rejected(`failed:${failed.code}`);
        const refused = outputs.find((o) => o.type === "pkt_refused");
        if (refused) return rejected("pkt_refused");
        if (state.phase === "behind" && met.phase !== "behind") return rejected("behind");
        return ACCEPTED;
      },
    };
  },
};
