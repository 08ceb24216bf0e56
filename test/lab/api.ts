/**
 * A small typed client of the channel service's control API (services/channel/src/api), for the
 * lab and cross-service tests. Amounts stay decimal strings as on the wire; errors name the
 * method, path, status and the error body.
 */

export type Phase = "opening" | "normal" | "clearing" | "closed" | "failed";
export type Locktime = { blocks: number } | { seconds: number };

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
export interface ChannelSummary {
  id: string;
  peerNodeId: string;
  phase: Phase;
  role: "creator" | "acceptor";
  capacitySat: string;
  localBalanceMsat: string;
  remoteBalanceMsat: string;
}
export interface Htlc {
  id: string;
  direction: "offered" | "received";
  amountMsat: string;
  rHash: string;
  expiry: Locktime;
}
export interface ChannelDetail extends ChannelSummary {
  htlcs: Htlc[];
  failure: { code: string; problem: string } | null;
  anchorTxid: string | null;
  transactions: { kind: string; txid: string }[];
}
export interface Invoice {
  rHash: string;
  amountMsat: string;
  description: string;
  createdAt: string;
}
export interface Payment {
  id: string;
  channelId: string;
  rHash: string;
  amountMsat: string;
  expiry: Locktime;
  status: "pending" | "succeeded" | "failed";
  failureReason: string | null;
  createdAt: string;
}
export interface WalletBalance {
  confirmedSat: string;
  unconfirmedSat: string;
}
export interface Withdrawal {
  txid: string;
  address: string;
  amountSat: string;
}

export class ApiError extends Error {
  override readonly name = "ApiError";
  constructor(
    readonly method: string,
    readonly path: string,
    /** HTTP status, 0 when the request did not get an answer. */
    readonly status: number,
    readonly body: unknown,
    message: string,
  ) {
    super(message);
  }
  /** The `error.code` of the body, if it has the API's error shape. */
  get code(): string | undefined {
    const b = this.body as { error?: { code?: unknown } } | null;
    return typeof b?.error?.code === "string" ? b.error.code : undefined;
  }
}

export interface RequestOptions {
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
}

export class LabApi {
  constructor(
    /** e.g. http://127.0.0.1:8080 */
    readonly baseUrl: string,
    readonly token: string,
  ) {}

  async request<T>(method: string, path: string, body?: unknown, opts: RequestOptions = {}): Promise<T> {
    const headers: Record<string, string> = { authorization: `Bearer ${this.token}`, ...opts.headers };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(new URL(path, this.baseUrl), {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(opts.timeoutMs ?? 30_000),
      });
    } catch (e) {
      const why =
        e instanceof Error
          ? `${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ""}`
          : String(e);
      throw new ApiError(method, path, 0, null, `${method} ${this.baseUrl}${path}: no answer (${why})`);
    }
    const text = await res.text();
    let parsed: unknown = text;
    if (text !== "")
      try {
        parsed = JSON.parse(text);
      } catch {
        /* keep the text */
      }
    if (!res.ok)
      throw new ApiError(
        method,
        path,
        res.status,
        parsed,
        `${method} ${path} -> ${res.status}: ${typeof parsed === "string" ? parsed : JSON.stringify(parsed)}`,
      );
    return parsed as T;
  }

  info(): Promise<NodeInfo> {
    return this.request("GET", "/v1/info");
  }
  connectPeer(host: string, port: number, nodeId: string): Promise<PeerInfo> {
    return this.request("POST", "/v1/peers", { host, port, nodeId });
  }
  openChannel(nodeId: string, fundingSat: bigint): Promise<ChannelSummary> {
    return this.request("POST", "/v1/channels", { nodeId, fundingSat: fundingSat.toString() });
  }
  async channels(): Promise<ChannelSummary[]> {
    return (await this.request<{ channels: ChannelSummary[] }>("GET", "/v1/channels")).channels;
  }
  channel(id: string): Promise<ChannelDetail> {
    return this.request("GET", `/v1/channels/${encodeURIComponent(id)}`);
  }
  closeChannel(id: string): Promise<ChannelSummary> {
    return this.request("POST", `/v1/channels/${encodeURIComponent(id)}/close`);
  }
  forceClose(id: string): Promise<ChannelSummary> {
    return this.request("POST", `/v1/channels/${encodeURIComponent(id)}/force-close`);
  }
  updateFee(id: string, feeRate: number): Promise<ChannelSummary> {
    return this.request("POST", `/v1/channels/${encodeURIComponent(id)}/fee`, { feeRate });
  }
  createInvoice(amountMsat: bigint, description?: string): Promise<Invoice> {
    return this.request("POST", "/v1/invoices", {
      amountMsat: amountMsat.toString(),
      ...(description !== undefined ? { description } : {}),
    });
  }
  pay(
    p: { channelId: string; rHash: string; amountMsat: bigint; expiry: Locktime },
    idempotencyKey: string,
  ): Promise<Payment> {
    return this.request(
      "POST",
      "/v1/payments",
      { channelId: p.channelId, rHash: p.rHash, amountMsat: p.amountMsat.toString(), expiry: p.expiry },
      { headers: { "idempotency-key": idempotencyKey } },
    );
  }
  async payments(limit?: number): Promise<Payment[]> {
    const q = limit !== undefined ? `?limit=${limit}` : "";
    return (await this.request<{ payments: Payment[] }>("GET", `/v1/payments${q}`)).payments;
  }
  payment(id: string): Promise<Payment> {
    return this.request("GET", `/v1/payments/${encodeURIComponent(id)}`);
  }
  async walletAddress(): Promise<string> {
    return (await this.request<{ address: string }>("GET", "/v1/wallet/address")).address;
  }
  walletBalance(): Promise<WalletBalance> {
    return this.request("GET", "/v1/wallet/balance");
  }
  withdraw(address: string, amountSat: bigint): Promise<Withdrawal> {
    return this.request("POST", "/v1/wallet/withdraw", { address, amountSat: amountSat.toString() });
  }
}
