import type { Locktime, Msat, Sat, ShortChannelId } from "@ln/bitcoin";
import type { RejectionCode } from "@ln/control-api";
import type pg from "pg";
import type { ForwardingPolicy } from "../forwarding/policy.js";
import type { ForwardRow, ForwardTotals } from "../forwarding/forward-reads.js";
import type { PaymentFailure, PaymentRoute } from "../payments/ledger.js";
import type { RouteHop } from "../payments/route.js";
import type { InvoicePayment } from "../payments/invoice-payments.js";

export type { ForwardingPolicy, ForwardRow, ForwardTotals, PaymentFailure, PaymentRoute, RouteHop };

/**
 * What the HTTP control API needs from the node. Implemented over the ChannelRunner and the wallet
 * when the node is wired; `MemoryBackend` (services/channel/test/memory-backend.ts) is the
 * in-memory stand-in for tests.
 * Amounts are bigint here (branded Sat/Msat); the API turns them into decimal strings.
 */
export interface NodeBackend {
  nodeInfo(): Promise<NodeInfo>;
  connectPeer(peer: { host: string; port: number; nodeId: string }): Promise<PeerInfo>;
  openChannel(req: { nodeId: string; fundingSat: Sat; private?: boolean }): Promise<ChannelSummary>;
  listChannels(): Promise<ChannelSummary[]>;
  /** Undefined when there is no such channel. */
  getChannel(id: string): Promise<ChannelDetail | undefined>;
  /**
   * A BOLT #11 invoice; the preimage is generated and kept by the backend (the signer); only its
   * hash leaves.
   */
  createInvoice(req: CreateInvoiceRequest): Promise<Invoice>;
  /** Undefined when there is no such invoice. */
  getInvoice(rHash: string): Promise<Invoice | undefined>;
  /**
   * `record`, if given, is completed inside the transaction that offers the HTLC (see PaymentRecord).
   * With `route` the HTLC carries an onion for it (payments/route.ts), over `channelId` or, without
   * it, our channel with the route's first hop.
   */
  pay(req: PayRequest, record?: PaymentRecord): Promise<Payment>;
  /**
   * Pays a BOLT #11 invoice: the payment's row (pending) is written with `record` in one
   * transaction; the payer finds routes and sends attempts after (payments/payer.ts).
   * Throws InvoicePaymentRefused for an invoice that cannot or must not be paid. Optional: a
   * backend without it (a test's stand-in) answers 501.
   */
  payInvoice?(req: InvoicePayRequest, record?: InvoicePaymentRecord): Promise<InvoicePayment>;
  /** Invoice payments, newest first. */
  listInvoicePayments?(limit: number): Promise<InvoicePayment[]>;
  /** Undefined when there is no such invoice payment. */
  getInvoicePayment?(id: string): Promise<InvoicePayment | undefined>;
  listPayments(): Promise<Payment[]>;
  /** Undefined when there is no such payment. */
  getPayment(id: string): Promise<Payment | undefined>;
  updateFee(id: string, feeRate: number): Promise<ChannelSummary>;
  closeChannel(id: string): Promise<ChannelSummary>;
  forceClose(id: string): Promise<ChannelSummary>;
  walletAddress(): Promise<{ address: string }>;
  walletBalance(): Promise<WalletBalance>;
  /** `record` is called inside the transaction that stores the withdrawal (see WithdrawalRecord). */
  withdraw(req: { address: string; amountSat: Sat }, record: WithdrawalRecord): Promise<Withdrawal>;
  /** A channel's forwarding policy; NOT_FOUND without the channel. */
  getPolicy(channelId: string): Promise<ForwardingPolicy>;
  /** Changes the fields given; NOT_FOUND without the channel. */
  setPolicy(channelId: string, p: Partial<ForwardingPolicy>): Promise<ForwardingPolicy>;
  /** Forwards, newest first, and the totals over all of them. */
  listForwards(q: { status?: string | undefined; limit: number }): Promise<{
    forwards: ForwardRow[];
    totals: ForwardTotals;
  }>;
}

export interface PayRequest {
  channelId?: string | undefined;
  rHash: string;
  /** What the payee gets. */
  amountMsat: Msat;
  /** The payee's HTLC's expiry (with a route: a block height). */
  expiry: Locktime;
  route?: readonly RouteHop[] | undefined;
  /** An onion built elsewhere (hex), sent unchanged in place of the route's (needs a route). */
  onion?: string | undefined;
  /** With a route: the invoice's payment secret (hex, BOLT #11 `s`) for the payee's payment_data. */
  paymentSecret?: string | undefined;
}

/**
 * The API's durable record of one withdrawal request (its idempotency key, the request's hash and
 * the result), written in the same Postgres transaction as the withdrawal itself: both are
 * stored, or neither, so a retry can never withdraw twice.
 */
export interface WithdrawalRecord {
  /** First in the transaction, before any coin is chosen; throws if the key is bound already. */
  claim(tx: pg.ClientBase): Promise<void>;
  /** Last in the transaction, once the signed withdrawal is stored. */
  complete(tx: pg.ClientBase, txid: string): Promise<void>;
}

/**
 * The API's result of one payment request (its idempotency key), written in the transaction of
 * the channel step that offers the HTLC and records the payment (DESIGN.md 11): a crash after
 * that commit still leaves the key answering with the payment.
 */
export interface PaymentRecord {
  complete(tx: pg.ClientBase, payment: Payment): Promise<void>;
}

export interface InvoicePayRequest {
  invoice: string;
  /** Only for an invoice that names no amount. */
  amountMsat?: Msat | undefined;
  /** Default defaultMaxFee(amount). */
  maxFeeMsat?: Msat | undefined;
  /** Default DEFAULT_PAYMENT_TIMEOUT_SECONDS. */
  timeoutSeconds?: number | undefined;
  allowRepeat?: boolean | undefined;
}

/** Like PaymentRecord, for an invoice payment: completed in the transaction that writes its row. */
export interface InvoicePaymentRecord {
  complete(tx: pg.ClientBase, payment: InvoicePayment): Promise<void>;
}

export type { InvoicePayment, InvoiceAttempt } from "../payments/invoice-payments.js";
export { InvoicePaymentRefused, type InvoicePaymentRefusal } from "../payments/invoice-payments.js";

export interface NodeInfo {
  nodeId: string;
  network: string;
  version: string;
  blockHeight: number;
  peerCount: number;
  channelCount: number;
}

export interface PeerInfo {
  nodeId: string;
  host: string;
  port: number;
  connected: boolean;
}

/** `behind`: data loss suspected (a restored database); stopped, never broadcasting (DESIGN.md 6). */
export type ChannelPhase = "opening" | "normal" | "clearing" | "closed" | "failed" | "behind";

export interface ChannelSummary {
  id: string;
  peerNodeId: string;
  phase: ChannelPhase;
  role: "creator" | "acceptor";
  capacitySat: Sat;
  localBalanceMsat: Msat;
  remoteBalanceMsat: Msat;
  /** Where the anchor is on chain (BOLT #7); undefined until it is in a block. */
  shortChannelId?: ShortChannelId | undefined;
}

export interface HtlcInfo {
  id: bigint;
  direction: "offered" | "received";
  amountMsat: Msat;
  rHash: string;
  expiry: Locktime;
}

export interface ChannelDetail extends ChannelSummary {
  htlcs: HtlcInfo[];
  failure: { code: string; problem: string } | undefined;
  anchorTxid: string | undefined;
  /** What this node broadcast for the channel: its close or our commitment. */
  transactions: { kind: string; txid: string }[];
  /** What spent the anchor and what became of each output we claim (draft 6); none while unspent. */
  onchain: OnchainResolution | undefined;
}

export interface OnchainResolution {
  kind: "our_commitment" | "their_commitment" | "close" | "unknown";
  spendTxid: string;
  commitmentNumber: bigint | undefined;
  height: number;
  claims: {
    vout: number;
    what: "to_us" | "delayed" | "htlc_timeout" | "htlc_redeem" | "watch";
    amountSat: Sat;
    htlcId: bigint | undefined;
    readyHeight: number | undefined;
    status: string;
    sweepTxid: string | undefined;
    spentBy: string | undefined;
  }[];
}

export interface CreateInvoiceRequest {
  /** Undefined: any amount. */
  amountMsat?: Msat | undefined;
  description?: string | undefined;
  /** Default 3600. */
  expirySeconds?: number | undefined;
}

export interface Invoice {
  rHash: string;
  /** 0: any amount. */
  amountMsat: Msat;
  description: string;
  createdAt: Date;
  status: "open" | "settled";
  /** The BOLT #11 string (undefined for an invoice made before them, paid by plain HTLCs only). */
  bolt11: string | undefined;
  expiresAt: Date | undefined;
  /** Our node id, hex. */
  payee: string;
}

export type PaymentStatus = "pending" | "succeeded" | "failed";

export interface Payment {
  id: string;
  channelId: string;
  rHash: string;
  amountMsat: Msat;
  expiry: Locktime;
  status: PaymentStatus;
  failureReason: string | undefined;
  route: PaymentRoute | undefined;
  failure: PaymentFailure | undefined;
  createdAt: Date;
}

export interface WalletBalance {
  confirmedSat: Sat;
  unconfirmedSat: Sat;
}

export interface Withdrawal {
  txid: string;
  address: string;
  amountSat: Sat;
}

/** The node's own failures, or the channel core's refusal of a command (a RejectionCode). */
export type BackendErrorCode =
  | "NOT_FOUND"
  | "INVALID"
  | "CONFLICT"
  | "INSUFFICIENT_FUNDS"
  | "PEER_UNREACHABLE"
  | "UNAVAILABLE"
  | RejectionCode;

/** A failure the backend can name; anything else it throws becomes a 500. */
export class BackendError extends Error {
  override readonly name = "BackendError";
  constructor(
    readonly code: BackendErrorCode,
    message: string,
  ) {
    super(message);
  }
}
