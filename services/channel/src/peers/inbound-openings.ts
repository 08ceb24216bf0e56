/**
 * Bounds on the channels peers open to us (issue 13): each inbound opening costs a signer channel,
 * a chain watch of our final key and a channel row before the peer has put anything at stake, and
 * a node key is free to make. So: at most `maxOpening` inbound channels still opening at once (all
 * peers; per peer it is one, the one live channel per peer), and a peer whose openings failed
 * before their anchor `perPeerFailures` times in the last `windowMs` (all peers together:
 * `totalFailures` times) is refused until the window has passed. Openings that succeed are not
 * counted, so a peer that closes and opens again is never held back.
 *
 * The counts come from the store (`inboundOpeningStats`), so every replica decides the same.
 */

export interface InboundOpeningLimits {
  /** Inbound channels still opening (not yet normal), all peers together. */
  maxOpening: number;
  /** Inbound openings of one peer that failed before their anchor, per window. */
  perPeerFailures: number;
  /** Inbound openings of all peers together that failed before their anchor, per window. */
  totalFailures: number;
  windowMs: number;
}

export const DEFAULT_INBOUND_OPENING_LIMITS: Readonly<InboundOpeningLimits> = Object.freeze({
  maxOpening: 20,
  perPeerFailures: 3,
  totalFailures: 60,
  windowMs: 3_600_000,
});

export type InboundRefusal = "TOO_MANY_OPENING" | "PEER_FAILURES" | "TOTAL_FAILURES";

/** What the store counts for one peer's new opening (`ChannelStore.inboundOpeningStats`). */
export interface InboundOpeningStats {
  opening: number;
  peerFailures: number;
  totalFailures: number;
}

/** Whether a peer may open a channel to us now; which bound refuses it otherwise. */
export function checkInboundOpening(
  l: InboundOpeningLimits,
  s: InboundOpeningStats,
): { ok: true } | { ok: false; code: InboundRefusal; problem: string } {
  const window = `${Math.round(l.windowMs / 1000)} s`;
  if (s.opening >= l.maxOpening)
    return {
      ok: false,
      code: "TOO_MANY_OPENING",
      problem: `we have ${s.opening} channels opening, at most ${l.maxOpening}: try again later`,
    };
  if (s.peerFailures >= l.perPeerFailures)
    return {
      ok: false,
      code: "PEER_FAILURES",
      problem: `${s.peerFailures} of your openings failed in the last ${window}, at most ${l.perPeerFailures}: try again later`,
    };
  if (s.totalFailures >= l.totalFailures)
    return {
      ok: false,
      code: "TOTAL_FAILURES",
      problem: `${s.totalFailures} openings failed in the last ${window}, at most ${l.totalFailures}: try again later`,
    };
  return { ok: true };
}
