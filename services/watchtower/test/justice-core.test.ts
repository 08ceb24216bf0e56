/** The breach lifecycle alone: what it decides for each observation (DESIGN.md 7; draft 6.1). */
import { describe, expect, it } from "vitest";
import {
  blocksLeft,
  bumpedRate,
  DEFAULT_MAX_FEE_RATE,
  newBreach,
  shareCeiling,
  step,
  type BreachState,
  type JusticeEvent,
  type TxSeen,
} from "../src/justice-core.js";

const SETTINGS = { bumpBlocks: 2, buryDepth: 6 };
const MEMPOOL: TxSeen = { confirmations: 0, inMempool: true };
const GONE: TxSeen = { confirmations: 0, inMempool: false };
const deep = (n: number): TxSeen => ({ confirmations: n, inMempool: false });

const observe = (
  tip: number,
  breach: TxSeen,
  groups: (TxSeen | undefined)[] = [],
  feeRate = 2000,
): JusticeEvent => ({
  kind: "observe",
  tip,
  feeRate,
  breach,
  groups,
});

/** A breach seen at `tip` whose one justice transaction "j1" was signed at 2000 sat/kB. */
function signedBreach(tip = 100): BreachState {
  let s = newBreach("b", 144);
  s = step(s, observe(tip, MEMPOOL), SETTINGS).state;
  s = step(s, { kind: "planned", groupCount: 1 }, SETTINGS).state;
  return step(s, { kind: "signed", group: 0, txid: "j1", feeRate: 2000, tip }, SETTINGS).state;
}

describe("justice lifecycle", () => {
  it("plans and signs every group at the estimate when the breach appears, then broadcasts each once signed", () => {
    const first = step(newBreach("b", 144), observe(100, MEMPOOL, [], 3000), SETTINGS);
    expect(first.actions).toEqual([{ kind: "sign", groups: "all", feeRate: 3000 }]);
    let s = step(first.state, { kind: "planned", groupCount: 2 }, SETTINGS).state;
    const a = step(s, { kind: "signed", group: 0, txid: "a", feeRate: 3000, tip: 100 }, SETTINGS);
    expect(a.actions).toEqual([{ kind: "broadcast", group: 0, txid: "a", why: "first" }]);
    s = a.state;
    // Group 1 not signed yet (the signer failed midway): the next look signs only it.
    const next = step(s, observe(101, deep(1), [MEMPOOL, undefined], 3500), SETTINGS);
    expect(next.actions).toEqual([{ kind: "sign", groups: [1], feeRate: 3500 }]);
  });

  it("replaces a version unconfirmed bumpBlocks after it was signed, at +25 % / +1000 or the estimate", () => {
    const s = signedBreach(100);
    expect(step(s, observe(101, deep(1), [MEMPOOL]), SETTINGS).actions).toEqual([]);
    expect(step(s, observe(102, deep(2), [MEMPOOL]), SETTINGS).actions).toEqual([
      { kind: "sign", groups: [0], feeRate: 3000 },
    ]);
    expect(step(s, observe(102, deep(2), [MEMPOOL], 9000), SETTINGS).actions).toEqual([
      { kind: "sign", groups: [0], feeRate: 9000 },
    ]);
    const replaced = step(s, { kind: "signed", group: 0, txid: "j2", feeRate: 3000, tip: 102 }, SETTINGS);
    expect(replaced.actions).toEqual([{ kind: "broadcast", group: 0, txid: "j2", why: "replacement" }]);
    expect(replaced.state.groups[0]!.versions.map((v) => v.txid)).toEqual(["j1", "j2"]);
    expect(bumpedRate(2000, 0)).toBe(3000);
    expect(bumpedRate(10_000, 0)).toBe(12_500);
  });

  it("never signs above the fee-rate ceiling: caps a bump at it, then stops bumping and says so once", () => {
    const capped = { ...SETTINGS, maxFeeRate: 2400 };
    // The first signature at the ceiling, not at a higher estimate.
    expect(step(newBreach("b", 144), observe(100, MEMPOOL, [], 9000), capped).actions).toEqual([
      { kind: "sign", groups: "all", feeRate: 2400 },
    ]);
    // 2000 would be bumped to 3000 (+1000): capped at 2400.
    const s = signedBreach(100);
    expect(step(s, observe(102, deep(2), [MEMPOOL], 9000), capped).actions).toEqual([
      { kind: "sign", groups: [0], feeRate: 2400 },
    ]);
    const atCap = step(s, { kind: "signed", group: 0, txid: "j2", feeRate: 2400, tip: 102 }, capped).state;
    // Due again: no bump, one notice; later looks say nothing more, and re-send it if it left the mempool.
    const due = step(atCap, observe(104, deep(4), [MEMPOOL], 9000), capped);
    expect(due.actions).toEqual([{ kind: "fee_capped", group: 0, feeRate: 2400 }]);
    expect(step(due.state, observe(105, deep(5), [MEMPOOL], 9000), capped).actions).toEqual([]);
    expect(step(due.state, observe(106, deep(6), [GONE], 9000), capped).actions).toEqual([
      { kind: "broadcast", group: 0, txid: "j2", why: "rebroadcast" },
    ]);
    // The default ceiling is the signer's default SIGNER_MAX_JUSTICE_FEE_RATE.
    expect(bumpedRate(450_000, 0)).toBe(DEFAULT_MAX_FEE_RATE);
    expect(DEFAULT_MAX_FEE_RATE).toBe(500_000);
  });

  it("finds the highest rate whose fee stays within the share of what each transaction takes", () => {
    // 50 % of 10,000 sat is 5,000 sat; over 250 bytes that is 20,000 per 1000 bytes: ceil(250 * 20,000 / 1000) = 5,000.
    expect(shareCeiling([{ takenSat: 10_000n, size: 250 }])).toBe(20_000);
    // 333 bytes: 15,015 gives ceil(5,000.0) = 5,000, 15,016 gives ceil(5,000.3) = 5,001.
    expect(shareCeiling([{ takenSat: 10_000n, size: 333 }])).toBe(15_015);
    // The smallest over the transactions; another percent.
    expect(
      shareCeiling(
        [
          { takenSat: 10_000n, size: 250 },
          { takenSat: 1_000_000n, size: 250 },
        ],
        10,
      ),
    ).toBe(4000);
  });

  it("re-sends the breach, then the latest justice, when both left the mempool and the chain", () => {
    const s = signedBreach(100);
    const r = step(s, observe(101, GONE, [GONE]), SETTINGS);
    expect(r.actions).toEqual([
      { kind: "broadcast_breach" },
      { kind: "broadcast", group: 0, txid: "j1", why: "rebroadcast" },
    ]);
    // Even past bumpBlocks: no replacement while the breach itself is missing, only the re-send.
    expect(step(s, observe(105, GONE, [GONE]), SETTINGS).actions).toEqual(r.actions);
    // A justice dropped from the mempool while the breach is confirmed is re-sent.
    expect(step(s, observe(101, deep(1), [GONE]), SETTINGS).actions).toEqual([
      { kind: "broadcast", group: 0, txid: "j1", why: "rebroadcast" },
    ]);
  });

  it("reports a confirmation once (again after a reorg), and prunes at buryDepth", () => {
    const s = signedBreach(100);
    const c = step(s, observe(101, deep(2), [{ ...deep(1), txid: "j1" }]), SETTINGS);
    expect(c.actions).toEqual([{ kind: "confirmed", group: 0, txid: "j1" }]);
    expect(step(c.state, observe(102, deep(3), [deep(2)]), SETTINGS).actions).toEqual([]);
    const reorged = step(c.state, observe(101, deep(1), [MEMPOOL]), SETTINGS);
    expect(reorged.state.groups[0]!.confirmedHeight).toBeUndefined();
    expect(step(reorged.state, observe(102, deep(2), [deep(1)]), SETTINGS).actions).toEqual([
      { kind: "confirmed", group: 0, txid: "j1" },
    ]);
    expect(step(c.state, observe(105, deep(7), [deep(5)]), SETTINGS).actions).toEqual([]);
    expect(step(c.state, observe(106, deep(8), [deep(6)]), SETTINGS).actions).toEqual([{ kind: "prune" }]);
  });

  it("raises an alert with the blocks left of the delay while the signer is unreachable", () => {
    let s = newBreach("b", 20);
    s = step(s, observe(100, MEMPOOL), SETTINGS).state;
    s = step(s, { kind: "planned", groupCount: 1 }, SETTINGS).state;
    const down = step(s, { kind: "signer_unavailable", tip: 100 }, SETTINGS);
    expect(down.actions).toEqual([{ kind: "alert", blocksLeft: 20, waitingSince: 100 }]);
    // Confirmed at 101; at 105 the peer's output unlocks at 101 + 20: 15 blocks left.
    const later = step(down.state, observe(105, deep(5), [undefined]), SETTINGS);
    expect(later.actions).toEqual([
      { kind: "sign", groups: [0], feeRate: 2000 },
      { kind: "alert", blocksLeft: 15, waitingSince: 100 },
    ]);
    expect(blocksLeft(later.state, 125)).toBe(-5);
    const back = step(
      later.state,
      { kind: "signed", group: 0, txid: "j", feeRate: 2000, tip: 105 },
      SETTINGS,
    );
    expect(back.state.waitingForSignerSince).toBeUndefined();
  });

  it("counts a refusal and reports it, without a broadcast", () => {
    const s = step(newBreach("b", 20), observe(100, MEMPOOL), SETTINGS).state;
    const r = step(s, { kind: "signer_refused", tip: 100, reason: "NOT_REVOKED: no record" }, SETTINGS);
    expect(r.actions).toEqual([{ kind: "refused", reason: "NOT_REVOKED: no record" }]);
    expect(r.state.refusals).toBe(1);
  });

  it("never re-broadcasts an older version once a replacement is signed", () => {
    let s = signedBreach(100);
    s = step(s, { kind: "signed", group: 0, txid: "j2", feeRate: 3000, tip: 102 }, SETTINGS).state;
    const r = step(s, observe(103, deep(3), [GONE]), SETTINGS);
    expect(r.actions).toEqual([{ kind: "broadcast", group: 0, txid: "j2", why: "rebroadcast" }]);
  });
});
