/**
 * Bounds on the channels peers open to us (issue 13): each inbound opening costs a signer channel,
 * a chain watch of our final key and a channel row before the peer has put anything at stake, and
 * a node key is free to make. So: at most `maxOpening` inbound channels still opening at once (all
 * peers; per peer it is one, the one live channel per peer), and at most `perPeer` new inbound
 * openings per peer and `total` for all peers together in any `windowMs`. The counts of the
 * window are kept in memory, at most `total` timestamps in all.
 */

export interface InboundOpeningLimits {
  /** Inbound channels still opening (not yet normal), all peers together. */
  maxOpening: number;
  /** New inbound openings one peer may start per window. */
  perPeer: number;
  /** New inbound openings all peers together may start per window. */
  total: number;
  windowMs: number;
}

export const DEFAULT_INBOUND_OPENING_LIMITS: Readonly<InboundOpeningLimits> = Object.freeze({
  maxOpening: 20,
  perPeer: 3,
  total: 60,
  windowMs: 3_600_000,
});

export type InboundRefusal = "TOO_MANY_OPENING" | "PEER_RATE" | "TOTAL_RATE";

export class InboundOpenings {
  /** When each opening of the window was admitted, per peer (all of them also in `all`). */
  private readonly byPeer = new Map<string, number[]>();
  private all: number[] = [];

  constructor(
    readonly limits: InboundOpeningLimits = DEFAULT_INBOUND_OPENING_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Admits a new inbound opening from `peer` (counted from now on), given how many inbound
   * channels are still opening; or says which bound refuses it.
   */
  admit(
    peer: string,
    openingNow: number,
  ): { ok: true } | { ok: false; code: InboundRefusal; problem: string } {
    const t = this.now();
    this.forgetUpTo(t - this.limits.windowMs);
    const l = this.limits;
    const window = `${Math.round(l.windowMs / 1000)} s`;
    if (openingNow >= l.maxOpening)
      return {
        ok: false,
        code: "TOO_MANY_OPENING",
        problem: `we have ${openingNow} channels opening, at most ${l.maxOpening}: try again later`,
      };
    const mine = this.byPeer.get(peer) ?? [];
    if (mine.length >= l.perPeer)
      return {
        ok: false,
        code: "PEER_RATE",
        problem: `you opened ${mine.length} channels with us in the last ${window}, at most ${l.perPeer}`,
      };
    if (this.all.length >= l.total)
      return {
        ok: false,
        code: "TOTAL_RATE",
        problem: `${this.all.length} channels were opened with us in the last ${window}, at most ${l.total}: try again later`,
      };
    mine.push(t);
    this.byPeer.set(peer, mine);
    this.all.push(t);
    return { ok: true };
  }

  /** Drops the openings admitted at or before `cutoff`: each counts for `windowMs`. */
  private forgetUpTo(cutoff: number): void {
    if ((this.all[0] ?? Infinity) > cutoff) return;
    this.all = this.all.filter((x) => x > cutoff);
    for (const [peer, times] of this.byPeer) {
      const kept = times.filter((x) => x > cutoff);
      if (kept.length === 0) this.byPeer.delete(peer);
      else this.byPeer.set(peer, kept);
    }
  }
}
