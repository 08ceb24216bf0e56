/**
 * The signer's durable state in its own Postgres schema: versioned migrations applied at start
 * (`schema_migrations`), and every policy check and update in one transaction holding the
 * channel's row lock (SELECT ... FOR UPDATE), so two concurrent requests cannot both pass a check.
 */
import { crashPoint } from "@ln/crash";
import { msat, sat, txidFromHex, type Msat } from "@ln/bitcoin";
import { inTransaction, migrate, quoteSchema, type Migration } from "@ln/postgres";
import pg from "pg";
import { CHANNEL_STATE_MIGRATION, TxCommitmentStore } from "./channel-store.js";
import { refuse } from "./errors.js";
import type { ChannelPatch, ChannelState, PolicyStore } from "./policy.js";
import type { WithdrawalLedger } from "./withdrawals.js";
import type { CommitmentSide, ReceivedHtlc } from "./received-htlcs.js";

const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: (s) => `
      CREATE TABLE ${s}.channels (
        idx integer GENERATED ALWAYS AS IDENTITY (MINVALUE 0 START WITH 0) PRIMARY KEY,
        created_at timestamptz NOT NULL DEFAULT now(),
        anchor_txid text,
        anchor_vout integer,
        anchor_amount_sat bigint,
        peer_commit_key bytea,
        peer_final_key bytea,
        highest_revealed numeric(20, 0),
        highest_local_signed numeric(20, 0),
        lowest_broadcast numeric(20, 0),
        highest_remote_signed numeric(20, 0),
        highest_peer_revoked numeric(20, 0),
        latest_fee_sat bigint
      );
      CREATE TABLE ${s}.remote_commitments (
        channel integer NOT NULL REFERENCES ${s}.channels (idx),
        number numeric(20, 0) NOT NULL,
        revocation_hash bytea NOT NULL,
        PRIMARY KEY (channel, number)
      );
      CREATE TABLE ${s}.peer_revocations (
        channel integer NOT NULL REFERENCES ${s}.channels (idx),
        number numeric(20, 0) NOT NULL,
        revocation_hash bytea NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (channel, number)
      );`,
  },
  {
    version: 2, // the audit of invoice preimages revealed (RevealInvoice)
    sql: (s) => `
      CREATE TABLE ${s}.invoice_reveals (
        idx integer PRIMARY KEY,
        first_revealed_at timestamptz NOT NULL DEFAULT now(),
        last_revealed_at timestamptz NOT NULL DEFAULT now(),
        reveals integer NOT NULL DEFAULT 1
      );`,
  },
  CHANNEL_STATE_MIGRATION,
  {
    // The seed this state belongs to (startup.ts), and the withdrawals signed (withdrawals.ts).
    version: 4,
    sql: (s) => `
      CREATE TABLE ${s}.seed_fingerprint (
        one boolean PRIMARY KEY DEFAULT true CHECK (one),
        fingerprint bytea NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE TABLE ${s}.withdrawals (
        txid text PRIMARY KEY,
        amount_sat bigint NOT NULL,
        signed_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX withdrawals_signed_at ON ${s}.withdrawals (signed_at);`,
  },
  {
    // RevealInvoice's check (received-htlcs.ts): the HTLCs offered to us in the signed commitments
    // not revoked, and the amounts InvoiceHash was told.
    version: 5,
    sql: (s) => `
      CREATE TABLE ${s}.received_htlcs (
        channel integer NOT NULL REFERENCES ${s}.channels (idx),
        side text NOT NULL CHECK (side IN ('local', 'remote')),
        number numeric(20, 0) NOT NULL,
        htlc_id numeric(20, 0) NOT NULL,
        r_hash bytea NOT NULL,
        amount_msat numeric(20, 0) NOT NULL,
        PRIMARY KEY (channel, side, number, htlc_id)
      );
      CREATE INDEX received_htlcs_r_hash ON ${s}.received_htlcs (r_hash);
      CREATE TABLE ${s}.invoices (
        idx integer PRIMARY KEY,
        amount_msat numeric(20, 0) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );`,
  },
  {
    // Gossip (SignChannelAnnouncement): each announced channel's short_channel_id and peer node
    // id, for SignChannelUpdate to know the scid and whether we forward in a direction.
    version: 6,
    sql: (s) => `
      ALTER TABLE ${s}.channels ADD COLUMN short_channel_id numeric(20, 0) UNIQUE;
      ALTER TABLE ${s}.channels ADD COLUMN peer_node_id bytea;`,
  },
];

interface ChannelRow {
  idx: number;
  anchor_txid: string | null;
  anchor_vout: number | null;
  anchor_amount_sat: string | null;
  peer_commit_key: Buffer | null;
  peer_final_key: Buffer | null;
  highest_revealed: string | null;
  highest_local_signed: string | null;
  lowest_broadcast: string | null;
  highest_remote_signed: string | null;
  highest_peer_revoked: string | null;
}

const big = (v: string | null): bigint | undefined => (v === null ? undefined : BigInt(v));

function toState(r: ChannelRow): ChannelState {
  return {
    index: r.idx,
    anchor:
      r.anchor_txid !== null && r.anchor_vout !== null && r.anchor_amount_sat !== null
        ? { txid: txidFromHex(r.anchor_txid), vout: r.anchor_vout, amount: sat(BigInt(r.anchor_amount_sat)) }
        : undefined,
    peerCommitKey: r.peer_commit_key ?? undefined,
    peerFinalKey: r.peer_final_key ?? undefined,
    highestRevealed: big(r.highest_revealed),
    highestLocalSigned: big(r.highest_local_signed),
    lowestBroadcast: big(r.lowest_broadcast),
    highestRemoteSigned: big(r.highest_remote_signed),
    highestPeerRevoked: big(r.highest_peer_revoked),
  };
}

type Param = string | number | Buffer | null;

function columns(patch: ChannelPatch): [string, Param][] {
  const out: [string, Param][] = [];
  const num = (v: bigint | undefined): string | null => (v === undefined ? null : v.toString());
  for (const key of Object.keys(patch) as (keyof ChannelPatch)[]) {
    switch (key) {
      case "anchor": {
        const a = patch.anchor;
        out.push(["anchor_txid", a?.txid ?? null], ["anchor_vout", a?.vout ?? null]);
        out.push(["anchor_amount_sat", num(a?.amount)]);
        break;
      }
      case "peerCommitKey":
        out.push(["peer_commit_key", patch.peerCommitKey ?? null]);
        break;
      case "peerFinalKey":
        out.push(["peer_final_key", patch.peerFinalKey ?? null]);
        break;
      case "highestRevealed":
        out.push(["highest_revealed", num(patch.highestRevealed)]);
        break;
      case "highestLocalSigned":
        out.push(["highest_local_signed", num(patch.highestLocalSigned)]);
        break;
      case "lowestBroadcast":
        out.push(["lowest_broadcast", num(patch.lowestBroadcast)]);
        break;
      case "highestRemoteSigned":
        out.push(["highest_remote_signed", num(patch.highestRemoteSigned)]);
        break;
      case "highestPeerRevoked":
        out.push(["highest_peer_revoked", num(patch.highestPeerRevoked)]);
        break;
    }
  }
  return out;
}

/** One locked channel inside an open transaction. */
class TxChannel implements PolicyStore {
  readonly commitments: TxCommitmentStore;
  constructor(
    private readonly client: pg.PoolClient,
    private readonly s: string,
    readonly channel: ChannelState,
  ) {
    this.commitments = new TxCommitmentStore(client, s, channel.index);
  }

  async update(patch: ChannelPatch): Promise<void> {
    const cols = columns(patch);
    if (cols.length === 0) return;
    const set = cols.map(([c], i) => `${c} = $${i + 2}`).join(", ");
    await this.client.query(`UPDATE ${this.s}.channels SET ${set} WHERE idx = $1`, [
      this.channel.index,
      ...cols.map(([, v]) => v),
    ]);
    Object.assign(this.channel, patch);
  }

  async remoteRevocationHash(number: bigint): Promise<Buffer | undefined> {
    const r = await this.client.query<{ revocation_hash: Buffer }>(
      `SELECT revocation_hash FROM ${this.s}.remote_commitments WHERE channel = $1 AND number = $2`,
      [this.channel.index, number.toString()],
    );
    return r.rows[0]?.revocation_hash;
  }

  async putRemoteCommitment(number: bigint, revocationHash: Buffer): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.remote_commitments (channel, number, revocation_hash) VALUES ($1, $2, $3)`,
      [this.channel.index, number.toString(), revocationHash],
    );
  }

  async peerRevocation(number: bigint): Promise<Buffer | undefined> {
    const r = await this.client.query<{ revocation_hash: Buffer }>(
      `SELECT revocation_hash FROM ${this.s}.peer_revocations WHERE channel = $1 AND number = $2`,
      [this.channel.index, number.toString()],
    );
    return r.rows[0]?.revocation_hash;
  }

  async putPeerRevocation(number: bigint, revocationHash: Buffer): Promise<void> {
    await this.client.query(
      `INSERT INTO ${this.s}.peer_revocations (channel, number, revocation_hash) VALUES ($1, $2, $3)`,
      [this.channel.index, number.toString(), revocationHash],
    );
  }

  async putReceivedHtlcs(
    side: CommitmentSide,
    number: bigint,
    htlcs: readonly ReceivedHtlc[],
  ): Promise<void> {
    // One statement for all of them (a commitment may hold many).
    await this.client.query(
      `INSERT INTO ${this.s}.received_htlcs (channel, side, number, htlc_id, r_hash, amount_msat)
       SELECT $1, $2, $3, h.id, h.r_hash, h.amount FROM unnest($4::numeric[], $5::bytea[], $6::numeric[]) AS h(id, r_hash, amount)
       ON CONFLICT DO NOTHING`,
      [
        this.channel.index,
        side,
        number.toString(),
        htlcs.map((h) => h.id.toString()),
        htlcs.map((h) => h.rHash),
        htlcs.map((h) => h.amountMsat.toString()),
      ],
    );
  }

  async pruneReceivedHtlcs(side: CommitmentSide, number: bigint): Promise<void> {
    await this.client.query(
      `DELETE FROM ${this.s}.received_htlcs WHERE channel = $1 AND side = $2 AND number <= $3`,
      [this.channel.index, side, number.toString()],
    );
  }
}

/** The withdrawals record inside an open transaction. */
class TxWithdrawals implements WithdrawalLedger {
  constructor(
    private readonly client: pg.PoolClient,
    private readonly s: string,
  ) {}

  async lockAndSum(txid: string): Promise<{ total: bigint; recorded: boolean }> {
    // EXCLUSIVE: one withdrawal at a time counts and records; reads are not blocked.
    await this.client.query(`LOCK TABLE ${this.s}.withdrawals IN EXCLUSIVE MODE`);
    const r = await this.client.query<{ total: string; recorded: boolean }>(
      `SELECT (SELECT coalesce(sum(amount_sat), 0) FROM ${this.s}.withdrawals
                WHERE signed_at > now() - interval '24 hours')::text AS total,
              EXISTS (SELECT 1 FROM ${this.s}.withdrawals WHERE txid = $1) AS recorded`,
      [txid],
    );
    const row = r.rows[0]!;
    return { total: BigInt(row.total), recorded: row.recorded };
  }

  async record(txid: string, amount: bigint): Promise<void> {
    await this.client.query(`INSERT INTO ${this.s}.withdrawals (txid, amount_sat) VALUES ($1, $2)`, [
      txid,
      amount.toString(),
    ]);
  }
}

export class SignerStore {
  readonly #pool: pg.Pool;
  readonly #schema: string;
  readonly #s: string;

  constructor(pool: pg.Pool, schema: string) {
    this.#pool = pool;
    this.#schema = schema;
    this.#s = quoteSchema(schema);
  }

  /**
   * `onIdleError` hears the errors of idle pooled connections (Postgres restarted or ended them):
   * without a listener the pool's "error" event would end the process. The next query reconnects.
   */
  static connect(databaseUrl: string, schema: string, onIdleError: (e: Error) => void): SignerStore {
    const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
    pool.on("error", onIdleError);
    return new SignerStore(pool, schema);
  }

  /** Creates the schema and applies the migrations not yet applied. */
  migrate(): Promise<number[]> {
    return migrate(this.#pool, this.#schema, MIGRATIONS);
  }

  /** Allocates the next channel index. */
  async newChannel(): Promise<number> {
    const r = await this.#pool.query<{ idx: number }>(
      `INSERT INTO ${this.#s}.channels DEFAULT VALUES RETURNING idx`,
    );
    return r.rows[0]!.idx;
  }

  /**
   * Records invoice `index`'s amount the first time it is given; INVOICE_AMOUNT_MISMATCH if it was
   * recorded with another.
   */
  async registerInvoice(index: number, amountMsat: Msat): Promise<void> {
    await this.#pool.query(
      `INSERT INTO ${this.#s}.invoices (idx, amount_msat) VALUES ($1, $2) ON CONFLICT (idx) DO NOTHING`,
      [index, amountMsat.toString()],
    );
    const known = await this.invoiceAmount(index);
    if (known !== amountMsat)
      throw refuse("INVOICE_AMOUNT_MISMATCH", `invoice ${index} was registered for ${known} msat`);
  }

  /** The amount InvoiceHash was told for invoice `index`, if any. */
  async invoiceAmount(index: number): Promise<Msat | undefined> {
    const r = await this.#pool.query<{ amount_msat: string }>(
      `SELECT amount_msat::text FROM ${this.#s}.invoices WHERE idx = $1`,
      [index],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : msat(BigInt(row.amount_msat));
  }

  /**
   * Whether a signed commitment that is not revoked holds an HTLC offered to us with this hash and
   * at least `minMsat` (ours: above the highest revealed; theirs: not revoked by the peer).
   */
  async hasReceivedHtlc(rHash: Buffer, minMsat: Msat): Promise<boolean> {
    const r = await this.#pool.query(
      `SELECT 1 FROM ${this.#s}.received_htlcs h JOIN ${this.#s}.channels c ON c.idx = h.channel
       WHERE h.r_hash = $1 AND h.amount_msat >= $2 AND (
         (h.side = 'local' AND (c.highest_revealed IS NULL OR h.number > c.highest_revealed)) OR
         (h.side = 'remote' AND (c.highest_peer_revoked IS NULL OR h.number > c.highest_peer_revoked)))
       LIMIT 1`,
      [rHash, minMsat.toString()],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** Records that invoice `index`'s preimage is being revealed (again). */
  async recordInvoiceReveal(index: number): Promise<void> {
    await this.#pool.query(
      `INSERT INTO ${this.#s}.invoice_reveals (idx) VALUES ($1)
       ON CONFLICT (idx) DO UPDATE SET last_revealed_at = now(), reveals = invoice_reveals.reveals + 1`,
      [index],
    );
  }

  /** The audit record of invoice `index`: undefined if never revealed. */
  async invoiceReveal(
    index: number,
  ): Promise<{ firstRevealedAt: Date; lastRevealedAt: Date; reveals: number } | undefined> {
    const r = await this.#pool.query<{ first_revealed_at: Date; last_revealed_at: Date; reveals: number }>(
      `SELECT first_revealed_at, last_revealed_at, reveals FROM ${this.#s}.invoice_reveals WHERE idx = $1`,
      [index],
    );
    const row = r.rows[0];
    return row === undefined
      ? undefined
      : {
          firstRevealedAt: row.first_revealed_at,
          lastRevealedAt: row.last_revealed_at,
          reveals: row.reveals,
        };
  }

  /**
   * Records that channel `index` is announced as `scid` with the peer `peerNodeId` (the first
   * time; the same again is fine), after `check` passed on its state, in one transaction holding
   * its row lock. UNKNOWN_CHANNEL if there is none; ANNOUNCEMENT_MISMATCH if it was announced
   * otherwise or `scid` is another channel's.
   */
  async recordAnnouncement(
    index: number,
    scid: bigint,
    peerNodeId: Buffer,
    check: (ch: ChannelState) => void,
  ): Promise<void> {
    const s = this.#s;
    try {
      await this.#transaction(async (c) => {
        const r = await c.query<
          ChannelRow & { short_channel_id: string | null; peer_node_id: Buffer | null }
        >(`SELECT * FROM ${s}.channels WHERE idx = $1 FOR UPDATE`, [index]);
        const row = r.rows[0];
        if (row === undefined)
          throw refuse("UNKNOWN_CHANNEL", `channel ${index} was never allocated by this signer`);
        check(toState(row));
        if (row.short_channel_id !== null && BigInt(row.short_channel_id) !== scid)
          throw refuse(
            "ANNOUNCEMENT_MISMATCH",
            `channel ${index} was announced as short_channel_id ${row.short_channel_id}`,
          );
        if (row.peer_node_id !== null && !row.peer_node_id.equals(peerNodeId))
          throw refuse("ANNOUNCEMENT_MISMATCH", `channel ${index} was announced with another peer node id`);
        const other = await c.query(`SELECT 1 FROM ${s}.channels WHERE short_channel_id = $1 AND idx <> $2`, [
          scid.toString(),
          index,
        ]);
        if ((other.rowCount ?? 0) > 0)
          throw refuse("ANNOUNCEMENT_MISMATCH", `short_channel_id ${scid} is another channel's`);
        await c.query(`UPDATE ${s}.channels SET short_channel_id = $2, peer_node_id = $3 WHERE idx = $1`, [
          index,
          scid.toString(),
          peerNodeId,
        ]);
      });
    } catch (e) {
      // Two channels announcing one scid at once: the unique index decides.
      if (e instanceof pg.DatabaseError && e.code === "23505")
        throw refuse("ANNOUNCEMENT_MISMATCH", `short_channel_id ${scid} is another channel's`);
      throw e;
    }
  }

  /** The channel announced as `scid` (SignChannelAnnouncement), if any. */
  async announced(scid: bigint): Promise<{ index: number; peerNodeId: Buffer } | undefined> {
    const r = await this.#pool.query<{ idx: number; peer_node_id: Buffer }>(
      `SELECT idx, peer_node_id FROM ${this.#s}.channels WHERE short_channel_id = $1`,
      [scid.toString()],
    );
    const row = r.rows[0];
    return row === undefined ? undefined : { index: row.idx, peerNodeId: row.peer_node_id };
  }

  /**
   * The records of many channels in one read (SignerStatuses), by index; an index never allocated
   * is absent. A plain read of what is committed: a request being decided meanwhile commits after
   * it, and the channel service asked it only after storing the state that asked (so the state
   * it reads after this is never behind what this read misses).
   */
  async channelStatuses(
    indexes: readonly number[],
  ): Promise<
    Map<number, Pick<ChannelState, "highestRevealed" | "highestLocalSigned" | "highestRemoteSigned">>
  > {
    const r = await this.#pool.query<
      Pick<ChannelRow, "idx" | "highest_revealed" | "highest_local_signed" | "highest_remote_signed">
    >(
      `SELECT idx, highest_revealed, highest_local_signed, highest_remote_signed
         FROM ${this.#s}.channels WHERE idx = ANY($1::integer[])`,
      [[...new Set(indexes)]],
    );
    return new Map(
      r.rows.map((row) => [
        row.idx,
        {
          highestRevealed: big(row.highest_revealed),
          highestLocalSigned: big(row.highest_local_signed),
          highestRemoteSigned: big(row.highest_remote_signed),
        },
      ]),
    );
  }

  /** Runs `fn` in one transaction holding the channel's row lock; UNKNOWN_CHANNEL if there is none. */
  async withChannel<T>(index: number, fn: (store: PolicyStore) => Promise<T>): Promise<T> {
    return this.withChannels([index], (stores) => fn(stores.get(index)!));
  }

  /**
   * Several channels locked in index order (no deadlock between two such requests); `withdrawals`
   * is the withdrawals record in the same transaction.
   */
  async withChannels<T>(
    indexes: readonly number[],
    fn: (stores: Map<number, PolicyStore>, withdrawals: WithdrawalLedger) => Promise<T>,
  ): Promise<T> {
    const sorted = [...new Set(indexes)].sort((a, b) => a - b);
    return this.#transaction(async (c) => {
      const stores = new Map<number, PolicyStore>();
      for (const index of sorted) {
        const r = await c.query<ChannelRow>(`SELECT * FROM ${this.#s}.channels WHERE idx = $1 FOR UPDATE`, [
          index,
        ]);
        const row = r.rows[0];
        if (row === undefined)
          throw refuse("UNKNOWN_CHANNEL", `channel ${index} was never allocated by this signer`);
        stores.set(index, new TxChannel(c, this.#s, toState(row)));
      }
      const decided = await fn(stores, new TxWithdrawals(c, this.#s));
      crashPoint("signer.policy.decided");
      return decided;
    });
  }

  /**
   * What startup.ts checks the seed against: the recorded seed fingerprint, and whether the
   * schema holds any state at all (channels, invoice reveals, withdrawals).
   */
  async seedState(): Promise<{ fingerprint: Buffer | undefined; hasState: boolean }> {
    const s = this.#s;
    const r = await this.#pool.query<{ fingerprint: Buffer | null; has_state: boolean }>(
      `SELECT (SELECT fingerprint FROM ${s}.seed_fingerprint) AS fingerprint,
              EXISTS (SELECT 1 FROM ${s}.channels) OR EXISTS (SELECT 1 FROM ${s}.invoice_reveals)
                OR EXISTS (SELECT 1 FROM ${s}.withdrawals) AS has_state`,
    );
    const row = r.rows[0]!;
    return { fingerprint: row.fingerprint ?? undefined, hasState: row.has_state };
  }

  /** Records the seed fingerprint; false if one is already recorded (it is left unchanged). */
  async recordSeedFingerprint(fingerprint: Buffer): Promise<boolean> {
    const r = await this.#pool.query(
      `INSERT INTO ${this.#s}.seed_fingerprint (fingerprint) VALUES ($1) ON CONFLICT (one) DO NOTHING`,
      [fingerprint],
    );
    return r.rowCount === 1;
  }

  #transaction<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
    return inTransaction(this.#pool, fn);
  }

  async close(): Promise<void> {
    await this.#pool.end();
  }
}
