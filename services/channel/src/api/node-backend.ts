import { randomBytes } from "node:crypto";
import { crashPoint } from "@ln/crash";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import {
  formatShortChannelId,
  msat,
  sat,
  satToMsat,
  shortChannelIdFromBigint,
  shortChannelIdToBigint,
  type Msat,
  type Sat,
} from "@ln/bitcoin";
import type { ChannelState } from "@ln/channel-core";
import { isRejectionCode } from "@ln/control-api";
import { NodeError } from "../channels/errors.js";
import {
  BackendError,
  type BackendErrorCode,
  type ChannelDetail,
  type ChannelSummary,
  type CreateInvoiceRequest,
  type Invoice,
  type InvoicePayRequest,
  type InvoicePaymentRecord,
  type NodeBackend,
  type NodeInfo,
  type Payment,
  type PaymentRecord,
  type PayRequest,
  type PeerInfo,
  type WalletBalance,
  type Withdrawal,
  type WithdrawalRecord,
} from "./backend.js";
import { NETWORKS, type InvoiceFields } from "@ln/invoice";
import { type InvoiceRow, type Ledger, type PaymentRoute, type PaymentRow } from "../payments/ledger.js";
import { DEFAULT_INVOICE_EXPIRY_SECONDS, signedInvoice } from "../payments/invoices.js";
import { forgetPaymentOnion, keepPaymentOnion, withOfferedPayment } from "../payments/records.js";
import { AttemptRefused, type AttemptRequest } from "../payments/payer.js";
import { decodeInvoice, InvoiceError, type DecodedInvoice } from "@ln/invoice";
import {
  createInvoicePayment,
  DEFAULT_PAYMENT_TIMEOUT_SECONDS,
  defaultMaxFee,
  invoicePayment,
  InvoicePaymentRefused,
  invoicePayments,
  type InvoicePayment,
} from "../payments/invoice-payments.js";
import { planRoute, RouteError, type PlannedHop, type RouteHop, type RoutePlan } from "../payments/route.js";
import { buildOnion, encodeHopPayload, OnionError } from "@ln/onion";
import type { ForwardingPolicies, ForwardingPolicy } from "../forwarding/policy.js";
import { ForwardReads, type ForwardRow, type ForwardTotals } from "../forwarding/forward-reads.js";
import type { ChannelNode } from "../channels/node.js";
import type { PeerControl } from "../channels/ports.js";
import type { Resolver } from "../onchain/resolution.js";
import type { ChannelRow, ChannelStore, WithinTransition } from "../channels/store.js";
import { operatorGraph, readAnnouncedGraph, type Graph } from "../gossip/graph-api-reads.js";

/** The wallet as the API sees it (wallet.ts). */
export interface WalletApi {
  newAddress(): Promise<{ address: string }>;
  balance(): Promise<Omit<WalletBalance, "closeOutputs">>;
  closeOutputs(): Promise<WalletBalance["closeOutputs"]>;
  withdraw(p: { address: string; amountSat: Sat }, record?: WithdrawalRecord): Promise<{ txid: string }>;
}

export interface ChannelNodeBackendOptions {
  node: ChannelNode;
  store: ChannelStore;
  ledger: Ledger;
  resolution: Pick<Resolver, "view">;
  wallet: WalletApi;
  peers: PeerControl;
  nodeId: string;
  network: string;
  version: string;
  /** Each channel's forwarding policy. */
  policies: ForwardingPolicies;
  /** Where the forwarding table and the kept onions are (the node's schema). */
  pool: pg.Pool;
  schema: string;
  /** Woken when an invoice payment is written (payments/payer.ts). */
  payer?: { notify(): void };
  /** Clock (ms) for invoice expiry and payment deadlines (default Date.now). */
  now?: () => number;
  /** The signer's invoice hash for an index (R stays in the signer). */
  invoiceHash: (index: number, amountMsat: Msat) => Promise<string>;
  /** The signer's SignInvoice: the BOLT #11 string of invoice `index` (payments/invoices.ts). */
  signInvoice: (index: number, fields: InvoiceFields) => Promise<string>;
  /** What the payee requires of a final HTLC's expiry beyond the tip, written in our invoices. */
  minFinalCltvExpiryDelta: number;
}

/** Error codes of the node's parts, as the API names them. */
const CODES: Record<string, BackendErrorCode> = {
  NOT_FOUND: "NOT_FOUND",
  CONFLICT: "CONFLICT",
  INVALID: "INVALID",
  INVALID_ADDRESS: "INVALID",
  UNAVAILABLE: "UNAVAILABLE",
  INSUFFICIENT_FUNDS: "INSUFFICIENT_FUNDS",
  NO_SEGWIT_COINS: "INSUFFICIENT_FUNDS",
  UNREACHABLE: "PEER_UNREACHABLE",
  HANDSHAKE_FAILED: "PEER_UNREACHABLE",
  BAD_REQUEST: "INVALID",
  REJECTED: "INVALID",
  WITHDRAWAL_LIMIT: "INVALID",
  INVALID_AMOUNT: "INVALID",
  SIGNER_REFUSED: "UNAVAILABLE",
};

/** Turns a typed error of the node's parts (they carry a `code`) into the API's; others pass on. */
function named<T>(p: Promise<T>): Promise<T> {
  return p.catch((e: unknown) => {
    // The channel core's refusal keeps its own code through to the API (REJECTION_STATUS).
    if (e instanceof NodeError && isRejectionCode(e.code)) throw new BackendError(e.code, e.message);
    const code = e instanceof Error && "code" in e && typeof e.code === "string" ? CODES[e.code] : undefined;
    throw code && e instanceof Error ? new BackendError(code, e.message) : e;
  });
}

/** The control API's backend over the running node: the channels, the books, the wallet, the gateway. */
export class ChannelNodeBackend implements NodeBackend {
  private readonly forwards: ForwardReads;

  constructor(private readonly o: ChannelNodeBackendOptions) {
    this.forwards = new ForwardReads(o.pool, o.schema);
  }

  async nodeInfo(): Promise<NodeInfo> {
    const [peers, rows] = await Promise.all([this.o.peers.list().catch(() => []), this.o.store.rows()]);
    return {
      nodeId: this.o.nodeId,
      network: this.o.network,
      version: this.o.version,
      blockHeight: this.o.node.height,
      peerCount: peers.length,
      channelCount: rows.length,
    };
  }

  async connectPeer(peer: { host: string; port: number; nodeId: string }): Promise<PeerInfo> {
    await named(this.o.node.connect(peer));
    return { ...peer, connected: true };
  }

  async openChannel(req: { nodeId: string; fundingSat: Sat; private?: boolean }): Promise<ChannelSummary> {
    const balance = await this.o.wallet.balance();
    if (balance.confirmedSat < req.fundingSat)
      throw new BackendError(
        "INSUFFICIENT_FUNDS",
        `the wallet holds ${balance.confirmedSat} sat confirmed, less than ${req.fundingSat} sat plus fees; deposit to an address from POST /v1/wallet/address`,
      );
    const id = await named(this.o.node.open(req.nodeId, req.fundingSat));
    // Marked long before it could be announced (normal, GOSSIP_ANNOUNCE_DEPTH deep; gossip/).
    if (req.private === true)
      await this.o.pool.query(
        `UPDATE ${quoteSchema(this.o.schema)}.channels SET private = true WHERE id = $1`,
        [id],
      );
    return this.summaryOf(id);
  }

  async listChannels(): Promise<ChannelSummary[]> {
    return (await this.o.store.rowsWithState()).map(({ row, state }) => summary(row, state));
  }

  async getChannel(id: string): Promise<ChannelDetail | undefined> {
    const row = await this.o.store.row(id);
    const state = row && (await this.o.store.load(id));
    if (!row || !state) return undefined;
    return {
      ...summary(row, state),
      htlcs: (state.localCommit?.htlcs ?? []).map((h) => ({
        id: h.id,
        direction: h.offerer === "local" ? ("offered" as const) : ("received" as const),
        amountMsat: h.amountMsat,
        rHash: h.rHash,
        expiry: h.expiry,
      })),
      failure: state.failure,
      anchorTxid: state.anchor?.outpoint.txid,
      transactions: await this.o.ledger.broadcastsOf(id),
      onchain: await this.o.resolution.view(id),
    };
  }

  async createInvoice(req: CreateInvoiceRequest): Promise<Invoice> {
    const network = NETWORKS.find((n) => n === this.o.network);
    if (network === undefined) throw new BackendError("INVALID", `no invoices on network ${this.o.network}`);
    const amountMsat = req.amountMsat ?? msat(0n);
    const description = req.description ?? "";
    const expirySeconds = req.expirySeconds ?? DEFAULT_INVOICE_EXPIRY_SECONDS;
    const signing = {
      pool: this.o.pool,
      schema: this.o.schema,
      store: this.o.store,
      network,
      nodeId: this.o.nodeId,
      minFinalCltvExpiryDelta: this.o.minFinalCltvExpiryDelta,
      defaultPolicy: this.o.policies.defaults,
      signInvoice: this.o.signInvoice,
    };
    const inv = await this.o.ledger.addInvoice(this.o.invoiceHash, amountMsat, description, (index, rHash) =>
      signedInvoice(signing, index, rHash, { amountMsat, description, expirySeconds }),
    );
    crashPoint("channel.invoice.created");
    return this.invoiceOf(inv);
  }

  async getInvoice(rHash: string): Promise<Invoice | undefined> {
    const inv = await this.o.ledger.invoice(rHash);
    return inv && this.invoiceOf(inv);
  }

  private invoiceOf(inv: InvoiceRow): Invoice {
    return {
      rHash: inv.rHash,
      amountMsat: inv.amountMsat,
      description: inv.description,
      createdAt: inv.createdAt,
      status: inv.status,
      bolt11: inv.bolt11?.bolt11,
      expiresAt: inv.bolt11?.expiresAt,
      payee: this.o.nodeId,
    };
  }

  async pay(req: PayRequest, record?: PaymentRecord): Promise<Payment> {
    if (req.route) return this.payOverRoute({ ...req, route: req.route }, record);
    const channelId = req.channelId;
    if (channelId === undefined) throw new BackendError("INVALID", "give a channelId or a route");
    // The request's result commits with the step that offers the HTLC and records the payment.
    const written = this.offeredWithin(channelId, record);
    await named(
      this.o.node.command(
        channelId,
        { kind: "add_htlc", amountMsat: req.amountMsat, rHash: req.rHash, expiry: req.expiry },
        written.within,
      ),
    );
    return this.offered(channelId, written.row);
  }

  /**
   * A payment over a route: the onion for it (associated data r_hash), kept with the route and
   * its shared secrets under the onion's hash until the step that adds the HTLC moves them onto
   * the payment row (records.ts paymentOffered), so the peer's error packet can be read.
   */
  private async payOverRoute(
    req: PayRequest & { route: readonly RouteHop[] },
    record: PaymentRecord | undefined,
    attempt?: { invoicePaymentId: string; paymentSecret: Buffer },
  ): Promise<Payment> {
    const expiry = req.expiry;
    if (!("blocks" in expiry))
      throw new BackendError("INVALID", "a routed payment's expiry is a block height ({ blocks })");
    const secret =
      attempt?.paymentSecret ??
      (req.paymentSecret === undefined ? undefined : Buffer.from(req.paymentSecret, "hex"));
    const plan = planned(() => planRoute(req.route, req.amountMsat, expiry.blocks, secret));
    const first = plan.hops[0] as PlannedHop;
    const channelId = req.channelId ?? (await this.channelTo(first.nodeId));
    const row = await this.o.store.row(channelId);
    if (!row) throw new BackendError("NOT_FOUND", `no channel ${channelId}`);
    if (row.peerNodeId !== first.nodeId)
      throw new BackendError(
        "INVALID",
        `channel ${channelId} is with ${row.peerNodeId ?? "no peer yet"}, not the route's first hop ${first.nodeId}`,
      );
    // An onion built elsewhere goes as it is: its shared secrets are not ours to keep.
    const onion =
      req.onion !== undefined
        ? { packet: Buffer.from(req.onion, "hex"), sharedSecrets: [] }
        : planned(() =>
            buildOnion({
              sessionKey: randomBytes(32),
              hops: plan.hops.map((h) => ({
                nodeId: Buffer.from(h.nodeId, "hex"),
                payload: encodeHopPayload(h.payload),
              })),
              associatedData: Buffer.from(req.rHash, "hex"),
            }),
          );
    const packet = onion.packet.toString("hex");
    await keepPaymentOnion(
      this.o.pool,
      this.o.schema,
      packet,
      routeJson(plan),
      onion.sharedSecrets,
      attempt && { invoicePaymentId: attempt.invoicePaymentId, channelId },
    );
    const written = this.offeredWithin(channelId, record);
    await named(
      this.o.node.command(
        channelId,
        {
          kind: "add_htlc",
          amountMsat: plan.amountMsat,
          rHash: req.rHash,
          expiry: { blocks: plan.expiry },
          route: packet,
        },
        written.within,
      ),
    ).catch(async (e: unknown) => {
      // Refused: this onion is never sent. (Deferred behind the signer, it stays for its step.)
      await forgetPaymentOnion(this.o.pool, this.o.schema, packet).catch(() => undefined);
      throw e;
    });
    return this.offered(channelId, written.row);
  }

  /**
   * One attempt of an invoice payment (payments/payer.ts): the ordinary routed pay path, its
   * onion kept with the invoice payment's id so the add step writes the attempt row. Our
   * channel's refusal (a rejection, or the channel not runnable here) is an AttemptRefused; a
   * command queued behind the signer is in flight (its add step writes the row later).
   */
  async sendAttempt(a: AttemptRequest): Promise<void> {
    try {
      await this.payOverRoute(
        {
          channelId: a.channelId,
          rHash: a.rHash,
          amountMsat: a.amountMsat,
          expiry: { blocks: a.finalExpiry },
          route: a.hops,
        },
        undefined,
        { invoicePaymentId: a.invoicePaymentId, paymentSecret: a.paymentSecret },
      );
    } catch (e) {
      if (e instanceof PaymentQueued) return;
      if (e instanceof BackendError) throw new AttemptRefused(e.code, e.message);
      throw e;
    }
  }

  /** Our live channel with `nodeId`. */
  private async channelTo(nodeId: string): Promise<string> {
    const row = await this.o.store.liveWith(nodeId);
    if (!row)
      throw new BackendError(
        "NOT_FOUND",
        `no live channel with ${nodeId}, the route's first hop; give channelId`,
      );
    return row.id;
  }

  /** The payment the command's step recorded. */
  /**
   * What the step that offers a payment's HTLC writes more (the request's record) and keeps: the
   * payment's row as written there, so the answer needs no second read.
   */
  private offeredWithin(
    channelId: string,
    record: PaymentRecord | undefined,
  ): { within: WithinTransition; row: PaymentRow | undefined } {
    const kept: { within: WithinTransition; row: PaymentRow | undefined } = {
      row: undefined,
      within: withOfferedPayment(this.o.ledger, channelId, async (c, row) => {
        kept.row = row;
        await record?.complete(c, payment(row));
      }),
    };
    return kept;
  }

  /**
   * The payment its command's own step wrote (`written`, kept by offeredWithin): none when the
   * command waits behind the signer (its step comes later).
   */
  private offered(channelId: string, written: PaymentRow | undefined): Payment {
    const row = written;
    if (!row)
      throw new PaymentQueued(
        `channel ${channelId} is waiting for the signer; the payment is queued and will appear in GET /v1/payments`,
      );
    crashPoint("channel.payment.created");
    return payment(row);
  }

  async payInvoice(req: InvoicePayRequest, record?: InvoicePaymentRecord): Promise<InvoicePayment> {
    let inv: DecodedInvoice;
    try {
      inv = decodeInvoice(req.invoice);
    } catch (e) {
      if (e instanceof InvoiceError)
        throw new InvoicePaymentRefused(
          "INVALID_INVOICE",
          `the invoice does not decode (${e.code}): ${e.message}`,
        );
      throw e;
    }
    if (inv.network !== this.o.network)
      throw new InvoicePaymentRefused(
        "WRONG_NETWORK",
        `the invoice is for ${inv.network}; this node is on ${this.o.network}`,
      );
    const now = this.o.now?.() ?? Date.now();
    if (inv.expiresAt * 1000 <= now)
      throw new InvoicePaymentRefused(
        "INVOICE_EXPIRED",
        `the invoice expired at ${new Date(inv.expiresAt * 1000).toISOString()}; ask the payee for a new one`,
      );
    if (inv.payee === this.o.nodeId)
      throw new InvoicePaymentRefused(
        "OWN_INVOICE",
        "the invoice is this node's own: a node does not pay itself",
      );
    if (inv.amountMsat !== undefined && req.amountMsat !== undefined)
      throw new InvoicePaymentRefused(
        "AMOUNT_NOT_ALLOWED",
        `the invoice names its amount (${inv.amountMsat} msat); give amountMsat only for an invoice without one`,
      );
    const amountMsat = inv.amountMsat ?? req.amountMsat;
    if (amountMsat === undefined || amountMsat <= 0n)
      throw new InvoicePaymentRefused(
        "AMOUNT_REQUIRED",
        "the invoice names no amount: give a positive amountMsat",
      );
    const made = await createInvoicePayment(
      this.o.pool,
      this.o.schema,
      {
        bolt11: req.invoice,
        rHash: inv.paymentHash,
        payee: inv.payee,
        amountMsat,
        maxFeeMsat: req.maxFeeMsat ?? defaultMaxFee(amountMsat),
        deadline: new Date(now + 1000 * (req.timeoutSeconds ?? DEFAULT_PAYMENT_TIMEOUT_SECONDS)),
        allowRepeat: req.allowRepeat ?? false,
      },
      record && ((tx, p) => record.complete(tx, p)),
    );
    this.o.payer?.notify();
    return made;
  }

  listInvoicePayments(limit: number): Promise<InvoicePayment[]> {
    return invoicePayments(this.o.pool, this.o.schema, limit);
  }

  getInvoicePayment(id: string): Promise<InvoicePayment | undefined> {
    return invoicePayment(this.o.pool, this.o.schema, id);
  }

  async listPayments(): Promise<Payment[]> {
    return (await this.o.ledger.payments()).map(payment);
  }

  async getPayment(id: string): Promise<Payment | undefined> {
    const p = await this.o.ledger.payment(id);
    return p && payment(p);
  }

  async updateFee(id: string, feeRate: number): Promise<ChannelSummary> {
    await named(this.o.node.command(id, { kind: "update_fee", feeRate }));
    return this.summaryOf(id);
  }

  async closeChannel(id: string): Promise<ChannelSummary> {
    await named(this.o.node.command(id, { kind: "close" }));
    return this.summaryOf(id);
  }

  async forceClose(id: string): Promise<ChannelSummary> {
    await named(this.o.node.command(id, { kind: "force_close" }));
    return this.summaryOf(id);
  }

  walletAddress(): Promise<{ address: string }> {
    return named(this.o.wallet.newAddress()).then((a) => ({ address: a.address }));
  }

  async walletBalance(): Promise<WalletBalance> {
    const [b, closeOutputs] = await Promise.all([
      named(this.o.wallet.balance()),
      named(this.o.wallet.closeOutputs()),
    ]);
    return { ...b, closeOutputs };
  }

  async withdraw(req: { address: string; amountSat: Sat }, record: WithdrawalRecord): Promise<Withdrawal> {
    const { txid } = await named(this.o.wallet.withdraw(req, record));
    return { txid, address: req.address, amountSat: req.amountSat };
  }

  async getPolicy(channelId: string): Promise<ForwardingPolicy> {
    if (!(await this.o.store.row(channelId))) throw new BackendError("NOT_FOUND", `no channel ${channelId}`);
    return this.o.policies.get(channelId);
  }

  async setPolicy(channelId: string, p: Partial<ForwardingPolicy>): Promise<ForwardingPolicy> {
    if (!(await this.o.store.row(channelId))) throw new BackendError("NOT_FOUND", `no channel ${channelId}`);
    const set = await named(this.o.policies.set(channelId, p));
    // Our channel_update follows the new policy (gossip/gossip.ts).
    this.o.node.gossip?.poke();
    return set;
  }

  async listForwards(q: { status?: string | undefined; limit: number }): Promise<{
    forwards: ForwardRow[];
    totals: ForwardTotals;
  }> {
    const [forwards, totals] = await Promise.all([this.forwards.list(q), this.forwards.totals()]);
    return { forwards, totals };
  }

  async graph(): Promise<Graph> {
    const [announced, channels] = await Promise.all([
      readAnnouncedGraph(this.o.pool, this.o.schema),
      this.listChannels(),
    ]);
    const live = channels.filter((c) => c.phase !== "closed" && c.phase !== "failed" && c.peerNodeId !== "");
    const own = await Promise.all(
      live.map(async (c) => ({
        id: c.id,
        peerNodeId: c.peerNodeId,
        shortChannelId: c.shortChannelId && shortChannelIdToBigint(c.shortChannelId),
        capacitySat: c.capacitySat,
        policy: await this.o.policies.get(c.id),
        usable: c.phase === "normal",
      })),
    );
    return operatorGraph(announced, this.o.nodeId, own);
  }

  private async summaryOf(id: string): Promise<ChannelSummary> {
    const row = await this.o.store.row(id);
    const state = row && (await this.o.store.load(id));
    if (!row || !state) throw new BackendError("NOT_FOUND", `no channel ${id}`);
    return summary(row, state);
  }
}

function summary(
  row: Pick<ChannelRow, "id" | "peerNodeId" | "shortChannelId">,
  s: ChannelState,
): ChannelSummary {
  const capacity = s.anchor?.amount ?? s.fundingSat ?? sat(0n);
  // Before the first commitment: the creator's funding is all its own (draft 2.2).
  const local = s.localCommit?.localMsat ?? (s.role === "creator" ? satToMsat(capacity) : msat(0n));
  const remote = s.localCommit?.remoteMsat ?? (s.role === "acceptor" ? satToMsat(capacity) : msat(0n));
  return {
    id: row.id,
    peerNodeId: row.peerNodeId ?? "",
    phase: s.phase,
    role: s.role,
    capacitySat: capacity,
    localBalanceMsat: local,
    remoteBalanceMsat: remote,
    ...(row.shortChannelId ? { shortChannelId: row.shortChannelId } : {}),
  };
}

const payment = (p: PaymentRow): Payment => ({
  id: p.id,
  channelId: p.channelId,
  rHash: p.rHash,
  amountMsat: p.amountMsat,
  expiry: p.expiry,
  status: p.status,
  failureReason: p.failureReason,
  route: p.route,
  failure: p.failure,
  createdAt: p.createdAt,
});

/** A route as stored on its payment: the hops as asked, with each hop's HTLC. */
const routeJson = (plan: RoutePlan): PaymentRoute => ({
  hops: plan.hops.map((h) => ({
    nodeId: h.nodeId,
    shortChannelId: formatShortChannelId(shortChannelIdFromBigint(h.shortChannelId)),
    feeBaseMsat: h.feeBaseMsat.toString(),
    feeProportionalMillionths: h.feeProportionalMillionths.toString(),
    cltvExpiryDelta: h.cltvExpiryDelta,
    amountMsat: h.amountMsat.toString(),
    expiry: h.expiry,
  })),
});

/** A payment's command queued behind the signer: its add step writes the row later. */
class PaymentQueued extends BackendError {
  constructor(message: string) {
    super("UNAVAILABLE", message);
  }
}

/** A route the node cannot send: the request's fault (INVALID). */
function planned<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    if (e instanceof RouteError || e instanceof OnionError) throw new BackendError("INVALID", e.message);
    throw e;
  }
}
