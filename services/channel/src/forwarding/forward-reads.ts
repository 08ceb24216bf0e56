import { msat, type Msat } from "@ln/bitcoin";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

/** One row of the forwarding table (migration 19), as the operator reads it. */
export interface ForwardRow {
  id: bigint;
  inChannel: string;
  inHtlcId: bigint;
  rHash: string;
  inAmountMsat: Msat;
  inExpiry: number;
  outShortChannelId: bigint | undefined;
  outChannel: string | undefined;
  outHtlcId: bigint | undefined;
  outAmountMsat: Msat | undefined;
  outExpiry: number | undefined;
  /** offering, offered, fulfilled, failed, settled or failed_back */
  status: string;
  failure: string | undefined;
  /** What we earned: incoming minus outgoing amount, once settled upstream; else 0. */
  feeMsat: Msat;
  createdAt: Date;
  resolvedAt: Date | undefined;
}

export interface ForwardTotals {
  /** Forwards settled upstream. */
  settled: number;
  feesEarnedMsat: Msat;
}

interface ForwardDbRow {
  id: string;
  in_channel: string;
  in_htlc_id: string;
  r_hash: string;
  in_amount_msat: string;
  in_expiry: number;
  out_short_channel_id: string | null;
  out_channel: string | null;
  out_htlc_id: string | null;
  out_amount_msat: string | null;
  out_expiry: number | null;
  status: string;
  failure: string | null;
  fee_msat: string;
  created_at: Date;
  resolved_at: Date | null;
}

const FEE = `CASE WHEN status = 'settled' THEN in_amount_msat - out_amount_msat ELSE 0 END`;

const big = (v: string | null): bigint | undefined => (v === null ? undefined : BigInt(v));

/** Reads of the forwarding table for the control API (the forwarder writes it: forwarding/). */
export class ForwardReads {
  private readonly table: string;

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
  ) {
    this.table = `${quoteSchema(schema)}.forwards`;
  }

  /** Newest first; `status`: only those in it. */
  async list(q: { status?: string | undefined; limit: number }): Promise<ForwardRow[]> {
    const r = await this.pool.query<ForwardDbRow>(
      `SELECT id::text AS id, in_channel, in_htlc_id::text AS in_htlc_id, r_hash, in_amount_msat::text AS in_amount_msat,
              in_expiry, out_short_channel_id::text AS out_short_channel_id, out_channel,
              out_htlc_id::text AS out_htlc_id, out_amount_msat::text AS out_amount_msat, out_expiry, status,
              failure, (${FEE})::text AS fee_msat, created_at, resolved_at
         FROM ${this.table} WHERE ($1::text IS NULL OR status = $1)
        ORDER BY created_at DESC, id DESC LIMIT $2`,
      [q.status ?? null, q.limit],
    );
    return r.rows.map((x) => ({
      id: BigInt(x.id),
      inChannel: x.in_channel,
      inHtlcId: BigInt(x.in_htlc_id),
      rHash: x.r_hash,
      inAmountMsat: msat(BigInt(x.in_amount_msat)),
      inExpiry: x.in_expiry,
      // Stored signed (Postgres bigint), as channels.short_channel_id.
      outShortChannelId:
        x.out_short_channel_id === null ? undefined : BigInt.asUintN(64, BigInt(x.out_short_channel_id)),
      outChannel: x.out_channel ?? undefined,
      outHtlcId: big(x.out_htlc_id),
      outAmountMsat: x.out_amount_msat === null ? undefined : msat(BigInt(x.out_amount_msat)),
      outExpiry: x.out_expiry ?? undefined,
      status: x.status,
      failure: x.failure ?? undefined,
      feeMsat: msat(BigInt(x.fee_msat)),
      createdAt: x.created_at,
      resolvedAt: x.resolved_at ?? undefined,
    }));
  }

  /** Over the whole table: how many forwards settled, and the fees they earned. */
  async totals(): Promise<ForwardTotals> {
    const r = await this.pool.query<{ settled: number; fees: string }>(
      `SELECT count(*)::integer AS settled, COALESCE(sum(in_amount_msat - out_amount_msat), 0)::text AS fees
         FROM ${this.table} WHERE status = 'settled'`,
    );
    const row = r.rows[0];
    return { settled: row?.settled ?? 0, feesEarnedMsat: msat(BigInt(row?.fees ?? "0")) };
  }
}
