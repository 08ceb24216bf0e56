/**
 * The signer's policy (DESIGN.md 4): pure checks over the durable per-channel state a
 * `PolicyStore` gives (one Postgres transaction, the channel row locked), each refusal a
 * `SignerError` with a reason code. The functions return what may be signed; they never sign.
 */
import { sat, sha256, txidFromHex, txidFromInternal, type Locktime, type Sat, type Txid } from "@ln/bitcoin";
import {
  anchorSighash,
  buildClose,
  buildCommitment,
  CommitmentError,
  decodeSignature,
  normalizedTxid,
  p2wpkhOutput,
  verifyDigest,
  type CloseParams,
  type Commitment,
  type CommitmentParams,
} from "@ln/tx";
import {
  absoluteExpiry,
  anchorScript,
  LOCKTIME_THRESHOLD,
  p2shOutput,
  relativeDelay,
  toOtherScript,
} from "@ln/scripts";
import { script as bscript, type Transaction } from "bitcoinjs-lib";
import {
  checkCloseState,
  checkCommitmentState,
  DEFAULT_CHANNEL_POLICY,
  recordAnchorFunding,
  type ChannelPolicyConfig,
  type CommitmentStore,
  type Side,
} from "./channel-policy.js";
import { invalid, refuse } from "./errors.js";
import type { ChannelKeys } from "./keys.js";
import { checkJusticeFee, type JusticeFeeBounds } from "./justice-fee.js";
import { checkWalletInputs, prevOutputAmount } from "./prev-outputs.js";
import { recordReceivedHtlcs, type ReceivedHtlcStore } from "./received-htlcs.js";

/** What the signer remembers about one channel. Commitment numbers are 0 for the first. */
export interface ChannelState {
  readonly index: number;
  /** Recorded the first time the signer signs (or verifies a signature) for the channel. */
  anchor: { txid: Txid; vout: number; amount: Sat } | undefined;
  peerCommitKey: Buffer | undefined;
  peerFinalKey: Buffer | undefined;
  /** Our highest commitment whose preimage we revealed: every commitment <= it is revoked. */
  highestRevealed: bigint | undefined;
  /** Our highest commitment for which we were shown a valid peer signature. */
  highestLocalSigned: bigint | undefined;
  /** Our lowest commitment we signed for broadcast: never revealed afterwards. */
  lowestBroadcast: bigint | undefined;
  /** The peer's highest commitment we signed. */
  highestRemoteSigned: bigint | undefined;
  /** The peer's highest commitment it revoked (recorded through RecordPeerRevocation). */
  highestPeerRevoked: bigint | undefined;
}

export type ChannelPatch = Partial<Omit<ChannelState, "index">>;

/** The durable state the policy reads and updates, inside one transaction with the channel locked. */
export interface PolicyStore extends ReceivedHtlcStore {
  readonly channel: ChannelState;
  update(patch: ChannelPatch): Promise<void>;
  /** The peer's revocation hash of its commitment `number`, as in the commitment we signed. */
  remoteRevocationHash(number: bigint): Promise<Buffer | undefined>;
  putRemoteCommitment(number: bigint, revocationHash: Buffer): Promise<void>;
  /** The revocation hash of the peer's commitment `number` if the peer revoked it. */
  peerRevocation(number: bigint): Promise<Buffer | undefined>;
  putPeerRevocation(number: bigint, revocationHash: Buffer): Promise<void>;
  /** What the channel owes us (channel-policy.ts). */
  readonly commitments: CommitmentStore;
}

export interface PolicyConfig extends JusticeFeeBounds {
  /** Absolute bound on a close fee and a wallet spend fee. */
  maxFeeSat: bigint;
  /** Bound on the external outputs (withdrawals) of one wallet spend; 0 or absent: none allowed. */
  maxWithdrawalSat?: bigint;
  /** Fee rate, delay and payments bounds of channel-policy.ts; defaults for what is absent. */
  channelPolicy?: Partial<ChannelPolicyConfig>;
}

/** A commitment's balances, delay and fee against the channel's records (channel-policy.ts). */
const checkState = (
  store: PolicyStore,
  cfg: PolicyConfig,
  side: Side,
  number: bigint,
  params: CommitmentParams,
  commitment: Commitment,
  preimages: readonly Buffer[] = [],
): Promise<void> =>
  checkCommitmentState(
    store.commitments,
    { ...DEFAULT_CHANNEL_POLICY, ...cfg.channelPolicy },
    { channel: store.channel.index, side, number, params, commitment, preimages, maxFeeSat: cfg.maxFeeSat },
  );

/** Our keys for the channel, and the hash of our commitment `n` (derived, never stored). */
export interface OurChannel {
  keys: ChannelKeys;
  revocationHash(number: bigint): Buffer;
}

const max = (a: bigint | undefined, b: bigint): bigint => (a === undefined || b > a ? b : a);
const min = (a: bigint | undefined, b: bigint): bigint => (a === undefined || b < a ? b : a);
const same = (a: Uint8Array, b: Uint8Array): boolean => Buffer.from(a).equals(b);

function build<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof CommitmentError || e instanceof RangeError || e instanceof TypeError)
      throw invalid(`cannot build the transaction: ${e.message}`);
    throw e;
  }
}

/** The anchor's keys and outpoint against ours and the recorded ones; returns what to record. */
function checkAnchor(ch: ChannelState, ours: ChannelKeys, anchor: CommitmentParams["anchor"]): ChannelPatch {
  const [k1, k2] = anchor.commitKeys;
  const mine = ours.commit.pub;
  if (same(k1, mine) === same(k2, mine))
    throw refuse(
      "WRONG_COMMIT_KEY",
      `channel ${ch.index}: the anchor's 2-of-2 must hold our commit key exactly once`,
    );
  const peer = Buffer.from(same(k1, mine) ? k2 : k1);
  if (ch.peerCommitKey !== undefined && !ch.peerCommitKey.equals(peer))
    throw refuse(
      "WRONG_COMMIT_KEY",
      `channel ${ch.index}: the peer's commit key differs from the recorded one`,
    );
  const o = anchor.outpoint;
  if (
    ch.anchor !== undefined &&
    (ch.anchor.txid !== o.txid || ch.anchor.vout !== o.vout || ch.anchor.amount !== anchor.amount)
  )
    throw refuse(
      "WRONG_ANCHOR",
      `channel ${ch.index}: spends ${o.txid}:${o.vout} (${anchor.amount} sat), not the channel's anchor ${ch.anchor.txid}:${ch.anchor.vout} (${ch.anchor.amount} sat)`,
    );
  const patch: ChannelPatch = {};
  if (ch.peerCommitKey === undefined) patch.peerCommitKey = peer;
  if (ch.anchor === undefined) patch.anchor = { txid: o.txid, vout: o.vout, amount: anchor.amount };
  return patch;
}

function checkPeerFinal(ch: ChannelState, ours: ChannelKeys, peerFinal: Uint8Array): ChannelPatch {
  if (same(peerFinal, ours.final.pub))
    throw refuse("WRONG_FINAL_KEY", `channel ${ch.index}: both final keys are ours`);
  if (ch.peerFinalKey !== undefined && !ch.peerFinalKey.equals(peerFinal))
    throw refuse(
      "WRONG_FINAL_KEY",
      `channel ${ch.index}: the peer's final key differs from the recorded one`,
    );
  return ch.peerFinalKey === undefined ? { peerFinalKey: Buffer.from(peerFinal) } : {};
}

/**
 * A commitment of this channel: spends its anchor with our commit key, pays our final key where
 * it belongs and the peer's recorded final key; ours carries our revocation hash for `number`.
 */
export function checkCommitment(
  ch: ChannelState,
  ours: OurChannel,
  side: "local" | "remote",
  number: bigint,
  p: CommitmentParams,
): { commitment: Commitment; patch: ChannelPatch } {
  const patch = checkAnchor(ch, ours.keys, p.anchor);
  const [ourFinal, peerFinal] =
    side === "local" ? [p.ownerFinal, p.otherFinal] : [p.otherFinal, p.ownerFinal];
  if (!same(ourFinal, ours.keys.final.pub))
    throw refuse(
      "WRONG_FINAL_KEY",
      `channel ${ch.index}: the ${side === "local" ? "owner" : "other"} final key of a ${side} commitment must be our final key`,
    );
  Object.assign(patch, checkPeerFinal(ch, ours.keys, peerFinal));
  if (side === "local" && !same(p.revocationHash, ours.revocationHash(number)))
    throw refuse(
      "WRONG_REVOCATION_HASH",
      `channel ${ch.index}: commitment ${number} of ours must carry our revocation hash for ${number}`,
    );
  return { commitment: build(() => buildCommitment(p)), patch };
}

const anchorDigest = (c: Commitment): Buffer => anchorSighash(c.tx, c.anchorRedeemScript);

function checkCounterpartySig(
  ch: ChannelState,
  patch: ChannelPatch,
  c: Commitment,
  theirSig: Uint8Array,
): void {
  const peerKey = patch.peerCommitKey ?? ch.peerCommitKey;
  if (peerKey === undefined || !verifyDigest(peerKey, anchorDigest(c), theirSig))
    throw refuse(
      "BAD_COUNTERPARTY_SIG",
      `channel ${ch.index}: the counterparty's signature does not sign this commitment with the channel's peer commit key`,
    );
}

/** SignRemoteCommitment: the peer's commitment `number`. Returns the commitment whose anchor spend to sign. */
export async function authorizeRemoteCommitment(
  store: PolicyStore,
  ours: OurChannel,
  number: bigint,
  p: CommitmentParams,
  cfg: PolicyConfig,
  preimages: readonly Buffer[] = [],
): Promise<Commitment> {
  const ch = store.channel;
  if (ch.highestPeerRevoked !== undefined && number <= ch.highestPeerRevoked)
    throw refuse(
      "REMOTE_REVOKED",
      `channel ${ch.index}: the peer revoked its commitment ${ch.highestPeerRevoked}; not signing ${number}`,
    );
  const { commitment, patch } = checkCommitment(ch, ours, "remote", number, p);
  const known = await store.remoteRevocationHash(number);
  if (known !== undefined && !known.equals(p.revocationHash))
    throw refuse(
      "WRONG_REVOCATION_HASH",
      `channel ${ch.index}: the peer's commitment ${number} was signed with another revocation hash`,
    );
  await checkState(store, cfg, "remote", number, p, commitment, preimages);
  if (known === undefined) await store.putRemoteCommitment(number, Buffer.from(p.revocationHash));
  await recordReceivedHtlcs(store, "remote", number, p);
  await store.update({
    ...patch,
    highestRemoteSigned: max(ch.highestRemoteSigned, number),
  });
  return commitment;
}

export interface RevealRequest {
  revoke: bigint;
  next: bigint;
  signedCommitment: { number: bigint; params: CommitmentParams; theirSig: Uint8Array };
  /** R values the caller learned for HTLCs we offered (channel-policy.ts). */
  preimages?: readonly Buffer[];
}

/**
 * RevealRevocation: the preimage of our commitment `revoke` only once the peer's valid signature on
 * our commitment `revoke + 1` (of this channel's anchor and keys) has been shown, that commitment is
 * not itself revoked, and we never signed `revoke` (or later) for broadcast. Records the reveal
 * before the caller answers.
 */
export async function authorizeReveal(
  store: PolicyStore,
  ours: OurChannel,
  r: RevealRequest,
  cfg: PolicyConfig,
): Promise<void> {
  const ch = store.channel;
  const signed = r.signedCommitment;
  if (signed.number !== r.revoke + 1n)
    throw refuse(
      "NOT_NEXT_COMMITMENT",
      `channel ${ch.index}: revoking ${r.revoke} needs the signed commitment ${r.revoke + 1n}, got ${signed.number}`,
    );
  if (ch.lowestBroadcast !== undefined && r.revoke >= ch.lowestBroadcast)
    throw refuse(
      "REVOKE_AFTER_BROADCAST",
      `channel ${ch.index}: our commitment ${ch.lowestBroadcast} was signed for broadcast; not revoking ${r.revoke}`,
    );
  if (ch.highestRevealed !== undefined && signed.number <= ch.highestRevealed)
    throw refuse(
      "NEXT_COMMITMENT_REVOKED",
      `channel ${ch.index}: commitment ${signed.number} is already revoked (revealed up to ${ch.highestRevealed})`,
    );
  const { commitment, patch } = checkCommitment(ch, ours, "local", signed.number, signed.params);
  checkCounterpartySig(ch, patch, commitment, signed.theirSig);
  await checkState(store, cfg, "local", signed.number, signed.params, commitment, r.preimages);
  await recordReceivedHtlcs(store, "local", signed.number, signed.params);
  await store.pruneReceivedHtlcs("local", r.revoke);
  await store.update({
    ...patch,
    highestRevealed: max(ch.highestRevealed, r.revoke),
    highestLocalSigned: max(ch.highestLocalSigned, signed.number),
  });
}

/** SignLocalCommitment: our commitment `number` for broadcast, never a revoked one. */
export async function authorizeLocalBroadcast(
  store: PolicyStore,
  ours: OurChannel,
  number: bigint,
  p: CommitmentParams,
  theirSig: Uint8Array,
  cfg: PolicyConfig,
  preimages: readonly Buffer[] = [],
): Promise<Commitment> {
  const ch = store.channel;
  if (ch.highestRevealed !== undefined && number <= ch.highestRevealed)
    throw refuse(
      "COMMITMENT_REVOKED",
      `channel ${ch.index}: our commitment ${number} is revoked (revealed up to ${ch.highestRevealed})`,
    );
  const { commitment, patch } = checkCommitment(ch, ours, "local", number, p);
  checkCounterpartySig(ch, patch, commitment, theirSig);
  await checkState(store, cfg, "local", number, p, commitment, preimages);
  await recordReceivedHtlcs(store, "local", number, p);
  await store.update({ ...patch, lowestBroadcast: min(ch.lowestBroadcast, number) });
  return commitment;
}

/**
 * SignClose: spends the recorded anchor, pays exactly our final key and the peer's recorded final
 * key, what our balance gives us, with a fee (anchor minus outputs) at most the latest
 * commitment's fee and at most the configured maximum (checkCloseState).
 */
export async function authorizeClose(
  store: PolicyStore,
  ours: OurChannel,
  p: CloseParams,
  cfg: PolicyConfig,
): Promise<ReturnType<typeof buildClose>> {
  const ch = store.channel;
  if (ch.anchor === undefined || ch.peerFinalKey === undefined)
    throw refuse("WRONG_ANCHOR", `channel ${ch.index}: no commitment was ever signed; nothing to close`);
  checkAnchor(ch, ours.keys, p.anchor);
  const finals = [p.a.finalKey, p.b.finalKey];
  const ourFinal = ours.keys.final.pub;
  if (!(
    (same(finals[0]!, ourFinal) && same(finals[1]!, ch.peerFinalKey)) ||
    (same(finals[1]!, ourFinal) && same(finals[0]!, ch.peerFinalKey))
  ))
    throw refuse(
      "WRONG_FINAL_KEY",
      `channel ${ch.index}: a close pays exactly our final key and the peer's recorded final key`,
    );
  const close = build(() => buildClose(p));
  await checkCloseState(store.commitments, ch.index, ourFinal, p, close, cfg.maxFeeSat);
  return close;
}

/**
 * RecordPeerRevocation: the peer revoked its commitment `number`. Only for a commitment we signed
 * and superseded (we signed `number + 1`), with a preimage that hashes to its revocation hash.
 */
export async function recordPeerRevocation(
  store: PolicyStore,
  number: bigint,
  preimage: Uint8Array,
): Promise<void> {
  const ch = store.channel;
  const hash = await store.remoteRevocationHash(number);
  if (hash === undefined || ch.highestRemoteSigned === undefined || number >= ch.highestRemoteSigned)
    throw refuse(
      "NOT_SUPERSEDED",
      `channel ${ch.index}: the peer's commitment ${number} was not signed and superseded by a signed ${number + 1n}`,
    );
  if (!sha256(preimage).equals(hash))
    throw refuse(
      "PREIMAGE_MISMATCH",
      `channel ${ch.index}: the preimage does not hash to the revocation hash of the peer's commitment ${number}`,
    );
  if ((await store.peerRevocation(number)) === undefined) await store.putPeerRevocation(number, hash);
  await store.pruneReceivedHtlcs("remote", number);
  await store.update({ highestPeerRevoked: max(ch.highestPeerRevoked, number) });
}

export interface JusticeRequest {
  revokedNumber: bigint;
  params: CommitmentParams;
  commitmentTx: Transaction;
  justiceTx: Transaction;
  /** Scripts of our own wallet keys the justice transaction may pay. */
  walletScripts: readonly Buffer[];
}

/** Which key signs which input, over which redeem script. */
export interface InputToSign {
  inputIndex: number;
  redeemScript: Buffer;
}

/**
 * SignJustice: only against a peer commitment recorded as revoked, whose parameters rebuild the
 * transaction seen on chain (same normalized txid), every input spending one of its outputs, every
 * output paying only our own keys (our final key of the channel, or our wallet keys given).
 */
export async function authorizeJustice(
  store: PolicyStore,
  ours: OurChannel,
  r: JusticeRequest,
  cfg: JusticeFeeBounds = {},
): Promise<InputToSign[]> {
  const ch = store.channel;
  const revoked = await store.peerRevocation(r.revokedNumber);
  if (revoked === undefined)
    throw refuse(
      "NOT_REVOKED",
      `channel ${ch.index}: no record that the peer revoked its commitment ${r.revokedNumber}`,
    );
  if (!revoked.equals(r.params.revocationHash))
    throw refuse(
      "JUSTICE_MISMATCH",
      `channel ${ch.index}: the commitment's revocation hash is not the one the peer revoked for ${r.revokedNumber}`,
    );
  const { commitment } = checkCommitment(ch, ours, "remote", r.revokedNumber, r.params);
  if (normalizedTxid(commitment.tx) !== normalizedTxid(r.commitmentTx))
    throw refuse(
      "JUSTICE_MISMATCH",
      `channel ${ch.index}: the transaction is not the peer's commitment ${r.revokedNumber} (normalized txid differs)`,
    );
  const onChain = r.commitmentTx.getId();
  if (r.justiceTx.ins.length === 0) throw invalid("the justice transaction has no inputs");
  const inputs = r.justiceTx.ins.map((input, inputIndex) => {
    const out = commitment.outputs.find((o) => o.vout === input.index);
    if (txidFromInternal(input.hash) !== onChain || out === undefined)
      throw refuse(
        "JUSTICE_MISMATCH",
        `channel ${ch.index}: justice input ${inputIndex} does not spend an output of the revoked commitment ${onChain}`,
      );
    return { inputIndex, redeemScript: out.redeemScript };
  });
  const allowed = [
    p2shOutput(toOtherScript(ours.keys.final.pub)),
    p2wpkhOutput(ours.keys.final.pub),
    ...r.walletScripts,
  ];
  checkOutputsOurs(ch.index, r.justiceTx, allowed);
  checkJusticeFee(ch.index, r.justiceTx, spentOutputs(commitment, r.justiceTx), cfg);
  return inputs;
}

/** The commitment output each input spends (every input was checked to spend one). */
const spentOutputs = (c: Commitment, tx: Transaction) =>
  tx.ins.map((i) => c.outputs.find((o) => o.vout === i.index)!);

function checkOutputsOurs(channel: number | undefined, tx: Transaction, allowed: readonly Buffer[]): void {
  tx.outs.forEach((o, vout) => {
    if (!allowed.some((s) => s.equals(o.script)))
      throw refuse(
        "FOREIGN_OUTPUT",
        `${channel === undefined ? "" : `channel ${channel}: `}output ${vout} pays a script that is not one of our keys`,
      );
  });
}

export type OutputOwner =
  | { kind: "wallet"; index: number; pubkey: Buffer }
  | { kind: "anchor"; store: PolicyStore; ours: OurChannel; peerCommitKey: Buffer }
  | { kind: "external"; script: Buffer };

/** P2WPKH, P2WSH, P2SH or P2PKH: the scripts a withdrawal may pay (anything else could be unspendable or non-standard). */
export function isWithdrawalScript(s: Uint8Array): boolean {
  const b = Buffer.from(s);
  if (b.length === 22 && b[0] === 0x00 && b[1] === 0x14) return true; // OP_0 <20>
  if (b.length === 34 && b[0] === 0x00 && b[1] === 0x20) return true; // OP_0 <32>
  if (b.length === 23 && b[0] === 0xa9 && b[1] === 0x14 && b[22] === 0x87) return true; // OP_HASH160 <20> OP_EQUAL
  return (
    b.length === 25 && b[0] === 0x76 && b[1] === 0xa9 && b[2] === 0x14 && b[23] === 0x88 && b[24] === 0xac
  ); // OP_DUP OP_HASH160 <20> OP_EQUALVERIFY OP_CHECKSIG
}

export interface WalletSpendRequest {
  tx: Transaction;
  /** `prevTx`: the transaction that created the coin; the amount must be its output's. */
  inputs: readonly { pubkey: Buffer; amount: Sat; prevTx?: Transaction | undefined }[];
  outputs: readonly OutputOwner[];
}

/**
 * SignWalletSpend: every output is one of our wallet keys (P2WPKH), a channel's anchor (the
 * 2-of-2 of our commit key and the peer's, recorded for the channel if not yet known), or an
 * external script (a withdrawal: P2WPKH/P2WSH/P2SH/P2PKH only, all of them together at most
 * `maxWithdrawalSat`, none when it is 0), with a fee at most the configured maximum.
 */
export async function authorizeWalletSpend(r: WalletSpendRequest, cfg: PolicyConfig): Promise<void> {
  if (r.inputs.length !== r.tx.ins.length) throw invalid("one WalletInput per transaction input");
  if (r.outputs.length !== r.tx.outs.length) throw invalid("one OutputOwner per transaction output");
  checkWalletInputs(r.tx, r.inputs);
  let withdrawn = 0n;
  for (const [vout, owner] of r.outputs.entries()) {
    const script = r.tx.outs[vout]!.script;
    if (owner.kind === "external") {
      if (!owner.script.equals(script))
        throw refuse("FOREIGN_OUTPUT", `output ${vout} does not pay the external script named for it`);
      if (!isWithdrawalScript(script))
        throw refuse(
          "UNSUPPORTED_SCRIPT",
          `output ${vout}: a withdrawal pays only a P2WPKH, P2WSH, P2SH or P2PKH script`,
        );
      withdrawn += r.tx.outs[vout]!.value;
      continue;
    }
    if (owner.kind === "wallet") {
      if (!p2wpkhOutput(owner.pubkey).equals(script))
        throw refuse("FOREIGN_OUTPUT", `output ${vout} does not pay wallet key ${owner.index}`);
      continue;
    }
    const ch = owner.store.channel;
    if (!p2shOutput(anchorScript(owner.ours.keys.commit.pub, owner.peerCommitKey)).equals(script))
      throw refuse("FOREIGN_OUTPUT", `output ${vout} does not pay the anchor of channel ${ch.index}`);
    if (ch.peerCommitKey !== undefined && !ch.peerCommitKey.equals(owner.peerCommitKey))
      throw refuse(
        "WRONG_COMMIT_KEY",
        `channel ${ch.index}: the peer's commit key differs from the recorded one`,
      );
    const funding = { txid: txidFromHex(r.tx.getId()), vout, amount: sat(r.tx.outs[vout]!.value) };
    await recordAnchorFunding(owner.store.commitments, ch.index, ch.anchor, funding);
    await owner.store.update({ peerCommitKey: owner.peerCommitKey, anchor: funding });
  }
  if (withdrawn > 0n || r.outputs.some((o) => o.kind === "external")) {
    const limit = cfg.maxWithdrawalSat ?? 0n;
    if (limit === 0n)
      throw refuse(
        "WITHDRAWALS_DISABLED",
        `withdrawals to external scripts are disabled: set SIGNER_MAX_WITHDRAWAL_SAT to the largest total (satoshi) one spend may pay out`,
      );
    if (withdrawn > limit)
      throw refuse(
        "WITHDRAWAL_TOO_LARGE",
        `the external outputs total ${withdrawn} sat, above SIGNER_MAX_WITHDRAWAL_SAT (${limit} sat); split the withdrawal or raise the limit`,
      );
  }
  const inTotal = r.inputs.reduce<bigint>((a, i) => a + i.amount, 0n);
  const outTotal = r.tx.outs.reduce<bigint>((a, o) => a + o.value, 0n);
  if (outTotal > inTotal) throw invalid(`the outputs (${outTotal} sat) exceed the inputs (${inTotal} sat)`);
  if (inTotal - outTotal > cfg.maxFeeSat)
    throw refuse("FEE_TOO_HIGH", `wallet spend fee ${inTotal - outTotal} sat is above ${cfg.maxFeeSat} sat`);
}

/**
 * How a sweep input is spent. Each kind says which of the channel's scripts the input spends, so
 * the signer derives the redeem script (and the key) itself.
 */
export type SweepInputKind =
  /** P2SH(<our final key> OP_CHECKSIG): a close output to us. */
  | { kind: "final_key" }
  /**
   * An output of a published commitment (draft 6.2), ours or the peer's, by the one path on which
   * our final key signs without a revocation preimage; `preimage` is R for an HTLC offered to us.
   */
  | {
      kind: "commitment_output";
      ours: boolean;
      number: bigint;
      params: CommitmentParams;
      vout: number;
      preimage: Buffer | undefined;
      /** As seen on chain: its txid may differ from the rebuilt one (malleability), not its normalized txid. */
      commitmentTx: Transaction;
    };

export interface SweepInput {
  inputIndex: number;
  amount: Sat;
  spend: SweepInputKind;
  /** A final-key input's previous transaction: its amount must be `amount`. */
  prevTx?: Transaction | undefined;
}

export interface SweepRequest {
  tx: Transaction;
  inputs: readonly SweepInput[];
  /** One per transaction output: the wallet key it must pay (P2WPKH), or anything else (refused). */
  outputs: readonly ({ kind: "wallet"; index: number; pubkey: Buffer } | { kind: "other"; what: string })[];
}

type CommitmentOutputSpend = Extract<SweepInputKind, { kind: "commitment_output" }>;

/** Whether the anchor spend carries a valid signature of our commit key over the commitment. */
function carriesOurSignature(onChain: Transaction, c: Commitment, commitPub: Uint8Array): boolean {
  const digest = anchorDigest(c);
  const pushes = bscript.decompile(onChain.ins[0]?.script ?? Buffer.alloc(0)) ?? [];
  return pushes.some((push) => {
    if (typeof push === "number") return false;
    try {
      return verifyDigest(commitPub, digest, decodeSignature(push));
    } catch {
      return false; // not a DER signature (OP_0's empty push, the redeem script)
    }
  });
}

/** The locks our final key's path on this output needs, or undefined when the output is not ours. */
function ourPath(
  ours: boolean,
  out: Commitment["outputs"][number],
  delay: Locktime,
): { csv?: Locktime; cltv?: Locktime; rHash?: Uint8Array } | undefined {
  switch (out.kind) {
    case "to_owner":
      return ours ? { csv: delay } : undefined;
    case "to_other":
      return ours ? undefined : {};
    case "htlc_offered":
    case "htlc_received": {
      const weOffered = (out.kind === "htlc_offered") === ours;
      const csv = ours ? { csv: delay } : {};
      return weOffered ? { ...csv, cltv: out.htlc.expiry } : { ...csv, rHash: out.htlc.rHash };
    }
  }
}

const SEQUENCE_DISABLE_FLAG = 1 << 31;
const SEQUENCE_TYPE_FLAG = 1 << 22;
const FINAL_SEQUENCE = 0xffff_ffff;

/** BIP112 and BIP65 as the script will check them, on input `i` of `tx`. */
function checkLocks(
  channel: number,
  tx: Transaction,
  i: number,
  locks: { csv?: Locktime; cltv?: Locktime },
): void {
  const sequence = tx.ins[i]!.sequence;
  const early = (why: string) => refuse("TIMELOCK_TOO_EARLY", `channel ${channel}: sweep input ${i}: ${why}`);
  if (locks.csv !== undefined) {
    const needed = relativeDelay(locks.csv);
    if (tx.version < 2) throw early(`a CSV delay needs a version 2 transaction, got version ${tx.version}`);
    if (
      (sequence & SEQUENCE_DISABLE_FLAG) !== 0 ||
      (sequence & SEQUENCE_TYPE_FLAG) !== (needed & SEQUENCE_TYPE_FLAG)
    )
      throw early(`nSequence ${sequence} does not enforce a relative delay of the kind of ${needed}`);
    if ((sequence & 0xffff) < (needed & 0xffff))
      throw early(`nSequence ${sequence} is below the delay ${needed}`);
  }
  if (locks.cltv !== undefined) {
    const expiry = absoluteExpiry(locks.cltv);
    if (sequence === FINAL_SEQUENCE) throw early(`a final nSequence leaves nLockTime unenforced`);
    if (tx.locktime < LOCKTIME_THRESHOLD !== expiry < LOCKTIME_THRESHOLD || tx.locktime < expiry)
      throw early(`nLockTime ${tx.locktime} is below the HTLC's expiry ${expiry}`);
  }
}

/**
 * A commitment output: the commitment is one we signed and not revoked (ours: signed for broadcast
 * by SignLocalCommitment, later than any revealed; theirs: signed by SignRemoteCommitment, not
 * revoked by the peer), the transaction given is it (normalized txid, our signature on it), the
 * input spends the named output of it as seen, our final key has a path there without revocation,
 * and the input's locks satisfy that path.
 */
async function authorizeCommitmentOutput(
  store: PolicyStore,
  ours: OurChannel,
  tx: Transaction,
  input: SweepInput,
  s: CommitmentOutputSpend,
): Promise<InputToSign> {
  const ch = store.channel;
  const i = input.inputIndex;
  const which = `${s.ours ? "our" : "the peer's"} commitment ${s.number}`;
  if (s.ours) {
    if (ch.highestRevealed !== undefined && s.number <= ch.highestRevealed)
      throw refuse(
        "COMMITMENT_REVOKED",
        `channel ${ch.index}: ${which} is revoked (revealed up to ${ch.highestRevealed})`,
      );
    if (ch.lowestBroadcast === undefined || s.number < ch.lowestBroadcast)
      throw refuse("COMMITMENT_NOT_SIGNED", `channel ${ch.index}: ${which} was never signed for broadcast`);
  } else {
    if (
      (ch.highestPeerRevoked !== undefined && s.number <= ch.highestPeerRevoked) ||
      (await store.peerRevocation(s.number)) !== undefined
    )
      throw refuse(
        "REMOTE_REVOKED",
        `channel ${ch.index}: ${which} is revoked; its outputs are taken by SignJustice`,
      );
    const signed = await store.remoteRevocationHash(s.number);
    if (signed === undefined || !signed.equals(s.params.revocationHash))
      throw refuse(
        "COMMITMENT_NOT_SIGNED",
        `channel ${ch.index}: ${which} was never signed with that revocation hash`,
      );
  }
  const { commitment } = checkCommitment(ch, ours, s.ours ? "local" : "remote", s.number, s.params);
  if (normalizedTxid(commitment.tx) !== normalizedTxid(s.commitmentTx))
    throw refuse(
      "SWEEP_MISMATCH",
      `channel ${ch.index}: the transaction given is not ${which} (normalized txid differs)`,
    );
  if (!carriesOurSignature(s.commitmentTx, commitment, ours.keys.commit.pub))
    throw refuse(
      "COMMITMENT_NOT_SIGNED",
      `channel ${ch.index}: the transaction given carries no signature of our commit key on ${which}`,
    );
  const onChain = s.commitmentTx.getId();
  const spent = tx.ins[i]!;
  if (txidFromInternal(spent.hash) !== onChain || spent.index !== s.vout)
    throw refuse(
      "SWEEP_MISMATCH",
      `channel ${ch.index}: sweep input ${i} does not spend output ${s.vout} of ${which} as seen on chain (${onChain})`,
    );
  const out = commitment.outputs.find((o) => o.vout === s.vout);
  if (out === undefined)
    throw refuse("NOT_OUR_OUTPUT", `channel ${ch.index}: ${which} has no output ${s.vout}`);
  if (out.amount !== input.amount)
    throw refuse(
      "SWEEP_MISMATCH",
      `channel ${ch.index}: sweep input ${i} names ${input.amount} sat, output ${s.vout} holds ${out.amount} sat`,
    );
  const path = ourPath(s.ours, out, s.params.delay);
  if (path === undefined)
    throw refuse(
      "NOT_OUR_OUTPUT",
      `channel ${ch.index}: output ${s.vout} (${out.kind}) of ${which} is the peer's (ours only by revocation)`,
    );
  if (path.rHash !== undefined) {
    if (s.preimage === undefined || !sha256(s.preimage).equals(path.rHash))
      throw refuse(
        "HTLC_PREIMAGE_MISMATCH",
        `channel ${ch.index}: output ${s.vout} of ${which} is an HTLC offered to us: it needs R hashing to its payment hash`,
      );
  } else if (s.preimage !== undefined)
    throw invalid(`sweep input ${i}: output ${s.vout} (${out.kind}) of ${which} takes no preimage`);
  checkLocks(ch.index, tx, i, path);
  return { inputIndex: i, redeemScript: out.redeemScript };
}

/**
 * SignSweep: every transaction input described exactly once and of a kind we sign, every output
 * one of our wallet keys, and the fee (inputs minus outputs) at most the configured maximum.
 * Returns what to sign with our final key: input `inputIndex` over its redeem script.
 *
 * A legacy sighash does not commit to amounts, so every input's amount is checked: a final-key
 * input's against its previous transaction, a commitment output's against the commitment.
 */
export async function authorizeSweep(
  store: PolicyStore,
  ours: OurChannel,
  r: SweepRequest,
  cfg: PolicyConfig,
): Promise<InputToSign[]> {
  const channel = store.channel.index;
  if (r.tx.ins.length === 0) throw invalid("the sweep has no inputs");
  if (r.inputs.length !== r.tx.ins.length) throw invalid("one SweepInput per transaction input");
  if (r.outputs.length !== r.tx.outs.length) throw invalid("one OutputOwner per transaction output");
  const seen = new Set<number>();
  const toSign: InputToSign[] = [];
  for (const input of r.inputs) {
    if (!Number.isInteger(input.inputIndex) || input.inputIndex < 0 || input.inputIndex >= r.tx.ins.length)
      throw invalid(`input_index ${input.inputIndex} is not an input of the transaction`);
    if (seen.has(input.inputIndex)) throw invalid(`input ${input.inputIndex} is described twice`);
    seen.add(input.inputIndex);
    switch (input.spend.kind) {
      case "final_key": {
        const redeemScript = toOtherScript(ours.keys.final.pub);
        const [i, what] = [input.inputIndex, `channel ${channel}: sweep input ${input.inputIndex}`];
        prevOutputAmount(r.tx, i, input.prevTx, p2shOutput(redeemScript), input.amount, what);
        toSign.push({ inputIndex: i, redeemScript });
        break;
      }
      case "commitment_output":
        toSign.push(await authorizeCommitmentOutput(store, ours, r.tx, input, input.spend));
        break;
      default: {
        const unknown: { kind: string } = input.spend;
        throw refuse(
          "UNSUPPORTED_INPUT",
          `channel ${channel}: sweep input ${input.inputIndex} is of kind ${unknown.kind}`,
        );
      }
    }
  }
  r.outputs.forEach((owner, vout) => {
    const script = r.tx.outs[vout]!.script;
    if (owner.kind !== "wallet")
      throw refuse(
        "FOREIGN_OUTPUT",
        `channel ${channel}: sweep output ${vout} is named as ${owner.what}; a sweep pays only our wallet keys`,
      );
    if (!p2wpkhOutput(owner.pubkey).equals(script))
      throw refuse(
        "FOREIGN_OUTPUT",
        `channel ${channel}: sweep output ${vout} does not pay wallet key ${owner.index}`,
      );
  });
  const inTotal = r.inputs.reduce<bigint>((a, i) => a + i.amount, 0n);
  const outTotal = r.tx.outs.reduce<bigint>((a, o) => a + o.value, 0n);
  if (outTotal > inTotal) throw invalid(`the outputs (${outTotal} sat) exceed the inputs (${inTotal} sat)`);
  if (inTotal - outTotal > cfg.maxFeeSat)
    throw refuse(
      "FEE_TOO_HIGH",
      `channel ${channel}: sweep fee ${inTotal - outTotal} sat is above ${cfg.maxFeeSat} sat`,
    );
  return toSign.sort((a, b) => a.inputIndex - b.inputIndex);
}
