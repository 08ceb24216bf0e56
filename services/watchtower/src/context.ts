/*~ What the tower's parts share: Postgres and its schema, the node, the signer, the settings, the
 * metrics and the log. Made once by JusticeTower and handed to each part; no part owns another. */
import type { BitcoinRpc, FollowerRpc } from "@ln/chain-client";
import type { Log } from "@ln/log";
import { quoteSchema } from "@ln/postgres";
import type { SignerClient } from "@ln/signer-client";
import type pg from "pg";
import type { JusticeSettings } from "./justice-core.js";
import type { TowerMetrics } from "./metrics.js";

/** What the tower asks of the node. */
export type TowerRpc = FollowerRpc &
  Pick<BitcoinRpc, "getRawMempool" | "getRawTransaction" | "sendRawTransaction" | "estimateSmartFee">;

/** The one signer call the tower makes (its mTLS identity allows nothing else). */
export type JusticeSigner = Pick<SignerClient, "call">;

export interface TowerSettings extends JusticeSettings {
  /** estimatesmartfee target in blocks. */
  feeTargetBlocks: number;
  /** Satoshi per 1000 bytes without an estimate. */
  fallbackFeeRate: number;
}

/** A transaction to send, once what it depends on is committed. */
export interface Send {
  kind: "breach" | "first" | "replacement" | "rebroadcast";
  hex: string;
  txid: string;
}

export interface TowerContext {
  pool: pg.Pool;
  /** The schema-qualified, quoted name of one of the tower's tables. */
  table(name: string): string;
  rpc: TowerRpc;
  signer: JusticeSigner;
  settings: TowerSettings;
  metrics: TowerMetrics | undefined;
  log: Log;
  /** This replica's id in breach claims (claimed_by); unique per running tower. */
  workerId: string;
  /** How long a claim on a breach lasts unless renewed. */
  claimTtlMs: number;
  /** Deadline of one SignJustice call. */
  signerTimeoutMs: number;
  /** Told of every send to the node, after it (tests and audit). */
  onBroadcast: ((s: Send) => void) | undefined;
}

/** `table` for a schema. */
export const tablesOf =
  (schema: string) =>
  (name: string): string =>
    `${quoteSchema(schema)}.${name}`;

export const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** An Error for a log record's `err` field (what was thrown may be anything). */
export const asError = (e: unknown): Error => (e instanceof Error ? e : new Error(String(e)));
