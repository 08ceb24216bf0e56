import { createHash, randomUUID } from "node:crypto";
import {
  formatShortChannelId,
  msat,
  parseShortChannelId,
  sat,
  shortChannelIdFromBigint,
  shortChannelIdToBigint,
  type Locktime,
} from "@ln/bitcoin";
import swagger from "@fastify/swagger";
import swaggerUi from "@fastify/swagger-ui";
import {
  TypeBoxValidatorCompiler,
  type FastifyPluginAsyncTypebox,
  type Static,
} from "@fastify/type-provider-typebox";
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyRequest,
  type FastifyServerOptions,
} from "fastify";
import type { Registry } from "@ln/metrics";
import type pg from "pg";
import { ApiStore, type AuditStart, type Scope, type TokenInfo, type TokenRecord } from "./api-store.js";
import * as B from "./backend.js";
import { consolePage } from "./console/index.js";
import { EventFeed } from "../events/feed.js";
import { DEFAULT_EVENT_STREAM_LIMITS, eventRoutes, type EventStreamLimits } from "./events.js";
import { ApiError, mapError } from "./errors.js";
import { RequestMetrics } from "./metrics.js";
import * as S from "@ln/control-api";
import { isRejectionCode } from "@ln/control-api";

/**
 * Who may call a route: `public` needs no token; `read` any token; `invoice` an invoice or admin
 * token; `address` an address or admin token; `admin` an admin token.
 */
export type Access = "public" | "read" | "invoice" | "address" | "admin";

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
  }
}

const ALLOWED: Record<Exclude<Access, "public">, readonly Scope[]> = {
  read: ["readonly", "invoice", "address", "admin"],
  invoice: ["invoice", "admin"],
  address: ["address", "admin"],
  admin: ["admin"],
};

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const DOCS_PREFIX = "/docs";
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
/** Body fields never written to the audit log, at any depth. */
const SECRET_FIELD = /token|secret|password|preimage|seed|authorization|private/i;
const BEARER = /^Bearer ([\x21-\x7e]{1,512})$/;

export interface ApiOptions {
  pool: pg.Pool;
  backend: B.NodeBackend;
  /** Postgres schema shared with the ChannelStore; the API's tables are prefixed `api_`. */
  schema?: string;
  logger?: FastifyServerOptions["logger"];
  /** A pino logger to log through (the process's): each request's lines carry its reqId. */
  loggerInstance?: FastifyBaseLogger;
  version?: string;
  /**
   * The Prometheus registry the API adds its request counter to (main.ts serves it on the ops
   * port; the API port has no /metrics). Default: a new one with the process metrics.
   */
  registry?: Registry;
  /**
   * GET /v1/events: the process's one EventFeed (shared with the NATS relay; default: one made
   * here, closed with the app) and the streams' bounds.
   */
  events?: { feed?: EventFeed; limits?: Partial<EventStreamLimits> };
}

/** Builds the control API (migrating its tables first). Call `listen` or `inject` on the result. */
export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const store = new ApiStore(opts.pool, opts.schema);
  await store.migrate();
  const metrics = new RequestMetrics(opts.registry);
  const tokens = new WeakMap<FastifyRequest, TokenInfo>();
  /** The audit row of each mutating call that got as far as acting; false if it could not be written. */
  const audited = new WeakMap<FastifyRequest, string | false>();
  /** The error code each failed call answered with. */
  const errorCodes = new WeakMap<FastifyRequest, string>();

  const app = Fastify({
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    // The server's own id: a caller's X-Request-Id is kept apart (clientRequestId), never trusted
    // to name a row of the audit log.
    genReqId: () => randomUUID(),
    bodyLimit: 64 * 1024,
  });
  app.setValidatorCompiler(TypeBoxValidatorCompiler);

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Channel service control API",
        version: opts.version ?? "0.0.0",
        description:
          "Amounts are decimal strings; names say sat or msat. Send `Authorization: Bearer <token>`.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });
  await app.register(swaggerUi, { routePrefix: DOCS_PREFIX });

  const accessOf = (req: FastifyRequest): Access => {
    const a = req.routeOptions.config.access;
    if (a) return a;
    const path = req.url.split("?")[0] ?? "";
    return path === DOCS_PREFIX || path.startsWith(`${DOCS_PREFIX}/`) ? "public" : "admin";
  };

  app.addHook("onRequest", async (req) => {
    const access = accessOf(req);
    if (access === "public") return;
    const m = BEARER.exec(req.headers.authorization ?? "");
    const presented = m?.[1];
    if (presented === undefined)
      throw new ApiError(
        401,
        "UNAUTHENTICATED",
        "missing bearer token; send 'Authorization: Bearer <token>'",
      );
    const token = await store.verifyToken(presented);
    if (!token)
      throw new ApiError(
        401,
        "UNAUTHENTICATED",
        "unknown or revoked token; ask an operator for a valid token",
      );
    tokens.set(req, token);
    const needed = ALLOWED[access];
    if (!token.scopes.some((s) => needed.includes(s)))
      throw new ApiError(
        403,
        "FORBIDDEN",
        `this route needs a token with scope ${needed.join(" or ")}; this token has ${token.scopes.join(", ")}`,
      );
  });

  const auditEntry = (req: FastifyRequest): AuditStart => {
    const client = req.headers["x-request-id"];
    return {
      tokenId: tokens.get(req)?.id,
      method: req.method,
      route: req.routeOptions.url ?? "(unmatched)",
      params: { ...(req.params as Record<string, unknown> | undefined) },
      body: req.body === undefined || req.body === null ? undefined : redact(req.body),
      requestId: req.id,
      clientRequestId: typeof client === "string" && REQUEST_ID.test(client) ? client : undefined,
    };
  };

  // Every mutating call is written to the audit log before it acts (after authentication and
  // validation); if the row cannot be written, the call does not happen.
  app.addHook("preHandler", async (req) => {
    if (!MUTATING.has(req.method)) return;
    try {
      audited.set(req, await store.auditStart(auditEntry(req)));
    } catch (e) {
      audited.set(req, false);
      metrics.auditFailed("start");
      req.log.error({ err: e }, "audit log write failed: the call is refused");
      throw new ApiError(
        503,
        "AUDIT_UNAVAILABLE",
        "the audit log cannot be written, so nothing was done; retry later",
      );
    }
  });

  // Its outcome afterwards, on the same row; a call refused before acting (401, 403, 400, 404)
  // gets one row with its status.
  app.addHook("onSend", async (req, reply, payload) => {
    void reply.header("x-request-id", req.id);
    if (!MUTATING.has(req.method)) return payload;
    const row = audited.get(req);
    const outcome = reply.statusCode >= 400 ? (errorCodes.get(req) ?? `HTTP_${reply.statusCode}`) : undefined;
    try {
      if (typeof row === "string") await store.auditFinish(row, reply.statusCode, outcome);
      else if (row === undefined)
        await store.auditStart({ ...auditEntry(req), status: reply.statusCode, outcome });
    } catch (e) {
      metrics.auditFailed("finish");
      req.log.error(
        { err: e, auditId: row, status: reply.statusCode },
        "audit log: the outcome of this call could not be recorded",
      );
    }
    return payload;
  });

  app.addHook("onResponse", async (req, reply) => {
    metrics.count(req.method, req.routeOptions.url ?? "(unmatched)", reply.statusCode);
  });

  app.setErrorHandler(async (err, req, reply) => {
    const mapped = mapError(err, req.id);
    if (mapped.internal) req.log.error({ err }, "request failed");
    errorCodes.set(req, mapped.body.error.code);
    if (err instanceof ApiError && err.allow) void reply.header("allow", err.allow);
    return reply.code(mapped.status).send(mapped.body);
  });

  app.setNotFoundHandler(async (req, reply) => {
    errorCodes.set(req, "NOT_FOUND");
    return reply.code(404).send({
      error: {
        code: "NOT_FOUND",
        message: `no route ${req.method} ${req.url.split("?")[0] ?? ""}; see ${DOCS_PREFIX}`,
        requestId: req.id,
      },
    });
  });

  await app.register(routes, { store, backend: opts.backend, tokens });
  let feed = opts.events?.feed;
  if (!feed) {
    const own = new EventFeed({ pool: opts.pool, schema: store.schema });
    app.addHook("onClose", () => own.close());
    feed = own;
  }
  await app.register(eventRoutes, {
    store,
    feed,
    tokens,
    limits: { ...DEFAULT_EVENT_STREAM_LIMITS, ...opts.events?.limits },
  });
  await app.register(consolePage);
  return app;
}

interface RouteDeps {
  store: ApiStore;
  backend: B.NodeBackend;
  tokens: WeakMap<FastifyRequest, TokenInfo>;
}

const PAY_ROUTE = "POST /v1/payments";
const WITHDRAW_ROUTE = "POST /v1/wallet/withdraw";
/**
 * Backend refusals that certainly moved no money: the key is freed so it can be retried. A
 * RejectionCode is the channel core refusing the command: its state and the peer are untouched.
 */
const NOTHING_PAID = (code: B.BackendErrorCode): boolean =>
  code === "NOT_FOUND" || code === "INVALID" || code === "CONFLICT" || isRejectionCode(code);

const routes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { store, backend, tokens }) => {
  const publicRoute = { access: "public" as const };
  const noAuth = { security: [] as Array<Record<string, string[]>> };

  app.get(
    "/healthz",
    {
      config: publicRoute,
      schema: { ...noAuth, tags: ["ops"], summary: "Liveness", response: S.withErrors({ 200: S.Status }) },
    },
    async () => ({ status: "ok" }),
  );

  app.get(
    "/readyz",
    {
      config: publicRoute,
      schema: {
        ...noAuth,
        tags: ["ops"],
        summary: "Readiness: Postgres reachable",
        response: S.withErrors({ 200: S.Status }),
      },
    },
    async () => {
      try {
        await store.ping();
      } catch {
        throw new ApiError(503, "NOT_READY", "Postgres is unreachable; check the database and retry");
      }
      return { status: "ok" };
    },
  );

  app.get(
    "/v1/info",
    {
      config: { access: "read" },
      schema: {
        tags: ["node"],
        summary: "Node info (any scope)",
        response: S.withErrors({ 200: S.NodeInfo }),
      },
    },
    async () => backend.nodeInfo(),
  );

  app.post(
    "/v1/peers",
    {
      config: { access: "admin" },
      schema: {
        tags: ["node"],
        summary: "Connect a peer (admin)",
        body: S.ConnectPeerBody,
        response: S.withErrors({ 200: S.PeerInfo }),
      },
    },
    async (req) => backend.connectPeer(req.body),
  );

  app.post(
    "/v1/channels",
    {
      config: { access: "admin" },
      schema: {
        tags: ["channels"],
        summary: "Open a channel (admin)",
        body: S.OpenChannelBody,
        response: S.withErrors({ 201: S.ChannelSummary }),
      },
    },
    async (req, reply) => {
      const c = await backend.openChannel({
        nodeId: req.body.nodeId,
        fundingSat: sat(BigInt(req.body.fundingSat)),
        ...(req.body.private === true ? { private: true } : {}),
      });
      void reply.code(201);
      return channelJson(c);
    },
  );

  app.get(
    "/v1/channels",
    {
      config: { access: "read" },
      schema: {
        tags: ["channels"],
        summary: "List channels (any scope)",
        response: S.withErrors({ 200: S.ChannelList }),
      },
    },
    async () => ({ channels: (await backend.listChannels()).map(channelJson) }),
  );

  app.get(
    "/v1/channels/:id",
    {
      config: { access: "read" },
      schema: {
        tags: ["channels"],
        summary: "One channel: state, balances, HTLCs (any scope)",
        params: S.ChannelParams,
        response: S.withErrors({ 200: S.ChannelDetail }),
      },
    },
    async (req) => {
      const c = await backend.getChannel(req.params.id);
      if (!c)
        throw new ApiError(404, "NOT_FOUND", `no channel ${req.params.id}; GET /v1/channels lists channels`);
      return {
        ...channelJson(c),
        htlcs: c.htlcs.map((h) => ({
          id: h.id.toString(),
          direction: h.direction,
          amountMsat: h.amountMsat.toString(),
          rHash: h.rHash,
          expiry: locktimeJson(h.expiry),
        })),
        failure: c.failure ?? null,
        anchorTxid: c.anchorTxid ?? null,
        transactions: c.transactions,
        onchain: c.onchain
          ? {
              kind: c.onchain.kind,
              spendTxid: c.onchain.spendTxid,
              commitmentNumber: c.onchain.commitmentNumber?.toString() ?? null,
              height: c.onchain.height,
              claims: c.onchain.claims.map((x) => ({
                outpoint: `${c.onchain?.spendTxid}:${x.vout}`,
                what: x.what,
                amountSat: x.amountSat.toString(),
                htlcId: x.htlcId?.toString() ?? null,
                readyHeight: x.readyHeight ?? null,
                status: x.status,
                sweepTxid: x.sweepTxid ?? null,
                spentBy: x.spentBy ?? null,
              })),
            }
          : null,
      };
    },
  );

  for (const [suffix, what, call] of [
    ["close", "Cooperative close (admin)", (id: string) => backend.closeChannel(id)],
    [
      "force-close",
      "Unilateral close: broadcast our commitment (admin)",
      (id: string) => backend.forceClose(id),
    ],
  ] as const)
    app.post(
      `/v1/channels/:id/${suffix}`,
      {
        config: { access: "admin" },
        schema: {
          tags: ["channels"],
          summary: what,
          params: S.ChannelParams,
          response: S.withErrors({ 200: S.ChannelSummary }),
        },
      },
      async (req) => channelJson(await call(req.params.id)),
    );

  app.post(
    "/v1/channels/:id/fee",
    {
      config: { access: "admin" },
      schema: {
        tags: ["channels"],
        summary: "Propose a new commitment fee rate to the peer (draft 3.5) (admin)",
        params: S.ChannelParams,
        body: S.UpdateFeeBody,
        response: S.withErrors({ 200: S.ChannelSummary }),
      },
    },
    async (req) => channelJson(await backend.updateFee(req.params.id, req.body.feeRate)),
  );

  app.post(
    "/v1/invoices",
    {
      config: { access: "invoice" },
      schema: {
        tags: ["payments"],
        summary:
          "Create a BOLT #11 invoice (field bolt11), signed by the node key; the preimage stays on the node (invoice or admin)",
        body: S.CreateInvoiceBody,
        response: S.withErrors({ 201: S.Invoice }),
      },
    },
    async (req, reply) => {
      const inv = await backend.createInvoice({
        amountMsat: req.body.amountMsat === undefined ? undefined : msat(BigInt(req.body.amountMsat)),
        description: req.body.description,
        expirySeconds: req.body.expirySeconds,
      });
      void reply.code(201);
      return invoiceJson(inv);
    },
  );

  app.get(
    "/v1/invoices/:rHash",
    {
      config: { access: "read" },
      schema: {
        tags: ["payments"],
        summary: "One invoice by its payment hash: its BOLT #11 string and status (any scope)",
        params: S.InvoiceParams,
        response: S.withErrors({ 200: S.Invoice }),
      },
    },
    async (req) => {
      const inv = await backend.getInvoice(req.params.rHash);
      if (!inv) throw new ApiError(404, "NOT_FOUND", `no invoice with payment hash ${req.params.rHash}`);
      return invoiceJson(inv);
    },
  );

  app.post(
    "/v1/payments",
    {
      config: { access: "admin" },
      schema: {
        tags: ["payments"],
        summary:
          "Pay a BOLT #11 invoice (the node finds routes and retries; follow GET /v1/events), or pay a hash over a channel or an explicit route (admin). Needs an Idempotency-Key header; a retry with it pays once.",
        headers: S.IdempotencyHeaders,
        body: S.AnyPayBody,
        response: S.withErrors({ 201: S.AnyPayment }),
      },
    },
    async (req, reply) => {
      const token = tokens.get(req);
      if (!token) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
      if ("invoice" in req.body) {
        const body = req.body;
        return payInvoice(
          { store, backend },
          token.id,
          req.headers["idempotency-key"],
          body,
          (status) => void reply.code(status),
          () => void reply.header("idempotent-replayed", "true"),
        );
      }
      if (req.body.channelId === undefined && req.body.route === undefined)
        throw new ApiError(400, "INVALID", "give a channelId, a route, or both");
      if (req.body.onion !== undefined && req.body.route === undefined)
        throw new ApiError(400, "INVALID", "an onion built elsewhere needs the route that sets its HTLC");
      const route = req.body.route && routeHops(req.body.route.hops);
      const key = req.headers["idempotency-key"];
      const claim = await store.claimIdempotency(token.id, key, PAY_ROUTE, requestHash(req.body));
      if (claim.kind === "mismatch" || claim.kind === "in_progress") throw keyRefused(claim.kind, "payment");
      if (claim.kind === "done") {
        void reply.header("idempotent-replayed", "true");
        const stored = claim.response as StoredResult;
        if ("error" in stored) throw new ApiError(claim.status, stored.error.code, stored.error.message);
        void reply.code(201);
        return stored;
      }
      let payment: B.Payment;
      try {
        payment = await backend.pay(
          {
            channelId: req.body.channelId,
            rHash: req.body.rHash,
            amountMsat: msat(BigInt(req.body.amountMsat)),
            expiry: req.body.expiry,
            route,
            onion: req.body.onion,
            paymentSecret: req.body.paymentSecret,
          },
          // With the payment's own record: a crash after that commit still answers a retry.
          { complete: (tx, p) => store.completeIdempotency(token.id, key, 201, paymentJson(p), tx) },
        );
      } catch (e) {
        if (e instanceof B.BackendError && NOTHING_PAID(e.code)) {
          await store.releaseIdempotency(token.id, key);
          throw e;
        }
        // The outcome is unknown: the key stays bound to this failure, so a retry cannot pay twice.
        const mapped = mapError(e, req.id);
        await store.completeIdempotency(token.id, key, mapped.status, {
          error: {
            code: "PAYMENT_OUTCOME_UNKNOWN",
            message: `the payment may or may not have been sent; check GET /v1/payments before paying again with a new Idempotency-Key (request ${req.id})`,
          },
        });
        throw new ApiError(
          mapped.status,
          "PAYMENT_OUTCOME_UNKNOWN",
          "the payment may or may not have been sent; check GET /v1/payments before paying again with a new Idempotency-Key",
        );
      }
      const body = paymentJson(payment);
      // Stored by the step that offered the HTLC, unless the command waited behind the signer.
      await store.completeIdempotencyOnce(token.id, key, 201, body);
      void reply.code(201);
      return body;
    },
  );

  app.get(
    "/v1/payments",
    {
      config: { access: "read" },
      schema: {
        tags: ["payments"],
        summary: "List payments, newest first (any scope)",
        querystring: S.ListQuery,
        response: S.withErrors({ 200: S.PaymentList }),
      },
    },
    async (req) => {
      const limit = req.query.limit ?? 100;
      const all = [
        ...(await backend.listPayments()).map((p) => ({
          at: p.createdAt,
          json: paymentJson(p) as AnyPaymentJson,
        })),
        ...((await backend.listInvoicePayments?.(limit)) ?? []).map((p) => ({
          at: p.createdAt,
          json: invoicePaymentJson(p),
        })),
      ];
      const newest = all.sort((a, b) => b.at.getTime() - a.at.getTime());
      return { payments: newest.slice(0, limit).map((x) => x.json) };
    },
  );

  app.get(
    "/v1/payments/:id",
    {
      config: { access: "read" },
      schema: {
        tags: ["payments"],
        summary: "One payment and its outcome; an invoice payment with its attempts (any scope)",
        params: S.PaymentParams,
        response: S.withErrors({ 200: S.AnyPayment }),
      },
    },
    async (req) => {
      const ip = await backend.getInvoicePayment?.(req.params.id);
      if (ip) return invoicePaymentJson(ip);
      const p = await backend.getPayment(req.params.id);
      if (!p)
        throw new ApiError(404, "NOT_FOUND", `no payment ${req.params.id}; GET /v1/payments lists payments`);
      return paymentJson(p);
    },
  );

  app.get(
    "/v1/channels/:id/policy",
    {
      config: { access: "read" },
      schema: {
        tags: ["forwarding"],
        summary: "A channel's forwarding policy: fee, cltv delta, HTLC minimum (any scope)",
        params: S.ChannelParams,
        response: S.withErrors({ 200: S.ForwardingPolicy }),
      },
    },
    async (req) => policyJson(req.params.id, await backend.getPolicy(req.params.id)),
  );

  app.put(
    "/v1/channels/:id/policy",
    {
      config: { access: "admin" },
      schema: {
        tags: ["forwarding"],
        summary: "Change a channel's forwarding policy; fields not given stay (admin; audited)",
        params: S.ChannelParams,
        body: S.ForwardingPolicyBody,
        response: S.withErrors({ 200: S.ForwardingPolicy }),
      },
    },
    async (req) => {
      const b = req.body;
      const p = await backend.setPolicy(req.params.id, {
        ...(b.feeBaseMsat === undefined ? {} : { feeBaseMsat: msat(BigInt(b.feeBaseMsat)) }),
        ...(b.feeProportionalMillionths === undefined
          ? {}
          : { feeProportionalMillionths: BigInt(b.feeProportionalMillionths) }),
        ...(b.cltvExpiryDelta === undefined ? {} : { cltvExpiryDelta: b.cltvExpiryDelta }),
        ...(b.htlcMinimumMsat === undefined ? {} : { htlcMinimumMsat: msat(BigInt(b.htlcMinimumMsat)) }),
      });
      return policyJson(req.params.id, p);
    },
  );

  app.get(
    "/v1/forwards",
    {
      config: { access: "read" },
      schema: {
        tags: ["forwarding"],
        summary: "Forwarded HTLCs, newest first, and the fees earned (any scope)",
        querystring: S.ForwardsQuery,
        response: S.withErrors({ 200: S.ForwardList }),
      },
    },
    async (req) => {
      const r = await backend.listForwards({ status: req.query.status, limit: req.query.limit ?? 100 });
      return {
        forwards: r.forwards.map(forwardJson),
        totals: { settled: r.totals.settled, feesEarnedMsat: r.totals.feesEarnedMsat.toString() },
      };
    },
  );

  app.get(
    "/v1/graph",
    {
      config: { access: "read" },
      schema: {
        tags: ["graph"],
        summary: "The network's graph from gossip, plus our own channels, public or not (any scope)",
        response: S.withErrors({ 200: S.Graph }),
      },
    },
    async () => graphJson(await backend.graph()),
  );

  app.post(
    "/v1/wallet/address",
    {
      config: { access: "address" },
      schema: {
        tags: ["wallet"],
        summary:
          "A fresh deposit address: a new wallet key, watched on chain for good (address or admin; audited)",
        response: S.withErrors({ 201: S.WalletAddress }),
      },
    },
    async (_req, reply) => {
      const a = await backend.walletAddress();
      void reply.code(201);
      return a;
    },
  );

  // It allocates a key and a permanent watch: never on a GET (a read-only token, a prefetch).
  app.get("/v1/wallet/address", { config: publicRoute, schema: { hide: true } }, async () => {
    throw new ApiError(
      405,
      "METHOD_NOT_ALLOWED",
      "a deposit address is allocated with POST /v1/wallet/address (address or admin scope)",
      "POST",
    );
  });

  app.get(
    "/v1/wallet/balance",
    {
      config: { access: "read" },
      schema: {
        tags: ["wallet"],
        summary: "On-chain balance (any scope)",
        response: S.withErrors({ 200: S.WalletBalance }),
      },
    },
    async () => {
      const b = await backend.walletBalance();
      return {
        confirmedSat: b.confirmedSat.toString(),
        unconfirmedSat: b.unconfirmedSat.toString(),
        closeOutputs: b.closeOutputs.map((o) => ({
          ...o,
          amountSat: o.amountSat.toString(),
          maturesAtHeight: o.maturesAtHeight ?? null,
          sweepTxid: o.sweepTxid ?? null,
        })),
      };
    },
  );

  app.post(
    "/v1/wallet/withdraw",
    {
      config: { access: "admin" },
      schema: {
        tags: ["wallet"],
        summary:
          "Send on-chain funds out (admin). Needs an Idempotency-Key header; a retry with it withdraws once.",
        headers: S.IdempotencyHeaders,
        body: S.WithdrawBody,
        response: S.withErrors({ 200: S.Withdrawal }),
      },
    },
    async (req, reply) => {
      const token = tokens.get(req);
      if (!token) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
      const key = req.headers["idempotency-key"];
      const hash = requestHash(req.body);
      const replay = (found: Awaited<ReturnType<ApiStore["idempotentResult"]>>): WithdrawalJson => {
        if (found?.kind !== "done") throw keyRefused(found?.kind ?? "in_progress", "withdrawal");
        void reply.header("idempotent-replayed", "true");
        return found.response as WithdrawalJson;
      };
      const earlier = await store.idempotentResult(token.id, key, WITHDRAW_ROUTE, hash);
      if (earlier?.kind === "done" || earlier?.kind === "mismatch") return replay(earlier);
      const result = (txid: string): WithdrawalJson => ({
        txid,
        address: req.body.address,
        amountSat: req.body.amountSat,
      });
      let taken = false;
      try {
        const w = await backend.withdraw(
          { address: req.body.address, amountSat: sat(BigInt(req.body.amountSat)) },
          {
            claim: async (tx) => {
              taken = !(await store.claimIdempotencyIn(tx, token.id, key, WITHDRAW_ROUTE, hash));
              if (taken) throw new ApiError(409, "IDEMPOTENCY_IN_PROGRESS", "the key is bound already");
            },
            complete: (tx, txid) => store.completeIdempotency(token.id, key, 200, result(txid), tx),
          },
        );
        return result(w.txid);
      } catch (e) {
        // Another request with this key committed first (it was waited for): answer as it did.
        if (taken) return replay(await store.idempotentResult(token.id, key, WITHDRAW_ROUTE, hash));
        throw e;
      }
    },
  );

  app.get(
    "/v1/tokens",
    {
      config: { access: "admin" },
      schema: {
        tags: ["tokens"],
        summary: "List API tokens: ids, labels, scopes, dates; never a token (admin)",
        response: S.withErrors({ 200: S.TokenList }),
      },
    },
    async () => ({ tokens: (await store.listTokens()).map(tokenJson) }),
  );

  app.post(
    "/v1/tokens/revoke",
    {
      config: { access: "admin" },
      schema: {
        tags: ["tokens"],
        summary:
          "Revoke the token with this id, or every live token with this label; refused at once from then on (admin; audited)",
        body: S.RevokeTokenBody,
        response: S.withErrors({ 200: S.RevokedTokens }),
      },
    },
    async (req) => {
      const revoked = await store.revokeTokens(
        "id" in req.body ? { id: req.body.id } : { label: req.body.label },
      );
      if (revoked.length === 0)
        throw new ApiError(
          404,
          "NOT_FOUND",
          "no live token has this id or label; GET /v1/tokens lists the tokens",
        );
      return { revoked };
    },
  );
};

/** An Idempotency-Key bound to another request (422), or to one still running (409). */
function keyRefused(kind: "mismatch" | "in_progress", what: string): ApiError {
  return kind === "mismatch"
    ? new ApiError(
        422,
        "IDEMPOTENCY_KEY_REUSED",
        `this Idempotency-Key was used for a different request; use a fresh key for a new ${what}`,
      )
    : new ApiError(
        409,
        "IDEMPOTENCY_IN_PROGRESS",
        "a request with this Idempotency-Key is still running; retry the same request shortly",
      );
}

/** A copy of a request body for the audit log, every secret-looking field replaced. */
function redact(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(redact);
  if (typeof v === "object" && v !== null)
    return Object.fromEntries(
      Object.entries(v).map(([k, x]) => [k, SECRET_FIELD.test(k) ? "[redacted]" : redact(x)]),
    );
  return v;
}

function tokenJson(t: TokenRecord): Static<typeof S.TokenRecord> {
  return {
    id: t.id,
    label: t.label,
    scopes: t.scopes,
    createdAt: t.createdAt.toISOString(),
    revokedAt: t.revokedAt?.toISOString() ?? null,
  };
}

type PaymentJson = Static<typeof S.Payment>;
type InvoicePaymentJson = Static<typeof S.InvoicePayment>;
type AnyPaymentJson = Static<typeof S.AnyPayment>;

/**
 * POST /v1/payments with an invoice: the Idempotency-Key is claimed, the payment's row and the
 * key's result commit together; an invoice refused (bad, expired, ours, paid) frees the key.
 */
async function payInvoice(
  deps: { store: ApiStore; backend: B.NodeBackend },
  tokenId: string,
  key: string,
  body: Static<typeof S.InvoicePayBody>,
  code: (status: number) => void,
  replayed: () => void,
): Promise<InvoicePaymentJson> {
  const { store, backend } = deps;
  if (!backend.payInvoice) throw new ApiError(501, "NOT_IMPLEMENTED", "this node does not pay invoices");
  const claim = await store.claimIdempotency(tokenId, key, PAY_ROUTE, requestHash(body));
  if (claim.kind === "mismatch" || claim.kind === "in_progress") throw keyRefused(claim.kind, "payment");
  if (claim.kind === "done") {
    replayed();
    const stored = claim.response as InvoicePaymentJson | { error: { code: string; message: string } };
    if ("error" in stored) throw new ApiError(claim.status, stored.error.code, stored.error.message);
    // The payment as it is now (the stored body is as it was when it was asked for).
    const now = await backend.getInvoicePayment?.(stored.id);
    code(201);
    return now ? invoicePaymentJson(now) : stored;
  }
  try {
    const p = await backend.payInvoice(
      {
        invoice: body.invoice,
        amountMsat: body.amountMsat === undefined ? undefined : msat(BigInt(body.amountMsat)),
        maxFeeMsat: body.maxFeeMsat === undefined ? undefined : msat(BigInt(body.maxFeeMsat)),
        timeoutSeconds: body.timeoutSeconds,
        allowRepeat: body.allowRepeat,
      },
      { complete: (tx, made) => store.completeIdempotency(tokenId, key, 201, invoicePaymentJson(made), tx) },
    );
    code(201);
    return invoicePaymentJson(p);
  } catch (e) {
    // Nothing was written or sent: the key is free for a corrected request.
    await store.releaseIdempotency(tokenId, key);
    if (e instanceof B.InvoicePaymentRefused) throw new ApiError(e.status, e.code, e.message);
    throw e;
  }
}

function invoicePaymentJson(p: B.InvoicePayment): InvoicePaymentJson {
  return {
    id: p.id,
    kind: "invoice",
    status: p.status,
    rHash: p.rHash,
    payee: p.payee,
    amountMsat: p.amountMsat.toString(),
    maxFeeMsat: p.maxFeeMsat.toString(),
    feeMsat: p.feeMsat?.toString() ?? null,
    preimage: p.preimage ?? null,
    failure: p.failure ?? null,
    deadline: p.deadline.toISOString(),
    allowRepeat: p.allowRepeat,
    attempts: p.attempts.map((a) => ({
      id: a.id,
      route: a.route,
      amountMsat: a.amountMsat.toString(),
      feeMsat: a.feeMsat.toString(),
      status: a.status,
      failure: a.failure ?? null,
      createdAt: a.createdAt.toISOString(),
    })),
    createdAt: p.createdAt.toISOString(),
    finishedAt: p.finishedAt?.toISOString() ?? null,
  };
}
type WithdrawalJson = Static<typeof S.Withdrawal>;
type StoredResult = PaymentJson | { error: { code: string; message: string } };

function channelJson(c: B.ChannelSummary): Static<typeof S.ChannelSummary> {
  return {
    id: c.id,
    peerNodeId: c.peerNodeId,
    phase: c.phase,
    role: c.role,
    capacitySat: c.capacitySat.toString(),
    localBalanceMsat: c.localBalanceMsat.toString(),
    remoteBalanceMsat: c.remoteBalanceMsat.toString(),
    ...(c.shortChannelId ? { shortChannelId: formatShortChannelId(c.shortChannelId) } : {}),
  };
}

function locktimeJson(l: Locktime): { blocks: number } | { seconds: number } {
  return "blocks" in l ? { blocks: l.blocks } : { seconds: l.seconds };
}

function invoiceJson(inv: B.Invoice): Static<typeof S.Invoice> {
  return {
    rHash: inv.rHash,
    amountMsat: inv.amountMsat.toString(),
    description: inv.description,
    createdAt: inv.createdAt.toISOString(),
    status: inv.status,
    bolt11: inv.bolt11 ?? null,
    expiresAt: inv.expiresAt?.toISOString() ?? null,
    payee: inv.payee,
  };
}

function paymentJson(p: B.Payment): PaymentJson {
  return {
    id: p.id,
    channelId: p.channelId,
    rHash: p.rHash,
    amountMsat: p.amountMsat.toString(),
    expiry: locktimeJson(p.expiry),
    status: p.status,
    failureReason: p.failureReason ?? null,
    route: p.route
      ? {
          hops: p.route.hops.map((h) => ({
            nodeId: h.nodeId,
            shortChannelId: h.shortChannelId,
            feeBaseMsat: h.feeBaseMsat,
            feeProportionalMillionths: Number(h.feeProportionalMillionths),
            cltvExpiryDelta: h.cltvExpiryDelta,
            amountMsat: h.amountMsat,
            expiry: h.expiry,
          })),
        }
      : null,
    failure: p.failure ?? null,
    createdAt: p.createdAt.toISOString(),
  };
}

/** The request's route hops, short channel ids as numbers; absent policy fields are zero. */
function routeHops(hops: Static<typeof S.RouteHopBody>[]): B.RouteHop[] {
  return hops.map((h, i) => {
    let scid: bigint;
    try {
      scid = shortChannelIdToBigint(parseShortChannelId(h.shortChannelId));
    } catch {
      throw new ApiError(
        400,
        "INVALID",
        `route hop ${i}: shortChannelId ${h.shortChannelId} is out of range`,
      );
    }
    return {
      nodeId: h.nodeId,
      shortChannelId: scid,
      feeBaseMsat: msat(BigInt(h.feeBaseMsat ?? "0")),
      feeProportionalMillionths: BigInt(h.feeProportionalMillionths ?? 0),
      cltvExpiryDelta: h.cltvExpiryDelta ?? 0,
    };
  });
}

function policyJson(channelId: string, p: B.ForwardingPolicy): Static<typeof S.ForwardingPolicy> {
  return {
    channelId,
    feeBaseMsat: p.feeBaseMsat.toString(),
    feeProportionalMillionths: Number(p.feeProportionalMillionths),
    cltvExpiryDelta: p.cltvExpiryDelta,
    htlcMinimumMsat: p.htlcMinimumMsat.toString(),
  };
}

function forwardJson(f: B.ForwardRow): Static<typeof S.Forward> {
  return {
    id: f.id.toString(),
    inChannel: f.inChannel,
    inHtlcId: f.inHtlcId.toString(),
    rHash: f.rHash,
    inAmountMsat: f.inAmountMsat.toString(),
    inExpiry: f.inExpiry,
    outChannel: f.outChannel ?? null,
    outHtlcId: f.outHtlcId?.toString() ?? null,
    outShortChannelId:
      f.outShortChannelId === undefined
        ? null
        : formatShortChannelId(shortChannelIdFromBigint(f.outShortChannelId)),
    outAmountMsat: f.outAmountMsat?.toString() ?? null,
    outExpiry: f.outExpiry ?? null,
    status: f.status,
    feeMsat: f.feeMsat.toString(),
    failure: f.failure ?? null,
    createdAt: f.createdAt.toISOString(),
    resolvedAt: f.resolvedAt?.toISOString() ?? null,
  };
}

/** SHA-256 of the body as canonical JSON (keys sorted), to tell a retry from a different request. */
function requestHash(body: unknown): string {
  return createHash("sha256").update(canonical(body)).digest("hex");
}

function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(",")}]`;
  if (typeof v === "object" && v !== null)
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(",")}}`;
  return JSON.stringify(v) ?? "null";
}

function graphPolicyJson(p: B.GraphPolicy | undefined): Static<typeof S.GraphPolicy> | null {
  return p
    ? {
        disabled: p.disabled,
        feeBaseMsat: p.feeBaseMsat.toString(),
        feeProportionalMillionths: Number(p.feeProportionalMillionths),
        cltvExpiryDelta: p.cltvExpiryDelta,
        htlcMinimumMsat: p.htlcMinimumMsat.toString(),
        htlcMaximumMsat: p.htlcMaximumMsat?.toString() ?? null,
        timestamp: p.timestamp ?? null,
      }
    : null;
}

function graphJson(g: B.Graph): Static<typeof S.Graph> {
  return {
    nodeId: g.nodeId,
    nodes: g.nodes.map((n) => ({
      nodeId: n.nodeId,
      alias: n.alias ?? null,
      addresses: n.addresses,
      timestamp: n.timestamp ?? null,
      ours: n.ours,
    })),
    channels: g.channels.map((c) => ({
      shortChannelId:
        c.shortChannelId === undefined
          ? null
          : formatShortChannelId(shortChannelIdFromBigint(c.shortChannelId)),
      shortChannelIdNumber: c.shortChannelId?.toString() ?? null,
      node1: c.node1,
      node2: c.node2,
      capacitySat: c.capacitySat.toString(),
      announced: c.announced,
      ours: c.ours,
      channelId: c.channelId ?? null,
      node1Policy: graphPolicyJson(c.policies[0]),
      node2Policy: graphPolicyJson(c.policies[1]),
    })),
  };
}
