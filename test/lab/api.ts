/**
 * The lab's and the cross-service tests' handle on a node's control API: lnctl's typed client
 * (@ln/lnctl), with the shorter call shapes the scenarios use. Amounts stay decimal strings as on
 * the wire; a refused request is lnctl's `ApiClientError` (status, code, message, request id).
 */
import { randomUUID } from "node:crypto";
import { ApiClientError, LnClient, type Locktime } from "@ln/lnctl";
import type {
  ChannelDetail,
  ChannelSummary,
  Forward,
  ForwardingPolicy,
  ForwardList,
  Invoice,
  InvoicePayBody,
  InvoicePayment,
  NodeInfo,
  Payment,
  PeerInfo,
  WalletBalance,
  Withdrawal,
} from "@ln/lnctl";

export type {
  ChannelDetail,
  ChannelSummary,
  Forward,
  ForwardingPolicy,
  ForwardList,
  Htlc,
  Invoice,
  InvoicePayment,
  Locktime,
  NodeInfo,
  Payment,
  PeerInfo,
  WalletBalance,
  Withdrawal,
} from "@ln/lnctl";
export { ApiClientError as ApiError };

/**
 * One hop of an explicit route (POST /v1/payments `route.hops`): the node reached, the channel
 * that reaches it, and the fee and cltv delta the node before it charges for that channel (zero
 * for hops[0], our own peer over our own channel).
 */
export interface RouteHop {
  nodeId: string;
  /** HEIGHTxINDEXxOUTPUT (BOLT #7). */
  shortChannelId: string;
  feeBaseMsat: bigint;
  feeProportionalMillionths: number;
  cltvExpiryDelta: number;
}

export interface PayRequest {
  /** Required without a route. */
  channelId?: string;
  rHash: string;
  /** What the payee gets. */
  amountMsat: bigint;
  /** With a route: the payee's HTLC expiry. */
  expiry: Locktime;
  route?: readonly RouteHop[];
  /** An onion built elsewhere (hex, 1366 bytes), carried unchanged by the add (hostile-onion tests). */
  onion?: string;
  /** With a route: the invoice's payment secret (hex, BOLT #11 `s`). */
  paymentSecret?: string;
}

/**
 * The BOLT #11 strings of the invoices made through any LabApi of this process, by payment hash:
 * a payer of the scenarios finds the payment secret here even when the payee is down or frozen.
 */
export const INVOICES_MADE = new Map<string, string>();

export class LabApi {
  readonly #client: LnClient | undefined;

  constructor(
    /** e.g. http://127.0.0.1:8080 */
    readonly baseUrl: string,
    token: string,
  ) {
    // A node not started yet has no URL: calls fail until it has one.
    this.#client = token === "" ? undefined : new LnClient({ url: baseUrl, token });
  }

  get #api(): LnClient {
    if (this.#client === undefined) throw new Error(`the control API at ${this.baseUrl} is not up yet`);
    return this.#client;
  }

  info(): Promise<NodeInfo> {
    return this.#api.info();
  }
  connectPeer(host: string, port: number, nodeId: string): Promise<PeerInfo> {
    return this.#api.connectPeer({ host, port, nodeId });
  }
  openChannel(nodeId: string, fundingSat: bigint): Promise<ChannelSummary> {
    return this.#api.openChannel({ nodeId, fundingSat });
  }
  async channels(): Promise<ChannelSummary[]> {
    return (await this.#api.listChannels()).channels;
  }
  channel(id: string): Promise<ChannelDetail> {
    return this.#api.getChannel(id);
  }
  closeChannel(id: string): Promise<ChannelSummary> {
    return this.#api.closeChannel(id);
  }
  forceClose(id: string): Promise<ChannelSummary> {
    return this.#api.forceClose(id);
  }
  updateFee(id: string, feeRate: number): Promise<ChannelSummary> {
    return this.#api.updateFee(id, feeRate);
  }
  /** An invoice; `amountMsat` undefined: any amount. */
  async createInvoice(
    amountMsat: bigint | undefined,
    description?: string,
    expirySeconds?: number,
  ): Promise<Invoice> {
    const inv = await this.#api.createInvoice({
      ...(amountMsat !== undefined ? { amountMsat } : {}),
      ...(description !== undefined ? { description } : {}),
      ...(expirySeconds !== undefined ? { expirySeconds } : {}),
    });
    if (inv.bolt11 !== null) INVOICES_MADE.set(inv.rHash, inv.bolt11);
    return inv;
  }
  /** One invoice by its payment hash (with its BOLT #11 string). */
  invoice(rHash: string): Promise<Invoice> {
    return this.#api.invoice(rHash);
  }
  pay(p: PayRequest, idempotencyKey: string): Promise<Payment> {
    return this.#api.pay(p, idempotencyKey);
  }
  policy(channelId: string): Promise<ForwardingPolicy> {
    return this.#api.getPolicy(channelId);
  }
  setPolicy(
    channelId: string,
    p: {
      feeBaseMsat?: bigint;
      feeProportionalMillionths?: number;
      cltvExpiryDelta?: number;
      htlcMinimumMsat?: bigint;
    },
  ): Promise<ForwardingPolicy> {
    return this.#api.setPolicy(channelId, p);
  }
  /** Forwards, newest first, and the totals over the whole table. */
  forwards(q: { status?: string; limit?: number } = {}): Promise<ForwardList> {
    return this.#api.listForwards(q);
  }
  /** Forwards of payment hash `rHash` (at most the newest 1000). */
  async forwardsOf(rHash: string): Promise<Forward[]> {
    return (await this.forwards({ limit: 1000 })).forwards.filter((f) => f.rHash === rHash);
  }
  /** Payments over a channel or a route (invoice payments left out: invoicePayment). */
  async payments(limit?: number): Promise<Payment[]> {
    return (await this.#api.listPayments(limit)).payments.filter((p): p is Payment => !("kind" in p));
  }
  async payment(id: string): Promise<Payment> {
    const p = await this.#api.getPayment(id);
    if ("kind" in p) throw new Error(`payment ${id} is an invoice payment`);
    return p;
  }
  /** Pays a BOLT #11 invoice (the node routes and retries). */
  async payInvoice(
    body: InvoicePayBody,
    key: string = randomUUID(),
  ): Promise<{ payment: InvoicePayment; replayed: boolean }> {
    return this.#api.payInvoice(body, key);
  }
  async invoicePayment(id: string): Promise<InvoicePayment> {
    const p = await this.#api.getPayment(id);
    if (!("kind" in p)) throw new Error(`payment ${id} is not an invoice payment`);
    return p;
  }
  async walletAddress(): Promise<string> {
    return (await this.#api.walletAddress()).address;
  }
  walletBalance(): Promise<WalletBalance> {
    return this.#api.walletBalance();
  }
  /** A fresh idempotency key unless one is given (a retry with it withdraws once). */
  withdraw(address: string, amountSat: bigint, idempotencyKey: string = randomUUID()): Promise<Withdrawal> {
    return this.#api.withdraw({ address, amountSat }, idempotencyKey);
  }
}
