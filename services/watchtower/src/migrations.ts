import type { Migration } from "@ln/postgres";

/**
 * Every table of the watchtower's schema, in one version sequence: the chain watcher's (1, 2) and
 * the tower's (3, 4). Append-only.
 */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    sql: (s) => `CREATE TABLE ${s}.cursor (id integer PRIMARY KEY CHECK (id = 1), cursor jsonb NOT NULL);
                 CREATE TABLE ${s}.anchor_watches (channel_id text PRIMARY KEY, watch jsonb NOT NULL);`,
  },
  {
    version: 2,
    sql: (s) => `CREATE TABLE ${s}.wallet_scripts (
                   script_hex text PRIMARY KEY CHECK (script_hex ~ '^([0-9a-f]{2})+$'),
                   added_at timestamptz NOT NULL DEFAULT now());`,
  },
  {
    version: 3,
    // The tower (DESIGN.md 7). A record is kept once per (locator, blob): a re-delivery is a no-op,
    // and a second blob under the same locator (which only the channel service could make) is kept
    // too, each tried on a breach. A breach is keyed by its normalized txid; its justice versions
    // are kept until it is pruned, so a restart re-broadcasts exactly what was signed.
    sql: (s) => `CREATE TABLE ${s}.tower_records (
                   locator bytea NOT NULL CHECK (length(locator) = 16),
                   blob_hash bytea NOT NULL CHECK (length(blob_hash) = 32),
                   blob bytea NOT NULL,
                   received_at timestamptz NOT NULL DEFAULT now(),
                   PRIMARY KEY (locator, blob_hash));
                 CREATE TABLE ${s}.tower_breaches (
                   ntxid bytea PRIMARY KEY CHECK (length(ntxid) = 32),
                   locator bytea NOT NULL,
                   blob_hash bytea NOT NULL,
                   breach_hex text NOT NULL,
                   state jsonb NOT NULL,
                   seen_at timestamptz NOT NULL DEFAULT now(),
                   updated_at timestamptz NOT NULL DEFAULT now());
                 CREATE TABLE ${s}.tower_justice (
                   txid text PRIMARY KEY,
                   ntxid bytea NOT NULL REFERENCES ${s}.tower_breaches (ntxid) ON DELETE CASCADE,
                   grp integer NOT NULL,
                   fee_rate integer NOT NULL,
                   tx_hex text NOT NULL,
                   signed_at timestamptz NOT NULL DEFAULT now());
                 CREATE INDEX tower_justice_ntxid ON ${s}.tower_justice (ntxid);
                 CREATE TABLE ${s}.tower_cursor (id integer PRIMARY KEY CHECK (id = 1), cursor jsonb NOT NULL);`,
  },
  {
    version: 4,
    // Durable claims on breaches (justice/claims.ts): a replica works on a breach, calling the
    // node and the signer, with no transaction open; claim_seq fences a claim that expired and
    // was taken over (even by the same replica), so a stale outcome is never recorded.
    sql: (s) => `ALTER TABLE ${s}.tower_breaches
                   ADD COLUMN claimed_by text,
                   ADD COLUMN claimed_until timestamptz,
                   ADD COLUMN claim_seq bigint NOT NULL DEFAULT 0,
                   ADD CONSTRAINT tower_breaches_claim CHECK ((claimed_by IS NULL) = (claimed_until IS NULL));`,
  },
];
