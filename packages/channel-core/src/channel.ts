import { MAX_ANCHOR_SAT, msat, sat, sha256, type OutPoint, type Sat } from "@ln/bitcoin";
import {
  encodePkt,
  isGossipPkt,
  MAX_FAIL_REASON_BYTES,
  MAX_ROUTE_BYTES,
  WireError,
  type Pkt,
  type PktOf,
} from "@ln/proto";
import { absoluteExpiry, relativeDelay } from "@ln/scripts";
import { commitmentIndex, emptyShachainStore, insertSecret, ShachainError } from "@ln/shachain";
import {
  anchorSighash,
  buildClose,
  buildCommitment,
  COMMITMENT_BASE_BYTES,
  commitmentBytecount,
  feeForBytes,
  isDustMsat,
  verifyDigest,
  type CloseParams,
  type CommitmentParams,
} from "@ln/tx";
import { Behind } from "./data-loss.js";
import { earliestExpiryText, EXPIRY_TOO_SOON, htlcDeadlinePassed, overdueHtlc } from "./htlc-deadlines.js";
import { DEFAULT_POLICY } from "./types.js";
import type {
  Broadcast,
  ChainEvent,
  ChannelPolicy,
  ChannelState,
  Command,
  FailureCode,
  RejectionCode,
  Input,
  OpenTerms,
  Output,
  SignerReply,
  SignerRequest,
  Step,
} from "./types.js";
import {
  applyUpdates,
  emptyLog,
  logLength,
  logSlice,
  pruneLog,
  updatesAcked,
  UpdateError,
  type CommitmentView,
  type Htlc,
  type Side,
  type Update,
  type UpdateLog,
} from "./views.js";

/** Draft 3.2: at most this many HTLCs offered by one side in either commitment. */
export const MAX_OFFERED_HTLCS = 1500;
const MAX_AMOUNT_MSAT = 0xffff_ffffn;

/** The peer broke a rule: the connection fails (draft 6.3). Never escapes `step`. */
class Violation extends Error {
  constructor(
    readonly problem: string,
    readonly code: FailureCode = "PROTOCOL_VIOLATION",
    /** What an offer of ours that breaks the same rule is refused as (checkOffer). */
    readonly rejection?: RejectionCode,
  ) {
    super(problem);
  }
}
/** The operator asked for something the channel cannot do now; nothing changes. */
class Rejected extends Error {
  constructor(
    readonly code: RejectionCode,
    message: string,
  ) {
    super(message);
  }
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
const buf = (h: string): Buffer => Buffer.from(h, "hex");

// ---------------------------------------------------------------- creation

export function createChannel(p: {
  role: "creator" | "acceptor";
  local: OpenTerms;
  /** Creator only: the anchor amount. */
  fundingSat?: Sat;
  policy?: Partial<ChannelPolicy>;
  chain: { height: number; time: number };
}): Step {
  const state: ChannelState = {
    phase: "opening",
    role: p.role,
    policy: { ...DEFAULT_POLICY, ...p.policy },
    local: p.local,
    remote: undefined,
    anchor: undefined,
    fundingSat: p.fundingSat,
    opening: {
      sentOpenAnchor: false,
      anchorSigned: false,
      sentComplete: false,
      receivedComplete: false,
      depthReachedAt: undefined,
    },
    createdAt: p.chain.height,
    chain: { ...p.chain },
    localCommit: undefined,
    remoteCommit: undefined,
    remotePending: undefined,
    localRevocationHash: { current: p.local.revocationHash, next: p.local.nextRevocationHash },
    remoteRevocationHash: { current: "", next: "" },
    localLog: emptyLog(),
    remoteLog: emptyLog(),
    sentCount: 0,
    receivedCount: 0,
    peerAck: 0,
    peerCommitAck: 0,
    theirSecrets: emptyShachainStore(),
    nextHtlcId: 0n,
    everHadHtlc: false,
    failedByPeer: [],
    close: {
      sentClearing: false,
      receivedClearing: false,
      ourLastFee: undefined,
      theirLastFee: undefined,
      theirLastSig: undefined,
      failOnceCommitted: [],
    },
    expiryTooSoon: [],
    awaiting: undefined,
    deferred: [],
    shedding: false,
    failure: undefined,
  };
  if (p.role === "creator" && (p.fundingSat === undefined || p.fundingSat <= 0n))
    throw new Error("the anchor creator needs a funding amount");
  if (p.fundingSat !== undefined && p.fundingSat > MAX_ANCHOR_SAT)
    throw new Error(`the anchor amount must not exceed ${MAX_ANCHOR_SAT} satoshi (draft 2.2)`);
  const out: Output[] = [];
  send(state, out, {
    kind: "open_channel",
    delay: p.local.delay,
    revocationHash: buf(p.local.revocationHash),
    nextRevocationHash: buf(p.local.nextRevocationHash),
    commitKey: buf(p.local.commitKey),
    finalKey: buf(p.local.finalKey),
    anch: p.role === "creator" ? "WILL_CREATE_ANCHOR" : "WONT_CREATE_ANCHOR",
    minDepth: p.local.minDepth,
    initialFeeRate: p.local.initialFeeRate,
  });
  return { state, outputs: out };
}

// ---------------------------------------------------------------- the step function

/**
 * The channel state machine: (state, input) -> (state, outputs), with no I/O. A peer's
 * violation fails the channel (outputs say what to send and broadcast); an operator command
 * that cannot be done now is rejected with a reason and changes nothing.
 */
export function step(state: ChannelState, input: Input): Step {
  const r = stepAll(state, [input]);
  return { state: r.state, outputs: r.outputs[0] ?? [] };
}

/**
 * The outcome of inputs applied in order: the outputs of each input taken, by position. It may
 * take fewer than given (`outputs.length`): the rest wait for the signer's answer (stepAll).
 */
export interface Steps {
  state: ChannelState;
  outputs: Output[][];
}

/**
 * Several inputs in order, as one step of the shell (one transaction): each input is applied as
 * `step` would, but our update_commit waits for the end, so one commitment covers every update
 * of the batch (draft 3.5 allows any number of updates per update_commit). The commitment, if
 * any, is among the last input's outputs. An input that makes the state await the signer (the
 * peer's update_commit: our revocation) ends the batch: the inputs after it are not taken (so
 * each input's outputs are its own, never those of inputs deferred behind the signer), and the
 * shell gives them again with the signer's answer.
 */
export function stepAll(state: ChannelState, inputs: readonly Input[]): Steps {
  const d = structuredClone(state);
  // A state stored before a bound was added to the policy gets that bound's default.
  d.policy = { ...DEFAULT_POLICY, ...d.policy };
  // structuredClone turns Buffers into plain Uint8Arrays: the deferred peer packets need theirs.
  if (d.deferred.length > 0) d.deferred = d.deferred.map((i) => withBuffers(i) as Input);
  const outputs: Output[][] = [];
  let s = d;
  for (const input of inputs) {
    const waited = s.awaiting !== undefined;
    const out: Output[] = [];
    s = stepOne(s, input, out);
    outputs.push(out);
    if (!waited && s.awaiting !== undefined) break;
  }
  const last = outputs[outputs.length - 1];
  if (last && !isOver(s) && !s.awaiting && (s.phase === "normal" || s.phase === "clearing"))
    afterEveryStep(s, last, { commit: true });
  return { state: s, outputs };
}

function stepOne(d: ChannelState, input: Input, out: Output[]): ChannelState {
  if (input.type === "pkt" && isGossipPkt(input.pkt)) {
    out.push({
      type: "pkt_refused",
      kind: input.pkt.kind,
      problem: `${input.pkt.kind} is gossip, not a message of the channel`,
    });
    return d;
  }
  if (input.type === "behind" || d.phase === "behind") {
    onBehind(d, input, out);
    return d;
  }
  if (isOver(d)) {
    if (input.type === "command")
      out.push(rejected(input.command, "CHANNEL_CLOSED", `the channel is ${d.phase}`));
    if (input.type === "chain" && input.event.kind === "block")
      d.chain = { height: input.event.height, time: input.event.time };
    return d;
  }
  if (input.type === "reconnected") d.shedding = false; // what we dropped comes again from here
  if (input.type === "pkt" && (d.shedding || (d.awaiting && deferredPkts(d) >= d.policy.maxDeferredPkts))) {
    d.shedding = true;
    out.push({
      type: "disconnect",
      problem: `taking no more of the peer's messages until it reconnects (${deferredPkts(d)} wait for the signer)`,
    });
    return d;
  }
  if (d.awaiting && input.type !== "signer" && input.type !== "resume") {
    d.deferred.push(input);
    return d;
  }
  d = applyInput(d, input, out);
  while (!d.awaiting && d.deferred.length > 0 && !isOver(d))
    d = applyInput(d, d.deferred.shift() as Input, out);
  return d;
}

/** `v` with every Uint8Array in it (deeply) as a Buffer over the same bytes. */
function withBuffers(v: unknown): unknown {
  if (v instanceof Uint8Array)
    return Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
  if (Array.isArray(v)) return v.map(withBuffers);
  if (v !== null && typeof v === "object")
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withBuffers(x)]));
  return v;
}

/** One input: a violation fails the channel; a rejected command leaves the state as it was. */
function applyInput(d: ChannelState, input: Input, out: Output[]): ChannelState {
  const before = input.type === "command" ? structuredClone(d) : d;
  const produced: Output[] = [];
  try {
    handle(d, input, produced);
    out.push(...produced);
    return d;
  } catch (e) {
    if (e instanceof Rejected && input.type === "command") {
      out.push(rejected(input.command, e.code, e.message));
      return before;
    }
    if (e instanceof Violation) {
      out.push(...produced);
      fail(d, out, e.code, e.problem);
      return d;
    }
    if (e instanceof Behind) {
      out.push(...produced);
      stopBehind(d, out, e.problem);
      return d;
    }
    throw e;
  }
}

const isOver = (d: ChannelState): boolean =>
  d.phase === "failed" || d.phase === "closed" || d.phase === "behind";
const rejected = (c: Command, code: RejectionCode, problem: string): Output => ({
  type: "command_rejected",
  command: c.kind,
  code,
  problem,
});

function handle(d: ChannelState, input: Input, out: Output[]): void {
  switch (input.type) {
    case "pkt":
      d.receivedCount++;
      onPkt(d, input.pkt, out);
      break;
    case "command":
      onCommand(d, input.command, out);
      break;
    case "chain":
      onChain(d, input.event, out);
      break;
    case "signer":
      onSigner(d, input.reply, out);
      break;
    case "anchor_built":
      onAnchorBuilt(d, input.outpoint, input.amount, out);
      break;
    case "resume":
      if (d.awaiting) out.push({ type: "signer", request: pendingRequest(d) });
      // A depth report may have gone to a replica that no longer runs the channel: ask again.
      if (d.phase === "opening" && d.opening.anchorSigned && !d.opening.sentComplete && d.anchor)
        out.push({ type: "watch_anchor", outpoint: d.anchor.outpoint, depth: requiredDepth(d) });
      return;
    case "behind": // handled by step before any other input (onBehind)
      return;
    case "reconnected": {
      // Draft 1.2: never below an earlier acknowledge field, authenticate's or update_commit's.
      const floor = Math.max(d.peerAck, d.peerCommitAck);
      if (input.theirAck > d.sentCount)
        throw new Behind(
          `authenticate: the peer acknowledges ${input.theirAck} messages, we sent ${d.sentCount}: our state is behind (a restored database?)`,
        );
      if (input.theirAck < floor)
        throw new Violation(
          `authenticate: ack ${input.theirAck} is outside ${floor}..${d.sentCount}, the messages we sent and they acknowledged`,
        );
      d.peerAck = input.theirAck;
      out.push({ type: "retransmit", afterSeq: input.theirAck });
      return;
    }
  }
  // Our update_commit waits for the end of the batch (stepAll).
  afterEveryStep(d, out, { commit: false });
}

const deferredPkts = (s: ChannelState): number => s.deferred.filter((i) => i.type === "pkt").length;

/**
 * Our `authenticate.ack`: non-authenticate messages processed from the peer (draft 1.2), counting
 * those deferred behind a signer request: they are stored and will be processed, so the peer
 * must not send them again.
 */
export const ackFor = (s: ChannelState): number => s.receivedCount + deferredPkts(s);

function send(d: ChannelState, out: Output[], pkt: Pkt): void {
  d.sentCount++;
  out.push({ type: "send", seq: d.sentCount, pkt });
}

function sendUpdate(d: ChannelState, out: Output[], pkt: Pkt, update: Update): void {
  send(d, out, pkt);
  d.localLog.entries.push({ update, seq: d.sentCount });
}

// ---------------------------------------------------------------- failing (6.3)

function fail(d: ChannelState, out: Output[], code: FailureCode, problem: string): void {
  if (d.phase === "failed" || d.phase === "closed") return;
  if (code !== "PEER_ERROR") send(d, out, { kind: "error", problem });
  const broadcast = whatToBroadcast(d);
  d.phase = "failed";
  d.failure = { code, problem };
  d.awaiting = undefined;
  d.deferred = [];
  out.push({ type: "failed", code, problem });
  if (broadcast.tx !== "nothing") out.push({ type: "broadcast", broadcast });
}

/**
 * DESIGN.md 6, data-loss protection: never our commitment (the peer may hold its revocation).
 * Stop, and send `error` so that the peer closes with its latest commitment; the wallet sweeps
 * our output from it. From `failed` (our broadcast was refused as revoked) no second `error`.
 */
function stopBehind(d: ChannelState, out: Output[], problem: string): void {
  if (d.phase === "closed" || d.phase === "behind" || d.failure?.code === "DATA_LOSS") return;
  if (d.phase !== "failed")
    send(d, out, { kind: "error", problem: `data loss suspected, please close the channel: ${problem}` });
  d.phase = "behind";
  d.failure = { code: "DATA_LOSS", problem };
  d.awaiting = undefined;
  d.deferred = [];
  out.push({ type: "behind", problem });
}

/**
 * A stopped channel that is behind takes nothing more from the peer (the shell no longer routes the
 * peer's messages to it, and answers the peer's `ack` question as for no channel, so the peer
 * also fails the channel on its next connection), until the anchor is spent: then it is `failed`,
 * code DATA_LOSS. The operator's force close broadcasts our commitment only if the signer still
 * signs it (its policy refuses a revoked one, and the shell then returns the channel here).
 */
function onBehind(d: ChannelState, input: Input, out: Output[]): void {
  switch (input.type) {
    case "behind":
      return stopBehind(d, out, input.problem);
    case "chain":
      if (input.event.kind === "block") d.chain = { height: input.event.height, time: input.event.time };
      // The peer closed (or someone did): the anchor's spend is resolved on chain; the channel is
      // over, its failure still DATA_LOSS, and no longer holds the peer's place for a new one.
      if (input.event.kind === "anchor_spent" && !input.event.ours && d.phase === "behind")
        d.phase = "failed";
      return;
    case "command": {
      if (input.command.kind !== "force_close") {
        out.push(rejected(input.command, "CHANNEL_BEHIND", "the channel is behind (data loss suspected)"));
        return;
      }
      const broadcast = whatToBroadcast(d);
      d.phase = "failed";
      d.failure = { code: "OPERATOR", problem: "force close of a channel behind, requested by the operator" };
      out.push({ type: "failed", code: "OPERATOR", problem: d.failure.problem });
      if (broadcast.tx !== "nothing") out.push({ type: "broadcast", broadcast });
      return;
    }
    default:
      return;
  }
}

/** Draft 6.3: nothing before the anchor can exist; a close we were offered; else our latest commitment. */
function whatToBroadcast(d: ChannelState): Broadcast {
  if (!d.localCommit || !d.opening.anchorSigned || !d.anchor || !d.remote) return { tx: "nothing" };
  if (d.close.theirLastSig !== undefined && d.close.theirLastFee !== undefined)
    return {
      tx: "close",
      closeFee: d.close.theirLastFee,
      params: closeParams(d, d.close.theirLastFee),
      theirSig: d.close.theirLastSig,
    };
  return {
    tx: "commitment",
    number: d.localCommit.number,
    params: localCommitParams(d, d.localCommit),
    theirSig: d.localCommit.theirSig,
  };
}

/**
 * Our current commitment's parameters. Until the signer reveals the previous preimage, it is
 * signed under our *next* revocation hash (the one the peer signed it with).
 */
const localCommitParams = (d: ChannelState, lc: CommitmentView): CommitmentParams =>
  commitmentParams(
    d,
    lc,
    "local",
    d.awaiting === "reveal_revocation" ? d.localRevocationHash.next : d.localRevocationHash.current,
  );

/**
 * The commitments that can spend the anchor without a revocation (draft 6.2): our current one,
 * and the peer's current and pending ones. Revoked commitments are the watchtower's (DESIGN.md 7).
 */
export function unrevokedCommitments(d: ChannelState): {
  ours: { number: bigint; params: CommitmentParams } | undefined;
  theirs: { number: bigint; params: CommitmentParams }[];
} {
  if (!d.anchor || !d.remote) return { ours: undefined, theirs: [] };
  const theirs = [];
  if (d.remoteCommit)
    theirs.push({ number: d.remoteCommit.number, params: commitmentParams(d, d.remoteCommit, "remote") });
  if (d.remotePending)
    theirs.push({
      number: d.remotePending.number,
      params: commitmentParams(d, d.remotePending, "remote", d.remoteRevocationHash.next),
    });
  return {
    ours: d.localCommit
      ? { number: d.localCommit.number, params: localCommitParams(d, d.localCommit) }
      : undefined,
    theirs,
  };
}

// ---------------------------------------------------------------- transactions from views

function commitmentParams(
  d: ChannelState,
  v: CommitmentView,
  owner: Side,
  revocationHash?: string,
): CommitmentParams {
  const remote = need(d.remote);
  const anchor = need(d.anchor);
  const local = owner === "local";
  return {
    anchor: {
      outpoint: anchor.outpoint,
      amount: anchor.amount,
      commitKeys: [buf(d.local.commitKey), buf(remote.commitKey)],
    },
    ownerFinal: buf(local ? d.local.finalKey : remote.finalKey),
    otherFinal: buf(local ? remote.finalKey : d.local.finalKey),
    revocationHash: buf(
      revocationHash ?? (local ? d.localRevocationHash.current : d.remoteRevocationHash.current),
    ),
    // DESIGN.md 6: the owner's outputs wait the delay the *other* node asked for.
    delay: local ? remote.delay : d.local.delay,
    ownerMsat: local ? v.localMsat : v.remoteMsat,
    otherMsat: local ? v.remoteMsat : v.localMsat,
    htlcs: v.htlcs.map((h) => ({
      id: h.id,
      offeredByOwner: h.offerer === owner,
      amountMsat: h.amountMsat,
      rHash: buf(h.rHash),
      expiry: h.expiry,
    })),
    feeRate: v.feeRate,
  };
}

function closeParams(d: ChannelState, closeFee: Sat): CloseParams {
  const v = need(d.localCommit);
  const anchor = need(d.anchor);
  const remote = need(d.remote);
  return {
    anchor: {
      outpoint: anchor.outpoint,
      amount: anchor.amount,
      commitKeys: [buf(d.local.commitKey), buf(remote.commitKey)],
    },
    a: { finalKey: buf(d.local.finalKey), msat: v.localMsat },
    b: { finalKey: buf(remote.finalKey), msat: v.remoteMsat },
    closeFee,
  };
}

function signatureValid(d: ChannelState, params: CommitmentParams | CloseParams, sig: Buffer): boolean {
  const built = "htlcs" in params ? buildCommitment(params) : buildClose(params);
  return verifyDigest(buf(need(d.remote).commitKey), anchorSighash(built.tx, built.anchorRedeemScript), sig);
}

/** Draft 3.6's fee of a commitment, by arithmetic alone (no transaction built). */
const commitmentFee = (v: CommitmentView): Sat =>
  feeForBytes(commitmentBytecount(v.htlcs.filter((h) => !isDustMsat(h.amountMsat)).length), v.feeRate);

function need<T>(v: T | undefined): T {
  if (v === undefined) throw new Violation("message out of order: the channel is not set up for it");
  return v;
}

// ---------------------------------------------------------------- received messages

function onPkt(d: ChannelState, pkt: Pkt, out: Output[]): void {
  if (pkt.kind === "error")
    throw new Violation(`the peer failed the channel: ${pkt.problem ?? "(no problem given)"}`, "PEER_ERROR");
  if (pkt.kind === "authenticate")
    throw new Violation("authenticate is only the first message of a connection");
  // Field rules (valid 33-byte keys, amount_msat > 0, the anchor amount cap, ...): the gateway's
  // decoder enforces them, and so does the core, which is handed typed values.
  try {
    encodePkt(pkt);
  } catch (e) {
    if (e instanceof WireError) throw new Violation(e.message);
    throw e;
  }
  if (d.phase === "opening") return onOpeningPkt(d, pkt, out);
  if (!d.opening.receivedComplete || !d.opening.sentComplete)
    throw new Violation(`${pkt.kind} before both open_complete (draft 2.4)`);
  if (
    pkt.kind === "update_add_htlc" ||
    pkt.kind === "update_fulfill_htlc" ||
    pkt.kind === "update_fail_htlc" ||
    pkt.kind === "update_fee"
  )
    checkRoomForUpdate(d);
  switch (pkt.kind) {
    case "update_add_htlc":
      return receiveAdd(d, pkt, out);
    case "update_fulfill_htlc":
    case "update_fail_htlc":
      return receiveRemoval(d, pkt, out);
    case "update_fee":
      checkFeeRate(d.policy, pkt.feeRate, "update_fee");
      d.remoteLog.entries.push({ update: { kind: "fee", feeRate: pkt.feeRate }, seq: d.receivedCount });
      return;
    case "update_commit":
      return receiveCommit(d, pkt, out);
    case "update_revocation":
      return receiveRevocation(d, pkt, out);
    case "close_clearing":
      if (d.close.receivedClearing) throw new Violation("a second close_clearing (draft 4.1)");
      d.close.receivedClearing = true;
      d.phase = "clearing";
      if (!d.close.sentClearing) {
        d.close.sentClearing = true;
        send(d, out, { kind: "close_clearing" });
      }
      return;
    case "close_signature":
      return receiveCloseSignature(d, pkt, out);
    default:
      throw new Violation(`${pkt.kind} after the channel is open`);
  }
}

/**
 * The peer's updates both commitments do not include yet are kept in its log, and every step
 * copies them: a peer that withholds its revocation and streams updates may not grow them
 * without bound (policy.maxPendingUpdates).
 */
function checkRoomForUpdate(d: ChannelState): void {
  const lc = need(d.localCommit);
  const rc = need(d.remoteCommit);
  const pending = logLength(d.remoteLog) - Math.min(lc.remoteUpdates, rc.remoteUpdates);
  if (pending >= d.policy.maxPendingUpdates)
    throw new Violation(
      `${pending} updates of the peer are not in both commitments yet, at most ${d.policy.maxPendingUpdates}: commit and revoke first`,
      "TOO_MANY_UPDATES",
    );
}

const feeRateProblem = (p: ChannelPolicy, rate: number, what: string): string | undefined =>
  rate < p.minFeeRate || rate > p.maxFeeRate
    ? `${what}: fee rate ${rate} is outside ${p.minFeeRate}..${p.maxFeeRate} satoshi per 1000 bytes`
    : undefined;

function checkFeeRate(p: ChannelPolicy, rate: number, what: string): void {
  const problem = feeRateProblem(p, rate, what);
  if (problem !== undefined) throw new Violation(problem, "POLICY");
}

function onOpeningPkt(d: ChannelState, pkt: Pkt, out: Output[]): void {
  switch (pkt.kind) {
    case "open_channel":
      return receiveOpen(d, pkt, out);
    case "open_anchor": {
      if (d.role !== "acceptor")
        throw new Violation("open_anchor from the node that will not create the anchor");
      if (!d.remote || d.anchor) throw new Violation("open_anchor out of order (draft 2.2)");
      d.anchor = { outpoint: { txid: pkt.txid, vout: pkt.outputIndex }, amount: pkt.amount };
      initialViews(d);
      const local = need(d.localCommit);
      if (!signatureValid(d, commitmentParams(d, local, "local"), pkt.commitSig))
        throw new Violation("open_anchor: commit_sig does not sign our initial commitment (draft 2.2)");
      local.theirSig = hex(pkt.commitSig);
      requestRemoteSignature(d, out, need(d.remoteCommit));
      return;
    }
    case "open_commit_sig": {
      if (d.role !== "creator" || !d.opening.sentOpenAnchor || d.opening.anchorSigned)
        throw new Violation("open_commit_sig out of order (draft 2.3)");
      const local = need(d.localCommit);
      if (!signatureValid(d, commitmentParams(d, local, "local"), pkt.sig))
        throw new Violation("open_commit_sig: sig does not sign our initial commitment (draft 2.3)");
      local.theirSig = hex(pkt.sig);
      d.opening.anchorSigned = true;
      const anchor = need(d.anchor);
      out.push({ type: "broadcast_anchor", outpoint: anchor.outpoint });
      out.push({ type: "watch_anchor", outpoint: anchor.outpoint, depth: requiredDepth(d) });
      return;
    }
    case "open_complete":
      if (!d.opening.anchorSigned || d.opening.receivedComplete)
        throw new Violation("open_complete out of order (draft 2.4)");
      d.opening.receivedComplete = true;
      maybeOpened(d, out);
      return;
    default:
      throw new Violation(`${pkt.kind} before the channel is open (draft 2.4)`);
  }
}

/**
 * Draft 2.1's checks of a received open_channel against our policy, for the side we play: pure,
 * so the shell runs them before it allocates anything for a channel the peer asks for.
 */
export function checkOpenChannel(
  pkt: PktOf<"open_channel">,
  p: ChannelPolicy,
  role: ChannelState["role"],
): { ok: true } | { ok: false; code: FailureCode; problem: string } {
  const bad = (problem: string, code: FailureCode = "POLICY") => ({ ok: false as const, code, problem });
  try {
    encodePkt(pkt); // the field rules (valid keys, uint32s, ...), as the decoder checks them
  } catch (e) {
    if (e instanceof WireError) return bad(e.message, "PROTOCOL_VIOLATION");
    throw e;
  }
  const expected = role === "creator" ? "WONT_CREATE_ANCHOR" : "WILL_CREATE_ANCHOR";
  if (pkt.anch !== expected)
    return bad(
      `open_channel: anch is ${pkt.anch}, but the ${role === "creator" ? "receiver" : "creator"} of the connection must send ${expected} (draft 2.1)`,
      "PROTOCOL_VIOLATION",
    );
  if ("blocks" in pkt.delay ? pkt.delay.blocks > p.maxDelayBlocks : pkt.delay.seconds > p.maxDelaySeconds)
    return bad(
      `open_channel: delay ${JSON.stringify(pkt.delay)} is larger than we accept (${p.maxDelayBlocks} blocks, ${p.maxDelaySeconds} s)`,
    );
  try {
    relativeDelay(pkt.delay);
  } catch (e) {
    return bad(`open_channel: delay: ${(e as Error).message}`);
  }
  if (pkt.minDepth > p.maxMinDepth)
    return bad(`open_channel: min_depth ${pkt.minDepth} is larger than we accept (${p.maxMinDepth})`);
  const feeRate = feeRateProblem(p, pkt.initialFeeRate, "open_channel: initial_fee_rate");
  if (feeRate !== undefined) return bad(feeRate);
  return { ok: true };
}

function receiveOpen(d: ChannelState, pkt: PktOf<"open_channel">, out: Output[]): void {
  if (d.remote) throw new Violation("a second open_channel");
  const checked = checkOpenChannel(pkt, d.policy, d.role);
  if (!checked.ok) throw new Violation(checked.problem, checked.code);
  if (hex(pkt.commitKey) === d.local.commitKey)
    throw new Violation("open_channel: commit_key is our own key");
  d.remote = {
    delay: pkt.delay,
    minDepth: pkt.minDepth,
    initialFeeRate: pkt.initialFeeRate,
    commitKey: hex(pkt.commitKey),
    finalKey: hex(pkt.finalKey),
    anch: pkt.anch,
  };
  d.remoteRevocationHash = { current: hex(pkt.revocationHash), next: hex(pkt.nextRevocationHash) };
  if (d.role === "creator")
    out.push({
      type: "build_anchor",
      amount: need(d.fundingSat),
      commitKeys: [d.local.commitKey, d.remote.commitKey],
    });
}

/** Commitments 0: the creator holds the whole anchor; each owner's own initial fee rate. */
function initialViews(d: ChannelState): void {
  const total = msat(need(d.anchor).amount * 1000n);
  const [localMsat, remoteMsat] = d.role === "creator" ? [total, msat(0)] : [msat(0), total];
  const base = { number: 0n, localUpdates: 0, remoteUpdates: 0, localMsat, remoteMsat, htlcs: [] };
  d.localCommit = { ...base, feeRate: d.local.initialFeeRate, theirSig: "" };
  d.remoteCommit = { ...base, feeRate: need(d.remote).initialFeeRate };
  const fees = [commitmentFee(d.localCommit), commitmentFee(d.remoteCommit)];
  for (const fee of fees)
    if (need(d.anchor).amount < fee)
      throw new Violation(
        `anchor amount ${need(d.anchor).amount} does not cover the initial commitment fee ${fee} (draft 2.2)`,
      );
}

function onAnchorBuilt(d: ChannelState, outpoint: OutPoint, amount: Sat, out: Output[]): void {
  if (d.role !== "creator" || d.anchor || !d.remote || d.phase !== "opening")
    throw new Error("anchor_built out of order");
  if (amount !== d.fundingSat)
    throw new Error(`the wallet built an anchor of ${amount} sat, not ${d.fundingSat}`);
  d.anchor = { outpoint, amount };
  initialViews(d);
  requestRemoteSignature(d, out, need(d.remoteCommit));
}

const requiredDepth = (d: ChannelState): number => Math.max(d.local.minDepth, need(d.remote).minDepth, 1);

function maybeOpened(d: ChannelState, out: Output[]): void {
  if (d.opening.sentComplete && d.opening.receivedComplete && d.phase === "opening") {
    d.phase = "normal";
    out.push({ type: "opened" });
  }
}

// ---- normal operation (section 3)

/** Both commitments with every staged update applied: what the next commitments will hold. */
export function stagedViews(d: ChannelState): Record<Side, CommitmentView> {
  const lc = need(d.localCommit);
  const rc = d.remotePending ?? need(d.remoteCommit);
  const all = (log: UpdateLog, from: number): Update[] => logSlice(log, from, logLength(log));
  try {
    return {
      local: applyUpdates(
        lc,
        "local",
        all(d.localLog, lc.localUpdates),
        all(d.remoteLog, lc.remoteUpdates),
        lc.number + 1n,
      ),
      remote: applyUpdates(
        rc,
        "remote",
        all(d.localLog, rc.localUpdates),
        all(d.remoteLog, rc.remoteUpdates),
        rc.number + 1n,
      ),
    };
  } catch (e) {
    if (e instanceof UpdateError)
      throw new Violation(
        e.message,
        "PROTOCOL_VIOLATION",
        e.kind === "cannot_fund" ? "INSUFFICIENT_FUNDS" : undefined,
      );
    throw e;
  }
}

/**
 * The peer's HTLCs the shell must decide (fulfil with R or fail): committed in both current
 * commitments, with no removal of ours staged, and not already the core's to fail (received after
 * our close_clearing, or with an expiry too soon). None unless the channel is normal or clearing.
 */
export function htlcsToSettle(d: ChannelState): Htlc[] {
  if ((d.phase !== "normal" && d.phase !== "clearing") || !d.localCommit || !d.remoteCommit) return [];
  const rc = d.remoteCommit;
  const corefails = new Set([...d.close.failOnceCommitted, ...(d.expiryTooSoon ?? [])]);
  return d.localCommit.htlcs.filter(
    (h) =>
      h.offerer === "remote" &&
      rc.htlcs.some((x) => x.offerer === "remote" && x.id === h.id) &&
      !removalStaged(d.localLog, h.id) &&
      !corefails.has(h.id),
  );
}

/**
 * R of each HTLC offered to us that we fulfilled while our removal is still staged (until both
 * commitments drop the HTLC): what we claim it with on chain if the peer never takes the removal.
 */
export function ourFulfilments(d: ChannelState): { id: bigint; r: string }[] {
  return d.localLog.entries.flatMap((e) =>
    e.update.kind === "fulfill" ? [{ id: e.update.id, r: e.update.r }] : [],
  );
}

/**
 * R of each HTLC we offered that the peer fulfilled while its removal is still staged: a
 * commitment that pays such an HTLC to the peer is signed only against its R (the signer's rule).
 */
export function peerFulfilments(d: ChannelState): { id: bigint; r: string }[] {
  return d.remoteLog.entries.flatMap((e) =>
    e.update.kind === "fulfill" ? [{ id: e.update.id, r: e.update.r }] : [],
  );
}

/** Draft 3.2: the offerer must be able to pay the HTLC and its share of the fee in both commitments. */
function checkOffer(d: ChannelState, offerer: Side, htlc: Htlc): void {
  const views = stagedViews(d);
  for (const owner of ["local", "remote"] as const) {
    const v = views[owner];
    const offered = v.htlcs.filter((h) => h.offerer === offerer);
    if (offered.length > MAX_OFFERED_HTLCS)
      throw new Violation(
        `HTLC ${htlc.id}: more than ${MAX_OFFERED_HTLCS} HTLCs offered in one commitment (draft 3.2)`,
        "PROTOCOL_VIOLATION",
        "TOO_MANY_HTLCS",
      );
    const fee = commitmentFee(v);
    const balance = offerer === "local" ? v.localMsat : v.remoteMsat;
    if (balance < (fee * 1000n) / 2n)
      throw new Violation(
        `HTLC ${htlc.id} of ${htlc.amountMsat} msat: the offerer cannot pay it and its half of the ${fee} sat fee in the ${owner} commitment (draft 3.2)`,
        "PROTOCOL_VIOLATION",
        "INSUFFICIENT_FUNDS",
      );
  }
}

function receiveAdd(d: ChannelState, pkt: PktOf<"update_add_htlc">, out: Output[]): void {
  if (d.close.receivedClearing) throw new Violation("update_add_htlc after close_clearing (draft 4.1)");
  try {
    absoluteExpiry(pkt.expiry);
  } catch (e) {
    throw new Violation(`update_add_htlc: expiry: ${(e as Error).message}`);
  }
  const views = stagedViews(d);
  if (
    views.local.htlcs.some((h) => h.offerer === "remote" && h.id === pkt.id) ||
    views.remote.htlcs.some((h) => h.offerer === "remote" && h.id === pkt.id)
  )
    throw new Violation(`update_add_htlc: id ${pkt.id} is already staged (draft 3.2)`);
  const htlc: Htlc = {
    id: pkt.id,
    offerer: "remote",
    amountMsat: pkt.amountMsat,
    rHash: hex(pkt.rHash),
    expiry: pkt.expiry,
  };
  const route = hex(pkt.route);
  d.remoteLog.entries.push({ update: { kind: "add", htlc, route }, seq: d.receivedCount });
  checkOffer(d, "remote", htlc);
  d.everHadHtlc = true;
  // Draft 4.1: after our close_clearing, every new HTLC is failed (once it is committed).
  if (d.close.sentClearing) d.close.failOnceCommitted.push(pkt.id);
  // Draft 3.1: an expiry that leaves less than our delay plus the margin cannot be redeemed on
  // chain in time: the HTLC is failed once committed, never handed on.
  else if (htlcDeadlinePassed(d, htlc.expiry)) d.expiryTooSoon = [...(d.expiryTooSoon ?? []), pkt.id];
  else out.push({ type: "htlc_added", id: pkt.id, offerer: "remote", route, htlc });
}

/** True if the HTLC has a removal staged already (by either of our logs). */
function removalStaged(log: UpdateLog, id: bigint): boolean {
  return log.entries.some(
    (e) => (e.update.kind === "fulfill" || e.update.kind === "fail") && e.update.id === id,
  );
}

function receiveRemoval(
  d: ChannelState,
  pkt: PktOf<"update_fulfill_htlc" | "update_fail_htlc">,
  out: Output[],
): void {
  const what = pkt.kind;
  // Draft 3.3: the id must be an HTLC (ours) in our current commitment.
  const htlc = need(d.localCommit).htlcs.find((h) => h.offerer === "local" && h.id === pkt.id);
  if (!htlc) throw new Violation(`${what}: no HTLC ${pkt.id} of ours in our current commitment (draft 3.3)`);
  if (removalStaged(d.remoteLog, pkt.id))
    throw new Violation(`${what}: HTLC ${pkt.id} is already being removed`);
  if (pkt.kind === "update_fulfill_htlc") {
    if (!sha256(pkt.r).equals(buf(htlc.rHash)))
      throw new Violation(`update_fulfill_htlc: r does not hash to HTLC ${pkt.id}'s r_hash (draft 3.3)`);
    d.remoteLog.entries.push({
      update: { kind: "fulfill", id: pkt.id, r: hex(pkt.r) },
      seq: d.receivedCount,
    });
    // R in hand is enough to claim upstream: reported at once.
    out.push({
      type: "htlc_result",
      id: pkt.id,
      offerer: "local",
      result: { kind: "fulfilled", r: hex(pkt.r) },
      htlc,
    });
  } else {
    d.remoteLog.entries.push({
      update: { kind: "fail", id: pkt.id, reason: hex(pkt.reason) },
      seq: d.receivedCount,
    });
    d.failedByPeer.push({ id: pkt.id, reason: hex(pkt.reason), htlc });
  }
}

function receiveCommit(d: ChannelState, pkt: PktOf<"update_commit">, out: Output[]): void {
  const ack = Number(pkt.ack ?? 0n);
  if (ack > d.sentCount)
    throw new Behind(
      `update_commit: the peer signed with ack ${ack}, we sent ${d.sentCount}: our state is behind (a restored database?)`,
    );
  if (ack < d.peerCommitAck)
    throw new Violation(
      `update_commit: ack ${ack} is outside ${d.peerCommitAck}..${d.sentCount} (draft 1.2)`,
    );
  d.peerCommitAck = ack;
  const lc = need(d.localCommit);
  const localTo = updatesAcked(d.localLog, ack);
  const remoteTo = logLength(d.remoteLog);
  if (localTo < lc.localUpdates) throw new Violation("update_commit: ack excludes updates already committed");
  if (localTo === lc.localUpdates && remoteTo === lc.remoteUpdates)
    throw new Violation("update_commit without any update (draft 3.5)");
  let next: CommitmentView;
  try {
    next = applyUpdates(
      lc,
      "local",
      logSlice(d.localLog, lc.localUpdates, localTo),
      logSlice(d.remoteLog, lc.remoteUpdates, remoteTo),
      lc.number + 1n,
    );
  } catch (e) {
    if (e instanceof UpdateError) throw new Violation(`update_commit: ${e.message}`);
    throw e;
  }
  const params = commitmentParams(d, next, "local", d.localRevocationHash.next);
  if (!signatureValid(d, params, pkt.sig))
    throw new Violation(`update_commit: sig does not sign our commitment ${next.number} (draft 3.5)`);
  d.localCommit = { ...next, theirSig: hex(pkt.sig) };
  d.awaiting = "reveal_revocation";
  out.push({
    type: "signer",
    request: {
      kind: "reveal_revocation",
      revoke: lc.number,
      next: next.number + 1n,
      signedCommitment: { number: next.number, params, theirSig: hex(pkt.sig) },
    },
  });
}

function receiveRevocation(d: ChannelState, pkt: PktOf<"update_revocation">, out: Output[]): void {
  const pending = d.remotePending;
  revocationAhead(d, pkt.revocationPreimage);
  if (!pending) throw new Violation("update_revocation without a commitment of ours to answer (draft 3.5)");
  const old = need(d.remoteCommit);
  if (!sha256(pkt.revocationPreimage).equals(buf(d.remoteRevocationHash.current)))
    throw new Violation(
      `update_revocation: the preimage does not hash to the revocation hash of commitment ${old.number} (draft 3.5)`,
    );
  try {
    d.theirSecrets = insertSecret(d.theirSecrets, commitmentIndex(old.number), pkt.revocationPreimage);
  } catch (e) {
    if (e instanceof ShachainError)
      throw new Violation(
        `update_revocation: preimage ${old.number} does not derive the earlier ones (draft 5)`,
      );
    throw e;
  }
  out.push({
    type: "revoked",
    number: old.number,
    preimage: hex(pkt.revocationPreimage),
    params: commitmentParams(d, old, "remote"),
  });
  d.remoteCommit = pending;
  d.remotePending = undefined;
  d.remoteRevocationHash = { current: d.remoteRevocationHash.next, next: hex(pkt.nextRevocationHash) };
}

/**
 * A revocation proves the peer is past a state we know: it revokes the commitment after its
 * current one (so it holds a later one from us), or it revokes its current one while we signed
 * nothing newer (it answers an update_commit of ours that our state lost).
 */
function revocationAhead(d: ChannelState, preimage: Buffer): void {
  const h = sha256(preimage);
  const current = need(d.remoteCommit).number;
  if (h.equals(buf(d.remoteRevocationHash.next)))
    throw new Behind(
      `update_revocation: the peer revokes its commitment ${current + 1n}, we know its commitments up to ${(d.remotePending ?? need(d.remoteCommit)).number}: our state is behind (a restored database?)`,
    );
  if (!d.remotePending && h.equals(buf(d.remoteRevocationHash.current)))
    throw new Behind(
      `update_revocation: the peer revokes its current commitment ${current} for one we have no record of signing: our state is behind (a restored database?)`,
    );
}

// ---- closing (section 4)

const noHtlcsLeft = (d: ChannelState): boolean => {
  const lc = need(d.localCommit);
  const rc = need(d.remoteCommit);
  return (
    lc.htlcs.length === 0 &&
    rc.htlcs.length === 0 &&
    !d.remotePending &&
    lc.localUpdates === logLength(d.localLog) &&
    rc.localUpdates === logLength(d.localLog) &&
    lc.remoteUpdates === logLength(d.remoteLog) &&
    rc.remoteUpdates === logLength(d.remoteLog)
  );
};

/** Draft 4.2: at most the final commitment's fee; we take the larger of the two commitments'. */
const maxCloseFee = (d: ChannelState): Sat => {
  const a = commitmentFee(need(d.localCommit));
  const b = commitmentFee(need(d.remoteCommit));
  return a > b ? a : b;
};

function receiveCloseSignature(d: ChannelState, pkt: PktOf<"close_signature">, out: Output[]): void {
  if (!d.close.sentClearing && !d.close.receivedClearing)
    throw new Violation("close_signature before close_clearing (draft 4.2)");
  if (!noHtlcsLeft(d))
    throw new Violation("close_signature while HTLCs or updates are still pending (draft 4.2)");
  const fee = pkt.closeFee;
  if (fee % 2n !== 0n) throw new Violation(`close_signature: close_fee ${fee} is odd (draft 4.2)`);
  if (fee > maxCloseFee(d))
    throw new Violation(
      `close_signature: close_fee ${fee} exceeds the final commitment's fee ${maxCloseFee(d)} (draft 4.2)`,
    );
  const { ourLastFee, theirLastFee } = d.close;
  if (ourLastFee !== undefined && theirLastFee !== undefined && fee !== ourLastFee) {
    const [lo, hi] = ourLastFee < theirLastFee ? [ourLastFee, theirLastFee] : [theirLastFee, ourLastFee];
    if (!(fee > lo && fee < hi))
      throw new Violation(
        `close_signature: close_fee ${fee} is not strictly between ${theirLastFee} and ${ourLastFee} (draft 4.2)`,
      );
  }
  if (!signatureValid(d, closeParams(d, sat(fee)), pkt.sig))
    throw new Violation(
      `close_signature: sig does not sign the close transaction with fee ${fee} (draft 4.2)`,
    );
  d.close.theirLastFee = sat(fee);
  d.close.theirLastSig = hex(pkt.sig);
  if (fee === ourLastFee) return finishClose(d, out);
  // Counter-offer halfway (even); when nothing even lies strictly between, accept theirs.
  const ours = ourLastFee ?? initialCloseFee(d);
  const mid = ((ours + fee) / 4n) * 2n;
  const counter = mid > (ours < fee ? ours : fee) && mid < (ours < fee ? fee : ours) ? mid : fee;
  offerClose(d, out, sat(counter));
}

const initialCloseFee = (d: ChannelState): Sat => {
  const wanted = feeForBytes(COMMITMENT_BASE_BYTES, d.policy.closeFeeRate);
  const cap = minCommitmentFee(d);
  return wanted < cap ? wanted : cap;
};
const minCommitmentFee = (d: ChannelState): Sat => {
  const a = commitmentFee(need(d.localCommit));
  const b = commitmentFee(need(d.remoteCommit));
  return a < b ? a : b;
};

function offerClose(d: ChannelState, out: Output[], fee: Sat): void {
  d.close.ourLastFee = fee;
  d.awaiting = "sign_close";
  out.push({ type: "signer", request: { kind: "sign_close", closeFee: fee, params: closeParams(d, fee) } });
}

function finishClose(d: ChannelState, out: Output[]): void {
  const fee = need(d.close.theirLastFee);
  d.phase = "closed";
  out.push({
    type: "closed",
    broadcast: {
      tx: "close",
      closeFee: fee,
      params: closeParams(d, fee),
      theirSig: need(d.close.theirLastSig),
    },
  });
}

// ---------------------------------------------------------------- signer replies

function requestRemoteSignature(
  d: ChannelState,
  out: Output[],
  v: CommitmentView,
  revocationHash?: string,
): void {
  d.awaiting = "sign_remote_commitment";
  out.push({
    type: "signer",
    request: {
      kind: "sign_remote_commitment",
      number: v.number,
      params: commitmentParams(d, v, "remote", revocationHash),
    },
  });
}

/** The signer request the state awaits, rebuilt from the state alone (it is not stored). */
function pendingRequest(d: ChannelState): SignerRequest {
  switch (d.awaiting) {
    case "sign_remote_commitment":
      return d.phase === "opening"
        ? {
            kind: "sign_remote_commitment",
            number: need(d.remoteCommit).number,
            params: commitmentParams(d, need(d.remoteCommit), "remote"),
          }
        : {
            kind: "sign_remote_commitment",
            number: need(d.remotePending).number,
            params: commitmentParams(d, need(d.remotePending), "remote", d.remoteRevocationHash.next),
          };
    case "reveal_revocation": {
      const lc = need(d.localCommit);
      const params = localCommitParams(d, lc);
      return {
        kind: "reveal_revocation",
        revoke: lc.number - 1n,
        next: lc.number + 1n,
        signedCommitment: { number: lc.number, params, theirSig: lc.theirSig },
      };
    }
    case "sign_close": {
      const fee = need(d.close.ourLastFee);
      return { kind: "sign_close", closeFee: fee, params: closeParams(d, fee) };
    }
    case undefined:
      throw new Error("no signer request is pending");
  }
}

function onSigner(d: ChannelState, reply: SignerReply, out: Output[]): void {
  if (reply.kind !== d.awaiting)
    throw new Error(`signer reply ${reply.kind} while awaiting ${d.awaiting ?? "nothing"}`);
  d.awaiting = undefined;
  switch (reply.kind) {
    case "sign_remote_commitment": {
      if (d.phase === "opening") {
        const anchor = need(d.anchor);
        if (d.role === "creator") {
          d.opening.sentOpenAnchor = true;
          send(d, out, {
            kind: "open_anchor",
            txid: anchor.outpoint.txid,
            outputIndex: anchor.outpoint.vout,
            amount: anchor.amount,
            commitSig: buf(reply.sig),
          });
        } else {
          d.opening.anchorSigned = true;
          send(d, out, { kind: "open_commit_sig", sig: buf(reply.sig) });
          out.push({ type: "watch_anchor", outpoint: anchor.outpoint, depth: requiredDepth(d) });
        }
        return;
      }
      send(d, out, { kind: "update_commit", sig: buf(reply.sig), ack: BigInt(d.receivedCount) });
      return;
    }
    case "reveal_revocation":
      if (!sha256(buf(reply.preimage)).equals(buf(d.localRevocationHash.current)))
        throw new Error("the signer revealed a preimage that does not match our revocation hash");
      send(d, out, {
        kind: "update_revocation",
        revocationPreimage: buf(reply.preimage),
        nextRevocationHash: buf(reply.nextHash),
      });
      d.localRevocationHash = { current: d.localRevocationHash.next, next: reply.nextHash };
      return;
    case "sign_close":
      send(d, out, { kind: "close_signature", closeFee: need(d.close.ourLastFee), sig: buf(reply.sig) });
      if (d.close.theirLastFee === d.close.ourLastFee) finishClose(d, out);
      return;
  }
}

// ---------------------------------------------------------------- operator commands

function onCommand(d: ChannelState, c: Command, out: Output[]): void {
  if (c.kind === "force_close") throw new Violation("force close requested by the operator", "OPERATOR");
  if (d.phase === "opening") throw new Rejected("CHANNEL_OPENING", "the channel is still opening");
  switch (c.kind) {
    case "add_htlc":
      return addHtlc(d, c, out);
    case "fulfill_htlc":
    case "fail_htlc": {
      const lc = need(d.localCommit);
      const rc = need(d.remoteCommit);
      const inBoth = (v: CommitmentView): Htlc | undefined =>
        v.htlcs.find((h) => h.offerer === "remote" && h.id === c.id);
      const htlc = inBoth(lc);
      if (!htlc || !inBoth(rc))
        throw new Rejected("UNKNOWN_HTLC", `HTLC ${c.id} from the peer is not committed in both commitments`);
      if (removalStaged(d.localLog, c.id))
        throw new Rejected("HTLC_ALREADY_REMOVED", `HTLC ${c.id} is already being removed`);
      if (c.kind === "fulfill_htlc") {
        if (!sha256(buf(c.r)).equals(buf(htlc.rHash)))
          throw new Rejected("WRONG_PREIMAGE", `r does not hash to HTLC ${c.id}'s r_hash`);
        sendUpdate(
          d,
          out,
          { kind: "update_fulfill_htlc", id: c.id, r: buf(c.r) },
          { kind: "fulfill", id: c.id, r: c.r },
        );
        out.push({
          type: "htlc_result",
          id: c.id,
          offerer: "remote",
          result: { kind: "fulfilled", r: c.r },
          htlc,
        });
      } else {
        if (c.reason.length > MAX_FAIL_REASON_BYTES * 2)
          throw new Rejected(
            "REASON_TOO_LONG",
            `reason must be at most ${MAX_FAIL_REASON_BYTES} bytes (a BOLT #4 error packet)`,
          );
        sendUpdate(
          d,
          out,
          { kind: "update_fail_htlc", id: c.id, reason: buf(c.reason) },
          { kind: "fail", id: c.id, reason: c.reason },
        );
        out.push({
          type: "htlc_result",
          id: c.id,
          offerer: "remote",
          result: { kind: "failed", reason: c.reason },
          htlc,
        });
      }
      return;
    }
    case "update_fee":
      if (c.feeRate < d.policy.minFeeRate || c.feeRate > d.policy.maxFeeRate)
        throw new Rejected("FEE_RATE_OUT_OF_POLICY", `fee rate ${c.feeRate} is outside our policy`);
      sendUpdate(d, out, { kind: "update_fee", feeRate: c.feeRate }, { kind: "fee", feeRate: c.feeRate });
      return;
    case "commit":
      if (!canCommit(d))
        throw d.remotePending
          ? new Rejected("AWAITING_REVOCATION", "waiting for the peer's revocation")
          : new Rejected("NOTHING_TO_COMMIT", "nothing to commit");
      return commit(d, out);
    case "close":
      if (d.close.sentClearing)
        throw new Rejected("CLOSE_ALREADY_STARTED", "close_clearing was already sent");
      d.close.sentClearing = true;
      d.phase = "clearing";
      send(d, out, { kind: "close_clearing" });
      return;
  }
}

function addHtlc(d: ChannelState, c: Extract<Command, { kind: "add_htlc" }>, out: Output[]): void {
  if (d.close.sentClearing || d.close.receivedClearing)
    throw new Rejected("CHANNEL_CLOSING", "the channel is closing: no new HTLCs (draft 4.1)");
  if (c.amountMsat <= 0n || c.amountMsat > MAX_AMOUNT_MSAT)
    throw new Rejected("AMOUNT_OUT_OF_RANGE", `amount_msat must be 1..${MAX_AMOUNT_MSAT}`);
  if (buf(c.rHash).length !== 32) throw new Rejected("INVALID_R_HASH", "r_hash must be 32 bytes");
  const route = c.route ?? "";
  if (route.length > MAX_ROUTE_BYTES * 2)
    throw new Rejected("ROUTE_TOO_LONG", `route must be at most ${MAX_ROUTE_BYTES} bytes (a BOLT #4 onion)`);
  try {
    absoluteExpiry(c.expiry);
  } catch (e) {
    throw new Rejected("INVALID_EXPIRY", (e as Error).message);
  }
  if (htlcDeadlinePassed(d, c.expiry)) {
    // Say what would do: the tip, the peer's delay and our margin decide it (draft 3.1).
    throw new Rejected(
      "EXPIRY_TOO_SOON",
      `the expiry leaves no time to redeem on chain after the delay (draft 3.1): this channel takes ${earliestExpiryText(d, c.expiry)}`,
    );
  }
  const htlc: Htlc = {
    id: d.nextHtlcId,
    offerer: "local",
    amountMsat: c.amountMsat,
    rHash: c.rHash,
    expiry: c.expiry,
  };
  const before = structuredClone(d.localLog);
  d.localLog.entries.push({ update: { kind: "add", htlc, route }, seq: d.sentCount + 1 });
  try {
    checkOffer(d, "local", htlc);
  } catch (e) {
    d.localLog = before;
    // Only checkOffer's own rules can break here; one without a rejection code is a bug, thrown.
    if (e instanceof Violation && e.rejection !== undefined) throw new Rejected(e.rejection, e.problem);
    throw e;
  }
  d.localLog = before;
  d.nextHtlcId++;
  d.everHadHtlc = true;
  sendUpdate(
    d,
    out,
    {
      kind: "update_add_htlc",
      id: htlc.id,
      amountMsat: htlc.amountMsat,
      rHash: buf(htlc.rHash),
      expiry: htlc.expiry,
      route: buf(route),
    },
    { kind: "add", htlc, route },
  );
  out.push({
    type: "htlc_added",
    id: htlc.id,
    offerer: "local",
    route,
    htlc,
    ...(c.forward !== undefined ? { forward: c.forward } : {}),
  });
}

function canCommit(d: ChannelState): boolean {
  if (d.remotePending || d.awaiting || (d.phase !== "normal" && d.phase !== "clearing")) return false;
  const rc = need(d.remoteCommit);
  return logLength(d.localLog) > rc.localUpdates || logLength(d.remoteLog) > rc.remoteUpdates;
}

/** Signs the peer's next commitment: all our updates, and all of theirs we processed (draft 3.5). */
function commit(d: ChannelState, out: Output[]): void {
  const rc = need(d.remoteCommit);
  const next = applyUpdates(
    rc,
    "remote",
    logSlice(d.localLog, rc.localUpdates, logLength(d.localLog)),
    logSlice(d.remoteLog, rc.remoteUpdates, logLength(d.remoteLog)),
    rc.number + 1n,
  );
  d.remotePending = next;
  requestRemoteSignature(d, out, next, d.remoteRevocationHash.next);
}

// ---------------------------------------------------------------- chain events

function onChain(d: ChannelState, e: ChainEvent, out: Output[]): void {
  switch (e.kind) {
    case "block":
      d.chain = { height: e.height, time: e.time };
      if (d.phase === "opening") {
        const since = d.opening.depthReachedAt ?? d.createdAt;
        if (d.chain.height - since > d.policy.openTimeoutBlocks)
          throw new Violation(
            `the opening did not complete within ${d.policy.openTimeoutBlocks} blocks (draft 2.4)`,
            "TIMEOUT",
          );
        return;
      }
      failIfOverdue(d);
      return;
    case "anchor_depth":
      if (d.phase !== "opening" || !d.opening.anchorSigned || d.opening.sentComplete) return;
      if (e.depth >= requiredDepth(d)) {
        d.opening.depthReachedAt = d.chain.height;
        d.opening.sentComplete = true;
        send(d, out, { kind: "open_complete" });
        maybeOpened(d, out);
      }
      return;
    case "anchor_spent":
      if (e.ours) return;
      throw new Violation(`the anchor was spent by ${e.txid} (draft 6.1)`, "ANCHOR_SPENT");
  }
}

// ---------------------------------------------------------------- after each input

function afterEveryStep(d: ChannelState, out: Output[], o: { commit: boolean }): void {
  if (d.phase !== "normal" && d.phase !== "clearing") return;
  if (!d.localCommit || !d.remoteCommit) return;
  const lc = d.localCommit;
  const rc = d.remoteCommit;
  const current = (h: bigint, offerer: Side): boolean =>
    [lc, rc, d.remotePending].some((v) => v?.htlcs.some((x) => x.offerer === offerer && x.id === h));
  // Offered HTLCs the peer failed: report once the removal is in every commitment.
  d.failedByPeer = d.failedByPeer.filter((f) => {
    if (current(f.id, "local")) return true;
    out.push({
      type: "htlc_result",
      id: f.id,
      offerer: "local",
      result: { kind: "failed", reason: f.reason },
      ...(f.htlc ? { htlc: f.htlc } : {}),
    });
    return false;
  });
  // Draft 4.1: HTLCs received after our close_clearing are failed once committed; so are those
  // whose expiry left us no time to redeem them (draft 3.1).
  if (!d.awaiting) {
    d.close.failOnceCommitted = failOnceCommitted(d, out, d.close.failOnceCommitted, "closing");
    if (d.expiryTooSoon?.length)
      d.expiryTooSoon = failOnceCommitted(d, out, d.expiryTooSoon, EXPIRY_TOO_SOON);
  }
  // Logs: entries both commitments include are no longer needed.
  d.localLog = pruneLog(d.localLog, Math.min(lc.localUpdates, rc.localUpdates));
  d.remoteLog = pruneLog(d.remoteLog, Math.min(lc.remoteUpdates, rc.remoteUpdates));
  if (o.commit && d.policy.autoCommit && canCommit(d)) commit(d, out);
  // Draft 4.2: only once close_clearing was received (our clearing alone may cross an HTLC the
  // peer is adding; it answers our clearing with its own, or offers first and we counter).
  if (
    d.phase === "clearing" &&
    d.close.receivedClearing &&
    !d.awaiting &&
    d.close.ourLastFee === undefined &&
    noHtlcsLeft(d)
  )
    offerClose(d, out, initialCloseFee(d));
}

/**
 * Sends update_fail_htlc with `reason` for each of `ids` (HTLCs the peer offered) committed in
 * both current commitments; returns the ids still waiting for that. Not reported as a result:
 * these HTLCs were never handed to the shell (no `htlc_added`), so no record names them. One removed already (by a
 * command) needs nothing more from us.
 */
function failOnceCommitted(d: ChannelState, out: Output[], ids: bigint[], reason: string): bigint[] {
  const committed = (id: bigint): boolean =>
    [need(d.localCommit), need(d.remoteCommit)].every((v) =>
      v.htlcs.some((h) => h.offerer === "remote" && h.id === id),
    );
  const wire = hex(Buffer.from(reason));
  return ids.filter((id) => {
    if (removalStaged(d.localLog, id)) return false;
    if (!committed(id)) return true;
    sendUpdate(
      d,
      out,
      { kind: "update_fail_htlc", id, reason: buf(wire) },
      { kind: "fail", id, reason: wire },
    );
    return false;
  });
}

// ---------------------------------------------------------------- HTLC deadlines (draft 3.1)

/** An HTLC past its redemption deadline still in a commitment: fail the channel, go on chain. */
function failIfOverdue(d: ChannelState): void {
  const overdue = overdueHtlc(d);
  if (!overdue) return;
  const { htlc, fulfilled } = overdue;
  throw new Violation(
    fulfilled
      ? `HTLC ${htlc.id} offered to us, fulfilled by us, is still in a current commitment past its redemption deadline: claiming it on chain with R (draft 3.1)`
      : `HTLC ${htlc.id} we offered is past its deadline in a current commitment (draft 3.1)`,
    "HTLC_DEADLINE",
  );
}
