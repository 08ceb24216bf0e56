/**
 * The channel service's gossip decisions (gossip/rules.ts), with hand-made values: the half
 * announcements the two ends exchange and their combination, which of our channels is announced,
 * our channel_update from a policy, when a new one is due, and the anchor rechecks' slices.
 */
import { msat } from "@ln/bitcoin";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  announceable,
  combineHalves,
  defaultAlias,
  EMPTY_SIG,
  halfAnnouncement,
  halfSignedBy,
  isHalf,
  nextTimestamp,
  ourDirection,
  recheckSlice,
  updateDue,
  updateFromPolicy,
} from "../src/gossip/rules.js";

const key = (b: number): Buffer => Buffer.concat([Buffer.from([2]), Buffer.alloc(32, b)]);
const sig = (b: number): Buffer => Buffer.alloc(64, b);
const low = key(1);
const high = key(9);
// Height 700, tx 3, output 1: 700 << 40 | 3 << 16 | 1.
const SCID = (700n << 40n) | (3n << 16n) | 1n;

describe("half announcements", () => {
  const mine = halfAnnouncement({
    shortChannelId: SCID,
    ourNodeId: low,
    peerNodeId: high,
    ourCommitKey: key(3),
    peerCommitKey: key(7),
    nodeSig: sig(0x11),
    commitSig: sig(0x12),
  });
  const theirs = halfAnnouncement({
    shortChannelId: SCID,
    ourNodeId: high,
    peerNodeId: low,
    ourCommitKey: key(7),
    peerCommitKey: key(3),
    nodeSig: sig(0x21),
    commitSig: sig(0x22),
  });

  it("puts the lower node id first, with its commit key and its signatures in slot 1", () => {
    expect(mine).toEqual({
      shortChannelId: SCID,
      nodeId1: low,
      nodeId2: high,
      commitKey1: key(3),
      commitKey2: key(7),
      nodeSig1: sig(0x11),
      nodeSig2: EMPTY_SIG,
      commitSig1: sig(0x12),
      commitSig2: EMPTY_SIG,
    });
    expect(theirs.nodeId1).toEqual(low);
    expect(theirs.commitKey2).toEqual(key(7));
    expect([halfSignedBy(mine), halfSignedBy(theirs)]).toEqual([1, 2]);
    expect([isHalf(mine), isHalf(theirs)]).toEqual([true, true]);
  });

  it("combines two complementary halves into the full announcement, in either order", () => {
    const full = {
      ...mine,
      nodeSig2: sig(0x21),
      commitSig2: sig(0x22),
    };
    expect(combineHalves(mine, theirs)).toEqual(full);
    expect(combineHalves(theirs, mine)).toEqual(full);
    expect(isHalf(full)).toBe(false);
    expect(halfSignedBy(full)).toBeUndefined();
  });

  it("refuses halves of different channels or keys, or two of the same side", () => {
    expect(combineHalves(mine, { ...theirs, shortChannelId: SCID + 1n })).toBeUndefined();
    expect(combineHalves(mine, { ...theirs, commitKey2: key(8) })).toBeUndefined();
    expect(combineHalves(mine, mine)).toBeUndefined();
    // One slot of a side filled, the other empty: not a half of anyone.
    expect(halfSignedBy({ ...mine, commitSig1: EMPTY_SIG })).toBeUndefined();
  });

  it("our direction: 0 when our key is the lower", () => {
    expect(ourDirection(low, high)).toBe(0);
    expect(ourDirection(high, low)).toBe(1);
  });
});

describe("announceable", () => {
  const c = { phase: "normal", shortChannelId: SCID, private: false };
  it("from the tip at which the anchor (height 700) is `depth` deep: 705 is 6 deep", () => {
    expect(announceable(c, 704, 6)).toBe(false);
    expect(announceable(c, 705, 6)).toBe(true);
    expect(announceable(c, 705, 7)).toBe(false);
  });
  it("never a private channel, one not normal, or one without a short_channel_id", () => {
    expect(announceable({ ...c, private: true }, 800, 6)).toBe(false);
    expect(announceable({ ...c, phase: "clearing" }, 800, 6)).toBe(false);
    expect(announceable({ ...c, shortChannelId: undefined }, 800, 6)).toBe(false);
  });
});

describe("our channel_update", () => {
  const policy = {
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 7n,
    cltvExpiryDelta: 46,
    htlcMinimumMsat: msat(1000n),
  };
  const u = updateFromPolicy({
    shortChannelId: SCID,
    direction: 1,
    timestamp: 1_700_000_000,
    disabled: false,
    policy,
    htlcMaximumMsat: msat(4_000_000_000n),
  });

  it("carries the policy's fields and the channel's capacity as its maximum", () => {
    expect(u).toEqual({
      shortChannelId: SCID,
      direction: 1,
      timestamp: 1_700_000_000,
      disabled: false,
      cltvExpiryDelta: 46,
      htlcMinimumMsat: 1000n,
      htlcMaximumMsat: 4_000_000_000n,
      feeBaseMsat: 1000n,
      feeProportionalMillionths: 7n,
    });
  });

  it("is due when none is stored, when a field changed, and once refreshSeconds old", () => {
    const stored = { ...u };
    expect(updateDue(undefined, u, 1_700_000_000, 86_400)).toBe("none");
    expect(updateDue(stored, u, 1_700_000_100, 86_400)).toBeUndefined();
    expect(updateDue(stored, { ...u, disabled: true }, 1_700_000_100, 86_400)).toBe("changed");
    expect(updateDue(stored, { ...u, feeBaseMsat: msat(1001n) }, 1_700_000_100, 86_400)).toBe("changed");
    expect(updateDue(stored, u, 1_700_086_399, 86_400)).toBeUndefined();
    expect(updateDue(stored, u, 1_700_086_400, 86_400)).toBe("refresh");
  });

  it("gets the clock as its timestamp, only once it is after the last one (never ahead of the clock)", () => {
    expect(nextTimestamp(100, undefined)).toBe(100);
    expect(nextTimestamp(100, 50)).toBe(100);
    // Never ahead of the clock: none yet, the next round makes it.
    expect(nextTimestamp(100, 99)).toBe(100);
    expect(nextTimestamp(100, 100)).toBeUndefined();
    expect(nextTimestamp(100, 130)).toBeUndefined();
  });

  it("the default alias is ln- and the node id's first 8 hex digits", () => {
    expect(defaultAlias("02abcdef0123456789")).toBe("ln-02abcdef");
  });
});

describe("recheckSlice", () => {
  it("goes round the sorted ids in slices of `max`, each id in turn", () => {
    const all = [50n, 10n, 40n, 20n, 30n];
    const a = recheckSlice(all, undefined, 2);
    expect(a).toEqual({ slice: [10n, 20n], cursor: 20n });
    const b = recheckSlice(all, a.cursor, 2);
    expect(b).toEqual({ slice: [30n, 40n], cursor: 40n });
    const c = recheckSlice(all, b.cursor, 2);
    expect(c).toEqual({ slice: [50n, 10n], cursor: 10n });
    expect(recheckSlice(all, undefined, 10)).toEqual({ slice: [10n, 20n, 30n, 40n, 50n], cursor: undefined });
    expect(recheckSlice([], 5n, 3)).toEqual({ slice: [], cursor: undefined });
  });

  it("covers every id within ceil(n / max) rounds, whatever the ids", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.bigInt({ min: 0n, max: 1n << 63n }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 1, max: 10 }),
        (ids, max) => {
          const seen = new Set<bigint>();
          let cursor: bigint | undefined;
          for (let i = 0; i < Math.ceil(ids.length / max); i++) {
            const r = recheckSlice(ids, cursor, max);
            expect(r.slice.length).toBe(Math.min(max, ids.length));
            for (const x of r.slice) seen.add(x);
            cursor = r.cursor;
          }
          expect(seen.size).toBe(ids.length);
        },
      ),
    );
  });
});
