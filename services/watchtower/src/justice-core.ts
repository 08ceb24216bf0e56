/*~ The life of one breach, as a pure function (state, event) -> (state, actions) (DESIGN.md 7;
 * draft 6.1: spend every output of a revoked commitment well before `delay`, and keep watching
 * until the spends are deeply buried). No I/O: the shell (tower.ts) observes the chain, feeds the
 * observations in as events, and carries out the actions: sign, persist, then broadcast.
 *
 * A breach's justice may take several transactions ("groups", each below 100,000 bytes); each
 * group has a series of versions, each replacing the previous one at a higher fee (BIP125). Only
 * the latest version of a group is ever broadcast again, so two different justice transactions
 * for the same inputs are never both sent except as a deliberate replacement. */

export interface JusticeSettings {
  /** A version unconfirmed this many blocks after it was signed is replaced. */
  bumpBlocks: number;
  /** Pruned once every group's justice is this many blocks deep. */
  buryDepth: number;
  /**
   * Satoshi per 1000 bytes never exceeded, first signature or bump (WATCHTOWER_MAX_FEE_RATE, at
   * most the signer's SIGNER_MAX_JUSTICE_FEE_RATE, which refuses above). Default 500,000.
   */
  maxFeeRate?: number;
  /**
   * The largest share of what a justice transaction takes that its fee may be, in percent
   * (WATCHTOWER_MAX_FEE_PERCENT, at most the signer's SIGNER_MAX_JUSTICE_FEE_PERCENT). Default 50.
   */
  maxFeePercent?: number;
}

/** The default fee-rate ceiling: the signer's default SIGNER_MAX_JUSTICE_FEE_RATE. */
export const DEFAULT_MAX_FEE_RATE = 500_000;
/** The default share ceiling: the signer's default SIGNER_MAX_JUSTICE_FEE_PERCENT. */
export const DEFAULT_MAX_FEE_PERCENT = 50;

/**
 * The highest rate (satoshi per 1000 bytes) at which no transaction's fee exceeds `percent` of
 * what it takes: each pays ceil(size * rate / 1000), which must stay at most taken * percent / 100.
 */
export function shareCeiling(
  txs: readonly { takenSat: bigint; size: number }[],
  percent = DEFAULT_MAX_FEE_PERCENT,
): number {
  let rate = Number.MAX_SAFE_INTEGER;
  for (const t of txs) {
    const allowed = (t.takenSat * BigInt(percent)) / 100n; // the fee may be up to this
    // ceil(size * r / 1000) <= allowed  <=>  size * r <= allowed * 1000
    rate = Math.min(rate, Number((allowed * 1000n) / BigInt(t.size)));
  }
  return rate;
}

export interface JusticeVersion {
  txid: string;
  /** Satoshi per 1000 bytes. */
  feeRate: number;
  /** The tip when it was signed (and first broadcast). */
  signedHeight: number;
}

export interface JusticeGroup {
  /** Index of this transaction in the plan (planJustice's spends). */
  group: number;
  /** Every version signed, oldest first; the last one is the one broadcast. */
  versions: JusticeVersion[];
  /** Height of the block confirming one of its versions, while on the best chain. */
  confirmedHeight: number | undefined;
  /** Its latest version is at the fee-rate ceiling: no more bumps (said once). */
  atFeeCap?: boolean;
}

export interface BreachState {
  /** The breach as seen (its txid may be malleated; the tower has its serialization). */
  breachTxid: string;
  /** How many groups the plan has; 0 until the first plan. */
  groupCount: number;
  groups: JusticeGroup[];
  /** The revoked commitment's `delay` in blocks: how long the peer must wait for its own output. */
  delayBlocks: number;
  /** Height of the block confirming the breach, while on the best chain. */
  breachConfirmedHeight: number | undefined;
  /** The tip when the signer was first found unreachable for the pending signatures; cleared once signed. */
  waitingForSignerSince: number | undefined;
  /** The signer refused: how many times (a bug or an attack; retried each block, never silently). */
  refusals: number;
}

/** What the shell saw of one transaction: confirmations (0: unconfirmed or unknown) and mempool membership. */
export interface TxSeen {
  confirmations: number;
  inMempool: boolean;
  /** Which version this is, for a group (an older one may have been mined). */
  txid?: string;
}

export type JusticeEvent =
  /**
   * A look at the chain (a new block, a retry, the breach just matched). `fees` is the current
   * estimate in satoshi per 1000 bytes; `breach` what the node knows of the breach; `groups[i]`
   * of group i's versions, the most confirmed one.
   */
  | {
      kind: "observe";
      tip: number;
      feeRate: number;
      breach: TxSeen;
      groups: readonly (TxSeen | undefined)[];
    }
  /** The plan has this many groups (the shell planned at the first `sign`). */
  | { kind: "planned"; groupCount: number }
  /** The signer signed a version of a group; it is persisted with the state before any broadcast. */
  | { kind: "signed"; group: number; txid: string; feeRate: number; tip: number }
  /** The signer could not be reached (gRPC UNAVAILABLE or deadline). */
  | { kind: "signer_unavailable"; tip: number }
  /** The signer refused to sign. */
  | { kind: "signer_refused"; tip: number; reason: string };

export type BroadcastKind = "first" | "replacement" | "rebroadcast";

export type JusticeAction =
  /** Build and sign these groups at this rate (all groups when the plan is not made yet). */
  | { kind: "sign"; groups: readonly number[] | "all"; feeRate: number }
  /** Send the breach itself again: it left the mempool and the chain (a reorg). */
  | { kind: "broadcast_breach" }
  /** Send the latest version of a group. */
  | { kind: "broadcast"; group: number; txid: string; why: BroadcastKind }
  /** A group's justice was confirmed (first time or again after a reorg). */
  | { kind: "confirmed"; group: number; txid: string | undefined }
  /** Signatures are overdue because the signer is unreachable: raise the alarm. */
  | { kind: "alert"; blocksLeft: number; waitingSince: number }
  /** The signer refused: log loudly and count. */
  | { kind: "refused"; reason: string }
  /** A group is due for a bump but already pays the ceiling: it is no longer bumped (said once). */
  | { kind: "fee_capped"; group: number; feeRate: number }
  /** Every group is buried: forget the breach and its record. */
  | { kind: "prune" };

export const newBreach = (breachTxid: string, delayBlocks: number): BreachState => ({
  breachTxid,
  groupCount: 0,
  groups: [],
  delayBlocks,
  breachConfirmedHeight: undefined,
  waitingForSignerSince: undefined,
  refusals: 0,
});

/**
 * BIP125 asks more of a replacement than its own fee; +25 % and +1000 sat/kB clear it with room.
 * Never above `cap`: a result not above `previous` means no bump.
 */
export function bumpedRate(previous: number, estimate: number, cap = DEFAULT_MAX_FEE_RATE): number {
  return Math.min(cap, Math.max(estimate, Math.ceil(previous * 1.25), previous + 1000));
}

/**
 * Blocks left before the revoked commitment's delay runs out and the peer may take its own
 * output: counted from the breach's confirmation, the whole delay while it is unconfirmed.
 */
export function blocksLeft(s: BreachState, tip: number): number {
  if (s.breachConfirmedHeight === undefined) return s.delayBlocks;
  return s.breachConfirmedHeight + s.delayBlocks - tip - 1;
}

const latest = (g: JusticeGroup): JusticeVersion | undefined => g.versions[g.versions.length - 1];

/** Groups still to be signed for the first time. */
const unsigned = (s: BreachState): number[] =>
  s.groupCount === 0
    ? []
    : [...Array(s.groupCount).keys()].filter((i) => latest(s.groups[i] ?? emptyGroup(i)) === undefined);

const emptyGroup = (group: number): JusticeGroup => ({ group, versions: [], confirmedHeight: undefined });

export function step(
  state: BreachState,
  event: JusticeEvent,
  settings: JusticeSettings,
): { state: BreachState; actions: JusticeAction[] } {
  const s: BreachState = { ...state, groups: state.groups.map((g) => ({ ...g, versions: [...g.versions] })) };
  const actions: JusticeAction[] = [];
  switch (event.kind) {
    case "planned": {
      s.groupCount = event.groupCount;
      for (let i = s.groups.length; i < event.groupCount; i++) s.groups.push(emptyGroup(i));
      return { state: s, actions };
    }
    case "signed": {
      const g = s.groups[event.group] ?? emptyGroup(event.group);
      s.groups[event.group] = g;
      const previous = latest(g);
      if (previous?.txid === event.txid) return { state: s, actions };
      g.versions.push({ txid: event.txid, feeRate: event.feeRate, signedHeight: event.tip });
      if (unsigned(s).length === 0) s.waitingForSignerSince = undefined;
      actions.push({
        kind: "broadcast",
        group: event.group,
        txid: event.txid,
        why: previous === undefined ? "first" : "replacement",
      });
      return { state: s, actions };
    }
    case "signer_unavailable": {
      s.waitingForSignerSince ??= event.tip;
      actions.push({
        kind: "alert",
        blocksLeft: blocksLeft(s, event.tip),
        waitingSince: s.waitingForSignerSince,
      });
      return { state: s, actions };
    }
    case "signer_refused": {
      s.refusals += 1;
      actions.push({ kind: "refused", reason: event.reason });
      return { state: s, actions };
    }
    case "observe":
      return observe(s, event, settings);
  }
}

function observe(
  s: BreachState,
  e: Extract<JusticeEvent, { kind: "observe" }>,
  settings: JusticeSettings,
): { state: BreachState; actions: JusticeAction[] } {
  const actions: JusticeAction[] = [];
  s.breachConfirmedHeight = e.breach.confirmations > 0 ? e.tip - e.breach.confirmations + 1 : undefined;
  // Without the breach in the mempool or the chain its justice is invalid: send it again first.
  const breachGone = e.breach.confirmations === 0 && !e.breach.inMempool;
  if (breachGone) actions.push({ kind: "broadcast_breach" });

  const cap = settings.maxFeeRate ?? DEFAULT_MAX_FEE_RATE;
  const firstRate = Math.min(cap, e.feeRate);
  if (s.groupCount === 0) {
    actions.push({ kind: "sign", groups: "all", feeRate: firstRate });
    return { state: s, actions };
  }
  const toSign = unsigned(s);
  const bumps: number[] = [];
  let bumpRate = 0;
  let buried = true;
  for (const g of s.groups) {
    const seen = e.groups[g.group] ?? { confirmations: 0, inMempool: false };
    const v = latest(g);
    if (seen.confirmations > 0) {
      const height = e.tip - seen.confirmations + 1;
      if (g.confirmedHeight !== height)
        actions.push({ kind: "confirmed", group: g.group, txid: seen.txid ?? v?.txid });
      g.confirmedHeight = height;
      if (seen.confirmations < settings.buryDepth) buried = false;
      continue;
    }
    g.confirmedHeight = undefined;
    buried = false;
    if (v === undefined) continue; // in toSign
    const due = e.tip - v.signedHeight >= settings.bumpBlocks && !breachGone;
    const rate = bumpedRate(v.feeRate, e.feeRate, cap);
    if (due && rate > v.feeRate) {
      bumps.push(g.group);
      bumpRate = Math.max(bumpRate, rate);
      continue;
    }
    if (due && g.atFeeCap !== true) {
      g.atFeeCap = true;
      actions.push({ kind: "fee_capped", group: g.group, feeRate: v.feeRate });
    }
    if (!seen.inMempool)
      actions.push({ kind: "broadcast", group: g.group, txid: v.txid, why: "rebroadcast" });
  }
  if (buried && toSign.length === 0) return { state: s, actions: [{ kind: "prune" }] };
  if (toSign.length > 0) actions.push({ kind: "sign", groups: toSign, feeRate: firstRate });
  if (bumps.length > 0) actions.push({ kind: "sign", groups: bumps, feeRate: bumpRate });
  if (s.waitingForSignerSince !== undefined && toSign.length > 0)
    actions.push({ kind: "alert", blocksLeft: blocksLeft(s, e.tip), waitingSince: s.waitingForSignerSince });
  return { state: s, actions };
}
