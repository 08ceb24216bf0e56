/**
 * A typed client for the channel service's control API (services/channel/src/api). The request
 * and reply types are the `Static<>` of the API's own schemas (@ln/control-api): amounts travel
 * as decimal strings and stay strings here, so nothing is rounded; request amounts are taken as
 * bigint and sent as strings.
 */
import type * as S from "@ln/control-api";
import type { Static } from "@ln/control-api";

/** Absolute HTLC expiry: a block height or a unix time in seconds. */
export type Locktime = Static<typeof S.Locktime>;
export type ErrorBody = Static<typeof S.ErrorBody>;
export type Status = Static<typeof S.Status>;
export type NodeInfo = Static<typeof S.NodeInfo>;
export type PeerInfo = Static<typeof S.PeerInfo>;
export type ChannelSummary = Static<typeof S.ChannelSummary>;
/** `behind`: data loss suspected (a restored database): see deploy/README.md, "Restoring". */
export type ChannelPhase = ChannelSummary["phase"];
export type ChannelList = Static<typeof S.ChannelList>;
export type Htlc = Static<typeof S.Htlc>;
export type ChannelDetail = Static<typeof S.ChannelDetail>;
export type Invoice = Static<typeof S.Invoice>;
export type Payment = Static<typeof S.Payment>;
export type PaymentStatus = Payment["status"];
export type PaymentList = Static<typeof S.PaymentList>;
export type InvoicePayment = Static<typeof S.InvoicePayment>;
export type InvoiceAttempt = InvoicePayment["attempts"][number];
export type AnyPayment = Static<typeof S.AnyPayment>;
export type InvoicePayBody = Static<typeof S.InvoicePayBody>;
export type ForwardingPolicy = Static<typeof S.ForwardingPolicy>;
export type ForwardingPolicyBody = Static<typeof S.ForwardingPolicyBody>;
export type Forward = Static<typeof S.Forward>;
export type ForwardList = Static<typeof S.ForwardList>;
export type WalletAddress = Static<typeof S.WalletAddress>;
export type WalletBalance = Static<typeof S.WalletBalance>;
export type Withdrawal = Static<typeof S.Withdrawal>;
export type TokenRecord = Static<typeof S.TokenRecord>;
export type Scope = TokenRecord["scopes"][number];
export type TokenList = Static<typeof S.TokenList>;
export type RevokedTokens = Static<typeof S.RevokedTokens>;
/** The bodies lnctl sends, as the API validates them. */
export type ConnectPeerBody = Static<typeof S.ConnectPeerBody>;
export type OpenChannelBody = Static<typeof S.OpenChannelBody>;
export type UpdateFeeBody = Static<typeof S.UpdateFeeBody>;
export type CreateInvoiceBody = Static<typeof S.CreateInvoiceBody>;
export type PayBody = Static<typeof S.PayBody>;
export type WithdrawBody = Static<typeof S.WithdrawBody>;
export type RevokeTokenBody = Static<typeof S.RevokeTokenBody>;

/** The API answered with an error (4xx/5xx): its code, message and request id. */
export class ApiClientError extends Error {
  override readonly name = "ApiClientError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId: string | undefined,
  ) {
    super(message);
  }
}

/** The API could not be reached (refused, DNS, TLS, timeout) or did not answer with JSON. */
export class ConnectionError extends Error {
  override readonly name = "ConnectionError";
  constructor(
    readonly url: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface PayRequest {
  /** Required without a route. */
  channelId?: string | undefined;
  /** SHA-256 payment hash, 64 lowercase hex characters. */
  rHash: string;
  /** What the payee gets. */
  amountMsat: bigint;
  expiry: Locktime;
  /** hops[i]: the node reached, the channel reaching it, and what the node before it charges. */
  route?: readonly {
    nodeId: string;
    shortChannelId: string;
    feeBaseMsat: bigint;
    feeProportionalMillionths: number;
    cltvExpiryDelta: number;
  }[];
  /** An onion built elsewhere (hex), sent unchanged in place of the route's (tests). */
  onion?: string | undefined;
  /** With a route: the invoice's payment secret (hex, BOLT #11 `s`). */
  paymentSecret?: string | undefined;
}

export type FetchLike = (input: string, init: RequestInit) => Promise<Response>;

export interface ClientOptions {
  /** Base URL of the control API, e.g. http://127.0.0.1:8080 */
  url: string;
  /** Bearer token; sent in the Authorization header only, never in messages. */
  token: string;
  /** Per-request timeout. Default 30 s. */
  timeoutMs?: number;
  fetch?: FetchLike;
}

/** The URL without credentials, query or fragment: safe to show in messages. */
export function displayUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    u.search = "";
    u.hash = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(invalid URL)";
  }
}

const seg = (s: string): string => encodeURIComponent(s);

export class LnClient {
  private readonly base: string;
  private readonly token: string;
  private readonly timeoutMs: number;
  private readonly fetchFn: FetchLike;

  constructor(opts: ClientOptions) {
    const u = new URL(opts.url); // throws TypeError on a malformed URL
    if (u.protocol !== "http:" && u.protocol !== "https:")
      throw new TypeError(`the API URL must be http:// or https://, got ${u.protocol}`);
    this.base = opts.url.replace(/\/+$/, "");
    this.token = opts.token;
    this.timeoutMs = opts.timeoutMs ?? 30_000;
    this.fetchFn = opts.fetch ?? ((input, init) => fetch(input, init));
  }

  /** The base URL, without credentials. */
  get url(): string {
    return displayUrl(this.base);
  }

  private async request<T>(
    method: "GET" | "POST" | "PUT",
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ): Promise<T> {
    return (await this.send<T>(method, path, body, headers)).body;
  }

  private async send<T>(
    method: "GET" | "POST" | "PUT",
    path: string,
    body: unknown,
    headers: Record<string, string>,
  ): Promise<{ body: T; headers: Headers }> {
    const target = `${this.base}${path}`;
    const h: Record<string, string> = {
      accept: "application/json",
      authorization: `Bearer ${this.token}`,
      ...headers,
    };
    if (body !== undefined) h["content-type"] = "application/json";
    let res: Response;
    try {
      res = await this.fetchFn(target, {
        method,
        headers: h,
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      throw new ConnectionError(this.url, connectionMessage(this.url, e, this.timeoutMs), { cause: e });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      throw new ConnectionError(this.url, connectionMessage(this.url, e, this.timeoutMs), { cause: e });
    }
    const headerId = res.headers.get("x-request-id") ?? undefined;
    let parsed: unknown;
    try {
      parsed = text === "" ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!res.ok) {
      if (isErrorBody(parsed)) {
        const e = parsed.error;
        throw new ApiClientError(res.status, e.code, e.message, e.requestId ?? headerId);
      }
      throw new ApiClientError(
        res.status,
        `HTTP_${res.status}`,
        `${res.status} ${res.statusText || "error"} without an error body; is ${this.url} the channel service's control API?`,
        headerId,
      );
    }
    if (parsed === undefined)
      throw new ConnectionError(
        this.url,
        `${this.url} answered ${method} ${path} with something other than JSON; check --url/LNCTL_URL points at the channel service's control API`,
      );
    return { body: parsed as T, headers: res.headers };
  }

  healthz(): Promise<Status> {
    return this.request("GET", "/healthz");
  }
  readyz(): Promise<Status> {
    return this.request("GET", "/readyz");
  }
  info(): Promise<NodeInfo> {
    return this.request("GET", "/v1/info");
  }
  connectPeer(peer: { nodeId: string; host: string; port: number }): Promise<PeerInfo> {
    return this.request("POST", "/v1/peers", {
      host: peer.host,
      port: peer.port,
      nodeId: peer.nodeId,
    } satisfies ConnectPeerBody);
  }
  openChannel(req: { nodeId: string; fundingSat: bigint }): Promise<ChannelSummary> {
    return this.request("POST", "/v1/channels", {
      nodeId: req.nodeId,
      fundingSat: req.fundingSat.toString(),
    } satisfies OpenChannelBody);
  }
  listChannels(): Promise<ChannelList> {
    return this.request("GET", "/v1/channels");
  }
  getChannel(id: string): Promise<ChannelDetail> {
    return this.request("GET", `/v1/channels/${seg(id)}`);
  }
  closeChannel(id: string): Promise<ChannelSummary> {
    return this.request("POST", `/v1/channels/${seg(id)}/close`);
  }
  forceClose(id: string): Promise<ChannelSummary> {
    return this.request("POST", `/v1/channels/${seg(id)}/force-close`);
  }
  /** feeRate: satoshi per 1000 bytes. */
  updateFee(id: string, feeRate: number): Promise<ChannelSummary> {
    return this.request("POST", `/v1/channels/${seg(id)}/fee`, { feeRate } satisfies UpdateFeeBody);
  }
  /** Without amountMsat: an invoice for any amount. */
  createInvoice(req: {
    amountMsat?: bigint;
    description?: string;
    expirySeconds?: number;
  }): Promise<Invoice> {
    return this.request("POST", "/v1/invoices", {
      ...(req.amountMsat === undefined ? {} : { amountMsat: req.amountMsat.toString() }),
      ...(req.description === undefined ? {} : { description: req.description }),
      ...(req.expirySeconds === undefined ? {} : { expirySeconds: req.expirySeconds }),
    } satisfies CreateInvoiceBody);
  }
  /** One invoice by its payment hash (hex). */
  invoice(rHash: string): Promise<Invoice> {
    return this.request("GET", `/v1/invoices/${seg(rHash)}`);
  }
  /** A retry with the same idempotency key and body returns the first result and pays once. */
  async pay(req: PayRequest, idempotencyKey: string): Promise<Payment> {
    return (await this.payWithReplay(req, idempotencyKey)).payment;
  }
  /** As `pay`, also telling whether the reply is a replay of an earlier request with this key. */
  async payWithReplay(
    req: PayRequest,
    idempotencyKey: string,
  ): Promise<{ payment: Payment; replayed: boolean }> {
    const r = await this.send<Payment>(
      "POST",
      "/v1/payments",
      {
        ...(req.channelId === undefined ? {} : { channelId: req.channelId }),
        rHash: req.rHash,
        amountMsat: req.amountMsat.toString(),
        expiry: req.expiry,
        ...(req.route === undefined
          ? {}
          : {
              route: {
                hops: req.route.map((h) => ({
                  nodeId: h.nodeId,
                  shortChannelId: h.shortChannelId,
                  feeBaseMsat: h.feeBaseMsat.toString(),
                  feeProportionalMillionths: h.feeProportionalMillionths,
                  cltvExpiryDelta: h.cltvExpiryDelta,
                })),
              },
            }),
        ...(req.onion === undefined ? {} : { onion: req.onion }),
        ...(req.paymentSecret === undefined ? {} : { paymentSecret: req.paymentSecret }),
      } satisfies PayBody,
      { "idempotency-key": idempotencyKey },
    );
    return { payment: r.body, replayed: r.headers.get("idempotent-replayed") === "true" };
  }
  listPayments(limit?: number): Promise<PaymentList> {
    return this.request("GET", limit === undefined ? "/v1/payments" : `/v1/payments?limit=${limit}`);
  }
  /** Pays a BOLT #11 invoice (admin): the node routes and retries; the reply is the payment, pending. */
  async payInvoice(
    body: InvoicePayBody,
    idempotencyKey: string,
  ): Promise<{ payment: InvoicePayment; replayed: boolean }> {
    const r = await this.send<InvoicePayment>("POST", "/v1/payments", body, {
      "idempotency-key": idempotencyKey,
    });
    return { payment: r.body, replayed: r.headers.get("idempotent-replayed") === "true" };
  }
  getPayment(id: string): Promise<AnyPayment> {
    return this.request("GET", `/v1/payments/${seg(id)}`);
  }
  /** A channel's forwarding policy. */
  getPolicy(channelId: string): Promise<ForwardingPolicy> {
    return this.request("GET", `/v1/channels/${seg(channelId)}/policy`);
  }
  /** Changes the fields given (admin). */
  setPolicy(
    channelId: string,
    p: {
      feeBaseMsat?: bigint;
      feeProportionalMillionths?: number;
      cltvExpiryDelta?: number;
      htlcMinimumMsat?: bigint;
    },
  ): Promise<ForwardingPolicy> {
    return this.request("PUT", `/v1/channels/${seg(channelId)}/policy`, {
      ...(p.feeBaseMsat === undefined ? {} : { feeBaseMsat: p.feeBaseMsat.toString() }),
      ...(p.feeProportionalMillionths === undefined
        ? {}
        : { feeProportionalMillionths: p.feeProportionalMillionths }),
      ...(p.cltvExpiryDelta === undefined ? {} : { cltvExpiryDelta: p.cltvExpiryDelta }),
      ...(p.htlcMinimumMsat === undefined ? {} : { htlcMinimumMsat: p.htlcMinimumMsat.toString() }),
    } satisfies ForwardingPolicyBody);
  }
  /** Forwards, newest first, and the totals. */
  listForwards(q: { status?: string | undefined; limit?: number | undefined } = {}): Promise<ForwardList> {
    const query = new URLSearchParams();
    if (q.status !== undefined) query.set("status", q.status);
    if (q.limit !== undefined) query.set("limit", String(q.limit));
    const qs = query.toString();
    return this.request("GET", qs === "" ? "/v1/forwards" : `/v1/forwards?${qs}`);
  }
  /** Allocates a new deposit address (a wallet key, watched for good): address or admin scope. */
  walletAddress(): Promise<WalletAddress> {
    return this.request("POST", "/v1/wallet/address");
  }
  walletBalance(): Promise<WalletBalance> {
    return this.request("GET", "/v1/wallet/balance");
  }
  /** A retry with the same idempotency key and body returns the first result and withdraws once. */
  async withdraw(req: { address: string; amountSat: bigint }, idempotencyKey: string): Promise<Withdrawal> {
    return (await this.withdrawWithReplay(req, idempotencyKey)).withdrawal;
  }
  /** As `withdraw`, also telling whether the reply is a replay of an earlier request with this key. */
  async withdrawWithReplay(
    req: { address: string; amountSat: bigint },
    idempotencyKey: string,
  ): Promise<{ withdrawal: Withdrawal; replayed: boolean }> {
    const r = await this.send<Withdrawal>(
      "POST",
      "/v1/wallet/withdraw",
      { address: req.address, amountSat: req.amountSat.toString() } satisfies WithdrawBody,
      { "idempotency-key": idempotencyKey },
    );
    return { withdrawal: r.body, replayed: r.headers.get("idempotent-replayed") === "true" };
  }
  /**
   * Opens GET /v1/events after `after` (Last-Event-ID; undefined: from the head). The timeout
   * covers the answer's headers only; the body streams until `signal` aborts or the server ends.
   */
  async openEvents(after: string | undefined, signal: AbortSignal): Promise<Response> {
    const target = `${this.base}/v1/events`;
    const ac = new AbortController();
    const onAbort = (): void => ac.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    const timer = setTimeout(() => ac.abort(new DOMException("timeout", "TimeoutError")), this.timeoutMs);
    let res: Response;
    try {
      res = await this.fetchFn(target, {
        method: "GET",
        headers: {
          accept: "text/event-stream",
          authorization: `Bearer ${this.token}`,
          ...(after === undefined ? {} : { "last-event-id": after }),
        },
        signal: ac.signal,
      });
    } catch (e) {
      signal.removeEventListener("abort", onAbort);
      const cause = ac.signal.reason instanceof Error ? ac.signal.reason : e;
      throw new ConnectionError(this.url, connectionMessage(this.url, cause, this.timeoutMs), { cause: e });
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      signal.removeEventListener("abort", onAbort);
      const text = await res.text().catch(() => "");
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch {
        parsed = undefined;
      }
      const headerId = res.headers.get("x-request-id") ?? undefined;
      if (isErrorBody(parsed))
        throw new ApiClientError(
          res.status,
          parsed.error.code,
          parsed.error.message,
          parsed.error.requestId ?? headerId,
        );
      throw new ApiClientError(
        res.status,
        `HTTP_${res.status}`,
        `${res.status} ${res.statusText || "error"}`,
        headerId,
      );
    }
    return res;
  }
  /** Every API token: ids, labels, scopes, dates (admin). */
  listTokens(): Promise<TokenList> {
    return this.request("GET", "/v1/tokens");
  }
  /** Revokes the token with this id, or every live token with this label (admin). */
  revokeTokens(which: RevokeTokenBody): Promise<RevokedTokens> {
    return this.request("POST", "/v1/tokens/revoke", which);
  }
}

function isErrorBody(v: unknown): v is ErrorBody {
  if (typeof v !== "object" || v === null || !("error" in v)) return false;
  const e = (v as { error: unknown }).error;
  return (
    typeof e === "object" &&
    e !== null &&
    typeof (e as { code?: unknown }).code === "string" &&
    typeof (e as { message?: unknown }).message === "string"
  );
}

function connectionMessage(url: string, e: unknown, timeoutMs: number): string {
  const hint = "check --url or LNCTL_URL (and that the channel service is running)";
  if (e instanceof Error && (e.name === "TimeoutError" || e.name === "AbortError"))
    return `no answer from ${url} within ${timeoutMs} ms; ${hint}`;
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause : e;
  let detail = String(cause);
  if (cause instanceof Error) {
    const code: unknown = (cause as Error & { code?: unknown }).code;
    detail =
      typeof code === "string" && !cause.message.includes(code) ? `${code}: ${cause.message}` : cause.message;
  }
  return `cannot reach ${url} (${detail}); ${hint}`;
}
