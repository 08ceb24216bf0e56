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
  {
    version: 3, // the running node: who each channel is with, payments, invoices, the on-chain wallet
    sql: (s) => `ALTER TABLE ${s}.channels
     ADD COLUMN peer_node_id text,
     ADD COLUMN signer_channel integer,
     ADD COLUMN phase text NOT NULL DEFAULT 'opening',
     ADD COLUMN created_at timestamptz NOT NULL DEFAULT now();
   -- One live channel per peer (the draft has no channel ids on the wire).
   CREATE UNIQUE INDEX channels_live_peer ON ${s}.channels (peer_node_id)
     WHERE phase NOT IN ('closed', 'failed');
   CREATE TABLE ${s}.payments (
     id text PRIMARY KEY,
     channel_id text NOT NULL REFERENCES ${s}.channels(id),
     htlc_id numeric(20) NOT NULL,
     r_hash text NOT NULL,
     amount_msat numeric(20) NOT NULL,
     expiry jsonb NOT NULL,
     status text NOT NULL DEFAULT 'pending',
     failure_reason text,
     preimage text,
     created_at timestamptz NOT NULL DEFAULT now(),
     settled_at timestamptz,
     UNIQUE (channel_id, htlc_id)
   );
   CREATE TABLE ${s}.invoices (
     r_hash text PRIMARY KEY,
     signer_index integer NOT NULL UNIQUE,
     amount_msat numeric(20) NOT NULL,
     description text NOT NULL,
     status text NOT NULL DEFAULT 'open',
     created_at timestamptz NOT NULL DEFAULT now(),
     settled_at timestamptz
   );
   CREATE TABLE ${s}.chain_tip (
     id integer PRIMARY KEY CHECK (id = 1),
     height integer NOT NULL,
     hash text NOT NULL,
     time integer NOT NULL
   );
   CREATE TABLE ${s}.wallet_keys (
     key_index integer PRIMARY KEY,
     script_hex text NOT NULL UNIQUE,
     address text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE ${s}.wallet_utxos (
     txid text NOT NULL,
     vout integer NOT NULL,
     amount_sat numeric(20) NOT NULL,
     key_index integer NOT NULL REFERENCES ${s}.wallet_keys(key_index),
     height integer NOT NULL,
     block_hash text NOT NULL,
     -- The transaction of ours that spends it (an anchor or a withdrawal), once signed.
     spent_by text,
     PRIMARY KEY (txid, vout)
   );
   -- Closes and commitments we broadcast: to tell our spend of an anchor from theirs, and to
   -- broadcast again until confirmed.
   CREATE TABLE ${s}.broadcasts (
     txid text PRIMARY KEY,
     channel_id text NOT NULL REFERENCES ${s}.channels(id),
     kind text NOT NULL,
     tx_hex text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   -- Our signed wallet spends, kept until confirmed so they can be re-broadcast.
   CREATE TABLE ${s}.wallet_spends (
     txid text PRIMARY KEY,
     tx_hex text NOT NULL,
     purpose text NOT NULL,
     channel_id text,
     created_at timestamptz NOT NULL DEFAULT now()
   );`,
  },
  {
    version: 4, // the wallet's spends (wallet.ts): when handed to the chain, when seen in a block, their change
    sql: (s) => `ALTER TABLE ${s}.wallet_spends
     -- First handed to the chain: a withdrawal at once, an anchor when the core asks for it to
     -- broadcast (never before open_commit_sig). Only these are re-broadcast.
     ADD COLUMN broadcast_at timestamptz,
     -- A block holding it was seen (0: seen, height unknown); cleared when that block is disconnected.
     ADD COLUMN confirmed_height integer,
     -- What it pays back to our own wallet keys (the unconfirmed balance until it confirms).
     ADD COLUMN change_sat numeric(20) NOT NULL DEFAULT 0;
   CREATE INDEX wallet_spends_channel ON ${s}.wallet_spends (channel_id) WHERE channel_id IS NOT NULL;`,
  },
  {
    version: 5, // the wallet's sweeps (wallet.ts): close outputs to our final keys, swept to wallet keys
    sql: (s) => `CREATE TABLE ${s}.final_scripts (
     -- P2SH(<final_pubkey> OP_CHECKSIG): what a cooperative close pays us.
     script_hex text PRIMARY KEY,
     channel_id text NOT NULL,
     signer_channel integer NOT NULL,
     final_pubkey text NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE ${s}.final_coins (
     txid text NOT NULL,
     vout integer NOT NULL,
     amount_sat numeric(20) NOT NULL,
     script_hex text NOT NULL REFERENCES ${s}.final_scripts(script_hex),
     height integer NOT NULL,
     block_hash text NOT NULL,
     -- The sweep (a wallet_spends row, purpose 'sweep') that spends it, once signed.
     swept_by text,
     created_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (txid, vout)
   );
   CREATE INDEX final_coins_unswept ON ${s}.final_coins (created_at) WHERE swept_by IS NULL;`,
  },
  {
    version: 6, // where each peer listens, to reconnect to it (node.ts)
    sql: (s) => `CREATE TABLE ${s}.peer_addresses (
     node_id text PRIMARY KEY,
     host text NOT NULL,
     port integer NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   );`,
  },
  {
    version: 7, // invoice indices from a sequence: concurrent invoices never contend for one
    sql: (s) => `CREATE SEQUENCE ${s}.invoice_index MINVALUE 0 START 0;
   SELECT setval('${s}.invoice_index', COALESCE((SELECT MAX(signer_index) + 1 FROM ${s}.invoices), 0), false);`,
  },
  {
    version: 8, // the peer's revocations, written with the state that received them, until the signer has them
    sql: (s) => `CREATE TABLE ${s}.peer_revocations (
     channel_id text NOT NULL REFERENCES ${s}.channels(id),
     number numeric(20) NOT NULL,
     preimage text NOT NULL,
     recorded_at timestamptz,
     PRIMARY KEY (channel_id, number)
   );
   CREATE INDEX peer_revocations_unrecorded ON ${s}.peer_revocations (channel_id) WHERE recorded_at IS NULL;`,
  },
  {
    version: 9, // the watchtower's records (DESIGN.md 7), written with the state, until JetStream has them
    sql: (s) => `CREATE TABLE ${s}.tower_records (
     channel_id text NOT NULL REFERENCES ${s}.channels(id),
     number numeric(20) NOT NULL,
     locator bytea NOT NULL CHECK (length(locator) = 16),
     blob bytea NOT NULL,
     published_at timestamptz,
     PRIMARY KEY (channel_id, number)
   );
   CREATE INDEX tower_records_unpublished ON ${s}.tower_records (channel_id, number) WHERE published_at IS NULL;`,
  },
  {
    version: 10, // on-chain resolution (resolution.ts): what spent the anchor, and each output we claim
    sql: (s) => `CREATE TABLE ${s}.onchain_resolutions (
     channel_id text PRIMARY KEY REFERENCES ${s}.channels(id),
     kind text NOT NULL CHECK (kind IN ('our_commitment', 'their_commitment', 'close', 'unknown')),
     spend_txid text NOT NULL,
     spend_hex text NOT NULL,
     number numeric(20),
     height integer NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE TABLE ${s}.onchain_claims (
     channel_id text NOT NULL REFERENCES ${s}.onchain_resolutions(channel_id),
     vout integer NOT NULL,
     what text NOT NULL CHECK (what IN ('to_us', 'delayed', 'htlc_timeout', 'htlc_redeem', 'watch')),
     amount_sat numeric(20) NOT NULL,
     htlc_id numeric(20),
     r_hash text,
     preimage text,
     ready_height integer,
     ready_time bigint,
     status text NOT NULL,
     sweep_txid text,
     spent_by text,
     spent_height integer,
     PRIMARY KEY (channel_id, vout)
   );
   CREATE INDEX onchain_claims_waiting ON ${s}.onchain_claims (ready_height) WHERE status = 'waiting';`,
  },
  {
    version: 11, // the control API's audit log written before the action (app.ts), and token labels
    sql: (s) => `ALTER TABLE ${s}.api_audit_log
     -- NULL while the call runs, and if its outcome could not be recorded.
     ALTER COLUMN status DROP NOT NULL,
     -- The route's parameters and the request body (secrets redacted), as the call was made.
     ADD COLUMN params jsonb,
     ADD COLUMN body jsonb,
     -- The caller's X-Request-Id, if any; request_id is always the server's own.
     ADD COLUMN client_request_id text,
     -- The error code of a call that failed, once it finished.
     ADD COLUMN outcome text,
     ADD COLUMN finished_at timestamptz;
   CREATE INDEX api_audit_log_request ON ${s}.api_audit_log (request_id);
   CREATE INDEX api_tokens_label ON ${s}.api_tokens (label) WHERE revoked_at IS NULL;`,
  },
  {
    // The transaction holding each coin (wallet_output's tx_hex): the signer reads a coin's amount
    // from it (SignWalletSpend / SignSweep prev_tx_hex). NULL for coins recorded before.
    version: 12,
    sql: (s) => `ALTER TABLE ${s}.wallet_utxos ADD COLUMN tx_hex text;
   ALTER TABLE ${s}.final_coins ADD COLUMN tx_hex text;`,
  },
  {
    version: 13, // a channel behind (data loss suspected, DESIGN.md 6) no longer holds its peer's place
    sql: (s) => `DROP INDEX ${s}.channels_live_peer;
   CREATE UNIQUE INDEX channels_live_peer ON ${s}.channels (peer_node_id)
     WHERE phase NOT IN ('closed', 'failed', 'behind');`,
  },
  {
    version: 14, // peers' openings that failed before their anchor: deleted, remembered for the rate limit
    sql: (s) => `CREATE TABLE ${s}.forgotten_openings (
     channel_id text PRIMARY KEY,
     peer_node_id text NOT NULL,
     forgotten_at timestamptz NOT NULL DEFAULT now()
   );
   CREATE INDEX forgotten_openings_peer ON ${s}.forgotten_openings (peer_node_id, forgotten_at);
   CREATE INDEX forgotten_openings_at ON ${s}.forgotten_openings (forgotten_at);`,
  },
  {
    // Status events of payments, invoices and channels (DESIGN.md 11, events/event-log.ts): seq is
    // the writing transaction's id shifted left 16 bits plus the event's place in it, so readers
    // can deliver in an order no later commit can insert into (see EventLog.after).
    version: 15,
    sql: (s) => `CREATE TABLE ${s}.events (
     seq bigint PRIMARY KEY,
     kind text NOT NULL,
     subject text NOT NULL,
     status text NOT NULL,
     detail jsonb NOT NULL DEFAULT '{}',
     at timestamptz NOT NULL DEFAULT now()
   );
   CREATE INDEX events_subject ON ${s}.events (kind, subject, seq);`,
  },
  {
    // The status events' NATS relay (events/relay.ts): per JetStream stream, the seq of the last
    // event JetStream acknowledged.
    version: 17,
    sql: (s) => `CREATE TABLE ${s}.event_relay (
     stream text PRIMARY KEY,
     cursor bigint NOT NULL DEFAULT 0,
     updated_at timestamptz NOT NULL DEFAULT now()
   );`,
  },
  {
    // Each channel's BOLT #7 short_channel_id once its anchor is in a block (DESIGN.md 10), as the
    // chain watcher reports it (onchain/chain-events.ts); forwarding finds the next hop by it.
    version: 18,
    sql: (s) => `ALTER TABLE ${s}.channels ADD COLUMN short_channel_id bigint;
   CREATE UNIQUE INDEX channels_short_channel_id ON ${s}.channels (short_channel_id)
     WHERE short_channel_id IS NOT NULL;`,
  },
  {
    // Forwarding (DESIGN.md 10, forwarding/): the onions of the HTLCs peers offered us, written in
    // the step that received them (the core keeps a route only while it is staged); each channel's
    // forwarding policy (no row: the configured defaults); and the forwarding table, one row per
    // incoming HTLC that is not for us, changed in the step of either channel that moves it.
    version: 19,
    sql: (s) => `CREATE TABLE ${s}.incoming_onions (
     channel_id text NOT NULL REFERENCES ${s}.channels(id),
     htlc_id numeric(20) NOT NULL,
     onion bytea NOT NULL,
     PRIMARY KEY (channel_id, htlc_id)
   );
   CREATE TABLE ${s}.forwarding_policies (
     channel_id text PRIMARY KEY REFERENCES ${s}.channels(id),
     fee_base_msat numeric(20) NOT NULL,
     fee_proportional_millionths bigint NOT NULL,
     cltv_expiry_delta integer NOT NULL,
     htlc_minimum_msat numeric(20) NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   );
   -- status: offering (decided, the outgoing HTLC not yet added) -> offered -> fulfilled (R known
   -- downstream) or failed (refused by us, or removed downstream irrevocably) -> settled (our
   -- fulfil upstream) or failed_back (our fail upstream); fulfilled_onchain or failed_onchain when
   -- the incoming channel could no longer take our answer (it closed: the chain settles it).
   CREATE TABLE ${s}.forwards (
     id bigserial PRIMARY KEY,
     in_channel text NOT NULL REFERENCES ${s}.channels(id),
     in_htlc_id numeric(20) NOT NULL,
     r_hash text NOT NULL,
     in_amount_msat numeric(20) NOT NULL,
     in_expiry integer NOT NULL,
     shared_secret bytea NOT NULL,
     out_short_channel_id bigint,
     out_channel text REFERENCES ${s}.channels(id),
     out_htlc_id numeric(20),
     out_amount_msat numeric(20),
     out_expiry integer,
     next_onion bytea,
     status text NOT NULL,
     preimage text,
     -- Why it failed, for the operator: our refusal (its BOLT #4 failure), or what happened downstream.
     failure text,
     -- What our fail_htlc upstream carries: an error packet with our layer (DESIGN.md erratum 9).
     upstream_reason bytea,
     created_at timestamptz NOT NULL DEFAULT now(),
     resolved_at timestamptz,
     UNIQUE (in_channel, in_htlc_id)
   );
   CREATE UNIQUE INDEX forwards_outgoing ON ${s}.forwards (out_channel, out_htlc_id) WHERE out_htlc_id IS NOT NULL;
   CREATE INDEX forwards_to_offer ON ${s}.forwards (out_channel) WHERE status = 'offering';
   CREATE INDEX forwards_to_answer ON ${s}.forwards (in_channel) WHERE status IN ('fulfilled', 'failed');
   CREATE INDEX forwards_created ON ${s}.forwards (created_at);`,
  },
  {
    // Payments over a route (payments/route.ts): the route as asked with each hop's amount and
    // expiry, the onion's shared secrets (32 bytes per hop, concatenated; never shown) to read the
    // error packet, and who failed and how, once the peer's fail reason is decoded (records.ts).
    // payment_onions holds them, by the onion's hash, from the request until the step that adds
    // the HTLC (a command deferred behind the signer is added in a later step) moves them onto
    // the payment row.
    version: 20,
    sql: (s) => `ALTER TABLE ${s}.payments
     ADD COLUMN route jsonb,
     ADD COLUMN onion_secrets bytea,
     ADD COLUMN failure_hop integer,
     ADD COLUMN failure_node text,
     ADD COLUMN failure_code integer,
     ADD COLUMN failure_description text;
   CREATE TABLE ${s}.payment_onions (
     onion_hash text PRIMARY KEY,
     route jsonb NOT NULL,
     onion_secrets bytea NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now()
   );`,
  },
  {
    // The network's graph (DESIGN.md 10, gossip/): public channels accepted from verified
    // channel_announcements (anchor on chain, unspent, the P2SH 2-of-2 of the two commit keys),
    // each direction's latest channel_update, and node_announcements. short_channel_id is the
    // BOLT #7 packing stored as a signed bigint (BigInt.asIntN(64, ...)), as channels' own.
    // node_1 < node_2 (hex of the compressed keys); direction 0 is node_1 forwarding to node_2.
    // The pkts as received are kept to relay them and to give a new peer what we know.
    version: 21,
    sql: (s) => `CREATE TABLE ${s}.graph_channels (
     short_channel_id bigint PRIMARY KEY,
     node_1 text NOT NULL,
     node_2 text NOT NULL,
     commit_key_1 text NOT NULL,
     commit_key_2 text NOT NULL,
     anchor_txid text NOT NULL,
     anchor_vout integer NOT NULL,
     capacity_sat numeric(20) NOT NULL,
     announcement bytea NOT NULL,
     added_at timestamptz NOT NULL DEFAULT now(),
     CHECK (node_1 < node_2)
   );
   CREATE INDEX graph_channels_node_1 ON ${s}.graph_channels (node_1);
   CREATE INDEX graph_channels_node_2 ON ${s}.graph_channels (node_2);
   CREATE TABLE ${s}.graph_policies (
     short_channel_id bigint NOT NULL REFERENCES ${s}.graph_channels(short_channel_id) ON DELETE CASCADE,
     direction smallint NOT NULL CHECK (direction IN (0, 1)),
     timestamp bigint NOT NULL,
     disabled boolean NOT NULL,
     cltv_expiry_delta integer NOT NULL,
     htlc_minimum_msat numeric(20) NOT NULL,
     htlc_maximum_msat numeric(20) NOT NULL,
     fee_base_msat numeric(20) NOT NULL,
     fee_proportional_millionths bigint NOT NULL,
     channel_update bytea NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now(),
     PRIMARY KEY (short_channel_id, direction)
   );
   CREATE TABLE ${s}.graph_nodes (
     node_id text PRIMARY KEY,
     timestamp bigint NOT NULL,
     alias text NOT NULL,
     addresses jsonb NOT NULL DEFAULT '[]',
     node_announcement bytea NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   );`,
  },
  {
    // BOLT #11 invoices (DESIGN.md 10, payments/invoices.ts): the signed string, the payment
    // secret the payee checks in payment_data, when the invoice expires and the final expiry delta
    // it asks for. Null on invoices made before (paid by plain HTLCs, as then). amount_msat 0:
    // any amount.
    version: 22,
    sql: (s) => `ALTER TABLE ${s}.invoices
     ADD COLUMN bolt11 text,
     ADD COLUMN payment_secret bytea,
     ADD COLUMN expires_at timestamptz,
     ADD COLUMN min_final_cltv_expiry_delta integer;`,
  },
  {
    // Paying an invoice (DESIGN.md 10, payments/payer.ts): one row per invoice payment; each
    // payments row with its invoice_payment_id is an attempt (route, fee, outcome are there). The
    // kept onion carries the id to the attempt row in the step that adds its HTLC (records.ts).
    // One live or paid payment per r_hash unless the operator allowed a repeat. local_failures:
    // attempts our own channel refused before any HTLC existed (no payments row).
    version: 23,
    sql: (s) => `CREATE TABLE ${s}.invoice_payments (
     id text PRIMARY KEY,
     bolt11 text NOT NULL,
     r_hash text NOT NULL,
     payee text NOT NULL,
     amount_msat numeric(20) NOT NULL,
     max_fee_msat numeric(20) NOT NULL,
     deadline timestamptz NOT NULL,
     status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
     preimage text,
     fee_msat numeric(20),
     failure text,
     allow_repeat boolean NOT NULL DEFAULT false,
     local_failures jsonb NOT NULL DEFAULT '[]',
     created_at timestamptz NOT NULL DEFAULT now(),
     finished_at timestamptz
   );
   CREATE UNIQUE INDEX invoice_payments_once ON ${s}.invoice_payments (r_hash)
     WHERE status IN ('pending', 'succeeded') AND NOT allow_repeat;
   CREATE INDEX invoice_payments_pending ON ${s}.invoice_payments (created_at) WHERE status = 'pending';
   ALTER TABLE ${s}.payments ADD COLUMN invoice_payment_id text REFERENCES ${s}.invoice_payments(id),
     ADD COLUMN failure_channel_update bytea;
   CREATE INDEX payments_invoice_payment ON ${s}.payments (invoice_payment_id) WHERE invoice_payment_id IS NOT NULL;
   ALTER TABLE ${s}.payment_onions
     ADD COLUMN invoice_payment_id text REFERENCES ${s}.invoice_payments(id),
     ADD COLUMN channel_id text;`,
  },
  {
    // Gossip (gossip/): a private channel is never announced (nor its channel_update); public by default.
    version: 24,
    sql: (s) => `ALTER TABLE ${s}.channels ADD COLUMN private boolean NOT NULL DEFAULT false;`,
  },
  {
    // Every step rewrites its channel's state: kept compressed in the row (not TOAST, whose
    // chunks each version leaves behind until a vacuum), with room on its page for the next
    // version, so updates are heap-only and the old versions are pruned as the page is used.
    version: 25,
    sql: (s) => `ALTER TABLE ${s}.channels ALTER COLUMN state SET STORAGE MAIN;
   ALTER TABLE ${s}.channels SET (fillfactor = 50);`,
  },
];

export const migrateChannelService = (pool: pg.Pool, schema: string): Promise<number[]> =>
  migrate(pool, schema, MIGRATIONS);
