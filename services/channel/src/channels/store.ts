import {
  deserializeState,
  serializeState,
  type ChannelState,
  type Output,
  type Step,
  type Steps,
} from "@ln/channel-core";
import { defaultSweepScript, sealRecord } from "@ln/justice";
import { encodePkt } from "@ln/proto";
import { inTransaction, quoteSchema } from "@ln/postgres";
import { shortChannelIdFromBigint, shortChannelIdToBigint, type ShortChannelId } from "@ln/bitcoin";
import type pg from "pg";
import { inEventTransaction } from "../events/event-log.js";
import { migrateChannelService } from "../migrations.js";
import { writeStepRecords } from "../payments/records.js";

/**
 * The channel service's own tables (DESIGN.md 6): each channel's state, the numbered messages it
 * sent (the durable outbox retransmission reads), and a lease so one replica at a time runs a
 * channel. Every transition is one transaction: state, outbox, the money records its HTLCs move
 * and their status events (payments/records.ts, DESIGN.md 11) commit together, then send.
 */

/**
 * More to write in a transition's own transaction, after its state, records and outbox (e.g. the
 * control API's idempotency result of the payment the step offered). Throwing rolls it all back.
 */
export type WithinTransition = (c: pg.PoolClient, t: Step) => Promise<void>;

export type StoreErrorCode =
  | "LEASE_NOT_HELD"
  | "NO_SUCH_CHANNEL"
  | "CHANNEL_EXISTS"
  /** A revocation arrived on a channel stored without its signer channel (a bug): not committed. */
  | "NO_SIGNER_CHANNEL";

export class StoreError extends Error {
  override readonly name = "StoreError";
  constructor(
    readonly code: StoreErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** A sealed revocation record for the watchtower (DESIGN.md 7), not yet acknowledged by JetStream. */
export interface UnpublishedRecord {
  channelId: string;
  number: bigint;
  locator: Buffer;
  blob: Buffer;
}

export interface OutboxMessage {
  seq: number;
  bytes: Buffer;
}

export interface Transition extends Step {
  /** The encoded messages this transition added to the outbox, to send now that they are durable. */
  sends: OutboxMessage[];
}

/** Several inputs' transition (transitionAll): the outputs of each input, by position. */
export interface Transitions extends Steps {
  sends: OutboxMessage[];
}

/** A channel's row without its state. `leaseHeld`: someone's lease on it has not expired. */
export interface ChannelRow {
  id: string;
  peerNodeId: string | undefined;
  signerChannel: number | undefined;
  phase: ChannelState["phase"];
  leaseOwner: string | undefined;
  leaseHeld: boolean;
  createdAt: Date;
  /** Where its anchor is on the best chain (BOLT #7); undefined until it is in a block. */
  shortChannelId: ShortChannelId | undefined;
}

interface ChannelDbRow {
  id: string;
  peer_node_id: string | null;
  signer_channel: number | null;
  phase: ChannelState["phase"];
  lease_owner: string | null;
  held: boolean | null;
  created_at: Date;
  /** bigint comes back from pg as a decimal string. */
  short_channel_id: string | null;
}

/** The columns of a ChannelRow (everything but the state). */
const ROW_COLUMNS =
  "id, peer_node_id, signer_channel, phase, lease_owner, (lease_expires > now()) AS held, created_at, short_channel_id";

const toRow = (r: ChannelDbRow): ChannelRow => ({
  id: r.id,
  peerNodeId: r.peer_node_id ?? undefined,
  signerChannel: r.signer_channel ?? undefined,
  phase: r.phase,
  leaseOwner: r.lease_owner ?? undefined,
  leaseHeld: r.held === true,
  createdAt: r.created_at,
  shortChannelId:
    r.short_channel_id === null
      ? undefined
      : shortChannelIdFromBigint(BigInt.asUintN(64, BigInt(r.short_channel_id))),
});

// Postgres bigint is signed: a short_channel_id of height 2^23 or more is stored as its two's
// complement, so every 64-bit value has one row value and the unique index holds.
const toSigned64 = (scid: bigint): string => BigInt.asIntN(64, scid).toString();

/** The messages among a step's outputs, encoded as the outbox keeps them. */
const encodeSends = (outputs: readonly Output[]): OutboxMessage[] =>
  outputs.flatMap((o) => (o.type === "send" ? [{ seq: o.seq, bytes: encodePkt(o.pkt) }] : []));

/** A channel's state as this replica last committed it, at the row's version then. */
interface Stored {
  owner: string;
  version: string;
  state: ChannelState;
  signerChannel: number | null;
  read?: true;
}

export class ChannelStore {
  readonly schema: string;
  private readonly quoted: string;
  /** Per channel: the state this process last committed (transitionAll), to skip reading it back. */
  private readonly written = new Map<string, Stored>();

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

  /**
   * Stores a new channel with the messages its creation produced; with `owner`, under a fresh
   * lease of `leaseMs`. A second live channel with the same peer is refused (CHANNEL_EXISTS).
   */
  async create(
    id: string,
    created: Step,
    meta: { peerNodeId?: string; signerChannel?: number; owner?: string; leaseMs?: number } = {},
  ): Promise<Transition> {
    return this.inEventTransaction(async (c) => {
      let r: pg.QueryResult;
      try {
        r = await c.query(
          `INSERT INTO ${this.t("channels")} (id, state, phase, peer_node_id, signer_channel, lease_owner, lease_expires)
           VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6::text IS NULL THEN NULL ELSE now() + make_interval(secs => $7::double precision / 1000) END)
           ON CONFLICT (id) DO NOTHING`,
          [
            id,
            serializeState(created.state),
            created.state.phase,
            meta.peerNodeId ?? null,
            meta.signerChannel ?? null,
            meta.owner ?? null,
            meta.leaseMs ?? 0,
          ],
        );
      } catch (e) {
        if ((e as { code?: string }).code === "23505")
          throw new StoreError(
            "CHANNEL_EXISTS",
            `there is already a live channel with peer ${meta.peerNodeId}`,
          );
        throw e;
      }
      if (r.rowCount === 0) throw new StoreError("CHANNEL_EXISTS", `channel ${id} already exists`);
      await writeStepRecords(c, this.schema, id, undefined, created);
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

  /**
   * One lease round in one statement: renews our lease on every channel in `held` (the ones we
   * run), and takes every live channel whose lease is free, expired or already ours. Returns the
   * rows whose lease `owner` holds now; a channel of `held` missing from them was lost (deleted, or
   * taken by another replica after our lease expired). Rows are locked in id order, so two
   * replicas' rounds never deadlock; the lease condition is checked again on the locked row.
   */
  async takeLeases(owner: string, ttlMs: number, held: readonly string[]): Promise<ChannelRow[]> {
    const free = "(c.lease_owner IS NULL OR c.lease_owner = $1 OR c.lease_expires < now())";
    const r = await this.pool.query<ChannelDbRow>(
      `WITH doomed AS (
         SELECT id FROM ${this.t("channels")} c
          WHERE ${free} AND (c.id = ANY($3::text[]) OR c.phase NOT IN ('closed', 'failed'))
          ORDER BY id FOR UPDATE
       )
       UPDATE ${this.t("channels")} c
          SET lease_owner = $1, lease_expires = now() + make_interval(secs => $2::double precision / 1000)
         FROM doomed WHERE c.id = doomed.id AND ${free}
       RETURNING c.id, c.peer_node_id, c.signer_channel, c.phase, c.lease_owner, true AS held,
                 c.created_at, c.short_channel_id`,
      [owner, ttlMs, held],
    );
    return r.rows.map(toRow);
  }

  /** Gives up our leases on `ids` (stopping), so another replica takes them at once. */
  async releaseLeases(ids: readonly string[], owner: string): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("channels")} SET lease_owner = NULL, lease_expires = NULL
        WHERE id = ANY($1::text[]) AND lease_owner = $2`,
      [ids, owner],
    );
  }

  /** The stored states of `ids` in one query (a channel deleted meanwhile is absent). */
  async states(ids: readonly string[]): Promise<Map<string, ChannelState>> {
    const r = await this.pool.query<{ id: string; state: string }>(
      `SELECT id, state FROM ${this.t("channels")} WHERE id = ANY($1::text[])`,
      [ids],
    );
    return new Map(r.rows.map((x) => [x.id, deserializeState(x.state)]));
  }

  async releaseLease(id: string, owner: string): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("channels")} SET lease_owner = NULL, lease_expires = NULL WHERE id = $1 AND lease_owner = $2`,
      [id, owner],
    );
  }

  /**
   * Runs one transition of the pure core under the lease: the row is locked, the lease checked,
   * the new state, the money records and status events of its outputs, every message it sends,
   * and `within`'s writes, all in one transaction.
   */
  async transition(
    id: string,
    owner: string,
    run: (state: ChannelState) => Step,
    within?: WithinTransition,
  ): Promise<Transition> {
    const t = await this.transitionAll(
      id,
      owner,
      (s) => {
        const next = run(s);
        return { state: next.state, outputs: [next.outputs] };
      },
      [within],
    );
    return { state: t.state, outputs: t.outputs[0] ?? [], sends: t.sends };
  }

  /**
   * Several inputs' steps of the core (`run`, the core's stepAll) in one transaction under the
   * lease, as `transition` does for one: `withins[i]` writes more for input i, with its outputs.
   * Their outputs come back by position (only for the inputs the core took); the messages they
   * send, in order, in `sends`.
   */
  async transitionAll(
    id: string,
    owner: string,
    run: (state: ChannelState) => Steps,
    withins: readonly (WithinTransition | undefined)[],
  ): Promise<Transitions> {
    let stored: Stored | undefined;
    const t = await this.inEventTransaction(async (c) => {
      // The state this replica wrote last is used as it is when the row is still at its version
      // under our lease (checked by the UPDATE); otherwise it is read again under a row lock.
      let base = this.written.get(id);
      let prev: ChannelState;
      let next: Steps;
      let sends: OutboxMessage[];
      for (;;) {
        if (base?.owner !== owner) base = await this.lockedRow(c, id, owner);
        prev = base.state;
        next = run(prev);
        sends = encodeSends(next.outputs.flat());
        // The peer's acknowledgement never decreases (draft 1.2): what it covers is never resent.
        const acked = Math.max(prev.peerAck, prev.peerCommitAck);
        const nowAcked = Math.max(next.state.peerAck, next.state.peerCommitAck);
        // State, acknowledged outbox rows out, new ones in: one statement, nothing done unless
        // the row was still at its version under our lease.
        const u = await c.query<{ version: string }>(
          `WITH u AS (
             UPDATE ${this.t("channels")} SET state = $2, phase = $3, version = version + 1, updated_at = now()
              WHERE id = $1 AND version = $4 AND lease_owner = $5 AND lease_expires > now()
              RETURNING version),
           d AS (DELETE FROM ${this.t("outbox")} WHERE channel_id = $1 AND seq <= $6 AND EXISTS (SELECT 1 FROM u)),
           i AS (INSERT INTO ${this.t("outbox")} (channel_id, seq, pkt)
                 SELECT $1, m.seq, m.pkt FROM unnest($7::integer[], $8::bytea[]) AS m(seq, pkt)
                  WHERE EXISTS (SELECT 1 FROM u))
           SELECT version::text AS version FROM u`,
          [
            id,
            serializeState(next.state),
            next.state.phase,
            base.version,
            owner,
            nowAcked > acked ? nowAcked : -1,
            sends.map((m) => m.seq),
            sends.map((m) => m.bytes),
          ],
        );
        const version = u.rows[0]?.version;
        if (version !== undefined) {
          stored = { owner, version, state: next.state, signerChannel: base.signerChannel };
          break;
        }
        if (base.read) throw new Error(`channel ${id}: its row changed under our lock`);
        base = undefined; // another writer, or our lease lapsed: read it again
      }
      const outputs = next.outputs.flat();
      const signerChannel = base.signerChannel;
      // The peer's revocations are kept with the state that received them, until the signer
      // has recorded them (it signs justice only for commitments it knows were revoked), and so
      // is the watchtower's record of each, until JetStream has it (DESIGN.md 7).
      for (const o of outputs) {
        if (o.type !== "revoked") continue;
        await c.query(
          `INSERT INTO ${this.t("peer_revocations")} (channel_id, number, preimage) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING`,
          [id, o.number.toString(), o.preimage],
        );
        if (signerChannel === null)
          throw new StoreError(
            "NO_SIGNER_CHANNEL",
            `channel ${id} has no signer channel to name in its tower record`,
          );
        const sealed = sealRecord({
          signerChannel,
          revokedNumber: o.number,
          revocationPreimage: Buffer.from(o.preimage, "hex"),
          params: o.params,
          sweepScript: defaultSweepScript(o.params),
        });
        await c.query(
          `INSERT INTO ${this.t("tower_records")} (channel_id, number, locator, blob) VALUES ($1, $2, $3, $4)
           ON CONFLICT DO NOTHING`,
          [id, o.number.toString(), sealed.locator, sealed.blob],
        );
      }
      await writeStepRecords(c, this.schema, id, prev, { state: next.state, outputs });
      // Only the inputs the core took (it may stop at one that awaits the signer).
      for (const [i, within] of withins.slice(0, next.outputs.length).entries())
        await within?.(c, { state: next.state, outputs: next.outputs[i] ?? [] });
      return { ...next, sends };
    });
    // Committed: the next transition starts from this state without reading it back.
    if (stored) this.written.set(id, stored);
    return t;
  }

  /** The channel's row under a lock for this transaction, checked to be under `owner`'s lease. */
  private async lockedRow(c: pg.PoolClient, id: string, owner: string): Promise<Stored & { read: true }> {
    const r = await c.query<{
      state: string;
      lease_owner: string | null;
      held: boolean;
      signer_channel: number | null;
      version: string;
    }>(
      `SELECT state, lease_owner, (lease_expires > now()) AS held, signer_channel, version::text AS version
         FROM ${this.t("channels")} WHERE id = $1 FOR UPDATE`,
      [id],
    );
    const row = r.rows[0];
    if (!row) throw new StoreError("NO_SUCH_CHANNEL", `no channel ${id}`);
    if (row.lease_owner !== owner || !row.held)
      throw new StoreError(
        "LEASE_NOT_HELD",
        `${owner} does not hold the lease on channel ${id}; acquire it first`,
      );
    return {
      owner,
      version: row.version,
      state: deserializeState(row.state),
      signerChannel: row.signer_channel,
      read: true,
    };
  }

  /** Tower records JetStream has not acknowledged yet, oldest first. */
  async unpublishedRecords(limit = 500): Promise<UnpublishedRecord[]> {
    const r = await this.pool.query<{ channel_id: string; number: string; locator: Buffer; blob: Buffer }>(
      `SELECT channel_id, number::text AS number, locator, blob FROM ${this.t("tower_records")}
        WHERE published_at IS NULL ORDER BY channel_id, number LIMIT $1`,
      [limit],
    );
    return r.rows.map((x) => ({
      channelId: x.channel_id,
      number: BigInt(x.number),
      locator: x.locator,
      blob: x.blob,
    }));
  }

  async markRecordPublished(channelId: string, number: bigint): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("tower_records")} SET published_at = now() WHERE channel_id = $1 AND number = $2`,
      [channelId, number.toString()],
    );
  }

  /** The peer's revocations of a channel the signer has not recorded yet, oldest first. */
  async unrecordedRevocations(id: string): Promise<{ number: bigint; preimage: string }[]> {
    const r = await this.pool.query<{ number: string; preimage: string }>(
      `SELECT number::text AS number, preimage FROM ${this.t("peer_revocations")}
        WHERE channel_id = $1 AND recorded_at IS NULL ORDER BY number`,
      [id],
    );
    return r.rows.map((row) => ({ number: BigInt(row.number), preimage: row.preimage }));
  }

  /** The channels with a revocation of the peer the signer has not recorded yet. */
  async channelsWithUnrecordedRevocations(): Promise<string[]> {
    const r = await this.pool.query<{ channel_id: string }>(
      `SELECT DISTINCT channel_id FROM ${this.t("peer_revocations")} WHERE recorded_at IS NULL`,
    );
    return r.rows.map((row) => row.channel_id);
  }

  async markRevocationRecorded(id: string, number: bigint): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("peer_revocations")} SET recorded_at = now() WHERE channel_id = $1 AND number = $2`,
      [id, number.toString()],
    );
  }

  /** Every channel's row, newest first: who it is with, its phase and its lease. */
  async rows(): Promise<ChannelRow[]> {
    const r = await this.pool.query<ChannelDbRow>(
      `SELECT ${ROW_COLUMNS}
         FROM ${this.t("channels")} ORDER BY created_at DESC, id`,
    );
    return r.rows.map(toRow);
  }

  /** Every channel's row with its state, newest first, in one query. */
  async rowsWithState(): Promise<{ row: ChannelRow; state: ChannelState }[]> {
    const r = await this.pool.query<ChannelDbRow & { state: string }>(
      `SELECT ${ROW_COLUMNS}, state
         FROM ${this.t("channels")} ORDER BY created_at DESC, id`,
    );
    return r.rows.map((x) => ({ row: toRow(x), state: deserializeState(x.state) }));
  }

  async row(id: string): Promise<ChannelRow | undefined> {
    const r = await this.pool.query<ChannelDbRow>(
      `SELECT ${ROW_COLUMNS}
         FROM ${this.t("channels")} WHERE id = $1`,
      [id],
    );
    return r.rows[0] ? toRow(r.rows[0]) : undefined;
  }

  /** The channel whose anchor is at this short_channel_id (the next hop of a forward), if any. */
  async channelByShortId(scid: bigint): Promise<ChannelRow | undefined> {
    const r = await this.pool.query<ChannelDbRow>(
      `SELECT ${ROW_COLUMNS}
         FROM ${this.t("channels")} WHERE short_channel_id = $1`,
      [toSigned64(scid)],
    );
    return r.rows[0] ? toRow(r.rows[0]) : undefined;
  }

  /**
   * Records where the chain watcher last saw a channel's anchor (undefined: out of the best chain
   * again, after a reorg). Idempotent. The latest report wins: a channel still holding that place
   * from an earlier branch (its depth-0 report not seen yet) loses it, as the chain no longer
   * has it there. Written apart from the channel's state: it is the chain's fact, not a step.
   */
  async setShortChannelId(id: string, scid: ShortChannelId | undefined): Promise<void> {
    if (scid === undefined) {
      await this.pool.query(`UPDATE ${this.t("channels")} SET short_channel_id = NULL WHERE id = $1`, [id]);
      return;
    }
    const value = toSigned64(shortChannelIdToBigint(scid));
    await this.inTransaction(async (c) => {
      await c.query(
        `UPDATE ${this.t("channels")} SET short_channel_id = NULL WHERE short_channel_id = $1 AND id <> $2`,
        [value, id],
      );
      await c.query(`UPDATE ${this.t("channels")} SET short_channel_id = $1 WHERE id = $2`, [value, id]);
    });
  }

  /**
   * The live channel with a peer, if any: not closed, not failed, and not behind (stopped, waiting
   * for the peer to close it; it takes nothing more from the peer, and a new channel may be opened).
   */
  async liveWith(peerNodeId: string): Promise<ChannelRow | undefined> {
    const r = await this.pool.query<ChannelDbRow>(
      `SELECT ${ROW_COLUMNS}
         FROM ${this.t("channels")} WHERE peer_node_id = $1 AND phase NOT IN ('closed', 'failed', 'behind')`,
      [peerNodeId],
    );
    return r.rows[0] ? toRow(r.rows[0]) : undefined;
  }

  /**
   * What the bounds on inbound openings look at: the channels peers opened to us that are still
   * opening, and the openings that failed before their anchor (forgotten) in the last `windowMs`,
   * of this peer and of all. Forgotten openings older than the window are dropped here.
   */
  async inboundOpeningStats(
    peerNodeId: string,
    windowMs: number,
  ): Promise<{ opening: number; peerFailures: number; totalFailures: number }> {
    const since = `now() - make_interval(secs => $1::double precision / 1000)`;
    await this.pool.query(`DELETE FROM ${this.t("forgotten_openings")} WHERE forgotten_at <= ${since}`, [
      windowMs,
    ]);
    const r = await this.pool.query<{ opening: string; peer: string; total: string }>(
      `SELECT (SELECT count(*) FROM ${this.t("channels")}
                WHERE phase = 'opening' AND (state::jsonb ->> 'role') = 'acceptor') AS opening,
              (SELECT count(*) FROM ${this.t("forgotten_openings")}
                WHERE peer_node_id = $2 AND forgotten_at > ${since}) AS peer,
              (SELECT count(*) FROM ${this.t("forgotten_openings")} WHERE forgotten_at > ${since}) AS total`,
      [windowMs, peerNodeId],
    );
    const row = r.rows[0];
    return {
      opening: Number(row?.opening ?? 0),
      peerFailures: Number(row?.peer ?? 0),
      totalFailures: Number(row?.total ?? 0),
    };
  }

  /**
   * Deletes a channel a peer opened to us that failed before we signed its anchor (no
   * open_commit_sig of ours: nothing of ours can be at stake), with its outbox, under the lease,
   * and remembers only that the peer's opening failed (the rate limit counts those). Returns
   * false, changing nothing, for any other channel. Such failures would otherwise stay loaded
   * and run forever, one per opening a peer starts and abandons.
   */
  async forgetFailedOpening(id: string, owner: string): Promise<boolean> {
    return this.inTransaction(async (c) => {
      const r = await c.query<{
        state: string;
        lease_owner: string | null;
        held: boolean;
        peer_node_id: string | null;
      }>(
        `SELECT state, lease_owner, (lease_expires > now()) AS held, peer_node_id FROM ${this.t("channels")} WHERE id = $1 FOR UPDATE`,
        [id],
      );
      const row = r.rows[0];
      if (!row || row.lease_owner !== owner || !row.held) return false;
      const s = deserializeState(row.state);
      if (s.phase !== "failed" || s.role !== "acceptor" || s.opening.anchorSigned) return false;
      await c.query(`DELETE FROM ${this.t("outbox")} WHERE channel_id = $1`, [id]);
      await c.query(`DELETE FROM ${this.t("channels")} WHERE id = $1`, [id]);
      this.written.delete(id); // its last state is kept no longer (the row is gone either way)
      await c.query(
        `INSERT INTO ${this.t("forgotten_openings")} (channel_id, peer_node_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
        [id, row.peer_node_id ?? ""],
      );
      return true;
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

  private async appendOutbox(
    c: pg.PoolClient,
    id: string,
    outputs: readonly Output[],
  ): Promise<OutboxMessage[]> {
    const sends = encodeSends(outputs);
    if (sends.length > 0)
      await c.query(
        `INSERT INTO ${this.t("outbox")} (channel_id, seq, pkt) SELECT $1, * FROM unnest($2::integer[], $3::bytea[])`,
        [id, sends.map((m) => m.seq), sends.map((m) => m.bytes)],
      );
    return sends;
  }

  private inTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.pool, fn);
  }

  /** A transaction that may append status events (events/event-log.ts). */
  private inEventTransaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inEventTransaction(this.pool, this.schema, fn);
  }
}
