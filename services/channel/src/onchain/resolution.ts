import type { Log } from "@ln/log";
import { sat, sha256, txidFromHex, type Sat } from "@ln/bitcoin";
import { ourFulfilments, unrevokedCommitments, type ChannelState } from "@ln/channel-core";
import {
  buildClaimSpend,
  claimsFor,
  classifyAnchorSpend,
  preimagesRevealed,
  readyAt,
  type AnchorSpend,
  type Claim,
} from "@ln/onchain";
import { inTransaction, quoteSchema } from "@ln/postgres";
import { commitmentParamsMsg, type SignerClient } from "@ln/signer-client";
import { SpendError, type Spend } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import type pg from "pg";
import { appendEvents, inEventTransaction } from "../events/event-log.js";
import type { Ledger } from "../payments/ledger.js";
import { offeredHtlcResolved, receivedHtlcResolved } from "../forwarding/records.js";
import { invoiceSettled, paymentFinal } from "../payments/records.js";
import type { ChannelStore } from "../channels/store.js";
import { signerRefusal, type Wallet } from "./wallet.js";

/**
 * On-chain resolution of a channel whose anchor was spent (draft 6.2): which transaction spent it
 * (matched by normalized txid: the broadcaster may have re-signed its half, DESIGN.md 7), what of
 * it is ours and from when, and the sweeps that take it. A revoked commitment of the peer is the
 * watchtower's; a close's outputs and the peer commitment's output to our final key are the
 * wallet's (it sweeps every output to a channel's final key).
 *
 * Each claim is a row; its output is watched (chain watcher, `<channel>#<vout>`) so we learn who
 * spent it: our sweep, or the peer, whose spend of an HTLC we offered reveals R and settles our
 * payment (draft 6.2.1). Rows are claimed under row locks, so replicas never sign two sweeps of
 * one output. Reorganisations are followed (onBlockDisconnected); our sweeps are re-sent each block
 * until one is in a block.
 */

export type ResolutionKind = AnchorSpend["kind"];
export type ClaimStatus =
  /** Spendable once its time locks pass. */
  | "waiting"
  /** Our sweep is signed and broadcast, not yet seen spending it in a block. */
  | "sweeping"
  /** Spent by our sweep in a block. */
  | "swept"
  /** Spent by someone else: the peer (an HTLC it redeemed with R, or timed out). */
  | "lost"
  /** The wallet sweeps it (an output to our final key). */
  | "wallet"
  /** An HTLC offered to us whose R we do not know: left to the peer, watched. */
  | "watching"
  /** Worth less than the fee of sweeping it. */
  | "uneconomic";

export interface ClaimView {
  vout: number;
  what: Claim["what"] | "watch";
  amountSat: Sat;
  htlcId: bigint | undefined;
  readyHeight: number | undefined;
  status: ClaimStatus;
  sweepTxid: string | undefined;
  spentBy: string | undefined;
  /** Height of the block holding the spend. */
  spentHeight: number | undefined;
}

export interface ResolutionView {
  kind: ResolutionKind;
  spendTxid: string;
  commitmentNumber: bigint | undefined;
  height: number;
  claims: ClaimView[];
}

export interface ResolverOptions {
  pool: pg.Pool;
  schema: string;
  store: ChannelStore;
  ledger: Ledger;
  signer: SignerClient;
  wallet: Pick<Wallet, "sweepOutputs" | "rebroadcast">;
  /** Asks the chain watcher to report the spend of an output (as `anchor_spent` of `id`). */
  watchOutput(id: string, txid: string, vout: number): void;
  /** Satoshi per 1000 bytes for sweeps. */
  feeRate: number;
  log: Log;
}

interface ResolutionRow {
  channel_id: string;
  kind: ResolutionKind;
  spend_txid: string;
  spend_hex: string;
  number: string | null;
  height: number;
}

interface ClaimRow {
  channel_id: string;
  vout: number;
  what: ClaimView["what"];
  amount_sat: string;
  htlc_id: string | null;
  r_hash: string | null;
  preimage: string | null;
  ready_height: number | null;
  ready_time: number | null;
  status: ClaimStatus;
  sweep_txid: string | null;
  spent_by: string | null;
  spent_height: number | null;
}

/** The id of the watch on a claimed output: the channel, then its vout. */
export const outputWatchId = (channelId: string, vout: number): string => `${channelId}#${vout}`;
export function parseOutputWatchId(id: string): { channelId: string; vout: number } | undefined {
  const m = /^(.+)#(\d+)$/.exec(id);
  return m ? { channelId: m[1]!, vout: Number(m[2]) } : undefined;
}

export class Resolver {
  readonly #s: string;
  #sweeping = false;

  constructor(private readonly o: ResolverOptions) {
    this.#s = quoteSchema(o.schema);
  }

  /** The anchor of `channelId` was spent by `spendHex` in the block at `height`. Idempotent. */
  async onAnchorSpent(channelId: string, spendHex: string, height: number): Promise<void> {
    const state = await this.o.store.load(channelId);
    if (!state) return;
    const known = unrevokedCommitments(state);
    const spend = Transaction.fromHex(spendHex);
    const spendTxid = spend.getId();
    const classified: AnchorSpend = known.ours
      ? classifyAnchorSpend(spend, { ours: known.ours, theirs: known.theirs })
      : { kind: "unknown" };
    const { claims, watched } =
      classified.kind === "our_commitment" || classified.kind === "their_commitment"
        ? claimsFor(classified, txidFromHex(spendTxid), await this.#knownPreimages(classified, state))
        : { claims: [], watched: [] };
    // Time locks count from the median time past, which block times run ahead of by about an
    // hour: the tip's time (at most that much early) is the estimate, and sweepReady waits an hour more.
    const tipTime = (await this.o.ledger.tip())?.time ?? 0;
    const inserted = await inTransaction(this.o.pool, async (c) => {
      const r = await c.query(
        `INSERT INTO ${this.#s}.onchain_resolutions (channel_id, kind, spend_txid, spend_hex, number, height)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING`,
        [
          channelId,
          classified.kind,
          spendTxid,
          spendHex,
          "number" in classified ? classified.number.toString() : null,
          height,
        ],
      );
      if (r.rowCount === 0) return false;
      for (const claim of claims) {
        const ready = readyAt(claim, { height, medianTime: tipTime });
        await c.query(
          `INSERT INTO ${this.#s}.onchain_claims
             (channel_id, vout, what, amount_sat, htlc_id, r_hash, preimage, ready_height, ready_time, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
          [
            channelId,
            claim.coin.outpoint.vout,
            claim.what,
            claim.coin.amount.toString(),
            claim.htlc?.id.toString() ?? null,
            claim.htlc ? Buffer.from(claim.htlc.rHash).toString("hex") : null,
            claim.path.kind === "htlc_redeem" ? claim.path.preimage.toString("hex") : null,
            ready.height,
            ready.medianTime,
            claim.what === "to_us" ? "wallet" : "waiting",
          ],
        );
      }
      for (const w of watched)
        await c.query(
          `INSERT INTO ${this.#s}.onchain_claims (channel_id, vout, what, amount_sat, htlc_id, r_hash, status)
           VALUES ($1, $2, 'watch', $3, $4, $5, 'watching')`,
          [
            channelId,
            w.outpoint.vout,
            w.amount.toString(),
            w.htlc.id.toString(),
            Buffer.from(w.htlc.rHash).toString("hex"),
          ],
        );
      return true;
    });
    if (!inserted) return;
    const number = "number" in classified ? ` ${classified.number}` : "";
    // Behind (a restored state): the peer's later commitment is unknown to us; our output in it
    // pays our final key, as every to-other output of the channel does, and the wallet sweeps it.
    const lost =
      state.failure?.code === "DATA_LOSS" && classified.kind === "unknown"
        ? " (a commitment of the peer our restored state does not know: its output to our final key is the wallet's)"
        : "";
    this.o.log.info(
      `channel ${channelId}: anchor spent by ${classified.kind.replace("_", " ")}${number} ${spendTxid} at height ${height}${lost}: ${claims.length} output(s) to claim, ${watched.length} watched`,
      { channelId, txid: spendTxid },
    );
    for (const claim of claims)
      if (claim.what !== "to_us")
        this.o.watchOutput(
          outputWatchId(channelId, claim.coin.outpoint.vout),
          spendTxid,
          claim.coin.outpoint.vout,
        );
    for (const w of watched)
      this.o.watchOutput(outputWatchId(channelId, w.outpoint.vout), spendTxid, w.outpoint.vout);
  }

  /**
   * A watched output was spent by `spenderHex`: by our sweep (swept), or by the peer, whose spend
   * of an HTLC we offered reveals R: the payment succeeded (draft 6.2).
   */
  async onOutputSpent(channelId: string, vout: number, spenderHex: string, height: number): Promise<void> {
    const row = await this.#claim(channelId, vout);
    const resolution = await this.#resolution(channelId);
    if (!row || !resolution) return;
    const spender = Transaction.fromHex(spenderHex);
    const spenderTxid = spender.getId();
    const ours = row.sweep_txid === spenderTxid;
    const htlcId = row.htlc_id === null ? undefined : BigInt(row.htlc_id);
    // R the peer revealed by redeeming an HTLC we offered (draft 6.2): our payment succeeded.
    const revealed =
      !ours && row.what === "htlc_timeout" && row.r_hash !== null
        ? preimagesRevealed(spender, [
            {
              outpoint: { txid: txidFromHex(resolution.spend_txid), vout },
              rHash: Buffer.from(row.r_hash, "hex"),
            },
          ])[0]
        : undefined;
    // The claim's spend and the money records it settles commit together, with their events
    // (DESIGN.md 11): a crash between them can leave neither behind.
    await inEventTransaction(this.o.pool, this.o.schema, async (c) => {
      await c.query(
        `UPDATE ${this.#s}.onchain_claims SET status = $3, spent_by = $4, spent_height = $5
          WHERE channel_id = $1 AND vout = $2`,
        [channelId, vout, ours ? "swept" : "lost", spenderTxid, height],
      );
      if (htlcId === undefined || row.r_hash === null) return;
      // An HTLC continuing a forward: its outcome goes upstream (forwarding/records.ts), it is
      // no payment or invoice of ours.
      const forwardOutcome =
        ours && row.what === "htlc_timeout"
          ? await offeredHtlcResolved(c, this.o.schema, channelId, htlcId, { kind: "timed_out" })
          : revealed
            ? await offeredHtlcResolved(c, this.o.schema, channelId, htlcId, {
                kind: "fulfilled",
                r: revealed.r.toString("hex"),
              })
            : ours && row.what === "htlc_redeem" && row.preimage !== null
              ? await receivedHtlcResolved(c, this.o.schema, channelId, htlcId, {
                  kind: "fulfilled",
                  r: row.preimage,
                })
              : false;
      if (forwardOutcome) return;
      const events =
        ours && row.what === "htlc_timeout"
          ? await paymentFinal(
              c,
              this.o.schema,
              channelId,
              htlcId,
              { kind: "failed", reason: "timed out on chain" },
              undefined,
            )
          : ours && row.what === "htlc_redeem"
            ? await invoiceSettled(c, this.o.schema, row.r_hash)
            : revealed
              ? await paymentFinal(
                  c,
                  this.o.schema,
                  channelId,
                  htlcId,
                  { kind: "fulfilled", r: revealed.r.toString("hex") },
                  undefined,
                )
              : [];
      await appendEvents(c, this.o.schema, events);
    });
    if (revealed)
      this.o.log.info(
        `channel ${channelId}: the peer redeemed HTLC ${htlcId} on chain; R learned, the payment succeeded`,
        { channelId },
      );
  }

  /**
   * Blocks from `height` up left the best chain: an anchor spend in them is forgotten (the chain
   * watcher reports the spend again if the new branch has one), and a claimed output spent in
   * them is open again (our sweep is re-sent at the next block; another's spend may come back).
   */
  async onBlockDisconnected(height: number): Promise<void> {
    await inTransaction(this.o.pool, async (c) => {
      const gone = await c.query<{ channel_id: string }>(
        `SELECT channel_id FROM ${this.#s}.onchain_resolutions WHERE height >= $1`,
        [height],
      );
      const ids = gone.rows.map((r) => r.channel_id);
      await c.query(`DELETE FROM ${this.#s}.onchain_claims WHERE channel_id = ANY($1)`, [ids]);
      await c.query(`DELETE FROM ${this.#s}.onchain_resolutions WHERE channel_id = ANY($1)`, [ids]);
      await c.query(
        `UPDATE ${this.#s}.onchain_claims
            SET status = CASE WHEN sweep_txid IS NOT NULL THEN 'sweeping'
                              WHEN what = 'watch' THEN 'watching'
                              WHEN what = 'to_us' THEN 'wallet'
                              ELSE 'waiting' END,
                spent_by = NULL, spent_height = NULL
          WHERE spent_height >= $1`,
        [height],
      );
      for (const id of ids)
        this.o.log.warn(`channel ${id}: the spend of its anchor left the chain (reorg)`, { channelId: id });
    });
  }

  /**
   * At each block: sweeps every claim whose time has come, one round at a time, re-sends our
   * sweeps not yet in a block (they may have left the mempool or the chain), and asks again
   * for the watches of outputs still open (a watch request is not acknowledged; asking is
   * idempotent).
   */
  async sweepReady(tip: { height: number; time: number }): Promise<void> {
    if (this.#sweeping) return;
    this.#sweeping = true;
    try {
      const open = await this.o.pool.query<{ channel_id: string; vout: number; spend_txid: string }>(
        `SELECT c.channel_id, c.vout, r.spend_txid FROM ${this.#s}.onchain_claims c JOIN ${this.#s}.onchain_resolutions r USING (channel_id)
          WHERE c.status IN ('waiting', 'sweeping', 'watching')`,
      );
      for (const o of open.rows)
        this.o.watchOutput(outputWatchId(o.channel_id, o.vout), o.spend_txid, o.vout);
      const sweeps = await this.o.pool.query<{ sweep_txid: string }>(
        `SELECT DISTINCT sweep_txid FROM ${this.#s}.onchain_claims WHERE status = 'sweeping'`,
      );
      for (const s of sweeps.rows) await this.o.wallet.rebroadcast(s.sweep_txid);
      const r = await this.o.pool.query<{ channel_id: string }>(
        `SELECT DISTINCT channel_id FROM ${this.#s}.onchain_claims
          WHERE status = 'waiting' AND ready_height <= $1 AND (ready_time IS NULL OR ready_time <= $2)`,
        [tip.height + 1, tip.time - MEDIAN_TIME_LAG_S],
      );
      for (const { channel_id } of r.rows)
        await this.#sweepChannel(channel_id, tip).catch((e: unknown) =>
          this.o.log.warn(
            `channel ${channel_id}: sweeping its outputs failed (retried next block): ${message(e)}`,
            { channelId: channel_id },
          ),
        );
    } finally {
      this.#sweeping = false;
    }
  }

  /** What happened on chain, for the control API; undefined while the anchor is unspent. */
  async view(channelId: string): Promise<ResolutionView | undefined> {
    const res = await this.#resolution(channelId);
    if (!res) return undefined;
    const rows = await this.o.pool.query<ClaimRow>(
      `SELECT * FROM ${this.#s}.onchain_claims WHERE channel_id = $1 ORDER BY vout`,
      [channelId],
    );
    return {
      kind: res.kind,
      spendTxid: res.spend_txid,
      commitmentNumber: res.number === null ? undefined : BigInt(res.number),
      height: res.height,
      claims: rows.rows.map((c) => ({
        vout: c.vout,
        what: c.what,
        amountSat: sat(BigInt(c.amount_sat)),
        htlcId: c.htlc_id === null ? undefined : BigInt(c.htlc_id),
        readyHeight: c.ready_height ?? undefined,
        status: c.status,
        sweepTxid: c.sweep_txid ?? undefined,
        spentBy: c.spent_by ?? undefined,
        spentHeight: c.spent_height ?? undefined,
      })),
    };
  }

  async #sweepChannel(channelId: string, tip: { height: number; time: number }): Promise<void> {
    const res = await this.#resolution(channelId);
    const state = await this.o.store.load(channelId);
    const signerChannel = (await this.o.store.row(channelId))?.signerChannel;
    if (!res || !state || signerChannel === undefined) return;
    const known = unrevokedCommitments(state);
    if (!known.ours) return;
    const spend = Transaction.fromHex(res.spend_hex);
    const classified = classifyAnchorSpend(spend, { ours: known.ours, theirs: known.theirs });
    if (classified.kind !== "our_commitment" && classified.kind !== "their_commitment") return;
    const rows = (
      await this.o.pool.query<ClaimRow>(
        `SELECT * FROM ${this.#s}.onchain_claims
          WHERE channel_id = $1 AND status = 'waiting' AND ready_height <= $2 AND (ready_time IS NULL OR ready_time <= $3)`,
        [channelId, tip.height + 1, tip.time - MEDIAN_TIME_LAG_S],
      )
    ).rows;
    const preimages = new Map(
      rows.flatMap((r) =>
        r.r_hash && r.preimage ? [[r.r_hash, Buffer.from(r.preimage, "hex")] as const] : [],
      ),
    );
    const due = new Set(rows.map((r) => r.vout));
    const ready = claimsFor(classified, txidFromHex(res.spend_txid), preimages).claims.filter((c) =>
      due.has(c.coin.outpoint.vout),
    );
    if (ready.length === 0) return;
    const byVout = new Map(ready.map((c) => [c.coin.outpoint.vout, c]));
    const paramsMsg = commitmentParamsMsg(classified.params);
    try {
      const txids = await this.o.wallet.sweepOutputs({
        channelId,
        signerChannel,
        build: (destination) => buildClaimSpend(ready, destination, this.o.feeRate),
        describe: (s: Spend) =>
          s.tx.ins.map((input, input_index) => {
            const claim = byVout.get(input.index)!;
            return {
              input_index,
              amount_sat: claim.coin.amount,
              commitment_output: {
                ours: classified.kind === "our_commitment",
                number: classified.number,
                params: paramsMsg,
                vout: input.index,
                preimage: claim.path.kind === "htlc_redeem" ? claim.path.preimage : Buffer.alloc(0),
                commitment_tx_hex: res.spend_hex,
              },
            };
          }),
        record: async (c, s, txid) => {
          const vouts = s.tx.ins.map((i) => i.index);
          const u = await c.query(
            `UPDATE ${this.#s}.onchain_claims SET status = 'sweeping', sweep_txid = $3
              WHERE channel_id = $1 AND vout = ANY($2::int[]) AND status = 'waiting'`,
            [channelId, vouts, txid],
          );
          // Another replica swept them meanwhile: roll back, broadcast nothing.
          if (u.rowCount !== vouts.length)
            throw new Error(`outputs ${vouts.join(", ")} are being swept already`);
        },
      });
      this.o.log.info(`channel ${channelId}: swept ${ready.length} output(s) in ${txids.join(", ")}`, {
        channelId,
      });
    } catch (e) {
      if (!(e instanceof SpendError)) throw e;
      await this.o.pool.query(
        `UPDATE ${this.#s}.onchain_claims SET status = 'uneconomic' WHERE channel_id = $1 AND vout = ANY($2::int[])`,
        [channelId, [...byVout.keys()]],
      );
      this.o.log.warn(
        `channel ${channelId}: outputs ${[...byVout.keys()].join(", ")} are worth less than sweeping them: ${e.message}`,
        { channelId },
      );
    }
  }

  /**
   * R of each HTLC offered to us that we fulfilled (our update_fulfill_htlc stays in the state's
   * log until both commitments drop the HTLC: the case of a peer that never takes the removal,
   * draft 3.1) or that pays one of our invoices (the signer reveals it).
   */
  async #knownPreimages(
    c: Extract<AnchorSpend, { params: unknown }>,
    state: ChannelState,
  ): Promise<Map<string, Buffer>> {
    const out = new Map<string, Buffer>();
    for (const f of ourFulfilments(state)) {
      const r = Buffer.from(f.r, "hex");
      out.set(sha256(r).toString("hex"), r);
    }
    const toUs = c.params.htlcs.filter((h) => h.offeredByOwner === (c.kind === "their_commitment"));
    for (const h of toUs) {
      const rHash = Buffer.from(h.rHash).toString("hex");
      if (out.has(rHash)) continue;
      // R from downstream of a forward (draft 6.2: we redeem the incoming HTLC with it).
      const forwarded = await this.o.pool.query<{ preimage: string }>(
        `SELECT preimage FROM ${this.#s}.forwards WHERE r_hash = $1 AND preimage IS NOT NULL LIMIT 1`,
        [rHash],
      );
      const r = forwarded.rows[0]?.preimage;
      if (r) {
        out.set(rHash, Buffer.from(r, "hex"));
        continue;
      }
      const invoice = await this.o.ledger.invoice(rHash);
      if (!invoice || h.amountMsat < invoice.amountMsat) continue; // as node.ts: an underpayment is not claimed
      try {
        const { r } = await this.o.signer.call("RevealInvoice", { index: invoice.signerIndex });
        out.set(rHash, Buffer.from(r));
      } catch (e) {
        // The signer saw no signed commitment of this channel's, not revoked, holding it.
        if (signerRefusal(e)?.code !== "NO_MATCHING_HTLC") throw e;
        this.o.log.warn(`${c.kind}: the signer refused R of HTLC ${h.id}: ${signerRefusal(e)?.details}`);
      }
    }
    return out;
  }

  async #resolution(channelId: string): Promise<ResolutionRow | undefined> {
    const r = await this.o.pool.query<ResolutionRow>(
      `SELECT channel_id, kind, spend_txid, spend_hex, number::text AS number, height
         FROM ${this.#s}.onchain_resolutions WHERE channel_id = $1`,
      [channelId],
    );
    return r.rows[0];
  }

  async #claim(channelId: string, vout: number): Promise<ClaimRow | undefined> {
    const r = await this.o.pool.query<ClaimRow>(
      `SELECT * FROM ${this.#s}.onchain_claims WHERE channel_id = $1 AND vout = $2`,
      [channelId, vout],
    );
    return r.rows[0];
  }
}

/** How far block times may run ahead of the median time past that time locks count from. */
const MEDIAN_TIME_LAG_S = 3600;

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));
