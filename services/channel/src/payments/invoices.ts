/**
 * BOLT #11 invoices we issue (DESIGN.md 10): the fields the signer signs (it derives the payment
 * hash and builds the signed data itself, SignInvoice), a random payment secret kept with the
 * invoice for the payee's check, and route hints for the channels the network cannot see.
 */
import { randomBytes } from "node:crypto";
import { msat, shortChannelIdToBigint, type Msat } from "@ln/bitcoin";
import type { InvoiceFields, InvoiceNetwork, RouteHintHop } from "@ln/invoice";
import { quoteSchema } from "@ln/postgres";
import type { SignerRequestOf } from "@ln/signer-client";
import type pg from "pg";
import type { ChannelStore } from "../channels/store.js";
import type { ForwardingPolicy } from "../forwarding/policy.js";
import type { Bolt11Parts } from "./ledger.js";

export const DEFAULT_INVOICE_EXPIRY_SECONDS = 3600;

export interface InvoiceSigning {
  pool: pg.Pool;
  schema: string;
  store: ChannelStore;
  network: InvoiceNetwork;
  /** Our node id, hex: the invoice's payee. */
  nodeId: string;
  /** What our payee requires of a final HTLC's expiry beyond the tip (payments/payee.ts). */
  minFinalCltvExpiryDelta: number;
  /** The policy hinted for a channel whose peer's policy toward us we do not know. */
  defaultPolicy: ForwardingPolicy;
  /** The signer's SignInvoice: the string, signed by the node key. */
  signInvoice: (index: number, fields: InvoiceFields) => Promise<string>;
  /** Unix seconds (tests). */
  now?: () => number;
}

interface HintDbRow {
  peer_node_id: string;
  short_channel_id: string;
  fee_base_msat: string | null;
  fee_proportional_millionths: string | null;
  cltv_expiry_delta: number | null;
}

/**
 * One single-hop hint per channel of ours in normal operation with a short_channel_id that the
 * graph does not hold (private, or not announced yet): the peer forwards to us over it, for the
 * peer's policy in that direction if we know it, else our defaults.
 */
export async function routeHints(
  pool: pg.Pool,
  schema: string,
  store: ChannelStore,
  nodeId: string,
  defaults: ForwardingPolicy,
): Promise<RouteHintHop[][]> {
  const q = quoteSchema(schema);
  const live = (await store.rows()).filter(
    (r) => r.phase === "normal" && r.shortChannelId !== undefined && r.peerNodeId !== undefined,
  );
  const hints: RouteHintHop[][] = [];
  for (const row of live) {
    if (row.shortChannelId === undefined || row.peerNodeId === undefined) continue;
    const scid = shortChannelIdToBigint(row.shortChannelId);
    // BOLT #7: direction 0 is node_1 (the smaller id) forwarding toward node_2.
    const direction = row.peerNodeId < nodeId ? 0 : 1;
    const r = await pool.query<HintDbRow & { announced: boolean }>(
      `SELECT EXISTS (SELECT 1 FROM ${q}.graph_channels WHERE short_channel_id = $1) AS announced,
              p.fee_base_msat::text AS fee_base_msat,
              p.fee_proportional_millionths::text AS fee_proportional_millionths,
              p.cltv_expiry_delta
         FROM (SELECT 1) one
         LEFT JOIN ${q}.graph_policies p ON p.short_channel_id = $1 AND p.direction = $2`,
      [BigInt.asIntN(64, scid).toString(), direction],
    );
    const p = r.rows[0];
    if (p?.announced) continue;
    const known =
      p && p.fee_base_msat !== null && p.fee_proportional_millionths !== null && p.cltv_expiry_delta !== null
        ? {
            feeBaseMsat: msat(BigInt(p.fee_base_msat)),
            feeProportionalMillionths: BigInt(p.fee_proportional_millionths),
            cltvExpiryDelta: p.cltv_expiry_delta,
          }
        : undefined;
    const policy = known ?? defaults;
    hints.push([
      {
        nodeId: row.peerNodeId,
        shortChannelId: scid,
        feeBaseMsat: policy.feeBaseMsat,
        feeProportionalMillionths: policy.feeProportionalMillionths,
        cltvExpiryDelta: policy.cltvExpiryDelta,
      },
    ]);
  }
  return hints;
}

/**
 * The BOLT #11 parts of invoice `index`: a fresh payment secret, the fields, and the string the
 * signer makes of them.
 */
export async function signedInvoice(
  o: InvoiceSigning,
  index: number,
  rHash: string,
  req: { amountMsat: Msat; description: string; expirySeconds: number },
): Promise<Bolt11Parts> {
  const timestamp = o.now?.() ?? Math.floor(Date.now() / 1000);
  const paymentSecret = randomBytes(32);
  const fields: InvoiceFields = {
    network: o.network,
    ...(req.amountMsat > 0n ? { amountMsat: req.amountMsat } : {}),
    timestamp,
    paymentHash: Buffer.from(rHash, "hex"),
    paymentSecret,
    description: req.description,
    expirySeconds: req.expirySeconds,
    minFinalCltvExpiryDelta: o.minFinalCltvExpiryDelta,
    payee: Buffer.from(o.nodeId, "hex"),
    routeHints: await routeHints(o.pool, o.schema, o.store, o.nodeId, o.defaultPolicy),
  };
  const bolt11 = await o.signInvoice(index, fields);
  return {
    bolt11,
    createdAt: new Date(timestamp * 1000),
    paymentSecret,
    expiresAt: new Date((timestamp + req.expirySeconds) * 1000),
    minFinalCltvExpiryDelta: o.minFinalCltvExpiryDelta,
  };
}

/** SignInvoice's request for the fields (the signer-client's wire form). */
export function signInvoiceRequest(index: number, f: InvoiceFields): SignerRequestOf<"SignInvoice"> {
  return {
    index,
    network: f.network,
    amount_msat: f.amountMsat ?? 0n,
    timestamp: BigInt(f.timestamp),
    payment_hash: f.paymentHash,
    payment_secret: f.paymentSecret,
    description: f.description ?? "",
    description_hash: f.descriptionHash ?? Buffer.alloc(0),
    expiry_seconds: f.expirySeconds,
    min_final_cltv_expiry_delta: f.minFinalCltvExpiryDelta,
    payee: f.payee,
    route_hints: f.routeHints.map((hint) => ({
      hops: hint.map((h) => ({
        node_id: Buffer.from(h.nodeId, "hex"),
        short_channel_id: h.shortChannelId,
        fee_base_msat: Number(h.feeBaseMsat),
        fee_proportional_millionths: Number(h.feeProportionalMillionths),
        cltv_expiry_delta: h.cltvExpiryDelta,
      })),
    })),
  };
}
