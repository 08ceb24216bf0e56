/** Why a gossip message is refused (DESIGN.md 10). */
export type GossipRejection =
  /** A signature does not sign the message's digest with its key (or is not low-S). */
  | "BAD_SIGNATURE"
  /** A channel_update for a channel not in the graph. */
  | "UNKNOWN_CHANNEL"
  /** No output at the short_channel_id's position on chain. */
  | "ANCHOR_NOT_FOUND"
  /** The anchor output is spent: the channel is closed. */
  | "ANCHOR_SPENT"
  /** The output is not the P2SH 2-of-2 of the announced commit keys. */
  | "ANCHOR_MISMATCH"
  /** Not newer than what we hold for the same channel direction or node. */
  | "STALE_TIMESTAMP"
  /** Too far in the future. */
  | "FUTURE_TIMESTAMP"
  /** The peer sent more gossip than its budget. */
  | "RATE_LIMITED"
  /** Breaks a field rule: undecodable, ids out of order, too long an alias, htlc_min > htlc_max, ... */
  | "MALFORMED";

export type GossipCheck = { ok: true } | { ok: false; code: GossipRejection; problem: string };

export const OK: GossipCheck = { ok: true };
export const refuse = (code: GossipRejection, problem: string): GossipCheck => ({ ok: false, code, problem });

/** Thrown by the decoders; `code` is always a GossipRejection (MALFORMED for bad bytes). */
export class GossipError extends Error {
  override readonly name = "GossipError";
  constructor(
    readonly code: GossipRejection,
    readonly problem: string,
  ) {
    super(problem);
  }
}
