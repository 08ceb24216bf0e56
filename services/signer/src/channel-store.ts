/**
 * The balance records of `channel-policy.ts` in Postgres: per channel its terms, the latest
 * commitment of each side (only the latest: an older one is never signed again), and our HTLCs
 * paid to the peer (the payments limit sums them over a period, every channel together).
 */
import { sat, type Locktime } from "@ln/bitcoin";
import type { Migration } from "@ln/postgres";
import type pg from "pg";
import type { BalanceState, ChannelTerms, CommitmentStore, HtlcState, Side } from "./channel-policy.js";

export const CHANNEL_STATE_MIGRATION: Migration = {
  version: 3, // issue 13 (F1): what each channel owes us
  sql: (s) => `
    CREATE TABLE ${s}.channel_terms (
      channel integer PRIMARY KEY REFERENCES ${s}.channels (idx),
      funder text NOT NULL CHECK (funder IN ('us', 'peer')),
      local_delay jsonb,
      remote_delay jsonb
    );
    CREATE TABLE ${s}.commitment_balances (
      channel integer NOT NULL REFERENCES ${s}.channels (idx),
      side text NOT NULL CHECK (side IN ('local', 'remote')),
      number numeric(20, 0) NOT NULL,
      state jsonb NOT NULL,
      recorded_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (channel, side)
    );
    CREATE TABLE ${s}.htlc_payments (
      channel integer NOT NULL REFERENCES ${s}.channels (idx),
      htlc_id numeric(20, 0) NOT NULL,
      r_hash bytea NOT NULL,
      amount_msat numeric(20, 0) NOT NULL,
      paid_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (channel, htlc_id)
    );
    CREATE INDEX ON ${s}.htlc_payments (paid_at);`,
};

interface StateJson {
  ourMsat: string;
  peerMsat: string;
  htlcs: { offerer: "us" | "peer"; id: string; amountMsat: string; rHash: string; expiry: Locktime }[];
  feeRate: number;
  fee: string;
  paidFee: string;
  maxOurHtlcId: string;
}

const toJson = (s: BalanceState): StateJson => ({
  ourMsat: s.ourMsat.toString(),
  peerMsat: s.peerMsat.toString(),
  htlcs: s.htlcs.map((h) => ({
    offerer: h.offerer,
    id: h.id.toString(),
    amountMsat: h.amountMsat.toString(),
    rHash: h.rHash.toString("hex"),
    expiry: h.expiry,
  })),
  feeRate: s.feeRate,
  fee: s.fee.toString(),
  paidFee: s.paidFee.toString(),
  maxOurHtlcId: s.maxOurHtlcId.toString(),
});

const fromJson = (j: StateJson): BalanceState => ({
  ourMsat: BigInt(j.ourMsat),
  peerMsat: BigInt(j.peerMsat),
  htlcs: j.htlcs.map((h): HtlcState => ({
    offerer: h.offerer,
    id: BigInt(h.id),
    amountMsat: BigInt(h.amountMsat),
    rHash: Buffer.from(h.rHash, "hex"),
    expiry: h.expiry,
  })),
  feeRate: j.feeRate,
  fee: sat(BigInt(j.fee)),
  paidFee: sat(BigInt(j.paidFee)),
  maxOurHtlcId: BigInt(j.maxOurHtlcId),
});

/** One channel's records, in the transaction that holds its row lock. */
export class TxCommitmentStore implements CommitmentStore {
  constructor(
    private readonly client: pg.PoolClient,
    private readonly s: string,
    private readonly channel: number,
  ) {}

  async terms(): Promise<ChannelTerms | undefined> {
    const r = await this.client.query<{
      funder: "us" | "peer";
      local_delay: Locktime | null;
      remote_delay: Locktime | null;
    }>(`SELECT funder, local_delay, remote_delay FROM ${this.s}.channel_terms WHERE channel = $1`, [
      this.channel,
    ]);
    const row = r.rows[0];
    return row === undefined
      ? undefined
      : {
          funder: row.funder,
          localDelay: row.local_delay ?? undefined,
          remoteDelay: row.remote_delay ?? undefined,
        };
  }

  async putTerms(t: ChannelTerms): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.channel_terms (channel, funder, local_delay, remote_delay) VALUES ($1, $2, $3, $4)
       ON CONFLICT (channel) DO UPDATE SET funder = $2, local_delay = $3, remote_delay = $4`,
      [
        this.channel,
        t.funder,
        t.localDelay === undefined ? null : JSON.stringify(t.localDelay),
        t.remoteDelay === undefined ? null : JSON.stringify(t.remoteDelay),
      ],
    );
  }

  async latest(side: Side): Promise<{ number: bigint; state: BalanceState } | undefined> {
    const r = await this.client.query<{ number: string; state: StateJson }>(
      `SELECT number::text, state FROM ${this.s}.commitment_balances WHERE channel = $1 AND side = $2`,
      [this.channel, side],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : { number: BigInt(row.number), state: fromJson(row.state) };
  }

  async putLatest(side: Side, number: bigint, state: BalanceState): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.commitment_balances (channel, side, number, state) VALUES ($1, $2, $3, $4)
       ON CONFLICT (channel, side) DO UPDATE SET number = $3, state = $4, recorded_at = now()`,
      [this.channel, side, number.toString(), JSON.stringify(toJson(state))],
    );
  }

  async paidHtlc(id: bigint): Promise<{ rHash: Buffer; amountMsat: bigint } | undefined> {
    const r = await this.client.query<{ r_hash: Buffer; amount_msat: string }>(
      `SELECT r_hash, amount_msat::text FROM ${this.s}.htlc_payments WHERE channel = $1 AND htlc_id = $2`,
      [this.channel, id.toString()],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : { rHash: row.r_hash, amountMsat: BigInt(row.amount_msat) };
  }

  async recordPayments(
    paid: readonly HtlcState[],
    limit: { limitMsat: bigint; periodSeconds: number } | undefined,
  ): Promise<boolean> {
    if (limit !== undefined) {
      // Every channel's payments count: one lock serialises the sum and the insert.
      await this.client.query(`SELECT pg_advisory_xact_lock(hashtext($1))`, [`ln-signer-payments:${this.s}`]);
      const r = await this.client.query<{ total: string }>(
        `SELECT COALESCE(SUM(amount_msat), 0)::text AS total FROM ${this.s}.htlc_payments
         WHERE paid_at > now() - make_interval(secs => $1)`,
        [limit.periodSeconds],
      );
      const adding = paid.reduce((a, h) => a + h.amountMsat, 0n);
      if (BigInt(r.rows[0]!.total) + adding > limit.limitMsat) return false;
    }
    await this.client.query(
      `INSERT INTO ${this.s}.htlc_payments (channel, htlc_id, r_hash, amount_msat)
       SELECT $1, h.id, h.r_hash, h.amount FROM unnest($2::numeric[], $3::bytea[], $4::numeric[]) AS h(id, r_hash, amount)`,
      [
        this.channel,
        paid.map((h) => h.id.toString()),
        paid.map((h) => h.rHash),
        paid.map((h) => h.amountMsat.toString()),
      ],
    );
    return true;
  }
}
