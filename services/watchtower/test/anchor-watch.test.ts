import { describe, expect, it } from "vitest";
import { connectBlock, disconnectBlock, newWatch, walletOutputs, type Block } from "../src/anchor-watch.js";

const ANCHOR = "aa".repeat(32);
const block = (height: number, txs: Block["txs"] = []): Block => ({
  height,
  hash: `h${height}`,
  time: 1000 + height,
  txs,
});

describe("anchor watch (pure)", () => {
  it("reports each new depth up to the one asked for, a spend, and a reorg that undoes them", () => {
    let w = [newWatch({ channelId: "c1", txid: ANCHOR, vout: 1, depth: 2 })];
    let r = connectBlock(w, block(100));
    expect(r.events.map((e) => e.kind)).toEqual(["block_connected"]);
    // The anchor is the third transaction of block 101 (index 2, after the coinbase and another).
    const coinbase = { txid: "c0".repeat(32), hex: "", spends: [] };
    const other = { txid: "0b".repeat(32), hex: "", spends: [] };
    r = connectBlock(r.watches, block(101, [coinbase, other, { txid: ANCHOR, hex: "", spends: [] }]));
    const at101 = { height: 101, txIndex: 2, outputIndex: 1 };
    expect(r.events).toContainEqual({ kind: "anchor_depth", channelId: "c1", depth: 1, position: at101 });
    r = connectBlock(r.watches, block(102));
    expect(r.events).toContainEqual({ kind: "anchor_depth", channelId: "c1", depth: 2, position: at101 });
    r = connectBlock(r.watches, block(103));
    expect(r.events.filter((e) => e.kind === "anchor_depth")).toEqual([]); // enough said
    r = connectBlock(r.watches, block(104, [{ txid: "bb".repeat(32), hex: "", spends: [`${ANCHOR}:0`] }]));
    expect(r.events.filter((e) => e.kind === "anchor_spent")).toEqual([]); // another output
    r = connectBlock(
      r.watches,
      block(105, [{ txid: "cc".repeat(32), hex: "0200cc", spends: [`${ANCHOR}:1`] }]),
    );
    expect(r.events).toContainEqual({
      kind: "anchor_spent",
      channelId: "c1",
      txid: "cc".repeat(32),
      height: 105,
      txHex: "0200cc",
    });
    w = r.watches;
    // Reorg back below the anchor's block: the spend and the confirmation are undone.
    for (const h of [105, 104, 103, 102]) w = disconnectBlock(w, { height: h, hash: `h${h}` }).watches;
    const d = disconnectBlock(w, { height: 101, hash: "h101" });
    expect(d.events).toContainEqual({ kind: "anchor_depth", channelId: "c1", depth: 0 });
    expect(d.watches[0]).toMatchObject({
      confirmedHeight: undefined,
      confirmedTxIndex: undefined,
      spentHeight: undefined,
      reported: 0,
    });
    // Confirmed again on the new branch, elsewhere: reported again from 1, at its new position.
    const again = connectBlock(d.watches, block(101, [coinbase, { txid: ANCHOR, hex: "", spends: [] }]));
    expect(again.events).toContainEqual({
      kind: "anchor_depth",
      channelId: "c1",
      depth: 1,
      position: { height: 101, txIndex: 1, outputIndex: 1 },
    });
  });
});

describe("anchor position", () => {
  it("is absent for a watch stored before positions were kept, and when a part is beyond its bytes", () => {
    // A watch as an older watcher stored it (JSON, no confirmedTxIndex), confirmed at 101.
    const old = {
      ...newWatch({ channelId: "c1", txid: ANCHOR, vout: 0, depth: 3 }),
      confirmedHeight: 101,
      reported: 1,
    };
    delete old.confirmedTxIndex;
    const r = connectBlock([old], block(102));
    expect(r.events).toContainEqual({ kind: "anchor_depth", channelId: "c1", depth: 2 });
    const wide = newWatch({ channelId: "c2", txid: ANCHOR, vout: 65536, depth: 1 });
    const w = connectBlock([wide], block(5, [{ txid: ANCHOR, hex: "", spends: [] }]));
    expect(w.events).toContainEqual({ kind: "anchor_depth", channelId: "c2", depth: 1 });
  });
});

describe("wallet outputs (pure)", () => {
  const ours = "0014" + "aa".repeat(20);
  const other = "0014" + "bb".repeat(20);
  const block: Block = {
    height: 10,
    hash: "0a".repeat(32),
    time: 0,
    txs: [
      {
        txid: "01".repeat(32),
        hex: "0201",
        spends: [],
        outputs: [
          { amountSat: 5000n, scriptHex: other },
          { amountSat: 7000n, scriptHex: ours },
        ],
      },
      { txid: "02".repeat(32), hex: "", spends: [] },
      { txid: "03".repeat(32), hex: "0203", spends: [], outputs: [{ amountSat: 1n, scriptHex: ours }] },
    ],
  };
  it("reports every output paying a watched script, in block order, with its vout", () => {
    expect(walletOutputs(block, new Set([ours]))).toEqual([
      {
        kind: "wallet_output",
        txid: "01".repeat(32),
        vout: 1,
        amountSat: 7000n,
        scriptHex: ours,
        height: 10,
        blockHash: "0a".repeat(32),
        txHex: "0201",
      },
      {
        kind: "wallet_output",
        txid: "03".repeat(32),
        vout: 0,
        amountSat: 1n,
        scriptHex: ours,
        height: 10,
        blockHash: "0a".repeat(32),
        txHex: "0203",
      },
    ]);
  });
  it("reports nothing without watched scripts", () => {
    expect(walletOutputs(block, new Set())).toEqual([]);
    expect(walletOutputs(block, new Set(["51"]))).toEqual([]);
  });
});
