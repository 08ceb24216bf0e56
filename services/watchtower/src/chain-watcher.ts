import {
  BlockFollower,
  RpcError,
  type BitcoinRpc,
  type Cursor,
  type CursorStore,
  type FollowerEvent,
  type FollowerProgress,
  type FollowerRpc,
} from "@ln/chain-client";
import {
  decodeWatchAnchor,
  encodeChainEvent,
  EventDecodeError,
  type ChainEvent,
  type WatchAnchor,
} from "@ln/proto";
import { txidFromInternal } from "@ln/bitcoin";
import { Transaction } from "bitcoinjs-lib";
import type { JetStreamClient, NatsConnection, Subscription } from "nats";
import { migrate, quoteSchema, type Migration } from "@ln/postgres";
import type pg from "pg";
import { connectBlock, disconnectBlock, newWatch, type Block, type Watch } from "./anchor-watch.js";

/** The chain watcher's tables, in its own schema. */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: (s) => `CREATE TABLE ${s}.cursor (id integer PRIMARY KEY CHECK (id = 1), cursor jsonb NOT NULL);
                 CREATE TABLE ${s}.anchor_watches (channel_id text PRIMARY KEY, watch jsonb NOT NULL);`,
  },
];

export interface ChainWatcherOptions {
  pool: pg.Pool;
  /** Postgres schema of its own tables. Default "watchtower". */
  schema?: string;
  rpc: FollowerRpc & Pick<BitcoinRpc, "getRawTransaction">;
  js: JetStreamClient;
  /** Events go to `<subjectPrefix>.<kind>`. Default "chain". */
  subjectPrefix?: string;
  startHeight?: number;
  intervalMs?: number;
  onProgress?: (p: FollowerProgress) => void;
}

/**
 * The chain-following half of the watchtower: follows the node through reorgs with a cursor in
 * Postgres and publishes, on JetStream, new and disconnected blocks and, for the anchors the
 * channel service asked about, their depth and any spend. Events of a block are published before
 * its state is saved, with message ids derived from the block: a crash re-delivers the block and
 * JetStream drops the duplicates.
 */
export class ChainWatcher {
  readonly follower: BlockFollower;
  private readonly schema: string;
  private readonly quoted: string;
  private readonly prefix: string;

  constructor(private readonly opts: ChainWatcherOptions) {
    this.schema = opts.schema ?? "watchtower";
    this.quoted = quoteSchema(this.schema);
    this.prefix = opts.subjectPrefix ?? "chain";
    this.follower = new BlockFollower({
      rpc: opts.rpc,
      store: this.cursorStore(),
      onEvent: (e) => this.onEvent(e),
      ...(opts.startHeight !== undefined ? { startHeight: opts.startHeight } : {}),
      ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
    });
  }

  private t(table: string): string {
    return `${this.quoted}.${table}`;
  }

  async migrate(): Promise<void> {
    await migrate(this.opts.pool, this.schema, MIGRATIONS);
  }

  /** Starts (or updates) watching a channel's anchor. */
  async watch(w: WatchAnchor): Promise<void> {
    // An anchor that confirmed before the request arrived: its depth counts from that block.
    const watch = newWatch(w);
    const confirmations = await this.confirmations(w.txid);
    if (confirmations > 0) watch.confirmedHeight = (await this.opts.rpc.getBlockCount()) - confirmations + 1;
    await this.opts.pool.query(
      `INSERT INTO ${this.t("anchor_watches")} (channel_id, watch) VALUES ($1, $2)
       ON CONFLICT (channel_id) DO UPDATE SET watch = jsonb_set(${this.t("anchor_watches")}.watch, '{depth}', to_jsonb($3::integer))`,
      [w.channelId, JSON.stringify(watch), w.depth],
    );
  }

  private async confirmations(txid: string): Promise<number> {
    try {
      const tx = await this.opts.rpc.getRawTransaction(txid, true);
      return typeof tx === "object" ? (tx.confirmations ?? 0) : 0;
    } catch (e) {
      if (e instanceof RpcError) return 0; // not known to the node (yet)
      throw e;
    }
  }

  /** One pass: catch up with the node's tip. */
  syncOnce(): Promise<void> {
    return this.follower.syncOnce();
  }

  private async onEvent(e: FollowerEvent): Promise<void> {
    const rows = await this.opts.pool.query<{ watch: Watch }>(
      `SELECT watch FROM ${this.t("anchor_watches")}`,
    );
    const watches = rows.rows.map((r) => r.watch);
    const result = e.type === "connected" ? connectBlock(watches, toBlock(e)) : disconnectBlock(watches, e);
    const js = this.opts.js;
    for (const [i, ev] of result.events.entries())
      await js.publish(`${this.prefix}.${ev.kind}`, encodeChainEvent(ev), {
        msgID: `${e.type}:${e.hash}:${i}`,
      });
    for (const w of result.watches)
      await this.opts.pool.query(`UPDATE ${this.t("anchor_watches")} SET watch = $2 WHERE channel_id = $1`, [
        w.channelId,
        JSON.stringify(w),
      ]);
  }

  private cursorStore(): CursorStore {
    return {
      load: async () => {
        const r = await this.opts.pool.query<{ cursor: Cursor }>(
          `SELECT cursor FROM ${this.t("cursor")} WHERE id = 1`,
        );
        return r.rows[0]?.cursor;
      },
      save: async (cursor) => {
        await this.opts.pool.query(
          `INSERT INTO ${this.t("cursor")} (id, cursor) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET cursor = $1`,
          [JSON.stringify(cursor)],
        );
      },
    };
  }
}

/** Which outpoints each transaction spends, from its serialization. */
function toBlock(e: Extract<FollowerEvent, { type: "connected" }>): Block {
  return {
    height: e.height,
    hash: e.hash,
    time: e.block.time,
    txs: e.block.tx.map((t) => ({
      txid: t.txid,
      spends: Transaction.fromHex(t.hex).ins.map((i) => `${txidFromInternal(i.hash)}:${i.index}`),
    })),
  };
}

export type { ChainEvent };

/** Serves the channel service's watch requests (`<prefix>.watch`, events.proto watch_anchor). */
export function serveWatchRequests(
  nc: NatsConnection,
  prefix: string,
  watcher: ChainWatcher,
  onError?: (e: Error) => void,
): Subscription {
  return nc.subscribe(`${prefix}.watch`, {
    callback: (err, msg) => {
      if (err) return onError?.(err);
      try {
        void watcher.watch(decodeWatchAnchor(msg.data)).catch((e: unknown) => onError?.(e as Error));
      } catch (e) {
        if (e instanceof EventDecodeError) onError?.(e);
        else throw e;
      }
    },
  });
}
