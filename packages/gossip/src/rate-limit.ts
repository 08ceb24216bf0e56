/**
 * A token bucket per peer: each peer may send `burst` gossip messages at once and `perSecond`
 * more each second after. Pure: the clock is injected (milliseconds).
 */
export interface RateLimiterOptions {
  /** Bucket size: messages a quiet peer may send at once. */
  burst: number;
  /** Refill rate, messages per second. */
  perSecond: number;
  /** The clock, in milliseconds. */
  now: () => number;
  /** Peers remembered at most; the longest idle are forgotten first (a full bucket anyway). */
  maxPeers?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class GossipRateLimiter {
  readonly #o: Required<RateLimiterOptions>;
  readonly #buckets = new Map<string, Bucket>();

  constructor(o: RateLimiterOptions) {
    if (!(o.burst >= 1) || !(o.perSecond > 0)) throw new RangeError("burst >= 1 and perSecond > 0");
    this.#o = { maxPeers: 10_000, ...o };
  }

  #refilled(peer: string): Bucket {
    const now = this.#o.now();
    const b = this.#buckets.get(peer);
    if (b === undefined) return { tokens: this.#o.burst, at: now };
    const elapsed = Math.max(0, now - b.at);
    return { tokens: Math.min(this.#o.burst, b.tokens + (elapsed * this.#o.perSecond) / 1000), at: now };
  }

  /** Takes one token for `peer`: true if it had one (the message is taken), false if rate-limited. */
  take(peer: string): boolean {
    const b = this.#refilled(peer);
    const ok = b.tokens >= 1;
    if (ok) b.tokens -= 1;
    this.#buckets.delete(peer); // re-inserted last: the Map's order is least recently used first
    this.#buckets.set(peer, b);
    while (this.#buckets.size > this.#o.maxPeers) {
      const oldest = this.#buckets.keys().next().value as string;
      this.#buckets.delete(oldest);
    }
    return ok;
  }

  /** Tokens `peer` has now (not taking any). */
  available(peer: string): number {
    return this.#refilled(peer).tokens;
  }

  forget(peer: string): void {
    this.#buckets.delete(peer);
  }
}
