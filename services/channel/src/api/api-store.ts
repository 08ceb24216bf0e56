import { createHash, randomBytes, randomUUID } from "node:crypto";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";
import { migrateChannelService } from "../migrations.js";

/**
 * The API's own tables, next to the channel store's in the same schema, all prefixed `api_` and
 * migrated from their own version table (`api_schema_migrations`) so the two lists never collide.
 */

export const SCOPES = ["admin", "readonly", "invoice"] as const;
export type Scope = (typeof SCOPES)[number];

export interface TokenInfo {
  id: string;
  label: string;
  scopes: Scope[];
}

export interface AuditEntry {
  tokenId: string | undefined;
  method: string;
  route: string;
  status: number;
  requestId: string;
}

/** What an idempotency key resolved to: run the call now, or replay/refuse. */
export type IdempotencyClaim =
  | { kind: "claimed" }
  | { kind: "done"; status: number; response: unknown }
  | { kind: "in_progress" }
  | { kind: "mismatch" };

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
   * Stores an operator-provided token (e.g. from a Kubernetes Secret) under `label`, once: its hash
   * only. A second call with the same token changes nothing.
   */
  async ensureToken(label: string, token: string, scopes: readonly Scope[]): Promise<void> {
    if (token.length < 24) throw new Error("a provided token must be at least 24 characters");
    await this.pool.query(
      `INSERT INTO ${this.t("api_tokens")} (id, label, scopes, token_hash) VALUES ($1, $2, $3, $4)
       ON CONFLICT (token_hash) DO NOTHING`,
      [randomUUID(), label, [...scopes], hashToken(token)],
    );
  }

  async revokeToken(id: string): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE ${this.t("api_tokens")} SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL`,
      [id],
    );
    return r.rowCount === 1;
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

  async audit(e: AuditEntry): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.t("api_audit_log")} (token_id, method, route, status, request_id) VALUES ($1, $2, $3, $4, $5)`,
      [e.tokenId ?? null, e.method, e.route, e.status, e.requestId],
    );
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
    const ins = await this.pool.query(
      `INSERT INTO ${this.t("api_idempotency")} (token_id, key, route, request_hash)
       VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
      [tokenId, key, route, requestHash],
    );
    if (ins.rowCount === 1) return { kind: "claimed" };
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
    // Released between our insert and select: let the caller retry.
    if (!row) return { kind: "in_progress" };
    if (row.route !== route || row.request_hash !== requestHash) return { kind: "mismatch" };
    if (row.status === null) return { kind: "in_progress" };
    return { kind: "done", status: row.status, response: row.response };
  }

  async completeIdempotency(tokenId: string, key: string, status: number, response: unknown): Promise<void> {
    await this.pool.query(
      `UPDATE ${this.t("api_idempotency")} SET status = $3, response = $4, completed_at = now()
        WHERE token_id = $1 AND key = $2`,
      [tokenId, key, status, JSON.stringify(response)],
    );
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
