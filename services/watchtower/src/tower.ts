/*~ The tower proper (DESIGN.md 7): stores the channel service's sealed revocation records, matches
 * the normalized txid of every transaction in blocks and the mempool against their locators, and
 * on a breach has the signer sign justice, broadcasts it, replaces it at a higher fee when it is
 * slow, re-broadcasts after a reorg and forgets the breach once the justice is buried. The
 * decisions are justice-core.ts's; this file only wires the parts: record intake
 * (records/intake.ts), breach detection (breaches/detection.ts) and the justice worker
 * (justice/worker.ts over justice/claims.ts), over blocks and the mempool of the node.
 *
 * Replicas share Postgres. A breach is worked on under a durable claim, never a row lock held
 * across a call to the node or the signer, and every signed version is committed (only while the
 * claim holds) before it is broadcast, so only the latest version of each justice transaction
 * is ever sent, by one replica. The tower holds no key: a leaked record database reveals nothing
 * before a breach, and nothing it can spend. */
import { BlockFollower, type Cursor, type CursorStore, type FollowerEvent } from "@ln/chain-client";
import { silentLog, type Log } from "@ln/log";
import { migrate } from "@ln/postgres";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import { BreachDetector, type SeenTx } from "./breaches/detection.js";
import {
  asError,
  tablesOf,
  type JusticeSigner,
  type Send,
  type TowerContext,
  type TowerRpc,
  type TowerSettings,
} from "./context.js";
import { JusticeWorker } from "./justice/worker.js";
import type { TowerMetrics } from "./metrics.js";
import { MIGRATIONS } from "./migrations.js";
import { RecordIntake, type RecordsSource } from "./records/intake.js";

export type { JusticeSigner, Send, TowerRpc, TowerSettings } from "./context.js";
export { towerMetrics, type TowerMetrics } from "./metrics.js";
export type { RecordsSource } from "./records/intake.js";
export type { SeenTx } from "./breaches/detection.js";

export interface JusticeTowerOptions {
  pool: pg.Pool;
  /** Postgres schema (shared with the chain watcher). Default "watchtower". */
  schema?: string;
  rpc: TowerRpc;
  signer: JusticeSigner;
  settings: TowerSettings;
  metrics?: TowerMetrics;
  log?: Log;
  /** This replica's id in breach claims. Default: host name, pid and a random suffix. */
  workerId?: string;
  /** How long a claim on a breach lasts unless renewed (before each signer call). Default 30 s. */
  claimTtlMs?: number;
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

export class JusticeTower {
  private readonly ctx: TowerContext;
  private readonly log: Log;
  readonly intake: RecordIntake;
  readonly detector: BreachDetector;
  readonly worker: JusticeWorker;
  private follower: BlockFollower;
  private running = false;
  private loops: Promise<void>[] = [];
  private readonly wakers = new Set<() => void>();

  constructor(private readonly opts: JusticeTowerOptions) {
    this.log = opts.log ?? silentLog;
    this.ctx = {
      pool: opts.pool,
      table: tablesOf(opts.schema ?? "watchtower"),
      rpc: opts.rpc,
      signer: opts.signer,
      settings: opts.settings,
      metrics: opts.metrics,
      log: this.log,
      workerId: opts.workerId ?? `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`,
      claimTtlMs: opts.claimTtlMs ?? 30_000,
      signerTimeoutMs: opts.signerTimeoutMs ?? 5000,
      onBroadcast: opts.onBroadcast,
    };
    this.intake = new RecordIntake(this.ctx);
    this.worker = new JusticeWorker(this.ctx);
    this.detector = new BreachDetector(this.ctx, (ntxid) => this.worker.check(ntxid));
    this.follower = this.newFollower();
  }

  /** Applies the schema's migrations (shared with the chain watcher). */
  migrate(): Promise<number[]> {
    return migrate(this.opts.pool, this.opts.schema ?? "watchtower", MIGRATIONS);
  }

  private newFollower(): BlockFollower {
    return new BlockFollower({
      rpc: this.opts.rpc,
      store: this.cursorStore(),
      onEvent: (e) => this.onBlockEvent(e),
      ...(this.opts.startHeight !== undefined ? { startHeight: this.opts.startHeight } : {}),
      ...(this.opts.intervalMs !== undefined ? { intervalMs: this.opts.intervalMs } : {}),
      onPollError: (e) => this.log.warn("node unreachable while following blocks; retrying", { err: e }),
    });
  }

  /** See RecordIntake.storeRecord. */
  storeRecord(payload: Uint8Array): Promise<boolean> {
    return this.intake.storeRecord(payload);
  }

  /** See RecordIntake.consume. */
  consumeRecords(src: RecordsSource): Promise<void> {
    return this.intake.consume(src);
  }

  /** See BreachDetector.match. */
  match(txs: readonly SeenTx[], where: "block" | "mempool"): Promise<number> {
    return this.detector.match(txs, where);
  }

  /** See BreachDetector.pollMempool. */
  pollMempool(): Promise<number> {
    return this.detector.pollMempool();
  }

  /** See JusticeWorker.checkAll. */
  checkAll(): Promise<void> {
    return this.worker.checkAll();
  }

  /** See JusticeWorker.check. */
  check(ntxid: Buffer): Promise<void> {
    return this.worker.check(ntxid);
  }

  /** See JusticeWorker.feeRate. */
  feeRate(): Promise<number> {
    return this.worker.feeRate();
  }

  private async onBlockEvent(e: FollowerEvent): Promise<void> {
    if (e.type !== "connected") return; // the next connected block shows what the reorg changed
    const end = this.opts.metrics?.blockCheck.startTimer();
    await this.detector.match(
      e.block.tx.map((t) => ({ txid: t.txid, hex: t.hex })),
      "block",
    );
    await this.worker.checkAll();
    end?.();
  }

  /** Catches up with the node: every block since the cursor is matched, every breach checked. */
  syncOnce(): Promise<void> {
    return this.follower.syncOnce();
  }

  // ---- running ----

  /** Follows blocks and the mempool until stop(); failures are logged and retried. */
  start(): void {
    if (this.running) return;
    this.running = true;
    this.worker.start();
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
    for (let said = false; this.running;) {
      const pending = await this.intake.pending();
      if (pending === 0) return;
      if (pending !== undefined && !said) {
        this.log.info(`storing ${pending} revocation records before following blocks`, { pending });
        said = true;
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
        this.log.warn("following blocks stopped; resuming from the stored cursor", { err: asError(e) });
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
        await this.detector.pollMempool();
      } catch (e) {
        this.log.warn("looking at the mempool failed; retrying", { err: asError(e) });
      }
      if (this.running) await this.pause(this.opts.mempoolPollMs ?? 1000);
    }
  }

  /** Stops following, consuming and retrying; resolves once every loop has ended. */
  async stop(): Promise<void> {
    this.running = false;
    for (const wake of [...this.wakers]) wake();
    await this.follower.stop();
    this.worker.stop();
    await this.intake.stop();
    await Promise.allSettled(this.loops);
    this.loops = [];
  }

  private cursorStore(): CursorStore {
    const table = this.ctx.table("tower_cursor");
    return {
      load: async () => {
        const r = await this.opts.pool.query<{ cursor: Cursor }>(`SELECT cursor FROM ${table} WHERE id = 1`);
        return r.rows[0]?.cursor;
      },
      save: async (cursor) => {
        await this.opts.pool.query(
          `INSERT INTO ${table} (id, cursor) VALUES (1, $1) ON CONFLICT (id) DO UPDATE SET cursor = $1`,
          [JSON.stringify(cursor)],
        );
      },
    };
  }
}
