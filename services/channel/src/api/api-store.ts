import { createHash, randomBytes, randomUUID } from "node:crypto";
import { inTransaction, quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { migrateChannelService } from "../migrations.js";

/**
 * The API's own tables, next to the channel store's in the same schema, all prefixed `api_` and
 * migrated from their own version table (`api_schema_migrations`) so the two lists never collide.
 */

/**
 * `readonly` reads; `invoice` also creates invoices; `address` also allocates deposit addresses
 * (each one a wallet key and a permanent chain watch); `admin` does everything.
 */
export const SCOPES = ["admin", "readonly", "invoice", "address"] as const;
export type Scope = (typeof SCOPES)[number];

export interface TokenInfo {
  id: string;
  label: string;
  scopes: Scope[];
}

/** A token as listed: never its hash or plaintext. */
export interface TokenRecord extends TokenInfo {
  createdAt: Date;
  revokedAt: Date | undefined;
}

/** The label of the token bootstrapped from CHANNEL_ADMIN_TOKEN. */
export const BOOTSTRAP_LABEL = "admin (CHANNEL_ADMIN_TOKEN)";

/** What `bootstrapAdminToken` did. */
export interface BootstrapResult {
  /** The token was stored now (else it was there already). */
  created: boolean;
  /** The earlier bootstrapped tokens revoked now (the variable changed). */
  revoked: number;
  /** The token had been revoked (by an operator, or as an earlier value): it stays revoked. */
  isRevoked: boolean;
}

/** One audited call, written before the call acts. */
export interface AuditStart {
  tokenId: string | undefined;
  method: string;
  /** The route template, e.g. /v1/channels/:id/close. */
  route: string;
  /** The route's parameters, e.g. { id: "chan-1" }. */
  params: Record<string, unknown>;
  /** The request body, secrets redacted; undefined when none was parsed. */
  body: unknown;
  /** The server's request id. */
  requestId: string;
  /** The caller's X-Request-Id, if any. */
  clientRequestId: string | undefined;
  /** The status, for a call refused before it could act (written in one go). */
  status?: number;
  outcome?: string | undefined;
}

/** What an idempotency key resolved to: run the call now, or replay/refuse. */
export type IdempotencyClaim =
  | { kind: "claimed" }
  | { kind: "done"; status: number; response: unknown }
  | { kind: "in_progress" }
  | { kind: "mismatch" };

/** A pool or one client of it (inside a transaction). */
type Queryable = Pick<pg.ClientBase, "query">;

export const hashToken = (token: string): string => createHash("sha256").update(token, "utf8").digest("hex");

const isScope = (s: string): s is Scope => (SCOPES as readonly string[]).includes(s);

export class ApiStore {
  constructor(
    readonly pool: pg.Pool,
    readonly schema = "channel",
  ) {
    this.quoted = quoteSchema(schema);
  }

  private readonly quoted: string;

  private t(table: string): string {
    return `${this.quoted}.${table}`;
  }

  async migrate(): Promise<void> {
    await migrateChannelService(this.pool, this.schema);
  }

  /** Creates a token; the plaintext is returned here once and only its SHA-256 is stored. */
  async createToken(label: string, scopes: readonly Scope[]): Promise<TokenInfo & { token: string }> {
    if (scopes.length === 0) throw new Error("a token needs at least one scope");
    for (const s of scopes) if (!isScope(s)) throw new Error(`unknown scope ${JSON.stringify(s)}`);
    const id = randomUUID();
    const token = `lnch_${randomBytes(32).toString("base64url")}`;
    await this.pool.query(
      `INSERT INTO ${this.t("api_tokens")} (id, label, scopes, token_hash) VALUES ($1, $2, $3, $4)`,
      [id, label, [...scopes], hashToken(token)],
    );
    return { id, label, scopes: [...scopes], token };
  }

  /**
   * Stores the operator's admin token (CHANNEL_ADMIN_TOKEN, e.g. from a Kubernetes Secret), its
   * hash only, under BOOTSTRAP_LABEL; and revokes every other live token of that label, so that
   * rotating the variable revokes the previous value at the next start. A token that was revoked
   * stays revoked (it is never revived by being configured again) and then nothing else is
   * revoked. One transaction, under a lock, so that replicas starting together agree.
   */
  async bootstrapAdminToken(token: string): Promise<BootstrapResult> {
    if (token.length < 24) throw new Error("a provided token must be at least 24 characters");
    const hash = hashToken(token);
    return inTransaction(this.pool, async (c) => {
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`ln-api-bootstrap:${this.schema}`]);
      const known = await c.query<{ revoked: boolean }>(
        `SELECT revoked_at IS NOT NULL AS revoked FROM ${this.t("api_tokens")} WHERE token_hash = $1`,
        [hash],
      );
      // A revoked value put back (an old Secret restored) revokes nothing else: no lockout.
      if (known.rows[0]?.revoked === true) return { created: false, revoked: 0, isRevoked: true };
      const revoked = await c.query(
        `UPDATE ${this.t("api_tokens")} SET revoked_at = now()
          WHERE label = $1 AND token_hash <> $2 AND revoked_at IS NULL`,
        [BOOTSTRAP_LABEL, hash],
      );
      const ins = await c.query(
        `INSERT INTO ${this.t("api_tokens")} (id, label, scopes, token_hash) VALUES ($1, $2, $3, $4)
         ON CONFLICT (token_hash) DO NOTHING`,
        [randomUUID(), BOOTSTRAP_LABEL, ["admin"], hash],
      );
      return { created: ins.rowCount === 1, revoked: revoked.rowCount ?? 0, isRevoked: false };
    });
  }

  /** Revokes one token by id; false if there is no such live token. */
  async revokeToken(id: string): Promise<boolean> {
    return (await this.revokeTokens({ id })).length === 1;
  }

  /** Revokes the live token with this id, or every live token with this label; returns them. */
  async revokeTokens(which: { id: string } | { label: string }): Promise<TokenInfo[]> {
    const [column, value] = "id" in which ? ["id", which.id] : ["label", which.label];
    const r = await this.pool.query<{ id: string; label: string; scopes: string[] }>(
      `UPDATE ${this.t("api_tokens")} SET revoked_at = now()
        WHERE ${column} = $1 AND revoked_at IS NULL RETURNING id, label, scopes`,
      [value],
    );
    return r.rows.map((row) => ({ id: row.id, label: row.label, scopes: row.scopes.filter(isScope) }));
  }

  /** Every token, newest first: ids, labels, scopes and dates only. */
  async listTokens(): Promise<TokenRecord[]> {
    const r = await this.pool.query<{
      id: string;
      label: string;
      scopes: string[];
      created_at: Date;
      revoked_at: Date | null;
    }>(
      `SELECT id, label, scopes, created_at, revoked_at FROM ${this.t("api_tokens")} ORDER BY created_at DESC, id`,
    );
    return r.rows.map((row) => ({
      id: row.id,
      label: row.label,
      scopes: row.scopes.filter(isScope),
      createdAt: row.created_at,
      revokedAt: row.revoked_at ?? undefined,
    }));
  }

  /** The live token with this plaintext, looked up by its hash. */
  async verifyToken(token: string): Promise<TokenInfo | undefined> {
    const r = await this.pool.query<{ id: string; label: string; scopes: string[] }>(
      `SELECT id, label, scopes FROM ${this.t("api_tokens")} WHERE token_hash = $1 AND revoked_at IS NULL`,
      [hashToken(token)],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    return { id: row.id, label: row.label, scopes: row.scopes.filter(isScope) };
  }

  /** Whether the token with this id is still live (not revoked): long requests check it again. */
  async tokenLive(id: string): Promise<boolean> {
    const r = await this.pool.query(
      `SELECT 1 FROM ${this.t("api_tokens")} WHERE id = $1 AND revoked_at IS NULL`,
      [id],
    );
    return r.rowCount === 1;
  }

  /** Writes an audit row (before the call acts: no status yet); returns its id. */
  async auditStart(e: AuditStart): Promise<string> {
    const r = await this.pool.query<{ id: string }>(
      `INSERT INTO ${this.t("api_audit_log")}
         (token_id, method, route, params, body, request_id, client_request_id, status, outcome, finished_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, CASE WHEN $8::integer IS NULL THEN NULL ELSE now() END)
       RETURNING id::text`,
      [
        e.tokenId ?? null,
        e.method,
        e.route,
        JSON.stringify(e.params),
        e.body === undefined ? null : JSON.stringify(e.body),
        e.requestId,
        e.clientRequestId ?? null,
        e.status ?? null,
        e.outcome ?? null,
      ],
    );
    return r.rows[0]!.id;
  }

  /** Records how an audited call ended: its status, and its error code if it failed. */
  async auditFinish(id: string, status: number, outcome: string | undefined): Promise<void> {
    const r = await this.pool.query(
      `UPDATE ${this.t("api_audit_log")} SET status = $2, outcome = $3, finished_at = now() WHERE id = $1`,
      [id, status, outcome ?? null],
    );
    if (r.rowCount !== 1) throw new Error(`audit row ${id} not found`);
  }

  /**
   * Claims an idempotency key for a request. The first caller gets "claimed" and must `complete`
   * (or `release`) it; a retry with the same body gets the stored result, one with another body
   * "mismatch", and one while the first is still running "in_progress".
   */
  async claimIdempotency(
    tokenId: string,
    key: string,
    route: string,
    requestHash: string,
  ): Promise<IdempotencyClaim> {
    if (await this.claimIdempotencyIn(this.pool, tokenId, key, route, requestHash))
      return { kind: "claimed" };
    // Undefined: released between our insert and this read; let the caller retry.
    return (await this.idempotentResult(tokenId, key, route, requestHash)) ?? { kind: "in_progress" };
  }

  /** Stores the result of a claimed key (inside the claim's transaction `q`, if it has one). */
  async completeIdempotency(
    tokenId: string,
    key: string,
    status: number,
    response: unknown,
    q: Queryable = this.pool,
  ): Promise<void> {
    await q.query(
      `UPDATE ${this.t("api_idempotency")} SET status = $3, response = $4, completed_at = now()
        WHERE token_id = $1 AND key = $2`,
      [tokenId, key, status, JSON.stringify(response)],
    );
  }

  /**
   * Stores the result of a claimed key unless one is stored already (by the transaction that
   * did the work): then nothing is written.
   */
  async completeIdempotencyOnce(
    tokenId: string,
    key: string,
    status: number,
    response: unknown,
  ): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("api_idempotency")} SET status = $3, response = $4, completed_at = now()
        WHERE token_id = $1 AND key = $2 AND status IS NULL`,
      [tokenId, key, status, JSON.stringify(response)],
    );
  }

  /**
   * The stored outcome of an idempotency key, if any: "done" (replay it) or "mismatch" (another
   * route or body); undefined when the key is free. A claim still running counts as free here:
   * `claimIdempotencyIn` waits for it.
   */
  async idempotentResult(
    tokenId: string,
    key: string,
    route: string,
    requestHash: string,
  ): Promise<Exclude<IdempotencyClaim, { kind: "claimed" }> | undefined> {
    const r = await this.pool.query<{
      route: string;
      request_hash: string;
      status: number | null;
      response: unknown;
    }>(
      `SELECT route, request_hash, status, response FROM ${this.t("api_idempotency")} WHERE token_id = $1 AND key = $2`,
      [tokenId, key],
    );
    const row = r.rows[0];
    if (!row) return undefined;
    if (row.route !== route || row.request_hash !== requestHash) return { kind: "mismatch" };
    if (row.status === null) return { kind: "in_progress" };
    return { kind: "done", status: row.status, response: row.response };
  }

  /**
   * Takes an idempotency key inside the caller's transaction `c` (the one that stores the action's
   * own record): true if taken; false if the key is bound already. A concurrent transaction
   * holding the same key is waited for (the primary key's uniqueness check).
   */
  async claimIdempotencyIn(
    c: Queryable,
    tokenId: string,
    key: string,
    route: string,
    requestHash: string,
  ): Promise<boolean> {
    const ins = await c.query(
      `INSERT INTO ${this.t("api_idempotency")} (token_id, key, route, request_hash)
       VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [tokenId, key, route, requestHash],
    );
    return ins.rowCount === 1;
  }

  /** Forgets a claim whose call certainly did nothing, so the key can be used again. */
  async releaseIdempotency(tokenId: string, key: string): Promise<void> {
    await this.pool.query(
      `DELETE FROM ${this.t("api_idempotency")} WHERE token_id = $1 AND key = $2 AND status IS NULL`,
      [tokenId, key],
    );
  }

  async ping(): Promise<void> {
    await this.pool.query("SELECT 1");
  }
}
