import type { Locktime, Msat } from "@ln/bitcoin";

/**
 * The draft's two-sided staged/committed model (section 3) as plain data. Each side's updates
 * form a log in sending order; a commitment is the result of applying a prefix of each log to
 * the previous commitment. Bytes are lowercase hex so that state serialises losslessly.
 */
export type Side = "local" | "remote";
export const otherSide = (s: Side): Side => (s === "local" ? "remote" : "local");

export interface Htlc {
  id: bigint;
  /** Who offered it; ids are unique per offerer. */
  offerer: Side;
  amountMsat: Msat;
  rHash: string;
  expiry: Locktime;
}

export type Update =
  /**
   * `route`: the onion (hex), kept here only, not in the commitment views (each would hold a
   * copy of up to 1,366 bytes per HTLC); it leaves with the entry once both commitments have it.
   */
  | { kind: "add"; htlc: Htlc; route: string }
  /** Removes an HTLC the sender's peer offered: the sender gets its amount. */
  | { kind: "fulfill"; id: bigint; r: string }
  /** Removes an HTLC the sender's peer offered: the amount returns to the offerer. */
  | { kind: "fail"; id: bigint; reason: string }
  | { kind: "fee"; feeRate: number };

/** The content of one commitment transaction. */
export interface CommitmentView {
  number: bigint;
  /** How many of each side's updates (counted from the start of the channel) it includes. */
  localUpdates: number;
  remoteUpdates: number;
  /** To-final balances before the fee. */
  localMsat: Msat;
  remoteMsat: Msat;
  htlcs: Htlc[];
  feeRate: number;
}

export class UpdateError extends Error {
  override readonly name = "UpdateError";
  constructor(
    message: string,
    /** `cannot_fund`: a side's balance does not cover its HTLC; otherwise the logs disagree. */
    readonly kind: "cannot_fund" | "inconsistent" = "inconsistent",
  ) {
    super(message);
  }
}

const removedBy = (u: Update): u is Extract<Update, { kind: "fulfill" | "fail" }> =>
  u.kind === "fulfill" || u.kind === "fail";

/**
 * Applies newly included updates to a commitment. Adds go first, then removals (a removal only
 * names an HTLC of the other side, which may arrive in the same step), then fee updates: when
 * both sides have a new one, the other side's wins on the owner's commitment, since that is the
 * rate the owner acknowledged (draft 3.5). Deterministic, so both nodes compute the same view.
 */
export function applyUpdates(
  prev: CommitmentView,
  owner: Side,
  fromLocal: readonly Update[],
  fromRemote: readonly Update[],
  number: bigint,
): CommitmentView {
  let htlcs = [...prev.htlcs];
  const msat: Record<Side, bigint> = { local: prev.localMsat, remote: prev.remoteMsat };
  const bySide: [Side, readonly Update[]][] = [
    ["local", fromLocal],
    ["remote", fromRemote],
  ];
  for (const [side, updates] of bySide)
    for (const u of updates) {
      if (u.kind !== "add") continue;
      if (u.htlc.offerer !== side) throw new UpdateError("an HTLC is offered by the side that adds it");
      if (htlcs.some((h) => h.offerer === side && h.id === u.htlc.id))
        throw new UpdateError(`HTLC ${u.htlc.id} is already in the commitment`);
      if (msat[side] < u.htlc.amountMsat)
        throw new UpdateError(
          `the ${side} side cannot fund HTLC ${u.htlc.id} of ${u.htlc.amountMsat} msat`,
          "cannot_fund",
        );
      msat[side] -= u.htlc.amountMsat;
      htlcs.push(u.htlc);
    }
  for (const [side, updates] of bySide)
    for (const u of updates) {
      if (!removedBy(u)) continue;
      const offerer = otherSide(side);
      const htlc = htlcs.find((h) => h.offerer === offerer && h.id === u.id);
      if (!htlc)
        throw new UpdateError(`HTLC ${u.id} offered by the ${offerer} side is not in the commitment`);
      htlcs = htlcs.filter((h) => h !== htlc);
      msat[u.kind === "fulfill" ? side : offerer] += htlc.amountMsat;
    }
  const lastFee = (updates: readonly Update[]): number | undefined =>
    updates.reduce<number | undefined>((rate, u) => (u.kind === "fee" ? u.feeRate : rate), undefined);
  const other = owner === "local" ? fromRemote : fromLocal;
  const own = owner === "local" ? fromLocal : fromRemote;
  return {
    number,
    localUpdates: prev.localUpdates + fromLocal.length,
    remoteUpdates: prev.remoteUpdates + fromRemote.length,
    localMsat: msat.local as Msat,
    remoteMsat: msat.remote as Msat,
    htlcs,
    feeRate: lastFee(other) ?? lastFee(own) ?? prev.feeRate,
  };
}

/** A read-only log of one side's updates, of which the first `base` have been pruned. */
export interface UpdateLog {
  base: number;
  entries: { update: Update; seq: number }[];
}

export const emptyLog = (): UpdateLog => ({ base: 0, entries: [] });
export const logLength = (log: UpdateLog): number => log.base + log.entries.length;

/** Updates with positions [from, to) of the whole log. */
export function logSlice(log: UpdateLog, from: number, to: number): Update[] {
  if (from < log.base) throw new UpdateError(`update ${from} was pruned`);
  return log.entries.slice(from - log.base, to - log.base).map((e) => e.update);
}

/** How many of our updates were sent as one of our first `ack` messages. */
export function updatesAcked(log: UpdateLog, ack: number): number {
  let n = log.base;
  for (const e of log.entries) {
    if (e.seq > ack) break;
    n++;
  }
  return n;
}

/** Drops entries both commitments already include. */
export function pruneLog(log: UpdateLog, includedInBoth: number): UpdateLog {
  if (includedInBoth <= log.base) return log;
  return { base: includedInBoth, entries: log.entries.slice(includedInBoth - log.base) };
}
