/**
 * The signer's view of each channel's balances (issue 13, F1): what the channel owes us, so that no
 * commitment or close it signs pays a compromised caller what is ours. Per channel it records once
 * who funded the anchor and the delay of each side's commitments, then the balance state of the
 * latest commitment of each side it signed or accepted. A new commitment must follow from the
 * previous one of the same side by the draft's updates (3.2-3.4): value leaves our balance only into
 * an HTLC we offer, and leaves such an HTLC towards the peer only against its R. Pure checks over a
 * `CommitmentStore` (the same transaction as the rest of the policy, the channel row locked).
 */
import { isBlocks, msat, msatToSatFloor, sat, sha256, sumSat, type Locktime, type Sat } from "@ln/bitcoin";
import { isDust, splitFee, type CloseParams, type Commitment, type CommitmentParams } from "@ln/tx";
import { toOtherScript } from "@ln/scripts";
import { invalid, refuse } from "./errors.js";

/** Whose commitment: ours ("local") or the peer's ("remote"). */
export type Side = "local" | "remote";

export interface HtlcState {
  /** Who offered it. Ids are unique per offerer. */
  offerer: "us" | "peer";
  id: bigint;
  amountMsat: bigint;
  rHash: Buffer;
  expiry: Locktime;
}

/** One commitment's balances, before its fee, in our terms (not the owner's). */
export interface BalanceState {
  ourMsat: bigint;
  peerMsat: bigint;
  htlcs: HtlcState[];
  feeRate: number;
  /** Draft 3.6's fee, and what the transaction leaves to miners (the fee plus dust and rounding). */
  fee: Sat;
  paidFee: Sat;
  /** The highest id of an HTLC we offered so far on this side (-1: none): ids only grow. */
  maxOurHtlcId: bigint;
}

/** What the signer fixes once per channel. */
export interface ChannelTerms {
  /** Who funded the anchor: "us" when our wallet spend paid it (or commitment 0 says so). */
  funder: "us" | "peer";
  /** The CSV delay on the owner's outputs of our commitments (the peer asked for it), and theirs. */
  localDelay: Locktime | undefined;
  remoteDelay: Locktime | undefined;
}

/** The durable balance records of one channel, inside the policy's transaction. */
export interface CommitmentStore {
  terms(): Promise<ChannelTerms | undefined>;
  putTerms(terms: ChannelTerms): Promise<void>;
  /** The latest commitment of `side` recorded, with its number. */
  latest(side: Side): Promise<{ number: bigint; state: BalanceState } | undefined>;
  /** Replaces the side's latest record. */
  putLatest(side: Side, number: bigint, state: BalanceState): Promise<void>;
  /** Our HTLC `id` as recorded when it was paid (its R shown), if it was. */
  paidHtlc(id: bigint): Promise<{ rHash: Buffer; amountMsat: bigint } | undefined>;
  /**
   * Records that our HTLCs `paid` went to the peer. The payments of every channel over the last
   * `periodSeconds` (these included) must stay within `limitMsat`: false (nothing recorded) if not.
   */
  recordPayments(
    paid: readonly HtlcState[],
    limit: { limitMsat: bigint; periodSeconds: number } | undefined,
  ): Promise<boolean>;
}

/** Bounds on what a compromised caller may describe (`SIGNER_*` settings; defaults below). */
export interface ChannelPolicyConfig {
  /** Satoshi per 1000 bytes: the highest commitment fee rate signed. */
  maxFeeRate: number;
  /** Delays (either side) accepted, per unit. */
  minDelayBlocks: number;
  maxDelayBlocks: number;
  minDelaySeconds: number;
  maxDelaySeconds: number;
  /** HTLC value paid to peers over any `paymentsPeriodSeconds`, all channels together; undefined: none. */
  maxPaymentsSat: bigint | undefined;
  paymentsPeriodSeconds: number;
}

export const DEFAULT_CHANNEL_POLICY: ChannelPolicyConfig = {
  maxFeeRate: 1_000_000,
  minDelayBlocks: 6,
  maxDelayBlocks: 2016,
  minDelaySeconds: 3600,
  maxDelaySeconds: 14 * 24 * 3600,
  maxPaymentsSat: undefined,
  paymentsPeriodSeconds: 24 * 3600,
};

const sameLocktime = (a: Locktime, b: Locktime): boolean =>
  isBlocks(a) ? isBlocks(b) && a.blocks === b.blocks : !isBlocks(b) && a.seconds === b.seconds;

const showLocktime = (l: Locktime): string => (isBlocks(l) ? `${l.blocks} blocks` : `${l.seconds} seconds`);

/** The balance state a commitment describes, in our terms. */
export function balanceOf(side: Side, p: CommitmentParams, c: Commitment, prevMaxId: bigint): BalanceState {
  const ownerIsUs = side === "local";
  const htlcs = p.htlcs.map((h): HtlcState => ({
    offerer: h.offeredByOwner === ownerIsUs ? "us" : "peer",
    id: h.id,
    amountMsat: h.amountMsat,
    rHash: Buffer.from(h.rHash),
    expiry: h.expiry,
  }));
  const maxOurHtlcId = htlcs.reduce((m, h) => (h.offerer === "us" && h.id > m ? h.id : m), prevMaxId);
  return {
    ourMsat: ownerIsUs ? p.ownerMsat : p.otherMsat,
    peerMsat: ownerIsUs ? p.otherMsat : p.ownerMsat,
    htlcs,
    feeRate: p.feeRate,
    fee: c.fee,
    paidFee: c.paidFee,
    maxOurHtlcId,
  };
}

/** Commitment 0 of either side: the funder holds the whole anchor. */
function openState(terms: ChannelTerms, anchor: Sat): BalanceState {
  const total = anchor * 1000n;
  return {
    ourMsat: terms.funder === "us" ? total : 0n,
    peerMsat: terms.funder === "us" ? 0n : total,
    htlcs: [],
    feeRate: 0,
    fee: sat(0n),
    paidFee: sat(0n),
    maxOurHtlcId: -1n,
  };
}

const key = (h: HtlcState): string => `${h.offerer}:${h.id}`;
const total = (s: BalanceState): bigint => s.htlcs.reduce((a, h) => a + h.amountMsat, s.ourMsat + s.peerMsat);

function sameHtlc(a: HtlcState, b: HtlcState): boolean {
  return a.amountMsat === b.amountMsat && a.rHash.equals(b.rHash) && sameLocktime(a.expiry, b.expiry);
}

function sameState(a: BalanceState, b: BalanceState): boolean {
  if (a.ourMsat !== b.ourMsat || a.peerMsat !== b.peerMsat || a.feeRate !== b.feeRate) return false;
  if (a.htlcs.length !== b.htlcs.length) return false;
  const byKey = new Map(a.htlcs.map((h) => [key(h), h]));
  return b.htlcs.every((h) => {
    const other = byKey.get(key(h));
    return other !== undefined && other.offerer === h.offerer && sameHtlc(other, h);
  });
}

/**
 * `next` follows `prev` by the draft's updates: HTLCs kept unchanged; the value of every HTLC added
 * came from its offerer; the total is conserved; our balance is at least what it was, less the
 * HTLCs we added, plus each HTLC of ours removed whose R was neither shown nor recorded (it can
 * only have failed). Returns our HTLCs removed with R shown and not yet recorded: newly paid.
 */
async function checkTransition(
  channel: number,
  what: string,
  db: CommitmentStore,
  prev: BalanceState,
  next: BalanceState,
  preimages: readonly Buffer[],
): Promise<HtlcState[]> {
  const before = new Map(prev.htlcs.map((h) => [key(h), h]));
  const after = new Map<string, HtlcState>();
  for (const h of next.htlcs) {
    if (after.has(key(h)))
      throw invalid(`${what}: HTLC ${h.id} of ${h.offerer === "us" ? "ours" : "the peer"} twice`);
    after.set(key(h), h);
  }
  let ourAdded = 0n;
  for (const h of next.htlcs) {
    const old = before.get(key(h));
    if (old !== undefined) {
      if (!sameHtlc(old, h))
        throw refuse(
          "HTLC_MISMATCH",
          `channel ${channel}: ${what} changes HTLC ${h.id} (${h.offerer}) in place`,
        );
      continue;
    }
    if (h.offerer !== "us") continue;
    if (h.id <= prev.maxOurHtlcId)
      throw refuse(
        "HTLC_ID_REUSED",
        `channel ${channel}: ${what} adds our HTLC ${h.id}, not above our highest id ${prev.maxOurHtlcId}`,
      );
    ourAdded += h.amountMsat;
  }
  const shown = new Set(preimages.map((r) => sha256(r).toString("hex")));
  let returned = 0n;
  const paid: HtlcState[] = [];
  for (const h of prev.htlcs) {
    if (after.has(key(h)) || h.offerer !== "us") continue;
    const recorded = await db.paidHtlc(h.id);
    if (recorded !== undefined) {
      // Paid already (shown on the other side's commitment): the same HTLC, or an id reused.
      if (!recorded.rHash.equals(h.rHash) || recorded.amountMsat !== h.amountMsat)
        throw refuse(
          "HTLC_ID_REUSED",
          `channel ${channel}: ${what} removes our HTLC ${h.id}, another than the one paid under that id`,
        );
    } else if (shown.has(h.rHash.toString("hex"))) paid.push(h);
    else returned += h.amountMsat;
  }
  if (total(next) !== total(prev))
    throw refuse(
      "BALANCE_MISMATCH",
      `channel ${channel}: ${what} holds ${total(next)} msat in balances and HTLCs, the previous one ${total(prev)} msat`,
    );
  const floor = prev.ourMsat - ourAdded + returned;
  if (next.ourMsat < floor)
    throw refuse(
      "BALANCE_MISMATCH",
      `channel ${channel}: ${what} leaves us ${next.ourMsat} msat; the updates since the previous one owe us at least ${floor} msat`,
    );
  return paid;
}

function checkDelay(channel: number, cfg: ChannelPolicyConfig, side: Side, delay: Locktime): void {
  const [lo, hi, v] = isBlocks(delay)
    ? [cfg.minDelayBlocks, cfg.maxDelayBlocks, delay.blocks]
    : [cfg.minDelaySeconds, cfg.maxDelaySeconds, delay.seconds];
  if (v < lo || v > hi)
    throw refuse(
      "DELAY_OUT_OF_BOUNDS",
      `channel ${channel}: the ${side} commitments' delay ${showLocktime(delay)} is outside ${lo}..${hi}`,
    );
}

export interface CommitmentCheck {
  channel: number;
  side: Side;
  number: bigint;
  params: CommitmentParams;
  commitment: Commitment;
  /** R values the caller learned (update_fulfill_htlc) for HTLCs we offered. */
  preimages: readonly Buffer[];
  /** SIGNER_MAX_FEE_SAT: a commitment's fee above it is refused too. */
  maxFeeSat: bigint;
}

/**
 * A commitment of `side` about to be signed or accepted: its fee rate and fee within bounds, its
 * delay the side's recorded one, and its balances following from the side's latest record (or
 * from the opening when there is none). Records it as the side's latest, and our HTLCs it shows
 * paid (against the payments limit).
 */
/** Draft 3.2: the most HTLCs one side may have offered in a commitment. */
export const MAX_HTLCS_PER_OFFERER = 1500;

export async function checkCommitmentState(
  db: CommitmentStore,
  cfg: ChannelPolicyConfig,
  c: CommitmentCheck,
): Promise<void> {
  const { channel, side, number, params: p } = c;
  const what = `${side === "local" ? "our" : "the peer's"} commitment ${number}`;
  // Draft 3.2: at most 1500 HTLCs offered by each side. Every HTLC is a row and state the signer
  // keeps until the commitment is revoked: a caller must not make it keep more.
  for (const byOwner of [true, false]) {
    const n = p.htlcs.filter((h) => h.offeredByOwner === byOwner).length;
    if (n > MAX_HTLCS_PER_OFFERER)
      throw refuse(
        "TOO_MANY_HTLCS",
        `channel ${channel}: ${what} holds ${n} HTLCs offered by one side, above the draft's ${MAX_HTLCS_PER_OFFERER}`,
      );
  }
  if (p.feeRate > cfg.maxFeeRate)
    throw refuse(
      "FEE_RATE_TOO_HIGH",
      `channel ${channel}: ${what} has fee rate ${p.feeRate}, above ${cfg.maxFeeRate} sat per 1000 bytes`,
    );
  if (c.commitment.fee > c.maxFeeSat)
    throw refuse(
      "FEE_TOO_HIGH",
      `channel ${channel}: ${what} has fee ${c.commitment.fee} sat, above ${c.maxFeeSat} sat`,
    );
  let terms = await db.terms();
  const latest = await db.latest(side);
  if (latest !== undefined && number < latest.number)
    throw refuse(
      "STALE_COMMITMENT",
      `channel ${channel}: ${what} is older than the latest one recorded (${latest.number})`,
    );
  if (terms === undefined) {
    // Not funded by our wallet: the peer funded it, unless commitment 0 gives us the whole anchor.
    const initial =
      number === 0n && p.htlcs.length === 0 && p[side === "local" ? "otherMsat" : "ownerMsat"] === 0n;
    terms = { funder: initial ? "us" : "peer", localDelay: undefined, remoteDelay: undefined };
  }
  const recordedDelay = side === "local" ? terms.localDelay : terms.remoteDelay;
  if (recordedDelay === undefined) {
    checkDelay(channel, cfg, side, p.delay);
    terms = { ...terms, [side === "local" ? "localDelay" : "remoteDelay"]: p.delay };
  } else if (!sameLocktime(recordedDelay, p.delay))
    throw refuse(
      "WRONG_DELAY",
      `channel ${channel}: ${what} has delay ${showLocktime(p.delay)}; the channel's is ${showLocktime(recordedDelay)}`,
    );
  const prev = latest?.state ?? openState(terms, p.anchor.amount);
  const next = balanceOf(side, p, c.commitment, prev.maxOurHtlcId);
  if (latest !== undefined && number === latest.number) {
    if (!sameState(latest.state, next))
      throw refuse(
        "BALANCE_MISMATCH",
        `channel ${channel}: ${what} was recorded with other balances, HTLCs or fee rate`,
      );
    return;
  }
  const paid = await checkTransition(channel, what, db, prev, next, c.preimages);
  const limit =
    cfg.maxPaymentsSat === undefined
      ? undefined
      : { limitMsat: cfg.maxPaymentsSat * 1000n, periodSeconds: cfg.paymentsPeriodSeconds };
  if (paid.length > 0 && !(await db.recordPayments(paid, limit)))
    throw refuse(
      "PAYMENT_LIMIT",
      `channel ${channel}: paying HTLCs ${paid.map((h) => `${h.id} (${h.amountMsat} msat)`).join(", ")} would exceed SIGNER_MAX_PAYMENTS_SAT over ${cfg.paymentsPeriodSeconds} s`,
    );
  await db.putTerms(terms);
  await db.putLatest(side, number, next);
}

/**
 * SignWalletSpend paying a channel's anchor: only once per channel, before any commitment; the
 * channel is then ours to fund (commitment 0 gives us the whole anchor). The same funding again
 * (same outpoint and amount: the wallet retrying) changes nothing.
 */
export async function recordAnchorFunding(
  db: CommitmentStore,
  channel: number,
  recorded: { txid: string; vout: number; amount: Sat } | undefined,
  funding: { txid: string; vout: number; amount: Sat },
): Promise<void> {
  if (recorded !== undefined) {
    if (
      recorded.txid === funding.txid &&
      recorded.vout === funding.vout &&
      recorded.amount === funding.amount
    )
      return;
    throw refuse(
      "WRONG_ANCHOR",
      `channel ${channel}: its anchor is already ${recorded.txid}:${recorded.vout}; not funding another`,
    );
  }
  if ((await db.terms()) !== undefined)
    throw refuse(
      "WRONG_ANCHOR",
      `channel ${channel}: a commitment was already signed; its anchor is not ours to fund`,
    );
  await db.putTerms({ funder: "us", localDelay: undefined, remoteDelay: undefined });
}

/**
 * SignClose: no HTLC in the latest commitment of either side; the fee the transaction leaves
 * (anchor minus outputs, whatever `close_fee` says) within the configured maximum and the latest
 * commitment's; our output at least what our balance gives after our share (draft 3.6) of that
 * `close_fee`.
 */
export async function checkCloseState(
  db: CommitmentStore,
  channel: number,
  ourFinal: Uint8Array,
  p: CloseParams,
  built: { outputs: readonly { amount: Sat; redeemScript: Buffer }[] },
  maxFeeSat: bigint,
): Promise<void> {
  const terms = await db.terms();
  if (terms === undefined)
    throw refuse("WRONG_ANCHOR", `channel ${channel}: no commitment was ever signed; nothing to close`);
  const recorded = [await db.latest("local"), await db.latest("remote")].flatMap((l) => (l ? [l.state] : []));
  const states = recorded.length === 2 ? recorded : [...recorded, openState(terms, p.anchor.amount)];
  if (states.some((s) => s.htlcs.length > 0))
    throw refuse(
      "HTLCS_OUTSTANDING",
      `channel ${channel}: HTLCs remain in the latest commitments; no close yet`,
    );
  const outTotal = sumSat(built.outputs.map((o) => o.amount));
  if (outTotal > p.anchor.amount)
    throw invalid(`the close pays ${outTotal} sat out of a ${p.anchor.amount} sat anchor`);
  const fee = p.anchor.amount - outTotal;
  const latestFee = recorded.reduce<bigint>((m, s) => (s.paidFee > m ? s.paidFee : m), 0n);
  const bound = latestFee < maxFeeSat ? latestFee : maxFeeSat;
  if (fee > bound)
    throw refuse(
      "FEE_TOO_HIGH",
      `channel ${channel}: the close leaves ${fee} sat to fees, above ${bound} sat (the latest commitment's fee / the configured maximum)`,
    );
  const richest = states.reduce((a, s) => (s.ourMsat > a.ourMsat ? s : a));
  const due = msatToSatFloor(splitFee(msat(richest.ourMsat), msat(richest.peerMsat), sat(p.closeFee)).owner);
  const ourScript = toOtherScript(ourFinal);
  const ours = sumSat(built.outputs.filter((o) => o.redeemScript.equals(ourScript)).map((o) => o.amount));
  if (!isDust(due) && ours < due)
    throw refuse(
      "BALANCE_MISMATCH",
      `channel ${channel}: the close pays us ${ours} sat; our balance owes us ${due} sat after our share of the fee`,
    );
}
