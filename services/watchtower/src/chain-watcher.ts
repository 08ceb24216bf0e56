import { crashPoint } from "@ln/crash";
import {
  BlockFollower,
  RpcError,
  RpcTransportError,
  type BitcoinRpc,
  type Cursor,
  type CursorStore,
  type FollowerEvent,
  type FollowerProgress,
  type FollowerRpc,
} from "@ln/chain-client";
import {
  decodeAnchorOutputRequest,
  decodeBroadcastRequest,
  decodeWatchAnchor,
  decodeWatchScripts,
  encodeAnchorOutputReply,
  encodeBroadcastReply,
  encodeChainEvent,
  encodeRequestReply,
  encodeTip,
  EventDecodeError,
  type AnchorOutputQuery,
  type AnchorOutputReply,
  type BroadcastReply,
  type ChainEvent,
  type ChainTip,
  type WatchAnchor,
} from "@ln/proto";
import { txidFromInternal } from "@ln/bitcoin";
import { Transaction } from "bitcoinjs-lib";
import type { JetStreamClient, Msg, NatsConnection, Subscription } from "nats";
import { migrate, quoteSchema } from "@ln/postgres";
import type pg from "pg";
import {
  anchorPosition,
  connectBlock,
  disconnectBlock,
  newWatch,
  walletOutputs,
  type Block,
  type Watch,
} from "./anchor-watch.js";
import { MIGRATIONS } from "./migrations.js";

/** What the watcher asks of the node: following blocks, anchor lookups, broadcasts, the tip. */
export type ChainWatcherRpc = FollowerRpc &
  Pick<
    BitcoinRpc,
    "getRawTransaction" | "sendRawTransaction" | "getBestBlockHash" | "getBlockHeader" | "getTxOut"
  >;

export interface ChainWatcherOptions {
  pool: pg.Pool;
  /** Postgres schema of its own tables. Default "watchtower". */
  schema?: string;
  rpc: ChainWatcherRpc;
  js: JetStreamClient;
  /** Events go to `<subjectPrefix>.<kind>`. Default "chain". */
  subjectPrefix?: string;
  startHeight?: number;
  intervalMs?: number;
  onProgress?: (p: FollowerProgress) => void;
  /** Node unreachable during a poll of follower.start(): reported here, and the next poll retries. */
  onPollError?: (e: RpcTransportError) => void;
}

/**
 * The chain-following half of the watchtower: follows the node through reorgs with a cursor in
 * Postgres and publishes, on JetStream, new and disconnected blocks and, for the anchors the
 * channel service asked about, their depth and any spend. Events of a block are published before
 * its state is saved, with message ids derived from the block: a crash re-delivers the block and
 * JetStream drops the duplicates.
 */
export class ChainWatcher {
  private currentFollower: BlockFollower;
  private readonly schema: string;
  private readonly quoted: string;
  private readonly prefix: string;
  /** The wallet's scripts, loaded once from Postgres; watchScripts adds to it once stored. */
  private scripts: Promise<Set<string>> | undefined;

  constructor(private readonly opts: ChainWatcherOptions) {
    this.schema = opts.schema ?? "watchtower";
    this.quoted = quoteSchema(this.schema);
    this.prefix = opts.subjectPrefix ?? "chain";
    this.currentFollower = this.newFollower();
  }

  private newFollower(): BlockFollower {
    const opts = this.opts;
    return new BlockFollower({
      rpc: opts.rpc,
      store: this.cursorStore(),
      onEvent: (e) => this.onEvent(e),
      ...(opts.startHeight !== undefined ? { startHeight: opts.startHeight } : {}),
      ...(opts.intervalMs !== undefined ? { intervalMs: opts.intervalMs } : {}),
      ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
      ...(opts.onPollError ? { onPollError: opts.onPollError } : {}),
    });
  }

  /** The block follower; replaced by restartFollower(). */
  get follower(): BlockFollower {
    return this.currentFollower;
  }

  /**
   * After the follower stopped on an error (a failed handler, a judged RPC error): a fresh one that
   * resumes from the stored cursor, as a process restart would. Stop the old one first.
   */
  restartFollower(): BlockFollower {
    this.currentFollower = this.newFollower();
    return this.currentFollower;
  }

  private t(table: string): string {
    return `${this.quoted}.${table}`;
  }

  /** Applies the migrations this schema has not seen; returns their versions. */
  migrate(): Promise<number[]> {
    return migrate(this.opts.pool, this.schema, MIGRATIONS);
  }

  /**
   * Reports outputs paying these scripts (lowercase hex) as wallet_output from the next connected
   * block on. Resolves once they are stored.
   */
  async watchScripts(scriptsHex: readonly string[]): Promise<void> {
    if (scriptsHex.length === 0) return;
    // Loaded before the insert, so a concurrent first load cannot miss these.
    const scripts = await this.walletScripts();
    await this.opts.pool.query(
      `INSERT INTO ${this.t("wallet_scripts")} (script_hex) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING`,
      [scriptsHex],
    );
    for (const h of scriptsHex) scripts.add(h);
  }

  private walletScripts(): Promise<Set<string>> {
    if (this.scripts === undefined) {
      const loading = this.opts.pool
        .query<{ script_hex: string }>(`SELECT script_hex FROM ${this.t("wallet_scripts")}`)
        .then((r) => new Set(r.rows.map((row) => row.script_hex)));
      this.scripts = loading;
      // A failed load is retried by the next caller.
      loading.catch(() => {
        if (this.scripts === loading) this.scripts = undefined;
      });
    }
    return this.scripts;
  }

  /**
   * Sends a transaction to the node. Accepted, already in the mempool, or already confirmed: its
   * txid. Otherwise REJECTED with the node's reason, or UNAVAILABLE when the node could not be asked.
   */
  async broadcast(tx: Buffer): Promise<BroadcastReply> {
    let txid: string;
    try {
      txid = Transaction.fromBuffer(tx).getId();
    } catch (e) {
      return { error: `not a transaction: ${(e as Error).message}`, code: "BAD_REQUEST" };
    }
    try {
      return { txid: await this.opts.rpc.sendRawTransaction(tx.toString("hex")) };
    } catch (e) {
      // -27 RPC_VERIFY_ALREADY_IN_CHAIN: the transaction is confirmed, which is what was wanted.
      if (e instanceof RpcError && e.code === -27) return { txid };
      if (e instanceof RpcError) return { error: `${e.rpcMessage} (node code ${e.code})`, code: "REJECTED" };
      if (e instanceof RpcTransportError) return { error: e.message, code: "UNAVAILABLE" };
      throw e;
    }
  }

  /** The node's best block; if the node cannot be asked, the last block this watcher handled. */
  async tip(): Promise<ChainTip> {
    try {
      const header = await this.opts.rpc.getBlockHeader(await this.opts.rpc.getBestBlockHash());
      return { height: header.height, hash: header.hash, time: header.time };
    } catch (e) {
      if (!(e instanceof RpcTransportError) && !(e instanceof RpcError)) throw e;
      const c = this.follower.cursor ?? (await this.cursorStore().load());
      return c ? { height: c.height, hash: c.hash, time: 0 } : { height: 0, hash: "", time: 0 };
    }
  }

  /**
   * The output at a short_channel_id's position in the best chain (gossip, DESIGN.md 10): its
   * script and value read from the transaction itself, and whether it is in the UTXO set.
   */
  async anchorOutput(q: AnchorOutputQuery): Promise<AnchorOutputReply> {
    try {
      // Above the tip: not found. Any other error of the node is an error, never "not found":
      // a node warming up must not make the graph drop its channels.
      if (q.height > (await this.opts.rpc.getBlockCount())) return { found: false };
      const hash = await this.opts.rpc.getBlockHash(q.height);
      const block = await this.opts.rpc.getBlock(hash, 2);
      const t = block.tx[q.txIndex];
      if (t === undefined) return { found: false };
      const out = Transaction.fromHex(t.hex).outs[q.outputIndex];
      if (out === undefined) return { found: false };
      const utxo = await this.opts.rpc.getTxOut(t.txid, q.outputIndex, false);
      return {
        found: true,
        txid: t.txid,
        script: Buffer.from(out.script),
        valueSat: BigInt(out.value),
        unspent: utxo !== undefined,
      };
    } catch (e) {
      if (e instanceof RpcTransportError || e instanceof RpcError) return { error: e.message };
      throw e;
    }
  }

  /** Starts (or updates) watching a channel's anchor. */
  async watch(w: WatchAnchor): Promise<void> {
    // An anchor that confirmed before the request arrived: its depth counts from that block.
    const watch = newWatch(w);
    const confirmed = await this.confirmedAt(w.txid);
    if (confirmed) {
      watch.confirmedHeight = confirmed.height;
      watch.confirmedTxIndex = confirmed.txIndex;
    }
    await this.opts.pool.query(
      `INSERT INTO ${this.t("anchor_watches")} (channel_id, watch) VALUES ($1, $2)
       ON CONFLICT (channel_id) DO UPDATE SET watch = jsonb_set(${this.t("anchor_watches")}.watch, '{depth}', to_jsonb($3::integer))`,
      [w.channelId, JSON.stringify(watch), w.depth],
    );
    // Already confirmed: report the depth now, for a channel service that asks again after a
    // restart or a takeover (the block that reached it may have been reported to another replica).
    if (confirmed) {
      const depth = Math.min(confirmed.confirmations, w.depth);
      await this.opts.js.publish(
        `${this.prefix}.anchor_depth`,
        encodeChainEvent({ kind: "anchor_depth", channelId: w.channelId, depth, ...anchorPosition(watch) }),
        { msgID: `watch:${w.channelId}:${w.txid}:${confirmed.hash}:${depth}` },
      );
    }
  }

  /** The best-chain block holding a transaction and its index there; undefined if unconfirmed. */
  private async confirmedAt(
    txid: string,
  ): Promise<{ height: number; hash: string; txIndex: number; confirmations: number } | undefined> {
    let blockHash: string | undefined;
    try {
      const tx = await this.opts.rpc.getRawTransaction(txid, true);
      if (typeof tx === "object" && (tx.confirmations ?? 0) > 0) blockHash = tx.blockhash;
    } catch (e) {
      if (e instanceof RpcError) return undefined; // not known to the node (yet)
      throw e;
    }
    if (blockHash === undefined) return undefined;
    const block = await this.opts.rpc.getBlock(blockHash, 2);
    const txIndex = block.tx.findIndex((t) => t.txid === txid);
    // Left the best chain since (a reorg): the blocks will tell.
    if (block.confirmations < 1 || txIndex < 0) return undefined;
    return { height: block.height, hash: block.hash, txIndex, confirmations: block.confirmations };
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
    const block = e.type === "connected" ? toBlock(e) : undefined;
    const result = block ? connectBlock(watches, block) : disconnectBlock(watches, e);
    const js = this.opts.js;
    for (const [i, ev] of result.events.entries())
      await js.publish(`${this.prefix}.${ev.kind}`, encodeChainEvent(ev), {
        msgID: `${e.type}:${e.hash}:${i}`,
      });
    if (block && e.type === "connected")
      // Ids by outpoint, not position: a script added between a crash and the replay of the
      // block must not shift the ids of what was already published.
      for (const out of walletOutputs(block, await this.walletScripts()))
        await js.publish(`${this.prefix}.wallet_output`, encodeChainEvent(out), {
          msgID: `connected:${e.hash}:${out.txid}:${out.vout}`,
        });
    for (const w of result.watches)
      await this.opts.pool.query(`UPDATE ${this.t("anchor_watches")} SET watch = $2 WHERE channel_id = $1`, [
        w.channelId,
        JSON.stringify(w),
      ]);
    crashPoint("tower.block.published");
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

/** Which outpoints each transaction spends and what it pays, from its serialization. */
function toBlock(e: Extract<FollowerEvent, { type: "connected" }>): Block {
  return {
    height: e.height,
    hash: e.hash,
    time: e.block.time,
    txs: e.block.tx.map((t) => {
      const tx = Transaction.fromHex(t.hex);
      return {
        txid: t.txid,
        hex: t.hex,
        spends: tx.ins.map((i) => `${txidFromInternal(i.hash)}:${i.index}`),
        outputs: tx.outs.map((o) => ({
          amountSat: o.value,
          scriptHex: Buffer.from(o.script).toString("hex"),
        })),
      };
    }),
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

/** The request subjects the chain watcher answers (core NATS, never captured by the stream). */
export const chainRequestSubjects = (
  prefix: string,
): { watch: string; watchScript: string; broadcast: string; tip: string; anchorOutput: string } => ({
  watch: `${prefix}.watch`,
  watchScript: `${prefix}.watch_script`,
  broadcast: `${prefix}.broadcast`,
  tip: `${prefix}.tip`,
  anchorOutput: `${prefix}.anchor_output`,
});

/**
 * Serves every request of the channel service: `<prefix>.watch` (watch_anchor, no reply),
 * `<prefix>.watch_script` (watch_scripts -> request_reply, after the scripts are stored),
 * `<prefix>.broadcast` (broadcast_request -> broadcast_reply), `<prefix>.tip` (-> tip) and
 * `<prefix>.anchor_output` (anchor_output_request -> anchor_output_reply).
 * Requests are handled concurrently; a request that cannot be decoded is answered with an error
 * where the request has a reply, and reported to onError.
 */
export function serveChainRequests(
  nc: NatsConnection,
  prefix: string,
  watcher: ChainWatcher,
  onError?: (e: Error) => void,
): Subscription[] {
  const subjects = chainRequestSubjects(prefix);
  const serve = (subject: string, handle: (msg: Msg) => Promise<Uint8Array>): Subscription =>
    nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) return onError?.(err);
        handle(msg).then(
          (reply) => {
            if (msg.reply) msg.respond(reply);
          },
          (e: unknown) => onError?.(e instanceof Error ? e : new Error(String(e))),
        );
      },
    });
  return [
    serveWatchRequests(nc, prefix, watcher, onError),
    serve(subjects.watchScript, async (msg) => {
      let scripts: string[];
      try {
        scripts = decodeWatchScripts(msg.data);
      } catch (e) {
        if (!(e instanceof EventDecodeError)) throw e;
        onError?.(e);
        return encodeRequestReply(e.message);
      }
      try {
        await watcher.watchScripts(scripts);
        return encodeRequestReply("");
      } catch (e) {
        onError?.(e instanceof Error ? e : new Error(String(e)));
        return encodeRequestReply(`could not store the scripts: ${(e as Error).message}`);
      }
    }),
    serve(subjects.broadcast, async (msg) => {
      let tx: Buffer;
      try {
        tx = decodeBroadcastRequest(msg.data).tx;
      } catch (e) {
        if (!(e instanceof EventDecodeError)) throw e;
        return encodeBroadcastReply({ error: e.message, code: "BAD_REQUEST" });
      }
      return encodeBroadcastReply(await watcher.broadcast(tx));
    }),
    serve(subjects.tip, async () => encodeTip(await watcher.tip())),
    serve(subjects.anchorOutput, async (msg) => {
      let q: AnchorOutputQuery;
      try {
        q = decodeAnchorOutputRequest(msg.data);
      } catch (e) {
        if (!(e instanceof EventDecodeError)) throw e;
        onError?.(e);
        return encodeAnchorOutputReply({ found: false });
      }
      return encodeAnchorOutputReply(await watcher.anchorOutput(q));
    }),
  ];
}
