import {
  deserializeState,
  serializeState,
  type ChannelState,
  type Output,
  type Step,
} from "@ln/channel-core";
import { encodePkt } from "@ln/proto";
import { inTransaction, quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { migrateChannelService } from "./migrations.js";

/**
 * The channel service's own tables (DESIGN.md 6): each channel's state, the numbered messages it
 * sent (the durable outbox retransmission reads), and a lease so one replica at a time runs a
 * channel. Every transition is one transaction: state and outbox commit together, then send.
 */

export type StoreErrorCode = "LEASE_NOT_HELD" | "NO_SUCH_CHANNEL" | "CHANNEL_EXISTS";

export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface OutboxMessage {
  seq: number;
  bytes: Buffer;
}

export interface Transition extends Step {
  /** The encoded messages this transition added to the outbox, to send now that they are durable. */
  sends: OutboxMessage[];
}

export class ChannelStore {
  readonly schema: string;
  private readonly quoted: string;

  constructor(
    private readonly pool: pg.Pool,
    schema = "channel",
  ) {
    this.quoted = quoteSchema(schema);
    this.schema = schema;
  }

  private t(table: string): string {
    return `${this.quoted}.${table}`;
  }

  /** Applies the service's migrations this database has not seen yet. */
  async migrate(): Promise<void> {
    await migrateChannelService(this.pool, this.schema);
  }

  /** Stores a new channel with the messages its creation produced. */
  async create(id: string, created: Step): Promise<Transition> {
    return this.inTransaction(async (c) => {
      const r = await c.query(
        `INSERT INTO ${this.t("channels")} (id, state) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [id, serializeState(created.state)],
      );
      if (r.rowCount === 0) throw new StoreError("CHANNEL_EXISTS", `channel ${id} already exists`);
      return { ...created, sends: await this.appendOutbox(c, id, created.outputs) };
    });
  }

  /**
   * Takes or renews the lease on a channel for `ttlMs`. Returns false while another owner holds
   * an unexpired lease.
   */
  async acquireLease(id: string, owner: string, ttlMs: number): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE ${this.t("channels")}
          SET lease_owner = $2, lease_expires = now() + make_interval(secs => $3::double precision / 1000)
        WHERE id = $1 AND (lease_owner IS NULL OR lease_owner = $2 OR lease_expires < now())`,
      [id, owner, ttlMs],
    );
    return r.rowCount === 1;
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("channels")} SET lease_owner = NULL, lease_expires = NULL WHERE id = $1 AND lease_owner = $2`,
      [id, owner],
    );
  }

  /**
   * Runs one transition of the pure core under the lease: the row is locked, the lease checked,
   * the new state and every message it sends written, all in one transaction.
   */
  async transition(id: string, owner: string, run: (state: ChannelState) => Step): Promise<Transition> {
    return this.inTransaction(async (c) => {
      const r = await c.query<{ state: string; lease_owner: string | null; held: boolean }>(
        `SELECT state, lease_owner, (lease_expires > now()) AS held FROM ${this.t("channels")} WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const row = r.rows[0];
      if (!row) throw new StoreError("NO_SUCH_CHANNEL", `no channel ${id}`);
      if (row.lease_owner !== owner || !row.held)
        throw new StoreError(
          "LEASE_NOT_HELD",
          `${owner} does not hold the lease on channel ${id}; acquire it first`,
        );
      const next = run(deserializeState(row.state));
      await c.query(
        `UPDATE ${this.t("channels")} SET state = $2, version = version + 1, updated_at = now() WHERE id = $1`,
        [id, serializeState(next.state)],
      );
      return { ...next, sends: await this.appendOutbox(c, id, next.outputs) };
    });
  }

  async load(id: string): Promise<ChannelState | undefined> {
    const r = await this.pool.query<{ state: string }>(
      `SELECT state FROM ${this.t("channels")} WHERE id = $1`,
      [id],
    );
    return r.rows[0] ? deserializeState(r.rows[0].state) : undefined;
  }

  /** Messages after the peer's ack, bitwise as first sent (draft 1.2). */
  async outboxAfter(id: string, afterSeq: number): Promise<OutboxMessage[]> {
    const r = await this.pool.query<{ seq: number; pkt: Buffer }>(
      `SELECT seq, pkt FROM ${this.t("outbox")} WHERE channel_id = $1 AND seq > $2 ORDER BY seq`,
      [id, afterSeq],
    );
    return r.rows.map((row) => ({ seq: row.seq, bytes: row.pkt }));
  }

  /** Drops messages the peer has acknowledged: they are never resent. */
  async pruneOutbox(id: string, ackedSeq: number): Promise<void> {
    await this.pool.query(`DELETE FROM ${this.t("outbox")} WHERE channel_id = $1 AND seq <= $2`, [
      id,
      ackedSeq,
    ]);
  }

  private async appendOutbox(
    c: pg.PoolClient,
    id: string,
    outputs: readonly Output[],
  ): Promise<OutboxMessage[]> {
    const sends: OutboxMessage[] = [];
    for (const o of outputs) {
      if (o.type !== "send") continue;
      const bytes = encodePkt(o.pkt);
      await c.query(`INSERT INTO ${this.t("outbox")} (channel_id, seq, pkt) VALUES ($1, $2, $3)`, [
        id,
        o.seq,
        bytes,
      ]);
      sends.push({ seq: o.seq, bytes });
    }
    return sends;
  }

  private inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }
}
