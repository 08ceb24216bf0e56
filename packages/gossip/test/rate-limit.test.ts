import { GossipRateLimiter } from "@ln/gossip";
import { describe, expect, it } from "vitest";

function limiter(burst: number, perSecond: number, maxPeers?: number) {
  let now = 1_000_000;
  const l = new GossipRateLimiter({
    burst,
    perSecond,
    now: () => now,
    ...(maxPeers === undefined ? {} : { maxPeers }),
  });
  return { l, advance: (ms: number) => (now += ms) };
}

const takes = (l: GossipRateLimiter, peer: string, n: number): boolean[] =>
  Array.from({ length: n }, () => l.take(peer));

describe("the per-peer token bucket", () => {
  it("lets a quiet peer send its burst at once, then refuses until time refills it", () => {
    const { l, advance } = limiter(3, 2);
    expect(takes(l, "p", 4)).toEqual([true, true, true, false]);
    advance(499); // 0.998 token: not yet one
    expect(l.take("p")).toBe(false);
    advance(1); // 1 token
    expect(takes(l, "p", 2)).toEqual([true, false]);
    advance(10_000); // refilled, but never above the burst
    expect(l.available("p")).toBe(3);
    expect(takes(l, "p", 4)).toEqual([true, true, true, false]);
  });

  it("keeps each peer's bucket apart", () => {
    const { l } = limiter(2, 1);
    expect(takes(l, "a", 3)).toEqual([true, true, false]);
    expect(takes(l, "b", 2)).toEqual([true, true]);
  });

  it("a refused message costs nothing: steady sending at the rate is always taken", () => {
    const { l, advance } = limiter(1, 4);
    expect(l.take("p")).toBe(true);
    for (let i = 0; i < 20; i++) {
      advance(250);
      expect(l.take("p")).toBe(true);
      expect(l.take("p")).toBe(false);
    }
  });

  it("remembers at most maxPeers: the least recently seen is forgotten (a full bucket again)", () => {
    const { l } = limiter(1, 1, 2);
    l.take("a");
    l.take("b");
    l.take("c"); // forgets a
    expect(l.available("b")).toBe(0);
    expect(l.available("a")).toBe(1);
  });

  it("a clock that goes back adds nothing", () => {
    const { l, advance } = limiter(1, 1);
    l.take("p");
    advance(-5000);
    expect(l.take("p")).toBe(false);
  });

  it("refuses a bucket that could never take a message", () => {
    expect(() => new GossipRateLimiter({ burst: 0, perSecond: 1, now: () => 0 })).toThrow(RangeError);
    expect(() => new GossipRateLimiter({ burst: 1, perSecond: 0, now: () => 0 })).toThrow(RangeError);
  });
});
