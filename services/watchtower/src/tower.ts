/*~ The tower proper (DESIGN.md 7): stores the channel service's sealed revocation records, matches
 * the normalized txid of every transaction in blocks and the mempool against their locators, and
 * on a breach has the signer sign justice, broadcasts it, replaces it at a higher fee when it is
 * slow, re-broadcasts after a reorg and forgets the breach once the justice is buried. The
 * decisions are justice-core.ts's; this is the shell: Postgres, the node's RPC, the signer, NATS.
 *
 * Replicas share Postgres. A breach is worked on under its row lock (FOR UPDATE SKIP LOCKED), and
 * every signed version is committed before it is broadcast, so a breach is planned and signed
 * once and only the latest version of each justice transaction is ever sent. The tower holds no
 * key: a leaked record database reveals nothing before a breach, and nothing it can spend. */
import { crashPoint } from "@ln/crash";
import {
  BlockFollower,
  RpcError,
  type BitcoinRpc,
  type Cursor,
  type CursorStore,
  type FollowerEvent,
  type FollowerRpc,
} from "@ln/chain-client";
import {
  decodeSealedRecord,
  finalizeJustice,
  JusticeError,
  locatorOf,
  openRecord,
  planJustice,
  RecordError,
  type RevocationRecord,
  type SealedRecord,
} from "@ln/justice";
import { Counter, Gauge, Histogram, type Registry } from "@ln/metrics";
import { inTransaction, migrate, quoteSchema } from "@ln/postgres";
import { commitmentParamsMsg, type SignerClient } from "@ln/signer-client";
import { normalizedTxidOfRaw, signedSize, TxParseError, type Spend } from "@ln/tx";
import { createHash } from "node:crypto";
import { Transaction } from "bitcoinjs-lib";
import { AckPolicy, DeliverPolicy, type ConsumerMessages, type JsMsg, type NatsConnection } from "nats";
import type pg from "pg";
import {
  newBreach,
  shareCeiling,
  step,
  type BreachState,
  type JusticeAction,
  type JusticeEvent,
  type JusticeSettings,
  type TxSeen,
} from "./justice-core.js";
import { MIGRATIONS } from "./migrations.js";
import { ensureRecordsStream } from "./streams.js";

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

export interface JusticeTowerOptions {
  pool: pg.Pool;
  /** Postgres schema (shared with the chain watcher). Default "watchtower". */
  schema?: string;
  rpc: TowerRpc;
  signer: JusticeSigner;
  settings: TowerSettings;
  metrics?: TowerMetrics;
  log?: (line: string) => void;
  /** Without a stored cursor: the first block to scan. Default: the node's tip. */
  startHeight?: number;
  /** Block poll interval. Default 1000 ms. */
  intervalMs?: number;
  /** Mempool poll interval. Default 1000 ms. */
  mempoolPollMs?: number;
  /** Deadline of one SignJustice call. Default 5000 ms. */
  signerTimeoutMs?: number;
  /** Told of every send to the node, after it (tests and audit). */
  onBroadcast?: (s: Send) => void;
}

/** Where records come from: the channel service's subject, captured by the tower's stream. */
export interface RecordsSource {
  nc: NatsConnection;
  stream: string;
  subject: string;
  /** Durable consumer name, the same for every replica (they share the work). */
  durable: string;
}

/** The tower's metrics; labels are kinds and outcomes, never a txid, channel or locator. */
export function towerMetrics(registry: Registry) {
  const registers = [registry];
  const m = {
    recordsStored: new Counter({
      name: "watchtower_records_stored_total",
      help: "Revocation records stored (a re-delivered record already stored is not counted).",
      registers,
    }),
    recordsRejected: new Counter({
      name: "watchtower_records_rejected_total",
      help: "Records skipped, by reason: malformed (the NATS payload does not decode) or unopenable (a locator matched but the record did not open for the transaction).",
      labelNames: ["reason"] as const,
      registers,
    }),
    breaches: new Counter({
      name: "watchtower_breaches_seen_total",
      help: "Revoked commitments seen, by where first seen: mempool or block.",
      labelNames: ["where"] as const,
      registers,
    }),
    broadcasts: new Counter({
      name: "watchtower_justice_broadcast_total",
      help: "Justice transactions sent, by kind: first, replacement (fee bump) or rebroadcast (after a reorg or eviction); a send the node refused is counted too.",
      labelNames: ["kind"] as const,
      registers,
    }),
    broadcastRejected: new Counter({
      name: "watchtower_justice_broadcast_rejected_total",
      help: "Justice or breach sends the node refused (e.g. a replacement already superseded, a breach already replaced).",
      registers,
    }),
    confirmed: new Counter({
      name: "watchtower_justice_confirmed_total",
      help: "Justice transactions seen confirmed (again after a reorg counts again).",
      registers,
    }),
    waiting: new Gauge({
      name: "watchtower_justice_waiting_for_signer",
      help: "Breaches whose justice cannot be signed because the signer is unreachable (ALERT: see the log for the blocks left).",
      registers,
    }),
    signerWaits: new Counter({
      name: "watchtower_signer_waits_total",
      help: "SignJustice calls that failed because the signer was unreachable or too slow; retried with backoff.",
      registers,
    }),
    feeCapped: new Counter({
      name: "watchtower_justice_fee_capped_total",
      help: "Justice transactions due for a fee bump that already pay WATCHTOWER_MAX_FEE_RATE: no longer bumped.",
      registers,
    }),
    refusals: new Counter({
      name: "watchtower_signer_refusals_total",
      help: "SignJustice calls the signer refused: a bug or an attack, see the log.",
      registers,
    }),
    blockCheck: new Histogram({
      name: "watchtower_justice_block_check_seconds",
      help: "Time to match a block's transactions and check every open breach.",
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    }),
  };
  for (const reason of ["malformed", "unopenable"]) m.recordsRejected.inc({ reason }, 0);
  for (const where of ["mempool", "block"]) m.breaches.inc({ where }, 0);
  for (const kind of ["first", "replacement", "rebroadcast"]) m.broadcasts.inc({ kind }, 0);
  return m;
}
export type TowerMetrics = ReturnType<typeof towerMetrics>;

/** gRPC status codes the tower tells apart (@grpc/grpc-js `status`). */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;
const grpcCode = (e: unknown): number | undefined => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
};
const isUnreachable = (e: unknown): boolean => {
  const c = grpcCode(e);
  return c === GRPC_UNAVAILABLE || c === GRPC_DEADLINE_EXCEEDED;
};
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();

/** Records inserted per statement (3 parameters each, far below Postgres's 65535). */
const INGEST_BATCH = 500;
/**
 * Messages the consumer pulls ahead; JetStream's max_ack_pending (1000 by default) also caps
 * what is delivered and not yet acked, so at most that many wait in memory.
 */
const INGEST_PULL = 1000;
/** Locators per lookup query; a 4,000-transaction block makes four, overlapping with the hashing. */
const LOOKUP_CHUNK = 1000;

interface BreachRow {
  ntxid: Buffer;
  locator: Buffer;
  blob_hash: Buffer;
  breach_hex: string;
  state: BreachState;
  blob: Buffer;
}

interface RecordRow {
  locator: Buffer;
  blob_hash: Buffer;
  blob: Buffer;
}

interface SeenTx {
  txid: string;
  hex: string;
}

/** The revoked commitment's delay in blocks; a time delay counts as 10-minute blocks. */
const delayBlocksOf = (r: RevocationRecord): number =>
  "blocks" in r.params.delay ? r.params.delay.blocks : Math.floor(r.params.delay.seconds / 600);

export class JusticeTower {
  private readonly schema: string;
  private readonly q: string;
  private readonly log: (line: string) => void;
  private follower: BlockFollower;
  /** Mempool txids already looked at; what left the mempool is forgotten at the next poll. */
  private mempoolSeen = new Set<string>();
  /** Breaches (ntxid hex) this replica could not get signed for want of the signer. */
  private readonly waiting = new Set<string>();
  private readonly retries = new Map<string, { attempt: number; timer: NodeJS.Timeout | undefined }>();
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly wakers = new Set<() => void>();
  private records: ConsumerMessages | undefined;
  private recordsSource: RecordsSource | undefined;

  constructor(private readonly opts: JusticeTowerOptions) {
    this.schema = opts.schema ?? "watchtower";
    this.q = quoteSchema(this.schema);
    this.log = opts.log ?? (() => undefined);
    this.follower = this.newFollower();
  }

  private t(table: string): string {
    return `${this.q}.${table}`;
  }

  /** Applies the schema's migrations (shared with the chain watcher). */
  migrate(): Promise<number[]> {
    return migrate(this.opts.pool, this.schema, MIGRATIONS);
  }

  private newFollower(): BlockFollower {
    return new BlockFollower({
      rpc: this.opts.rpc,
      store: this.cursorStore(),
      onEvent: (e) => this.onBlockEvent(e),
      ...(this.opts.startHeight !== undefined ? { startHeight: this.opts.startHeight } : {}),
      ...(this.opts.intervalMs !== undefined ? { intervalMs: this.opts.intervalMs } : {}),
      onPollError: (e) => this.log(`node unreachable while following blocks: ${e.message}; retrying`),
    });
  }

  // ---- records ----

  /**
   * Stores one record as received on NATS. Returns false for a payload that does not decode
   * (counted and logged; the caller drops it), true once the row is committed (new or not).
   */
  async storeRecord(payload: Uint8Array): Promise<boolean> {
    const sealed = this.decodeRecord(payload);
    if (sealed === undefined) return false;
    await this.insertRecords([sealed]);
    return true;
  }

  /** The record in a NATS payload; undefined (counted and logged) for one that does not decode. */
  private decodeRecord(payload: Uint8Array): SealedRecord | undefined {
    try {
      return decodeSealedRecord(payload);
    } catch (e) {
      if (!(e instanceof RecordError)) throw e;
      this.opts.metrics?.recordsRejected.inc({ reason: "malformed" });
      this.log(`dropping a revocation record that does not decode (${e.message})`);
      return undefined;
    }
  }

  /** One INSERT, so one round trip and one commit for the lot; only new rows are counted. */
  private async insertRecords(records: readonly SealedRecord[]): Promise<void> {
    const params: Buffer[] = [];
    const values: string[] = [];
    for (const r of records) {
      const k = params.push(r.locator, sha256(r.blob), r.blob);
      values.push(`($${k - 2}, $${k - 1}, $${k})`);
    }
    // A record in the batch twice conflicts with its own first row: DO NOTHING covers that too.
    const r = await this.opts.pool.query(
      `INSERT INTO ${this.t("tower_records")} (locator, blob_hash, blob) VALUES ${values.join(", ")} ON CONFLICT DO NOTHING`,
      params,
    );
    if (r.rowCount !== null && r.rowCount > 0) this.opts.metrics?.recordsStored.inc(r.rowCount);
  }

  /**
   * Takes records from the stream through the durable consumer every replica shares, in batches
   * of what has arrived (up to INGEST_BATCH): each batch is one INSERT, and its messages are acked
   * only after the commit (a failed insert naks them all for redelivery; one that does not
   * decode is terminated at once). Creates the stream if missing.
   */
  async consumeRecords(src: RecordsSource): Promise<void> {
    const jsm = await src.nc.jetstreamManager();
    await ensureRecordsStream(jsm, src.stream, src.subject);
    await jsm.consumers.add(src.stream, {
      durable_name: src.durable,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      filter_subject: src.subject,
    });
    const consumer = await src.nc.jetstream().consumers.get(src.stream, src.durable);
    const queue: JsMsg[] = [];
    let wake: (() => void) | undefined;
    let closed = false;
    // The callback form: messages are queued as they arrive while the previous batch is inserted.
    const messages = await consumer.consume({
      max_messages: INGEST_PULL,
      callback: (m) => {
        queue.push(m);
        wake?.();
      },
    });
    void messages.closed().then(() => {
      closed = true;
      wake?.();
    });
    this.records = messages;
    this.recordsSource = src;
    this.loops.push(
      (async () => {
        while (!closed) {
          if (queue.length === 0) {
            await new Promise<void>((resolve) => (wake = resolve));
            wake = undefined;
            continue;
          }
          await this.storeBatch(queue.splice(0, INGEST_BATCH));
        }
        // Received but not stored: back to the stream now rather than after the ack wait.
        for (const m of queue.splice(0)) m.nak();
      })(),
    );
  }

  private async storeBatch(batch: readonly JsMsg[]): Promise<void> {
    const good: JsMsg[] = [];
    const records: SealedRecord[] = [];
    for (const m of batch) {
      const sealed = this.decodeRecord(m.data);
      if (sealed === undefined)
        m.term(); // never decodes: not redelivered, whatever the others do
      else {
        good.push(m);
        records.push(sealed);
      }
    }
    if (records.length === 0) return;
    try {
      await this.insertRecords(records);
    } catch (e) {
      this.log(
        `could not store ${records.length} revocation records (${message(e)}); they will be redelivered`,
      );
      for (const m of good) m.nak(2000);
      return;
    }
    crashPoint("tower.records.stored");
    for (const m of good) m.ack(); // after the commit: an acked record is stored
  }

  // ---- matching ----

  /**
   * Looks up the normalized txids of these transactions in one query and handles every breach
   * found. Returns how many breaches were matched.
   */
  async match(txs: readonly SeenTx[], where: "block" | "mempool"): Promise<number> {
    const byLocator = new Map<string, { tx: SeenTx; ntxid: Buffer }[]>();
    // Looked up a chunk at a time as the hashing goes: Postgres probes the index for one chunk
    // (another process, another core) while this one hashes the next.
    const lookups: Promise<RecordRow[]>[] = [];
    let chunk: Buffer[] = [];
    const flush = async (): Promise<void> => {
      const lookup = this.lookup(chunk);
      // Handled now, awaited below: a failure meanwhile must not count as an unhandled rejection.
      lookup.catch(() => undefined);
      lookups.push(lookup);
      chunk = [];
      // Lets the pool send it now: the hashing between two chunks never yields.
      await new Promise((resolve) => setImmediate(resolve));
    };
    for (const tx of txs) {
      let ntxid: Buffer;
      try {
        // From the bytes: a bitcoinjs Transaction per transaction would cost ten times the hashing.
        ntxid = normalizedTxidOfRaw(Buffer.from(tx.hex, "hex"));
      } catch (e) {
        if (e instanceof TxParseError) continue; // not a transaction: not a commitment either
        throw e;
      }
      const locator = locatorOf(ntxid);
      const key = locator.toString("hex");
      const same = byLocator.get(key);
      if (same !== undefined) {
        same.push({ tx, ntxid });
        continue;
      }
      byLocator.set(key, [{ tx, ntxid }]);
      chunk.push(locator);
      if (chunk.length === LOOKUP_CHUNK) await flush();
    }
    if (chunk.length > 0) await flush();
    const rows = (await Promise.all(lookups)).flat();
    let found = 0;
    for (const row of rows)
      for (const { tx, ntxid } of byLocator.get(row.locator.toString("hex")) ?? []) {
        let record: RevocationRecord;
        try {
          record = openRecord(row.blob, ntxid);
        } catch (e) {
          if (!(e instanceof RecordError)) throw e;
          this.opts.metrics?.recordsRejected.inc({ reason: "unopenable" });
          this.log(`a record matched transaction ${tx.txid} but does not open (${e.message}); ignored`);
          continue;
        }
        found++;
        const inserted = await this.opts.pool.query(
          `INSERT INTO ${this.t("tower_breaches")} (ntxid, locator, blob_hash, breach_hex, state)
           VALUES ($1, $2, $3, $4, $5) ON CONFLICT (ntxid) DO NOTHING`,
          [
            ntxid,
            row.locator,
            row.blob_hash,
            tx.hex,
            JSON.stringify(newBreach(tx.txid, delayBlocksOf(record))),
          ],
        );
        if (inserted.rowCount === 1) {
          this.opts.metrics?.breaches.inc({ where });
          this.log(
            `BREACH: transaction ${tx.txid} (${where}) is the revoked commitment ${record.revokedNumber} of signer channel ${record.signerChannel}; making justice`,
          );
        } else if (where === "block") await this.adopt(ntxid, tx, record);
        await this.check(ntxid);
      }
    return found;
  }

  /**
   * The records under these locators. They go as one bytea cut up server-side: a bytea[]
   * parameter goes as escaped text, which both sides take longer to encode and parse than
   * Postgres takes for the index probes.
   */
  private async lookup(locators: readonly Buffer[]): Promise<RecordRow[]> {
    const r = await this.opts.pool.query<RecordRow>(
      `SELECT r.locator, r.blob_hash, r.blob
         FROM generate_series(0, length($1::bytea) / 16 - 1) i
         JOIN ${this.t("tower_records")} r ON r.locator = substring($1::bytea FROM i * 16 + 1 FOR 16)`,
      [Buffer.concat(locators)],
    );
    return r.rows;
  }

  /**
   * The peer may re-sign its half again after a reorg: a block holding another version of a breach
   * we know (same normalized txid, other txid) makes every justice built so far invalid on this
   * chain (its inputs are gone), so the breach is planned afresh against the version in the block.
   * The old versions stay in tower_justice for the record; they can no longer be mined.
   */
  private async adopt(ntxid: Buffer, tx: SeenTx, record: RevocationRecord): Promise<void> {
    await inTransaction(this.opts.pool, async (c) => {
      const r = await c.query<{ state: BreachState }>(
        `SELECT state FROM ${this.t("tower_breaches")} WHERE ntxid = $1 FOR UPDATE`,
        [ntxid],
      );
      const old = r.rows[0]?.state;
      if (old === undefined || old.breachTxid === tx.txid) return;
      const fresh = { ...newBreach(tx.txid, delayBlocksOf(record)), refusals: old.refusals };
      await c.query(
        `UPDATE ${this.t("tower_breaches")} SET breach_hex = $2, state = $3, updated_at = now() WHERE ntxid = $1`,
        [ntxid, tx.hex, JSON.stringify(fresh)],
      );
      this.log(
        `the revoked commitment was mined as another version (${tx.txid}, was ${old.breachTxid}): justice is rebuilt for it`,
      );
    });
  }

  /** One look at the mempool: the transactions not seen at the previous look are matched. */
  async pollMempool(): Promise<number> {
    const ids = await this.opts.rpc.getRawMempool();
    const fresh = ids.filter((id) => !this.mempoolSeen.has(id));
    const txs: SeenTx[] = [];
    for (const txid of fresh) {
      try {
        txs.push({ txid, hex: (await this.opts.rpc.getRawTransaction(txid, false)) as string });
      } catch (e) {
        if (!(e instanceof RpcError)) throw e; // mined or evicted meanwhile: the block shows it
      }
    }
    const found = await this.match(txs, "mempool");
    // Only after the match: a failure retries these txids at the next poll.
    this.mempoolSeen = new Set(ids);
    return found;
  }

  private async onBlockEvent(e: FollowerEvent): Promise<void> {
    if (e.type !== "connected") return; // the next connected block shows what the reorg changed
    const end = this.opts.metrics?.blockCheck.startTimer();
    await this.match(
      e.block.tx.map((t) => ({ txid: t.txid, hex: t.hex })),
      "block",
    );
    await this.checkAll();
    end?.();
  }

  /** Catches up with the node: every block since the cursor is matched, every breach checked. */
  syncOnce(): Promise<void> {
    return this.follower.syncOnce();
  }

  // ---- the justice lifecycle ----

  /** Checks every open breach (those another replica is working on are skipped). */
  async checkAll(): Promise<void> {
    const r = await this.opts.pool.query<{ ntxid: Buffer }>(`SELECT ntxid FROM ${this.t("tower_breaches")}`);
    // One breach failing (the node or Postgres briefly gone) must not hold up the others or the
    // following of blocks: it is logged and looked at again at the next block.
    for (const { ntxid } of r.rows)
      await this.check(ntxid).catch((e: unknown) =>
        this.log(`checking a breach failed (${message(e)}); trying again at the next block`),
      );
  }

  /** What the node says of a transaction. */
  private async seen(txid: string, mempool: ReadonlySet<string>): Promise<TxSeen> {
    if (mempool.has(txid)) return { confirmations: 0, inMempool: true };
    try {
      const v = await this.opts.rpc.getRawTransaction(txid, true);
      const confirmations = typeof v === "object" ? (v.confirmations ?? 0) : 0;
      return { confirmations, inMempool: false };
    } catch (e) {
      if (e instanceof RpcError) return { confirmations: 0, inMempool: false };
      throw e;
    }
  }

  /** The estimate in satoshi per 1000 bytes, else the fallback. */
  async feeRate(): Promise<number> {
    try {
      const est = await this.opts.rpc.estimateSmartFee(this.opts.settings.feeTargetBlocks);
      if (est.feerate !== undefined && est.feerate > 0) return Math.ceil(est.feerate * 1e8);
    } catch (e) {
      if (!(e instanceof RpcError)) throw e;
    }
    return this.opts.settings.fallbackFeeRate;
  }

  /**
   * Observes one breach and acts: under its row lock, decisions, signatures and the new state
   * are committed together; the broadcasts follow the commit.
   */
  async check(ntxid: Buffer): Promise<void> {
    const sends = await inTransaction(this.opts.pool, async (c) => {
      const r = await c.query<BreachRow>(
        `SELECT b.ntxid, b.locator, b.blob_hash, b.breach_hex, b.state, r.blob
           FROM ${this.t("tower_breaches")} b
           JOIN ${this.t("tower_records")} r ON r.locator = b.locator AND r.blob_hash = b.blob_hash
          WHERE b.ntxid = $1 FOR UPDATE OF b SKIP LOCKED`,
        [ntxid],
      );
      const row = r.rows[0];
      if (row === undefined) return []; // gone, or another replica holds it
      return this.work(c, row);
    });
    for (const send of sends) {
      crashPoint("tower.justice.committed");
      await this.send(send);
      crashPoint("tower.justice.sent");
    }
    this.opts.metrics?.waiting.set(this.waiting.size);
  }

  private async work(c: pg.PoolClient, row: BreachRow): Promise<Send[]> {
    const record = openRecord(row.blob, row.ntxid);
    const breach = Transaction.fromHex(row.breach_hex);
    const key = row.ntxid.toString("hex");
    const settings = this.opts.settings;
    const rpc = this.opts.rpc;
    const tip = await rpc.getBlockCount();
    const feeRate = await this.feeRate();
    const mempool = new Set<string>(await rpc.getRawMempool());
    const versions = await c.query<{ txid: string; grp: number; tx_hex: string }>(
      `SELECT txid, grp, tx_hex FROM ${this.t("tower_justice")} WHERE ntxid = $1`,
      [row.ntxid],
    );
    const hexOf = new Map(versions.rows.map((v) => [v.txid, v.tx_hex]));
    let state = row.state;
    const groups: (TxSeen | undefined)[] = [];
    for (const g of state.groups) {
      // The most confirmed of its versions: an older one may have won the race into a block.
      let best: TxSeen = { confirmations: 0, inMempool: false };
      for (const v of g.versions) {
        const s = await this.seen(v.txid, mempool);
        if (s.confirmations > best.confirmations || (best.confirmations === 0 && s.inMempool))
          best = { ...s, txid: v.txid };
      }
      groups[g.group] = best;
    }
    const queue: JusticeAction[] = [];
    const apply = (event: JusticeEvent): void => {
      const out = step(state, event, settings);
      state = out.state;
      queue.push(...out.actions);
    };
    apply({ kind: "observe", tip, feeRate, breach: await this.seen(breach.getId(), mempool), groups });

    const sends: Send[] = [];
    /** Why the breach is done with (its record and rows deleted), once it is. */
    let pruned: string | undefined;
    while (queue.length > 0) {
      const a = queue.shift()!;
      switch (a.kind) {
        case "sign": {
          let plan;
          let rate = a.feeRate;
          try {
            plan = planJustice(record, breach, rate);
            // Never more than the signer's share of what it takes (it would refuse): a lower rate.
            const ceiling = shareCeiling(plan.spends.map(justiceShare), settings.maxFeePercent);
            if (ceiling < rate) plan = planJustice(record, breach, (rate = ceiling));
          } catch (e) {
            // Only our own output on it (the cheater had nothing): the wallet takes that; done.
            if (e instanceof JusticeError && e.code === "NOTHING_TO_TAKE") {
              pruned = `breach ${breach.getId()}: ${e.message}; record and breach pruned`;
              break;
            }
            this.log(`cannot build justice for ${breach.getId()} at ${a.feeRate} sat/kB: ${message(e)}`);
            break;
          }
          if (state.groupCount === 0) apply({ kind: "planned", groupCount: plan.spends.length });
          const todo = a.groups === "all" ? plan.spends.map((_, i) => i) : a.groups;
          for (const group of todo) {
            const spend = plan.spends[group];
            if (spend === undefined) continue;
            let signed: Transaction;
            try {
              const reply = await this.opts.signer.call(
                "SignJustice",
                {
                  channel: record.signerChannel,
                  revoked_number: record.revokedNumber,
                  params: commitmentParamsMsg(record.params),
                  commitment_tx_hex: breach.toHex(),
                  justice_tx_hex: spend.tx.toHex(),
                  wallet_key_indexes: [],
                },
                this.opts.signerTimeoutMs ?? 5000,
              );
              const sigs = [...reply.signatures]
                .sort((x, y) => x.input_index - y.input_index)
                .map((s) => Buffer.from(s.signature));
              signed = finalizeJustice(spend, sigs); // throws on a reply without one signature per input
            } catch (e) {
              if (isUnreachable(e)) {
                this.opts.metrics?.signerWaits.inc();
                apply({ kind: "signer_unavailable", tip });
              } else {
                this.opts.metrics?.refusals.inc();
                apply({ kind: "signer_refused", tip, reason: message(e) });
              }
              break;
            }
            const txid = signed.getId();
            await c.query(
              `INSERT INTO ${this.t("tower_justice")} (txid, ntxid, grp, fee_rate, tx_hex) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (txid) DO NOTHING`,
              [txid, row.ntxid, group, rate, signed.toHex()],
            );
            hexOf.set(txid, signed.toHex());
            apply({ kind: "signed", group, txid, feeRate: rate, tip });
          }
          break;
        }
        case "broadcast_breach":
          sends.push({ kind: "breach", hex: row.breach_hex, txid: breach.getId() });
          break;
        case "broadcast": {
          const hex = hexOf.get(a.txid);
          if (hex !== undefined) sends.push({ kind: a.why, hex, txid: a.txid });
          break;
        }
        case "confirmed":
          this.opts.metrics?.confirmed.inc();
          this.log(`justice ${a.txid ?? "(an earlier version)"} for breach ${breach.getId()} confirmed`);
          break;
        case "alert":
          this.log(
            `ALERT: the signer is unreachable and justice for breach ${breach.getId()} is unsigned since block ${a.waitingSince}; ` +
              (a.blocksLeft > 0
                ? `${a.blocksLeft} blocks remain before the revoked commitment's delay runs out and the peer can take its output. Bring the signer back (check SIGNER_ADDR and the tower's client certificate); retrying`
                : `the revoked commitment's delay has run out: the peer can take its own output now; its other outputs can still be claimed, bring the signer back; retrying`),
          );
          break;
        case "refused":
          this.log(
            `SIGNER REFUSED justice for breach ${breach.getId()} (signer channel ${record.signerChannel}, revoked ${record.revokedNumber}): ${a.reason}. ` +
              `This is a bug or an attack (a record the signer does not back): investigate; retried at the next block`,
          );
          break;
        case "fee_capped":
          this.opts.metrics?.feeCapped.inc();
          this.log(
            `justice for breach ${breach.getId()} (group ${a.group}) is unconfirmed at the fee-rate ceiling ` +
              `${a.feeRate} sat per 1000 bytes (WATCHTOWER_MAX_FEE_RATE): no more bumps; still re-sent while missing from the mempool`,
          );
          break;
        case "prune":
          pruned = `justice for breach ${breach.getId()} is ${settings.buryDepth} blocks deep: record and breach pruned`;
          break;
      }
    }
    if (state.waitingForSignerSince !== undefined) {
      this.waiting.add(key);
      this.scheduleRetry(row.ntxid);
    } else {
      this.waiting.delete(key);
      this.retries.delete(key);
    }
    if (pruned !== undefined) {
      await c.query(`DELETE FROM ${this.t("tower_breaches")} WHERE ntxid = $1`, [row.ntxid]);
      await c.query(`DELETE FROM ${this.t("tower_records")} WHERE locator = $1`, [row.locator]);
      this.waiting.delete(key);
      this.log(pruned);
      return [];
    }
    await c.query(`UPDATE ${this.t("tower_breaches")} SET state = $2, updated_at = now() WHERE ntxid = $1`, [
      row.ntxid,
      JSON.stringify(state),
    ]);
    return sends;
  }

  /** Retries a breach waiting for the signer with backoff (1 s doubling to 30 s), besides every block. */
  private scheduleRetry(ntxid: Buffer): void {
    const key = ntxid.toString("hex");
    const r = this.retries.get(key) ?? { attempt: 0, timer: undefined };
    if (r.timer !== undefined || !this.running) return;
    const ms = Math.min(1000 * 2 ** Math.min(r.attempt, 5), 30_000);
    r.attempt++;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      this.check(ntxid).catch((e: unknown) => this.log(`retrying breach justice failed: ${message(e)}`));
    }, ms);
    this.retries.set(key, r);
  }

  private async send(s: Send): Promise<void> {
    try {
      await this.opts.rpc.sendRawTransaction(s.hex);
      if (s.kind !== "breach") this.log(`justice ${s.txid} sent (${s.kind})`);
      else this.log(`breach ${s.txid} sent again (it had left the mempool and the chain)`);
    } catch (e) {
      if (!(e instanceof RpcError)) throw e;
      // -27: already in the chain. Else refused; the next block looks again.
      if (e.code !== -27) {
        this.opts.metrics?.broadcastRejected.inc();
        this.log(`the node refused ${s.kind === "breach" ? "breach" : "justice"} ${s.txid}: ${e.rpcMessage}`);
      }
    }
    if (s.kind !== "breach") this.opts.metrics?.broadcasts.inc({ kind: s.kind });
    this.opts.onBroadcast?.(s);
  }

  // ---- running ----

  /** Follows blocks and the mempool until stop(); failures are logged and retried. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.loops.push(this.followLoop(), this.mempoolLoop());
  }

  private pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(t);
        this.wakers.delete(wake);
        resolve();
      };
      const t = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /**
   * Until the records published so far are stored: a block matched before its record arrived
   * would never be matched again (after an outage the stream holds a backlog).
   */
  private async recordsCaughtUp(): Promise<void> {
    const src = this.recordsSource;
    if (src === undefined) return;
    const jsm = await src.nc.jetstreamManager();
    for (let said = false; this.running;) {
      try {
        const info = await jsm.consumers.info(src.stream, src.durable);
        if (info.num_pending === 0 && info.num_ack_pending === 0) return;
        if (!said)
          this.log(
            `storing ${info.num_pending + info.num_ack_pending} revocation records before following blocks`,
          );
        said = true;
      } catch (e) {
        this.log(`cannot ask JetStream about the records consumer (${message(e)}); retrying`);
      }
      await this.pause(100);
    }
  }

  private async followLoop(): Promise<void> {
    await this.recordsCaughtUp();
    for (let attempt = 0; this.running; attempt++) {
      try {
        await this.follower.start();
        return;
      } catch (e) {
        this.log(`following blocks stopped (${message(e)}); resuming from the stored cursor`);
        if (!this.running) return;
        await this.pause(Math.min(1000 * 2 ** Math.min(attempt, 5), 30_000));
        this.follower = this.newFollower();
      }
    }
  }

  private async mempoolLoop(): Promise<void> {
    await this.recordsCaughtUp();
    while (this.running) {
      try {
        await this.pollMempool();
      } catch (e) {
        this.log(`looking at the mempool failed (${message(e)}); retrying`);
      }
      if (this.running) await this.pause(this.opts.mempoolPollMs ?? 1000);
    }
  }

  /** Stops following, consuming and retrying; resolves once every loop has ended. */
  async stop(): Promise<void> {
    this.running = false;
    for (const wake of [...this.wakers]) wake();
    await this.follower.stop();
    for (const r of this.retries.values()) if (r.timer) clearTimeout(r.timer);
    this.retries.clear();
    await this.records?.close();
    await Promise.allSettled(this.loops);
    this.loops = [];
  }

  private cursorStore(): CursorStore {
    return {
      load: async () => {
        const r = await this.opts.pool.query<{ cursor: Cursor }>(
          `SELECT cursor FROM ${this.t("tower_cursor")} WHERE id = 1`,
        );
        return r.rows[0]?.cursor;
      },
      save: async (cursor) => {
        await this.opts.pool.query(
          `INSERT INTO ${this.t("tower_cursor")} (id, cursor) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET cursor = $1`,
          [JSON.stringify(cursor)],
        );
      },
    };
  }
}

/** A transaction to send after the commit. */
/** What one justice transaction takes and its signed size: the signer bounds its fee's share of it. */
const justiceShare = (spend: Spend): { takenSat: bigint; size: number } => ({
  takenSat: spend.inputs.reduce<bigint>((sum, i) => sum + i.coin.amount, 0n),
  size: signedSize(spend.tx, spend.inputs),
});

export interface Send {
  kind: "breach" | "first" | "replacement" | "rebroadcast";
  hex: string;
  txid: string;
}
