/**
 * Draft 3.1, "Risks With HTLC Timeouts": every HTLC has a redemption deadline, in either
 * direction. When the connection fails we broadcast our own commitment, where our path to an HTLC
 * (the timeout of one we offered, the R path of one offered to us) waits the CSV `delay` the peer
 * asked for, while the peer's competing path waits for `expiry` at most. So an HTLC must have left
 * the commitments by `expiry - delay - margin` (the margin covers both confirmations), or we go on
 * chain while our path still comes first (DESIGN.md 6, "Deadlines both ways").
 *
 * Pure arithmetic over the chain's height and time as the block events report them. A block's
 * time is at least the median time past that lock times are checked against (BIP113), so taking
 * it as "now" makes a deadline in seconds come early, never late. When `delay` and `expiry` are in
 * different units, the delay is converted as if blocks came twice as fast (seconds to blocks) or
 * twice as slow (blocks to seconds) as the 10-minute target: the deadline comes earlier.
 */
import { isBlocks, type Locktime } from "@ln/bitcoin";
import type { ChannelState } from "./types.js";
import type { Htlc } from "./views.js";

/** Seconds per block when a delay in seconds is counted in blocks: blocks may come fast. */
export const FAST_BLOCK_SECONDS = 300;
/** Seconds per block when a delay in blocks is counted in seconds: blocks may come slowly. */
export const SLOW_BLOCK_SECONDS = 1200;
/** BIP68 counts time-based delays in whole units of 512 seconds, rounded up (scripts' relativeDelay). */
const SEQUENCE_GRANULARITY_SECONDS = 512;

/** The fail reason of an incoming HTLC refused for its expiry (the payee's too). */
export const EXPIRY_TOO_SOON = "expiry too soon";

export interface DeadlineMargin {
  blocks: number;
  seconds: number;
}

/** What the CSV `delay` lasts in seconds as BIP68 enforces it, or in blocks at most. */
const delaySeconds = (delay: Locktime): number =>
  isBlocks(delay)
    ? delay.blocks * SLOW_BLOCK_SECONDS
    : Math.ceil(delay.seconds / SEQUENCE_GRANULARITY_SECONDS) * SEQUENCE_GRANULARITY_SECONDS;
/** What the CSV `delay` lasts in blocks at most (a delay in seconds as if blocks came fast). */
export const delayBlocks = (delay: Locktime): number =>
  isBlocks(delay) ? delay.blocks : Math.ceil(delaySeconds(delay) / FAST_BLOCK_SECONDS);

/**
 * The redemption deadline of an HTLC with `expiry` on a commitment whose HTLC outputs wait
 * `delay`: from this height (or block time) on, the HTLC must no longer be in a commitment.
 */
export function redemptionDeadline(expiry: Locktime, delay: Locktime, margin: DeadlineMargin): Locktime {
  return isBlocks(expiry)
    ? { blocks: expiry.blocks - delayBlocks(delay) - margin.blocks }
    : { seconds: expiry.seconds - delaySeconds(delay) - margin.seconds };
}

export const deadlineReached = (chain: { height: number; time: number }, deadline: Locktime): boolean =>
  isBlocks(deadline) ? chain.height >= deadline.blocks : chain.time >= deadline.seconds;

/**
 * Whether an HTLC of this channel with `expiry` is at or past its redemption deadline now: the
 * delay is the one on our commitment (the peer's `open_channel` delay, DESIGN.md 6), the margin
 * our policy's. The same rule for offering, accepting and keeping an HTLC, either direction.
 */
export function htlcDeadlinePassed(
  s: Pick<ChannelState, "chain" | "policy" | "remote">,
  expiry: Locktime,
): boolean {
  if (!s.remote) throw new Error("the channel has no peer terms yet: HTLCs have no deadline");
  const margin = { blocks: s.policy.deadlineMarginBlocks, seconds: s.policy.deadlineMarginSeconds };
  return deadlineReached(s.chain, redemptionDeadline(expiry, s.remote.delay, margin));
}

/**
 * The earliest expiry, in the unit of `like`, whose deadline has not passed now: what an operator
 * must give at least (htlcDeadlinePassed is false for it and true for the one before).
 */
export function earliestExpiry(
  s: Pick<ChannelState, "chain" | "policy" | "remote">,
  like: Locktime,
): Locktime {
  if (!s.remote) throw new Error("the channel has no peer terms yet: HTLCs have no deadline");
  return isBlocks(like)
    ? { blocks: s.chain.height + delayBlocks(s.remote.delay) + s.policy.deadlineMarginBlocks + 1 }
    : { seconds: s.chain.time + delaySeconds(s.remote.delay) + s.policy.deadlineMarginSeconds + 1 };
}

/** earliestExpiry in words, for a refusal: what to give, and what decides it. */
export function earliestExpiryText(
  s: Pick<ChannelState, "chain" | "policy" | "remote">,
  like: Locktime,
): string {
  const e = earliestExpiry(s, like);
  const delay = s.remote?.delay ?? e;
  return isBlocks(e)
    ? `block ${e.blocks} or later (the tip ${s.chain.height} + the peer's delay of ${delayBlocks(delay)} blocks + our margin of ${s.policy.deadlineMarginBlocks} + 1)`
    : `${e.seconds} (unix seconds) or later (the last block's time ${s.chain.time} + the peer's delay of ${delaySeconds(delay)} s + our margin of ${s.policy.deadlineMarginSeconds} s + 1)`;
}

/**
 * The first HTLC in a commitment that can still reach the chain (ours, the peer's current and
 * pending) that is past its deadline and ours to see gone: one we offered (draft 3.1), or one
 * offered to us whose R we sent in `update_fulfill_htlc` (the peer did not take the removal).
 * An HTLC offered to us without R is the peer's to time out: not our failure.
 */
export function overdueHtlc(s: ChannelState): { htlc: Htlc; fulfilled: boolean } | undefined {
  const fulfilled = new Set(
    s.localLog.entries.flatMap((e) => (e.update.kind === "fulfill" ? [e.update.id] : [])),
  );
  for (const v of [s.localCommit, s.remoteCommit, s.remotePending])
    for (const h of v?.htlcs ?? []) {
      const watched = h.offerer === "local" || fulfilled.has(h.id);
      if (watched && htlcDeadlinePassed(s, h.expiry)) return { htlc: h, fulfilled: h.offerer === "remote" };
    }
  return undefined;
}
