/*~ Breach detection: the normalized txid of every transaction in blocks and the mempool, its
 * locator looked up among the stored records, and on a match the record opened (which only the
 * breach itself can do) and the breach stored, once, for the justice worker. */
import { RpcError } from "@ln/chain-client";
import { LOCATOR_BYTES } from "@ln/proto";
import { locatorInto, openRecord, RecordError, type RevocationRecord } from "@ln/justice";
import { inTransaction } from "@ln/postgres";
import { normalizedTxidOfHexInto, TxParseError } from "@ln/tx";
import type { TowerContext } from "../context.js";
import { newBreach, type BreachState } from "../justice-core.js";

export interface SeenTx {
  txid: string;
  hex: string;
}

interface RecordRow {
  /** The locator's place in the lookup (0-based), which is the transaction's place in its chunk. */
  i: number;
  locator: Buffer;
  blob_hash: Buffer;
  blob: Buffer;
}

/**
 * Locators per lookup query. A 4,000-transaction block makes eight, sent as the hashing goes: the
 * pool's connections probe the index in parallel (other processes, the other core) while this one
 * hashes, and what is left to wait for after the last transaction is one small query.
 */
const LOOKUP_CHUNK = 500;
const NTXID_BYTES = 32;

/** The revoked commitment's delay in blocks; a time delay counts as 10-minute blocks. */
const delayBlocksOf = (r: RevocationRecord): number =>
  "blocks" in r.params.delay ? r.params.delay.blocks : Math.floor(r.params.delay.seconds / 600);

export class BreachDetector {
  /** Mempool txids already looked at; what left the mempool is forgotten at the next poll. */
  private mempoolSeen = new Set<string>();

  /** `onBreach` is handed every matched breach (new or known) once it is stored. */
  constructor(
    private readonly ctx: TowerContext,
    private readonly onBreach: (ntxid: Buffer) => Promise<void>,
  ) {}

  /**
   * Looks up the normalized txids of these transactions, a chunk at a time, and hands on every
   * breach found. Returns how many breaches were matched.
   */
  async match(txs: readonly SeenTx[], where: "block" | "mempool"): Promise<number> {
    // Every transaction read, in order, and its normalized txid at 32 * its place in `ntxids`; a
    // lookup row's `i` is a place in its chunk. Nothing is allocated per transaction.
    const read: SeenTx[] = [];
    const ntxids = Buffer.allocUnsafe(NTXID_BYTES * txs.length);
    const lookups: Promise<{ row: RecordRow; at: number }[]>[] = [];
    let chunk = Buffer.allocUnsafe(LOOKUP_CHUNK * LOCATOR_BYTES);
    let inChunk = 0;
    const flush = async (): Promise<void> => {
      const base = read.length - inChunk;
      const lookup = this.lookup(chunk.subarray(0, inChunk * LOCATOR_BYTES)).then((rows) =>
        rows.map((row) => ({ row, at: base + row.i })),
      );
      // Handled now, awaited below: a failure meanwhile must not count as an unhandled rejection.
      lookup.catch(() => undefined);
      lookups.push(lookup);
      chunk = Buffer.allocUnsafe(LOOKUP_CHUNK * LOCATOR_BYTES); // the query still holds the last
      inChunk = 0;
      // Lets the pool send it now: the hashing between two chunks never yields.
      await new Promise((resolve) => setImmediate(resolve));
    };
    for (const tx of txs) {
      const at = NTXID_BYTES * read.length;
      try {
        // From the hex: no bitcoinjs Transaction, no Buffer per transaction.
        normalizedTxidOfHexInto(tx.hex, ntxids, at);
      } catch (e) {
        if (e instanceof TxParseError) continue; // not a transaction: not a commitment either
        throw e;
      }
      locatorInto(ntxids, at, chunk, inChunk * LOCATOR_BYTES);
      inChunk++;
      read.push(tx);
      if (inChunk === LOOKUP_CHUNK) await flush();
    }
    if (inChunk > 0) await flush();
    // In the order of the transactions (one listed twice is matched twice, as before).
    const hits = (await Promise.all(lookups)).flat().sort((a, b) => a.at - b.at);
    let found = 0;
    for (const { row, at } of hits) {
      const tx = read[at]!;
      const ntxid = Buffer.from(ntxids.subarray(NTXID_BYTES * at, NTXID_BYTES * (at + 1)));
      let record: RevocationRecord;
      try {
        record = openRecord(row.blob, ntxid);
      } catch (e) {
        if (!(e instanceof RecordError)) throw e;
        this.ctx.metrics?.recordsRejected.inc({ reason: "unopenable" });
        this.ctx.log.warn(`a record matched transaction ${tx.txid} but does not open; ignored`, {
          txid: tx.txid,
          code: e.code,
        });
        continue;
      }
      found++;
      const inserted = await this.ctx.pool.query(
        `INSERT INTO ${this.ctx.table("tower_breaches")} (ntxid, locator, blob_hash, breach_hex, state)
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
        this.ctx.metrics?.breaches.inc({ where });
        this.ctx.log.alert(
          `BREACH: transaction ${tx.txid} (${where}) is the revoked commitment ${record.revokedNumber} of signer channel ${record.signerChannel}; making justice`,
          { level: "warn", breach: tx.txid, signerChannel: Number(record.signerChannel), where },
        );
      } else if (where === "block") await this.adopt(ntxid, tx, record);
      await this.onBreach(ntxid);
    }
    return found;
  }

  /**
   * The records under these locators. They go as one bytea cut up server-side: a bytea[]
   * parameter goes as escaped text, which both sides take longer to encode and parse than
   * Postgres takes for the index probes.
   */
  private async lookup(locators: Buffer): Promise<RecordRow[]> {
    const r = await this.ctx.pool.query<RecordRow>(
      `SELECT i, r.locator, r.blob_hash, r.blob
         FROM generate_series(0, length($1::bytea) / 16 - 1) i
         JOIN ${this.ctx.table("tower_records")} r ON r.locator = substring($1::bytea FROM i * 16 + 1 FOR 16)`,
      [locators],
    );
    return r.rows;
  }

  /**
   * The peer may re-sign its half again after a reorg: a block holding another version of a breach
   * we know (same normalized txid, other txid) makes every justice built so far invalid on this
   * chain (its inputs are gone), so the breach is planned afresh against the version in the block.
   * The old versions stay in tower_justice for the record; they can no longer be mined. A claim
   * on the breach is cleared (and its sequence moved on): the work under it was for the old
   * version, and its outcome must not be recorded over the new plan.
   */
  private async adopt(ntxid: Buffer, tx: SeenTx, record: RevocationRecord): Promise<void> {
    // Short: a read and a write, no call to the node or the signer under the row lock.
    const old = await inTransaction(this.ctx.pool, async (c) => {
      const r = await c.query<{ state: BreachState }>(
        `SELECT state FROM ${this.ctx.table("tower_breaches")} WHERE ntxid = $1 FOR UPDATE`,
        [ntxid],
      );
      const state = r.rows[0]?.state;
      if (state === undefined || state.breachTxid === tx.txid) return undefined;
      const fresh = { ...newBreach(tx.txid, delayBlocksOf(record)), refusals: state.refusals };
      await c.query(
        `UPDATE ${this.ctx.table("tower_breaches")}
            SET breach_hex = $2, state = $3, updated_at = now(),
                claimed_by = NULL, claimed_until = NULL, claim_seq = claim_seq + 1
          WHERE ntxid = $1`,
        [ntxid, tx.hex, JSON.stringify(fresh)],
      );
      return state;
    });
    if (old !== undefined)
      this.ctx.log.warn(
        `the revoked commitment was mined as another version (${tx.txid}, was ${old.breachTxid}): justice is rebuilt for it`,
        { breach: tx.txid },
      );
  }

  /** One look at the mempool: the transactions not seen at the previous look are matched. */
  async pollMempool(): Promise<number> {
    const ids = await this.ctx.rpc.getRawMempool();
    const fresh = ids.filter((id) => !this.mempoolSeen.has(id));
    const txs: SeenTx[] = [];
    for (const txid of fresh) {
      try {
        txs.push({ txid, hex: (await this.ctx.rpc.getRawTransaction(txid, false)) as string });
      } catch (e) {
        if (!(e instanceof RpcError)) throw e; // mined or evicted meanwhile: the block shows it
      }
    }
    const found = await this.match(txs, "mempool");
    // Only after the match: a failure retries these txids at the next poll.
    this.mempoolSeen = new Set(ids);
    return found;
  }
}
