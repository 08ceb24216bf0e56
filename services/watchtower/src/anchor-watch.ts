import type { ShortChannelId } from "@ln/bitcoin";
import type { ChainEvent, WatchAnchor } from "@ln/proto";

/**
 * Which anchors the chain watcher follows for the channel service, and what it has reported:
 * a pure function of the blocks it is shown, connected and disconnected (DESIGN.md 7: anchor
 * reached depth, anchor spent by anything, new block).
 */
export interface Watch extends WatchAnchor {
  /** Height of the block that confirmed the anchor, while it is on the best chain. */
  confirmedHeight: number | undefined;
  /**
   * The anchor's index in that block's transactions (its short_channel_id's middle part). Absent
   * in watches stored before it was kept: their depth is reported without a position.
   */
  confirmedTxIndex?: number | undefined;
  /** The last depth reported; reports stop once it reaches `depth`. */
  reported: number;
  /** Height of the block holding the first confirmed spend. */
  spentHeight: number | undefined;
}

export interface BlockTx {
  txid: string;
  /** The transaction, serialized: a watched output's spend carries it (on-chain resolution). */
  hex: string;
  /** The outpoints this transaction spends, as "txid:vout". */
  spends: readonly string[];
  /** Its outputs in order: amount and output script (lowercase hex). */
  outputs?: readonly { amountSat: bigint; scriptHex: string }[];
}

export interface Block {
  height: number;
  hash: string;
  time: number;
  txs: readonly BlockTx[];
}

export const newWatch = (w: WatchAnchor): Watch => ({
  ...w,
  confirmedHeight: undefined,
  confirmedTxIndex: undefined,
  reported: 0,
  spentHeight: undefined,
});

export function connectBlock(
  watches: readonly Watch[],
  block: Block,
): { watches: Watch[]; events: ChainEvent[] } {
  const events: ChainEvent[] = [
    { kind: "block_connected", height: block.height, hash: block.hash, time: block.time },
  ];
  const next = watches.map((w) => {
    const u = { ...w };
    if (u.confirmedHeight === undefined) {
      const index = block.txs.findIndex((t) => t.txid === u.txid);
      if (index >= 0) {
        u.confirmedHeight = block.height;
        u.confirmedTxIndex = index;
      }
    }
    const spender = block.txs.find((t) => t.spends.includes(`${u.txid}:${u.vout}`));
    if (spender && u.spentHeight === undefined) {
      u.spentHeight = block.height;
      events.push({
        kind: "anchor_spent",
        channelId: u.channelId,
        txid: spender.txid,
        height: block.height,
        txHex: spender.hex,
      });
    }
    if (u.confirmedHeight !== undefined) {
      const depth = block.height - u.confirmedHeight + 1;
      if (depth > u.reported && u.reported < u.depth) {
        u.reported = depth;
        events.push({ kind: "anchor_depth", channelId: u.channelId, depth, ...anchorPosition(u) });
      }
    }
    return u;
  });
  return { watches: next, events };
}

/** Where a confirmed anchor is, as its depth reports carry it; nothing when that is not known. */
export function anchorPosition(w: Watch): { position?: ShortChannelId } {
  if (w.confirmedHeight === undefined || w.confirmedTxIndex === undefined) return {};
  // Beyond a short_channel_id's 3, 3 and 2 bytes (never for a real anchor): no position.
  if (w.confirmedHeight > 0xffffff || w.confirmedTxIndex > 0xffffff || w.vout > 0xffff) return {};
  return { position: { height: w.confirmedHeight, txIndex: w.confirmedTxIndex, outputIndex: w.vout } };
}

/** A block left the best chain: what it confirmed is unconfirmed again, and said so. */
export function disconnectBlock(
  watches: readonly Watch[],
  block: { height: number; hash: string },
): { watches: Watch[]; events: ChainEvent[] } {
  const events: ChainEvent[] = [{ kind: "block_disconnected", height: block.height, hash: block.hash }];
  const next = watches.map((w) => {
    const u = { ...w };
    if (u.spentHeight !== undefined && u.spentHeight >= block.height) u.spentHeight = undefined;
    if (u.confirmedHeight !== undefined && u.confirmedHeight >= block.height) {
      u.confirmedHeight = undefined;
      u.confirmedTxIndex = undefined;
      u.reported = 0;
      events.push({ kind: "anchor_depth", channelId: u.channelId, depth: 0 });
    } else if (u.confirmedHeight !== undefined) {
      const depth = block.height - u.confirmedHeight; // the tip is now block.height - 1
      if (depth < u.reported) u.reported = depth;
    }
    return u;
  });
  return { watches: next, events };
}

export type WalletOutput = Extract<ChainEvent, { kind: "wallet_output" }>;

/**
 * Every output of a connected block that pays one of the wallet's scripts (lowercase hex), in
 * block order. Nothing is needed on disconnect: the consumer drops what it had from heights at or
 * above the disconnected one, and the new branch reports its own outputs.
 */
export function walletOutputs(block: Block, scripts: ReadonlySet<string>): WalletOutput[] {
  const out: WalletOutput[] = [];
  if (scripts.size === 0) return out;
  for (const t of block.txs)
    for (const [vout, o] of (t.outputs ?? []).entries())
      if (scripts.has(o.scriptHex))
        out.push({
          kind: "wallet_output",
          txid: t.txid,
          vout,
          amountSat: o.amountSat,
          scriptHex: o.scriptHex,
          height: block.height,
          blockHash: block.hash,
          txHex: t.hex,
        });
  return out;
}
