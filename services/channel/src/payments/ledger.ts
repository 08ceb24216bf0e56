import { msat, type Locktime, type Msat } from "@ln/bitcoin";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { appendEvents, inEventTransaction } from "../events/event-log.js";
import { FAILURE_CODES, type FailureName } from "@ln/onion";

/**
 * The node's books beside the channels (migration 3): payments we offered, invoices we issued
 * (their preimages stay in the signer: only the index that derives R is kept here), the chain tip
 * as the chain watcher last reported it, and the transactions we broadcast for each channel.
 */

export type PaymentStatus = "pending" | "succeeded" | "failed";

export interface PaymentRow {
  id: string;
  channelId: string;
  htlcId: bigint;
  rHash: string;
  amountMsat: Msat;
  expiry: Locktime;
  status: PaymentStatus;
  failureReason: string | undefined;
  /** The route it was sent over (payments/route.ts), if any. */
  route: PaymentRoute | undefined;
  /** Who failed it and why, when the peer's error packet was read. */
  failure: PaymentFailure | undefined;
  createdAt: Date;
}

/** A payment's route as stored (payments.route): the hops as asked, with each one's HTLC. */
export interface PaymentRoute {
  hops: {
    nodeId: string;
    /** HEIGHTxINDEXxOUTPUT */
    shortChannelId: string;
    feeBaseMsat: string;
    feeProportionalMillionths: string;
    cltvExpiryDelta: number;
    /** The HTLC that reaches this hop: amount and expiry (block height). */
    amountMsat: string;
    expiry: number;
  }[];
}

/** The failure a hop reported (BOLT #4), as decoded from its error packet. */
export interface PaymentFailure {
  hop: number;
  nodeId: string;
  code: number;
  name: string;
  description: string;
}

export interface InvoiceRow {
  rHash: string;
  signerIndex: number;
  /** 0: any amount. */
  amountMsat: Msat;
  description: string;
  status: "open" | "settled";
  createdAt: Date;
  /** The BOLT #11 parts (migration 22); undefined on an invoice made before, or by a test directly. */
  bolt11: Bolt11Parts | undefined;
}

/** What a BOLT #11 invoice adds to an invoice row (payments/invoices.ts makes them). */
export interface Bolt11Parts {
  bolt11: string;
  /** The invoice's timestamp, stored as the row's created_at (the string says the same). */
  createdAt: Date;
  paymentSecret: Buffer;
  expiresAt: Date;
  minFinalCltvExpiryDelta: number;
}

interface InvoiceDbRow {
  r_hash: string;
  signer_index: number;
  amount_msat: string;
  description: string;
  status: "open" | "settled";
  created_at: Date;
  bolt11: string | null;
  payment_secret: Buffer | null;
  expires_at: Date | null;
  min_final_cltv_expiry_delta: number | null;
}

const toInvoice = (row: InvoiceDbRow): InvoiceRow => ({
  rHash: row.r_hash,
  signerIndex: row.signer_index,
  amountMsat: msat(BigInt(row.amount_msat)),
  description: row.description,
  status: row.status,
  createdAt: row.created_at,
  bolt11:
    row.bolt11 !== null && row.payment_secret !== null && row.expires_at !== null
      ? {
          bolt11: row.bolt11,
          createdAt: row.created_at,
          paymentSecret: row.payment_secret,
          expiresAt: row.expires_at,
          minFinalCltvExpiryDelta: row.min_final_cltv_expiry_delta ?? 0,
        }
      : undefined,
});

export interface ChainTip {
  height: number;
  hash: string;
  time: number;
}

/** A payment's id: its channel and the HTLC id we gave it (unique per channel, draft 3.2). */
export const paymentId = (channelId: string, htlcId: bigint): string => `${channelId}:${htlcId}`;

interface PaymentDbRow {
  id: string;
  channel_id: string;
  htlc_id: string;
  r_hash: string;
  amount_msat: string;
  expiry: Locktime;
  status: PaymentStatus;
  failure_reason: string | null;
  route: PaymentRoute | null;
  failure_hop: number | null;
  failure_node: string | null;
  failure_code: number | null;
  failure_description: string | null;
  created_at: Date;
}

/** Every column but onion_secrets (never read back out of records.ts). */
const PAYMENT_COLUMNS = `id, channel_id, htlc_id, r_hash, amount_msat, expiry, status, failure_reason, route,
  failure_hop, failure_node, failure_code, failure_description, created_at`;

const toPayment = (r: PaymentDbRow): PaymentRow => ({
  id: r.id,
  channelId: r.channel_id,
  htlcId: BigInt(r.htlc_id),
  rHash: r.r_hash,
  amountMsat: msat(BigInt(r.amount_msat)),
  expiry: r.expiry,
  status: r.status,
  failureReason: r.failure_reason ?? undefined,
  route: r.route ?? undefined,
  failure:
    r.failure_hop !== null && r.failure_code !== null
      ? {
          hop: r.failure_hop,
          nodeId: r.failure_node ?? "",
          code: r.failure_code,
          name: failureName(r.failure_code),
          description: r.failure_description ?? "",
        }
      : undefined,
  createdAt: r.created_at,
});

const NAME_OF_CODE: ReadonlyMap<number, FailureName> = new Map(
  (Object.entries(FAILURE_CODES) as [FailureName, number][]).map(([n, c]) => [c, n]),
);

/** The BOLT #4 name of a failure code ("unknown" for a code BOLT #4 does not define). */
export const failureName = (code: number): string => NAME_OF_CODE.get(code) ?? "unknown";

export class Ledger {
  private readonly q: string;

  constructor(
    private readonly pool: pg.Pool,
    private readonly schema: string,
  ) {
    this.q = quoteSchema(schema);
  }

  private t(table: string): string {
    return `${this.q}.${table}`;
  }

  // Payments and invoice settlements are written only with the channel step that moves their
  // HTLC (payments/records.ts), or with the on-chain resolution that settles it (resolution.ts).

  /** A payment's record; `q`: a transaction to read it in (default the pool). */
  async payment(id: string, q: pg.ClientBase | pg.Pool = this.pool): Promise<PaymentRow | undefined> {
    const r = await q.query<PaymentDbRow>(
      `SELECT ${PAYMENT_COLUMNS} FROM ${this.t("payments")} WHERE id = $1`,
      [id],
    );
    return r.rows[0] ? toPayment(r.rows[0]) : undefined;
  }

  async payments(limit = 1000): Promise<PaymentRow[]> {
    const r = await this.pool.query<PaymentDbRow>(
      `SELECT ${PAYMENT_COLUMNS} FROM ${this.t("payments")} ORDER BY created_at DESC, id LIMIT $1`,
      [limit],
    );
    return r.rows.map(toPayment);
  }

  /**
   * A new invoice under the next signer index (the signer derives R from it); `bolt11`, if
   * given, makes its BOLT #11 string (signed by the signer) before it is stored.
   */
  async addInvoice(
    deriveHash: (signerIndex: number, amountMsat: Msat) => Promise<string>,
    amountMsat: Msat,
    description: string,
    bolt11?: (signerIndex: number, rHash: string) => Promise<Bolt11Parts>,
  ): Promise<InvoiceRow> {
    const next = await this.pool.query<{ n: number }>(
      `SELECT nextval('${this.t("invoice_index")}')::integer AS n`,
    );
    const index = next.rows[0]?.n ?? 0;
    const rHash = await deriveHash(index, amountMsat);
    const parts = bolt11 && (await bolt11(index, rHash));
    // The invoice and its "open" event commit together (events/event-log.ts).
    const r = await inEventTransaction(this.pool, this.schema, async (c) => {
      const ins = await c.query<{ created_at: Date }>(
        `INSERT INTO ${this.t("invoices")} (r_hash, signer_index, amount_msat, description,
           bolt11, payment_secret, expires_at, min_final_cltv_expiry_delta, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, COALESCE($9, now())) RETURNING created_at`,
        [
          rHash,
          index,
          amountMsat.toString(),
          description,
          parts?.bolt11 ?? null,
          parts?.paymentSecret ?? null,
          parts?.expiresAt ?? null,
          parts?.minFinalCltvExpiryDelta ?? null,
          parts?.createdAt ?? null,
        ],
      );
      await appendEvents(c, this.schema, [
        { kind: "invoice", subject: rHash, status: "open", detail: { amountMsat: amountMsat.toString() } },
      ]);
      return ins;
    });
    return {
      rHash,
      signerIndex: index,
      amountMsat,
      description,
      status: "open",
      createdAt: (r.rows[0] as { created_at: Date }).created_at,
      bolt11: parts,
    };
  }

  async invoice(rHash: string): Promise<InvoiceRow | undefined> {
    const r = await this.pool.query<InvoiceDbRow>(
      `SELECT r_hash, signer_index, amount_msat::text AS amount_msat, description, status, created_at,
              bolt11, payment_secret, expires_at, min_final_cltv_expiry_delta
         FROM ${this.t("invoices")} WHERE r_hash = $1`,
      [rHash],
    );
    const row = r.rows[0];
    return row ? toInvoice(row) : undefined;
  }

  /** The invoices of these payment hashes that exist, by payment hash (one query). */
  async invoicesByHash(rHashes: readonly string[]): Promise<Map<string, InvoiceRow>> {
    if (rHashes.length === 0) return new Map();
    const r = await this.pool.query<InvoiceDbRow>(
      `SELECT r_hash, signer_index, amount_msat::text AS amount_msat, description, status, created_at,
              bolt11, payment_secret, expires_at, min_final_cltv_expiry_delta
         FROM ${this.t("invoices")} WHERE r_hash = ANY($1::text[])`,
      [[...new Set(rHashes)]],
    );
    return new Map(r.rows.map((row) => [row.r_hash, toInvoice(row)]));
  }

  async setTip(tip: ChainTip): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.t("chain_tip")} (id, height, hash, time) VALUES (1, $1, $2, $3)
       ON CONFLICT (id) DO UPDATE SET height = $1, hash = $2, time = $3`,
      [tip.height, tip.hash, tip.time],
    );
  }

  async tip(): Promise<ChainTip | undefined> {
    const r = await this.pool.query<ChainTip>(
      `SELECT height, hash, time FROM ${this.t("chain_tip")} WHERE id = 1`,
    );
    return r.rows[0];
  }

  async recordBroadcast(channelId: string, kind: string, txid: string, txHex: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.t("broadcasts")} (txid, channel_id, kind, tx_hex) VALUES ($1, $2, $3, $4)
       ON CONFLICT (txid) DO NOTHING`,
      [txid, channelId, kind, txHex],
    );
  }

  /** Whether we broadcast `txid` for this channel (its close or our commitment). */
  async isOurBroadcast(channelId: string, txid: string): Promise<boolean> {
    const r = await this.pool.query(
      `SELECT 1 FROM ${this.t("broadcasts")} WHERE channel_id = $1 AND txid = $2`,
      [channelId, txid],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async broadcastsOf(channelId: string): Promise<{ txid: string; kind: string }[]> {
    const r = await this.pool.query<{ txid: string; kind: string }>(
      `SELECT txid, kind FROM ${this.t("broadcasts")} WHERE channel_id = $1 ORDER BY created_at`,
      [channelId],
    );
    return r.rows;
  }

  /** Where a peer listens, as the operator gave it: we reconnect there. */
  async rememberPeer(nodeId: string, host: string, port: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.t("peer_addresses")} (node_id, host, port) VALUES ($1, $2, $3)
       ON CONFLICT (node_id) DO UPDATE SET host = $2, port = $3, updated_at = now()`,
      [nodeId, host, port],
    );
  }

  /** The remembered addresses of these peers, in one query (a peer without one is absent). */
  async peerAddresses(nodeIds: readonly string[]): Promise<Map<string, { host: string; port: number }>> {
    const r = await this.pool.query<{ node_id: string; host: string; port: number }>(
      `SELECT node_id, host, port FROM ${this.t("peer_addresses")} WHERE node_id = ANY($1::text[])`,
      [nodeIds],
    );
    return new Map(r.rows.map((x) => [x.node_id, { host: x.host, port: x.port }]));
  }

  async peerAddress(nodeId: string): Promise<{ host: string; port: number } | undefined> {
    const r = await this.pool.query<{ host: string; port: number }>(
      `SELECT host, port FROM ${this.t("peer_addresses")} WHERE node_id = $1`,
      [nodeId],
    );
    return r.rows[0];
  }
}
