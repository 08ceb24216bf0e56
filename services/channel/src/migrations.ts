import { migrate, type Migration } from "@ln/postgres";
import type pg from "pg";

/** The channel service's tables, in its own schema: one list, so versions never collide. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1, // channel state, and the outbox retransmission reads (DESIGN.md 6)
    sql: (s) => `CREATE TABLE ${s}.channels (
     id text PRIMARY KEY,
     state text NOT NULL,
     version bigint NOT NULL DEFAULT 0,
     lease_owner text,
     lease_expires timestamptz,
     updated_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE ${s}.outbox (
     channel_id text NOT NULL REFERENCES ${s}.channels(id),
     seq integer NOT NULL,
     pkt bytea NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (channel_id, seq)
   );`,
  },
  {
    version: 2, // the control API: hashed tokens, audit log, idempotency keys
    sql: (s) => `CREATE TABLE ${s}.api_tokens (
     id text PRIMARY KEY,
     label text NOT NULL,
     scopes text[] NOT NULL,
     token_hash text NOT NULL UNIQUE,
     created_at timestamptz NOT NULL DEFAULT now(),
     revoked_at timestamptz
   );
   CREATE TABLE ${s}.api_audit_log (
     id bigserial PRIMARY KEY,
     at timestamptz NOT NULL DEFAULT now(),
     token_id text,
     method text NOT NULL,
     route text NOT NULL,
     status integer NOT NULL,
     request_id text NOT NULL
   );
   CREATE INDEX api_audit_log_at ON ${s}.api_audit_log (at);
   CREATE TABLE ${s}.api_idempotency (
     token_id text NOT NULL,
     key text NOT NULL,
     route text NOT NULL,
     request_hash text NOT NULL,
     status integer,
     response jsonb,
     created_at timestamptz NOT NULL DEFAULT now(),
     completed_at timestamptz,
     PRIMARY KEY (token_id, key)
   );`,
  },
];

export const migrateChannelService = (pool: pg.Pool, schema: string): Promise<number[]> =>
  migrate(pool, schema, MIGRATIONS);
