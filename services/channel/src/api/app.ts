import { createHash, randomUUID } from "node:crypto";
import { msat, sat, type Locktime } from "@ln/bitcoin";
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
import { ApiStore, type Scope, type TokenInfo } from "./api-store.js";
import * as B from "./backend.js";
import { consolePage } from "./console/index.js";
import { ApiError, mapError } from "./errors.js";
import { RequestMetrics } from "./metrics.js";
import * as S from "./schemas.js";

/**
 * Who may call a route: `public` needs no token; `read` any token (readonly, invoice or admin);
 * `invoice` an invoice or admin token; `admin` an admin token.
 */
export type Access = "public" | "read" | "invoice" | "admin";

declare module "fastify" {
  interface FastifyContextConfig {
    access?: Access;
  }
}

const ALLOWED: Record<Exclude<Access, "public">, readonly Scope[]> = {
  read: ["readonly", "invoice", "admin"],
  invoice: ["invoice", "admin"],
  admin: ["admin"],
};

const MUTATING = new Set(["POST", "PUT", "PATCH", "DELETE"]);
const DOCS_PREFIX = "/docs";
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;
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
   * The Prometheus registry /metrics serves; the API adds its request counter to it. Default: a
   * new one with the process metrics (service="channel").
   */
  registry?: Registry;
}

/** Builds the control API (migrating its tables first). Call `listen` or `inject` on the result. */
export async function buildApi(opts: ApiOptions): Promise<FastifyInstance> {
  const store = new ApiStore(opts.pool, opts.schema);
  await store.migrate();
  const metrics = new RequestMetrics(opts.registry);
  const tokens = new WeakMap<FastifyRequest, TokenInfo>();

  const app = Fastify({
    ...(opts.loggerInstance ? { loggerInstance: opts.loggerInstance } : { logger: opts.logger ?? false }),
    genReqId: (req) => {
      const h = req.headers["x-request-id"];
      return typeof h === "string" && REQUEST_ID.test(h) ? h : randomUUID();
    },
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

  app.addHook("onSend", async (req, reply, payload) => {
    void reply.header("x-request-id", req.id);
    if (MUTATING.has(req.method)) {
      try {
        await store.audit({
          tokenId: tokens.get(req)?.id,
          method: req.method,
          route: req.routeOptions.url ?? "(unmatched)",
          status: reply.statusCode,
          requestId: req.id,
        });
      } catch (e) {
        req.log.error({ err: e }, "audit log write failed");
      }
    }
    return payload;
  });

  app.addHook("onResponse", async (req, reply) => {
    metrics.count(req.method, req.routeOptions.url ?? "(unmatched)", reply.statusCode);
  });

  app.setErrorHandler(async (err, req, reply) => {
    const mapped = mapError(err, req.id);
    if (mapped.internal) req.log.error({ err }, "request failed");
    return reply.code(mapped.status).send(mapped.body);
  });

  app.setNotFoundHandler(async (req, reply) =>
    reply.code(404).send({
      error: {
        code: "NOT_FOUND",
        message: `no route ${req.method} ${req.url.split("?")[0] ?? ""}; see ${DOCS_PREFIX}`,
        requestId: req.id,
      },
    }),
  );

  await app.register(routes, { store, metrics, backend: opts.backend, tokens });
  await app.register(consolePage);
  return app;
}

interface RouteDeps {
  store: ApiStore;
  metrics: RequestMetrics;
  backend: B.NodeBackend;
  tokens: WeakMap<FastifyRequest, TokenInfo>;
}

const PAY_ROUTE = "POST /v1/payments";
/** Backend refusals that certainly moved no money: the key is freed so it can be retried. */
const NOTHING_PAID: ReadonlySet<B.BackendErrorCode> = new Set([
  "NOT_FOUND",
  "INVALID",
  "CONFLICT",
  "INSUFFICIENT_FUNDS",
]);

const routes: FastifyPluginAsyncTypebox<RouteDeps> = async (app, { store, metrics, backend, tokens }) => {
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
    "/metrics",
    {
      config: publicRoute,
      schema: {
        ...noAuth,
        tags: ["ops"],
        summary: "Prometheus metrics",
        produces: ["text/plain"],
        response: S.withErrors({ 200: S.MetricsText }),
      },
    },
    async (_req, reply) => {
      void reply.type(metrics.contentType);
      return metrics.render();
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
        summary: "Create an invoice; the preimage stays on the node (invoice or admin)",
        body: S.CreateInvoiceBody,
        response: S.withErrors({ 201: S.Invoice }),
      },
    },
    async (req, reply) => {
      const inv = await backend.createInvoice({
        amountMsat: msat(BigInt(req.body.amountMsat)),
        ...(req.body.description === undefined ? {} : { description: req.body.description }),
      });
      void reply.code(201);
      return {
        rHash: inv.rHash,
        amountMsat: inv.amountMsat.toString(),
        description: inv.description,
        createdAt: inv.createdAt.toISOString(),
      };
    },
  );

  app.post(
    "/v1/payments",
    {
      config: { access: "admin" },
      schema: {
        tags: ["payments"],
        summary: "Pay over a channel (admin). Needs an Idempotency-Key header; a retry with it pays once.",
        headers: S.IdempotencyHeaders,
        body: S.PayBody,
        response: S.withErrors({ 201: S.Payment }),
      },
    },
    async (req, reply) => {
      const token = tokens.get(req);
      if (!token) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
      const key = req.headers["idempotency-key"];
      const claim = await store.claimIdempotency(token.id, key, PAY_ROUTE, requestHash(req.body));
      if (claim.kind === "mismatch")
        throw new ApiError(
          422,
          "IDEMPOTENCY_KEY_REUSED",
          "this Idempotency-Key was used for a different request; use a fresh key for a new payment",
        );
      if (claim.kind === "in_progress")
        throw new ApiError(
          409,
          "IDEMPOTENCY_IN_PROGRESS",
          "a request with this Idempotency-Key is still running; retry the same request shortly",
        );
      if (claim.kind === "done") {
        void reply.header("idempotent-replayed", "true");
        const stored = claim.response as StoredResult;
        if ("error" in stored) throw new ApiError(claim.status, stored.error.code, stored.error.message);
        void reply.code(201);
        return stored;
      }
      let payment: B.Payment;
      try {
        payment = await backend.pay({
          channelId: req.body.channelId,
          rHash: req.body.rHash,
          amountMsat: msat(BigInt(req.body.amountMsat)),
          expiry: req.body.expiry,
        });
      } catch (e) {
        if (e instanceof B.BackendError && NOTHING_PAID.has(e.code)) {
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
      await store.completeIdempotency(token.id, key, 201, body);
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
      const all = await backend.listPayments();
      const newest = [...all].sort((a, b) => b.createdAt.getTime() - a.createdAt.getTime());
      return { payments: newest.slice(0, req.query.limit ?? 100).map(paymentJson) };
    },
  );

  app.get(
    "/v1/payments/:id",
    {
      config: { access: "read" },
      schema: {
        tags: ["payments"],
        summary: "One payment and its outcome (any scope)",
        params: S.PaymentParams,
        response: S.withErrors({ 200: S.Payment }),
      },
    },
    async (req) => {
      const p = await backend.getPayment(req.params.id);
      if (!p)
        throw new ApiError(404, "NOT_FOUND", `no payment ${req.params.id}; GET /v1/payments lists payments`);
      return paymentJson(p);
    },
  );

  app.get(
    "/v1/wallet/address",
    {
      config: { access: "read" },
      schema: {
        tags: ["wallet"],
        summary: "A fresh deposit address (any scope)",
        response: S.withErrors({ 200: S.WalletAddress }),
      },
    },
    async () => backend.walletAddress(),
  );

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
      return { confirmedSat: b.confirmedSat.toString(), unconfirmedSat: b.unconfirmedSat.toString() };
    },
  );

  app.post(
    "/v1/wallet/withdraw",
    {
      config: { access: "admin" },
      schema: {
        tags: ["wallet"],
        summary: "Send on-chain funds out (admin)",
        body: S.WithdrawBody,
        response: S.withErrors({ 200: S.Withdrawal }),
      },
    },
    async (req) => {
      const w = await backend.withdraw({
        address: req.body.address,
        amountSat: sat(BigInt(req.body.amountSat)),
      });
      return { txid: w.txid, address: w.address, amountSat: w.amountSat.toString() };
    },
  );
};

type PaymentJson = Static<typeof S.Payment>;
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
  };
}

function locktimeJson(l: Locktime): { blocks: number } | { seconds: number } {
  return "blocks" in l ? { blocks: l.blocks } : { seconds: l.seconds };
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
    createdAt: p.createdAt.toISOString(),
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
