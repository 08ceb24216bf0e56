/** What the channel node needs from the other parts of the service, each a narrow interface. */
import type { Log } from "@ln/log";
import type { OutPoint, Sat } from "@ln/bitcoin";
import type { Output } from "@ln/channel-core";

/** What the node needs from the chain watcher (chain-requests.ts over NATS in production). */
export interface ChainPort {
  broadcast(txHex: string): Promise<string>;
  /** The node's best block, asked when we have not seen a block event yet. */
  tip(): Promise<{ height: number; time: number }>;
  watchAnchor(channelId: string, o: Extract<Output, { type: "watch_anchor" }>): void;
}

/** What the node needs from its wallet (wallet.ts). */
export interface WalletPort {
  fundAnchor(p: {
    channelId: string;
    signerChannel: number;
    amount: Sat;
    commitKeys: [string, string];
  }): Promise<{ outpoint: OutPoint; amount: Sat; txid: string }>;
  anchorTx(channelId: string): Promise<string | undefined>;
  /** Watches the channel's final-key output (a close or their commitment pays it) to sweep it. */
  watchFinalKey(p: { channelId: string; signerChannel: number; finalPubkeyHex: string }): Promise<void>;
  /** Frees the coins of an anchor never handed out for broadcast (the opening failed). */
  releaseAnchor(channelId: string): Promise<boolean>;
}

/** The peer gateway's control requests (peer-requests.ts over NATS in production). */
export interface PeerControl {
  connect(p: { host: string; port: number; nodeId: string }): Promise<unknown>;
  list(): Promise<{ nodeId: string; host: string; port: number }[]>;
  /** Drop the connection with a peer so the next one retransmits what either side missed. */
  resync(nodeId: string): void;
}

/** The terms we open channels with (our side of open_channel). */
export interface LocalTerms {
  delayBlocks: number;
  minDepth: number;
  feeRate: number;
}

/** On-chain resolution of spent anchors (resolution.ts). */
export interface ResolutionPort {
  onAnchorSpent(channelId: string, spendHex: string, height: number): Promise<void>;
  onOutputSpent(channelId: string, vout: number, spenderHex: string, height: number): Promise<void>;
  onBlockDisconnected(height: number): Promise<void>;
  sweepReady(tip: { height: number; time: number }): Promise<void>;
}

/** Where the watchtower's revocation records go (tower-link.ts). */
export interface TowerPort {
  /** Publishes every record not yet acknowledged. */
  publishPending(): Promise<number>;
}

/** A log line (JSON-wrapped by @ln/log in production). */
/** What the parts log through (@ln/log): level and alert set at the call. */
export type LogLine = Log;
