import { createHash, randomBytes } from "node:crypto";
import { msat, sat, shortChannelIdToBigint, type Sat, type ShortChannelId } from "@ln/bitcoin";
import {
  BackendError,
  type ChannelDetail,
  type ChannelSummary,
  type CreateInvoiceRequest,
  type ForwardingPolicy,
  type ForwardRow,
  type ForwardTotals,
  type Graph,
  type Invoice,
  type PaymentRoute,
  type PayRequest,
  type NodeBackend,
  type NodeInfo,
  type Payment,
  type PeerInfo,
  type WalletBalance,
  type Withdrawal,
  type WithdrawalRecord,
} from "../src/api/backend.js";
import { inTransaction } from "@ln/postgres";
import { assembleInvoice, unsignedInvoice, type InvoiceFields } from "@ln/invoice";
import * as ecc from "tiny-secp256k1";
import { planRoute, type RoutePlan } from "../src/payments/route.js";
import { checkPolicy } from "../src/forwarding/policy.js";
import { operatorGraph, readAnnouncedGraph } from "../src/gossip/graph-api-reads.js";
import type pg from "pg";

/**
 * An in-memory NodeBackend: channels open instantly, payments settle at once against the local
 * balance. Test-only (kept out of src/): the API's tests run it without a node. It counts calls
 * per method so tests can check that a retried request did not pay twice. Withdrawals need
 * `pool`: their request record (the API's idempotency key) is written in a real transaction, as
 * the wallet does. The graph is read from the gossip tables in `graphSchema` (with `pool`), else
 * it holds our channels only.
 */
export class MemoryBackend implements NodeBackend {
  constructor(private readonly opts: { pool?: pg.Pool; graphSchema?: string } = {}) {}

  readonly calls = new Map<keyof NodeBackend, number>();
  /** A key of its own, so that its invoices are real BOLT #11 strings signed by its node id. */
  private readonly nodeKey = createHash("sha256").update("memory backend node key").digest();
  readonly nodeId = Buffer.from(ecc.pointFromScalar(this.nodeKey, true) ?? []).toString("hex");
  private readonly peers = new Map<string, PeerInfo>();
  private readonly channels = new Map<string, ChannelDetail>();
  private readonly invoices = new Map<string, Invoice & { preimage: string }>();
  private readonly payments: Payment[] = [];
  private confirmedSat: Sat = sat(10_000_000n);
  private readonly policies = new Map<string, ForwardingPolicy>();
  readonly defaultPolicy: ForwardingPolicy = {
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 1n,
    cltvExpiryDelta: 184,
    htlcMinimumMsat: msat(1000n),
  };
  /** The forwarding table as a test sets it. */
  readonly forwards: ForwardRow[] = [];

  /** As the chain watcher's report would set it: the anchor is at this place. */
  confirmAnchor(id: string, at: ShortChannelId): void {
    this.channel(id).shortChannelId = at;
  }

  count(method: keyof NodeBackend): number {
    return this.calls.get(method) ?? 0;
  }

  private called(method: keyof NodeBackend): void {
    this.calls.set(method, this.count(method) + 1);
  }

  private channel(id: string): ChannelDetail {
    const c = this.channels.get(id);
    if (!c) throw new BackendError("NOT_FOUND", `no channel ${id}`);
    return c;
  }

  async nodeInfo(): Promise<NodeInfo> {
    this.called("nodeInfo");
    return {
      nodeId: this.nodeId,
      network: "regtest",
      version: "0.0.0-memory",
      blockHeight: 100,
      peerCount: this.peers.size,
      channelCount: this.channels.size,
    };
  }

  async connectPeer(peer: { host: string; port: number; nodeId: string }): Promise<PeerInfo> {
    this.called("connectPeer");
    const info: PeerInfo = { ...peer, connected: true };
    this.peers.set(peer.nodeId, info);
    return info;
  }

  async openChannel(req: { nodeId: string; fundingSat: Sat }): Promise<ChannelSummary> {
    this.called("openChannel");
    if (!this.peers.has(req.nodeId))
      throw new BackendError("PEER_UNREACHABLE", `not connected to ${req.nodeId}`);
    if (req.fundingSat > this.confirmedSat)
      throw new BackendError("INSUFFICIENT_FUNDS", `wallet holds ${this.confirmedSat} sat`);
    this.confirmedSat = sat(this.confirmedSat - req.fundingSat);
    const id = randomBytes(16).toString("hex");
    const c: ChannelDetail = {
      id,
      peerNodeId: req.nodeId,
      phase: "normal",
      role: "creator",
      capacitySat: req.fundingSat,
      localBalanceMsat: msat(req.fundingSat * 1000n),
      remoteBalanceMsat: msat(0n),
      htlcs: [],
      failure: undefined,
      anchorTxid: undefined,
      transactions: [],
      onchain: undefined,
    };
    this.channels.set(id, c);
    return summary(c);
  }

  async listChannels(): Promise<ChannelSummary[]> {
    this.called("listChannels");
    return [...this.channels.values()].map(summary);
  }

  async getChannel(id: string): Promise<ChannelDetail | undefined> {
    this.called("getChannel");
    return this.channels.get(id);
  }

  async createInvoice(req: CreateInvoiceRequest): Promise<Invoice> {
    this.called("createInvoice");
    const preimage = randomBytes(32);
    const rHash = createHash("sha256").update(preimage).digest();
    const createdAt = new Date(Math.floor(Date.now() / 1000) * 1000);
    const expirySeconds = req.expirySeconds ?? 3600;
    const fields: InvoiceFields = {
      network: "regtest",
      ...(req.amountMsat === undefined ? {} : { amountMsat: req.amountMsat }),
      timestamp: createdAt.getTime() / 1000,
      paymentHash: rHash,
      paymentSecret: randomBytes(32),
      description: req.description ?? "",
      expirySeconds,
      minFinalCltvExpiryDelta: 18,
      payee: Buffer.from(this.nodeId, "hex"),
      routeHints: [],
    };
    const sig = ecc.signRecoverable(unsignedInvoice(fields).signingHash, this.nodeKey);
    const invoice = {
      rHash: rHash.toString("hex"),
      amountMsat: req.amountMsat ?? msat(0n),
      description: req.description ?? "",
      createdAt,
      status: "open" as const,
      bolt11: assembleInvoice(fields, Buffer.from(sig.signature), sig.recoveryId),
      expiresAt: new Date(createdAt.getTime() + expirySeconds * 1000),
      payee: this.nodeId,
      preimage: preimage.toString("hex"),
    };
    this.invoices.set(invoice.rHash, invoice);
    const { preimage: _kept, ...visible } = invoice;
    return visible;
  }

  async getInvoice(rHash: string): Promise<Invoice | undefined> {
    this.called("getInvoice");
    const inv = this.invoices.get(rHash);
    if (!inv) return undefined;
    const { preimage: _kept, ...visible } = inv;
    return visible;
  }

  /** The last request pay() was given. */
  lastPay: PayRequest | undefined;

  async pay(req: PayRequest): Promise<Payment> {
    this.called("pay");
    this.lastPay = req;
    const first = req.route?.[0];
    const c = req.channelId
      ? this.channel(req.channelId)
      : [...this.channels.values()].find((x) => x.peerNodeId === first?.nodeId);
    if (!c) throw new BackendError("NOT_FOUND", "no channel with the route's first hop");
    if (c.phase !== "normal") throw new BackendError("CONFLICT", `channel ${c.id} is ${c.phase}`);
    let route: PaymentRoute | undefined;
    let amount = req.amountMsat;
    if (req.route) {
      if (!("blocks" in req.expiry))
        throw new BackendError("INVALID", "a routed payment's expiry is a height");
      let plan: RoutePlan;
      try {
        plan = planRoute(req.route, req.amountMsat, req.expiry.blocks);
      } catch (e) {
        throw new BackendError("INVALID", e instanceof Error ? e.message : String(e));
      }
      amount = plan.amountMsat;
      route = {
        hops: plan.hops.map((h) => ({
          nodeId: h.nodeId,
          shortChannelId: `${h.shortChannelId >> 40n}x${(h.shortChannelId >> 16n) & 0xffffffn}x${h.shortChannelId & 0xffffn}`,
          feeBaseMsat: h.feeBaseMsat.toString(),
          feeProportionalMillionths: h.feeProportionalMillionths.toString(),
          cltvExpiryDelta: h.cltvExpiryDelta,
          amountMsat: h.amountMsat.toString(),
          expiry: h.expiry,
        })),
      };
    }
    if (amount > c.localBalanceMsat)
      throw new BackendError("INSUFFICIENT_FUNDS", `channel ${c.id} can send ${c.localBalanceMsat} msat`);
    c.localBalanceMsat = msat(c.localBalanceMsat - amount);
    c.remoteBalanceMsat = msat(c.remoteBalanceMsat + amount);
    const p: Payment = {
      id: randomBytes(16).toString("hex"),
      channelId: c.id,
      rHash: req.rHash,
      amountMsat: amount,
      expiry: route ? { blocks: route.hops[0]?.expiry ?? 0 } : req.expiry,
      status: "succeeded",
      failureReason: undefined,
      route,
      failure: undefined,
      createdAt: new Date(),
    };
    this.payments.push(p);
    return p;
  }

  /** Adds a payment as the node would have recorded it (e.g. failed with a decoded failure). */
  addPayment(p: Payment): void {
    this.payments.push(p);
  }

  async getPolicy(channelId: string): Promise<ForwardingPolicy> {
    this.called("getPolicy");
    this.channel(channelId);
    return this.policies.get(channelId) ?? this.defaultPolicy;
  }

  async setPolicy(channelId: string, p: Partial<ForwardingPolicy>): Promise<ForwardingPolicy> {
    this.called("setPolicy");
    this.channel(channelId);
    try {
      checkPolicy(p);
    } catch (e) {
      throw new BackendError("INVALID", e instanceof Error ? e.message : String(e));
    }
    const next = { ...(this.policies.get(channelId) ?? this.defaultPolicy), ...p };
    this.policies.set(channelId, next);
    return next;
  }

  async listForwards(q: { status?: string | undefined; limit: number }): Promise<{
    forwards: ForwardRow[];
    totals: ForwardTotals;
  }> {
    this.called("listForwards");
    const settled = this.forwards.filter((f) => f.status === "settled");
    return {
      forwards: this.forwards
        .filter((f) => q.status === undefined || f.status === q.status)
        .sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime())
        .slice(0, q.limit),
      totals: {
        settled: settled.length,
        feesEarnedMsat: msat(settled.reduce((n, f) => n + f.feeMsat, 0n)),
      },
    };
  }

  async graph(): Promise<Graph> {
    this.called("graph");
    const { pool, graphSchema } = this.opts;
    const announced =
      pool && graphSchema !== undefined
        ? await readAnnouncedGraph(pool, graphSchema)
        : { nodes: [], channels: [] };
    const live = [...this.channels.values()].filter((c) => c.phase !== "closed" && c.phase !== "failed");
    return operatorGraph(
      announced,
      this.nodeId,
      live.map((c) => ({
        id: c.id,
        peerNodeId: c.peerNodeId,
        shortChannelId: c.shortChannelId && shortChannelIdToBigint(c.shortChannelId),
        capacitySat: c.capacitySat,
        policy: this.policies.get(c.id) ?? this.defaultPolicy,
        usable: c.phase === "normal",
      })),
    );
  }

  async listPayments(): Promise<Payment[]> {
    this.called("listPayments");
    return [...this.payments];
  }

  async getPayment(id: string): Promise<Payment | undefined> {
    this.called("getPayment");
    return this.payments.find((p) => p.id === id);
  }

  async updateFee(id: string, feeRate: number): Promise<ChannelSummary> {
    this.called("updateFee");
    const c = this.channel(id);
    if (c.phase !== "normal") throw new BackendError("CONFLICT", `channel ${id} is ${c.phase}`);
    if (feeRate < 1000)
      throw new BackendError("INVALID", "the fee rate is below 1000 satoshi per 1000 bytes");
    return summary(c);
  }

  async closeChannel(id: string): Promise<ChannelSummary> {
    this.called("closeChannel");
    const c = this.channel(id);
    if (c.phase !== "normal") throw new BackendError("CONFLICT", `channel ${id} is ${c.phase}`);
    c.phase = "clearing";
    return summary(c);
  }

  async forceClose(id: string): Promise<ChannelSummary> {
    this.called("forceClose");
    const c = this.channel(id);
    if (c.phase === "closed") throw new BackendError("CONFLICT", `channel ${id} is already closed`);
    c.phase = "closed";
    return summary(c);
  }

  async walletAddress(): Promise<{ address: string }> {
    this.called("walletAddress");
    return { address: `bcrt1q${randomBytes(20).toString("hex")}` };
  }

  async walletBalance(): Promise<WalletBalance> {
    this.called("walletBalance");
    return { confirmedSat: this.confirmedSat, unconfirmedSat: sat(0n), closeOutputs: [] };
  }

  async withdraw(req: { address: string; amountSat: Sat }, record: WithdrawalRecord): Promise<Withdrawal> {
    const pool = this.opts.pool;
    if (!pool) throw new BackendError("UNAVAILABLE", "this MemoryBackend has no pool for withdrawals");
    return inTransaction(pool, async (c) => {
      await record.claim(c);
      this.called("withdraw");
      if (req.amountSat > this.confirmedSat)
        throw new BackendError("INSUFFICIENT_FUNDS", `wallet holds ${this.confirmedSat} sat`);
      const txid = randomBytes(32).toString("hex");
      await record.complete(c, txid);
      // Spent once the record is stored (the wallet's commit); a failed store spends nothing.
      this.confirmedSat = sat(this.confirmedSat - req.amountSat);
      return { txid, address: req.address, amountSat: req.amountSat };
    });
  }
}

function summary(c: ChannelDetail): ChannelSummary {
  return {
    id: c.id,
    peerNodeId: c.peerNodeId,
    phase: c.phase,
    role: c.role,
    capacitySat: c.capacitySat,
    localBalanceMsat: c.localBalanceMsat,
    remoteBalanceMsat: c.remoteBalanceMsat,
    ...(c.shortChannelId ? { shortChannelId: c.shortChannelId } : {}),
  };
}
