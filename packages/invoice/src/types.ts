import type { Msat } from "@ln/bitcoin";
import type { InvoiceNetwork } from "./network.js";

/** One hop of a BOLT #11 `r` field: `nodeId` forwards to the next hop (or the payee) over `shortChannelId`. */
export interface RouteHintHop {
  nodeId: string;
  shortChannelId: bigint;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

export interface DecodedInvoice {
  network: InvoiceNetwork;
  /** hex */
  paymentHash: string;
  paymentSecret: Buffer;
  /** Absent: the payer chooses the amount. */
  amountMsat?: Msat;
  description?: string;
  /** hex SHA256 of a description given elsewhere */
  descriptionHash?: string;
  /** hex node id, from the `n` field or recovered from the signature */
  payee: string;
  /** unix seconds */
  createdAt: number;
  /** unix seconds */
  expiresAt: number;
  minFinalCltvExpiryDelta: number;
  routeHints: RouteHintHop[][];
}

/** What goes into an invoice we make; the signer builds the same from the same fields. */
export interface InvoiceFields {
  network: InvoiceNetwork;
  /** Absent: any amount. */
  amountMsat?: Msat;
  /** unix seconds */
  timestamp: number;
  paymentHash: Buffer;
  paymentSecret: Buffer;
  /** Exactly one of description and descriptionHash. */
  description?: string;
  descriptionHash?: Buffer;
  expirySeconds: number;
  minFinalCltvExpiryDelta: number;
  /** Our node id (33 bytes), also written as the `n` field. */
  payee: Buffer;
  routeHints: readonly (readonly RouteHintHop[])[];
}
