/**
 * The channel service's on-chain wallet: P2WPKH coins only (DESIGN.md 7: an anchor funded from
 * segwit inputs keeps its txid unmalleable). Keys come from the signer (`WalletKey`), signatures
 * too (`SignWalletSpend`, whose policy checks every output); the books are in this service's
 * schema (migrations 3 and 4: wallet_keys, wallet_utxos, wallet_spends).
 *
 * - Coins are learned only from the chain watcher's `wallet_output` events (confirmed outputs
 *   paying a watched script); a script is watched before its address is handed out.
 * - A spend (anchor or withdrawal) picks coins largest first under row locks (`FOR UPDATE SKIP
 *   LOCKED`, one coin at a time), so two concurrent spends never pick the same coin; it is signed,
 *   stored and its coins marked `spent_by` in one transaction.
 * - Balance: `confirmedSat` = confirmed coins not spent by one of our transactions;
 *   `unconfirmedSat` = the change of our own spends not yet seen in a block. Deposits are counted
 *   only once confirmed (the watcher reports no mempool outputs).
 * - Reorg (`block_disconnected` at h): unspent coins reported at heights >= h are forgotten (the
 *   new branch reports its own again); coins already spent by one of our transactions are kept
 *   and nothing is un-spent: our spend stays valid if the coin comes back (the re-report updates
 *   its block), and is re-broadcast at start while not seen confirmed.
 */
import { sat, txidFromHex, type OutPoint, type Sat } from "@ln/bitcoin";
import { inTransaction, quoteSchema } from "@ln/postgres";
import type { ChainEvent } from "@ln/proto";
import type { OutputOwnerMsg, Sendable, SignerClient } from "@ln/signer-client";
import {
  buildAnchor,
  buildWalletSpend,
  finalizeWalletSpend,
  p2wpkhOutput,
  WalletError as TxWalletError,
  type WalletSpend,
  type WalletUtxo,
} from "@ln/tx";
import { address as bjsAddress, payments, Transaction, type Network } from "bitcoinjs-lib";
import type pg from "pg";

/** What the wallet needs from the chain watcher (chain-requests.ts over NATS in production). */
export interface WalletChain {
  /** Resolves once the watcher will report outputs paying these scripts (hex). */
  watchScripts(scriptsHex: string[]): Promise<void>;
  /** Sends a transaction to the node; the txid. */
  broadcast(txHex: string): Promise<string>;
}

export type WalletErrorCode =
  /** Some coins, but not enough for the amount plus the fee. */
  | "INSUFFICIENT_FUNDS"
  /** No confirmed segwit coin to spend at all (none deposited yet, or all in use by other spends). */
  | "NO_SEGWIT_COINS"
  /** Not an address of this network, or not P2WPKH/P2WSH/P2SH/P2PKH. */
  | "INVALID_ADDRESS"
  /** A withdrawal below the dust limit. */
  | "INVALID_AMOUNT"
  /** The signer refused the withdrawal for its limit (SIGNER_MAX_WITHDRAWAL_SAT). */
  | "WITHDRAWAL_LIMIT"
  /** The signer refused the spend for another reason (its code and text in the message). */
  | "SIGNER_REFUSED";

export class WalletError extends Error {
  override readonly name = "WalletError";
  constructor(
    readonly code: WalletErrorCode,
    message: string,
  ) {
    super(message);
  }
}

const DEPOSIT_HINT = "deposit to an address from GET /v1/wallet/address and wait for one confirmation";
/** Bitcoin Core's dust threshold for the output types we pay (as DESIGN.md 5). */
const DUST_SAT = 546n;

export interface WalletOptions {
  pool: pg.Pool;
  schema: string;
  signer: SignerClient;
  chain: WalletChain;
  network: Network;
  /** Satoshi per 1000 vbytes. */
  feeRatePerKvb: number;
  log?: (line: string) => void;
}

interface CoinRow {
  txid: string;
  vout: number;
  amount_sat: string;
  key_index: number;
}

interface Coin {
  utxo: WalletUtxo;
  keyIndex: number;
}

interface SpendRow {
  txid: string;
  tx_hex: string;
}

/** The signer's refusal code and text from a gRPC error ("CODE: text" in `details`). */
function signerRefusal(e: unknown): { code: string; details: string } | undefined {
  if (!(e instanceof Error) || !("details" in e) || typeof e.details !== "string") return undefined;
  const m = /^([A-Z_]+): /.exec(e.details);
  return m ? { code: m[1]!, details: e.details } : undefined;
}

export class Wallet {
  readonly #s: string;

  constructor(private readonly o: WalletOptions) {
    this.#s = quoteSchema(o.schema);
  }

  // ------------------------------------------------------------ keys

  /**
   * The next wallet key as a P2WPKH address: its pubkey from the signer, its script watched by
   * the chain watcher, then stored (a failure to watch stores nothing and throws).
   */
  async newAddress(): Promise<{ address: string; keyIndex: number }> {
    const k = await this.#newKey();
    return { address: k.address, keyIndex: k.keyIndex };
  }

  async #newKey(): Promise<{ address: string; keyIndex: number; pubkey: Buffer; script: Buffer }> {
    return inTransaction(this.o.pool, async (c) => {
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`ln-wallet-keys:${this.o.schema}`]);
      const r = await c.query<{ next: number }>(
        `SELECT COALESCE(MAX(key_index) + 1, 0) AS next FROM ${this.#s}.wallet_keys`,
      );
      const keyIndex = r.rows[0]!.next;
      const { pubkey } = await this.o.signer.call("WalletKey", { index: keyIndex });
      const script = p2wpkhOutput(pubkey);
      const address = payments.p2wpkh({ output: script, network: this.o.network }).address!;
      await this.o.chain.watchScripts([script.toString("hex")]);
      await c.query(
        `INSERT INTO ${this.#s}.wallet_keys (key_index, script_hex, address) VALUES ($1, $2, $3)`,
        [keyIndex, script.toString("hex"), address],
      );
      return { address, keyIndex, pubkey: Buffer.from(pubkey), script };
    });
  }

  // ------------------------------------------------------------ books

  async balance(): Promise<{ confirmedSat: Sat; unconfirmedSat: Sat }> {
    const r = await this.o.pool.query<{ confirmed: string; unconfirmed: string }>(
      `SELECT
         (SELECT COALESCE(SUM(amount_sat), 0) FROM ${this.#s}.wallet_utxos WHERE spent_by IS NULL)::text AS confirmed,
         (SELECT COALESCE(SUM(change_sat), 0) FROM ${this.#s}.wallet_spends WHERE confirmed_height IS NULL)::text AS unconfirmed`,
    );
    const row = r.rows[0]!;
    return { confirmedSat: sat(BigInt(row.confirmed)), unconfirmedSat: sat(BigInt(row.unconfirmed)) };
  }

  /** One chain watcher event (idempotent: the stream may deliver an event again). */
  async onChainEvent(e: ChainEvent): Promise<void> {
    switch (e.kind) {
      case "block_connected":
        return;
      case "block_disconnected":
        await inTransaction(this.o.pool, async (c) => {
          await c.query(`DELETE FROM ${this.#s}.wallet_utxos WHERE height >= $1 AND spent_by IS NULL`, [
            e.height,
          ]);
          await c.query(
            `UPDATE ${this.#s}.wallet_spends SET confirmed_height = NULL WHERE confirmed_height >= $1`,
            [e.height],
          );
        });
        return;
      case "anchor_depth":
        // The anchor is in a block; its height is not in the event (0: seen, height unknown).
        await this.o.pool.query(
          `UPDATE ${this.#s}.wallet_spends SET confirmed_height = COALESCE(confirmed_height, 0)
           WHERE channel_id = $1 AND purpose = 'anchor'`,
          [e.channelId],
        );
        return;
      case "anchor_spent":
        // Spent in a block at e.height: the anchor is in that block or an earlier one.
        await this.o.pool.query(
          `UPDATE ${this.#s}.wallet_spends SET confirmed_height = COALESCE(confirmed_height, 0)
           WHERE channel_id = $1 AND purpose = 'anchor'`,
          [e.channelId],
        );
        return;
      case "wallet_output":
        await inTransaction(this.o.pool, async (c) => {
          // Any output of one of our spends in a block (our change, or a watched withdrawal
          // destination) confirms that spend.
          await c.query(`UPDATE ${this.#s}.wallet_spends SET confirmed_height = $2 WHERE txid = $1`, [
            e.txid,
            e.height,
          ]);
          await c.query(
            `INSERT INTO ${this.#s}.wallet_utxos (txid, vout, amount_sat, key_index, height, block_hash)
             SELECT $1, $2, $3, key_index, $5, $6 FROM ${this.#s}.wallet_keys WHERE script_hex = $4
             ON CONFLICT (txid, vout) DO UPDATE SET height = EXCLUDED.height, block_hash = EXCLUDED.block_hash`,
            [e.txid, e.vout, e.amountSat.toString(), e.scriptHex.toLowerCase(), e.height, e.blockHash],
          );
        });
        return;
    }
  }

  // ------------------------------------------------------------ spends

  /**
   * Builds and signs the anchor of `channelId`: `amount` to the 2-of-2 of both commit keys, change
   * to a fresh wallet key; stores it (purpose 'anchor') and marks its coins spent. Not broadcast:
   * the core asks for it with `anchorTx` after open_commit_sig. A second call for the same
   * channel returns the stored anchor.
   */
  async fundAnchor(p: {
    channelId: string;
    signerChannel: number;
    amount: Sat;
    commitKeys: [ourHex: string, theirHex: string];
  }): Promise<{ outpoint: OutPoint; amount: Sat; txid: string }> {
    const ours = Buffer.from(p.commitKeys[0], "hex");
    const theirs = Buffer.from(p.commitKeys[1], "hex");
    const stored = await this.#storedAnchor(p.channelId);
    if (stored) return stored;
    const change = await this.#newKey();
    return inTransaction(this.o.pool, async (c) => {
      // One anchor per channel: concurrent calls for the same channel wait here, then find it.
      await c.query("SELECT pg_advisory_xact_lock(hashtext($1))", [
        `ln-wallet-anchor:${this.o.schema}:${p.channelId}`,
      ]);
      const again = await this.#storedAnchor(p.channelId, c);
      if (again) return again;
      const { spend, coins } = await this.#selectCoins(c, p.amount, (utxos) =>
        buildAnchor({
          utxos,
          commitKeys: [ours, theirs],
          amount: p.amount,
          changeScript: change.script,
          feeRate: this.o.feeRatePerKvb,
        }),
      );
      const owners: Sendable<OutputOwnerMsg>[] = [
        { anchor: { channel: p.signerChannel, peer_commit_key: theirs } },
        ...(spend.changeVout === undefined ? [] : [{ wallet_key_index: change.keyIndex }]),
      ];
      const tx = await this.#sign(spend, coins, owners, "anchor");
      await this.#store(c, tx, coins, spend, "anchor", p.channelId, false);
      return {
        outpoint: { txid: txidFromHex(tx.getId()), vout: spend.anchorVout },
        amount: p.amount,
        txid: tx.getId(),
      };
    });
  }

  async #storedAnchor(
    channelId: string,
    c: pg.Pool | pg.PoolClient = this.o.pool,
  ): Promise<{ outpoint: OutPoint; amount: Sat; txid: string } | undefined> {
    const r = await c.query<SpendRow>(
      `SELECT txid, tx_hex FROM ${this.#s}.wallet_spends WHERE channel_id = $1 AND purpose = 'anchor'`,
      [channelId],
    );
    const row = r.rows[0];
    if (row === undefined) return undefined;
    const out = Transaction.fromHex(row.tx_hex).outs[0]!; // buildAnchor: the anchor is output 0
    return { outpoint: { txid: txidFromHex(row.txid), vout: 0 }, amount: sat(out.value), txid: row.txid };
  }

  /**
   * The signed anchor of `channelId` (hex), for the core's broadcast_anchor; marks it as handed
   * out for broadcast, so `rebroadcastUnconfirmed` re-sends it from then on (never before).
   */
  async anchorTx(channelId: string): Promise<string | undefined> {
    const r = await this.o.pool.query<{ tx_hex: string }>(
      `UPDATE ${this.#s}.wallet_spends SET broadcast_at = COALESCE(broadcast_at, now())
       WHERE channel_id = $1 AND purpose = 'anchor' RETURNING tx_hex`,
      [channelId],
    );
    return r.rows[0]?.tx_hex;
  }

  /**
   * Gives back the coins of an anchor that was never handed out for broadcast (the channel
   * failed before open_commit_sig): deletes it and un-spends its coins. False if there is none or
   * it may have been broadcast.
   */
  async releaseAnchor(channelId: string): Promise<boolean> {
    return inTransaction(this.o.pool, async (c) => {
      const r = await c.query<{ txid: string }>(
        `DELETE FROM ${this.#s}.wallet_spends
         WHERE channel_id = $1 AND purpose = 'anchor' AND broadcast_at IS NULL RETURNING txid`,
        [channelId],
      );
      const txid = r.rows[0]?.txid;
      if (txid === undefined) return false;
      await c.query(`UPDATE ${this.#s}.wallet_utxos SET spent_by = NULL WHERE spent_by = $1`, [txid]);
      return true;
    });
  }

  /**
   * Pays `amountSat` to `address` (this network's P2WPKH, P2WSH, P2SH or P2PKH), change to a fresh
   * wallet key; signed (within the signer's SIGNER_MAX_WITHDRAWAL_SAT), stored, then broadcast.
   * The destination script is watched too, so its confirmation is seen even without change.
   */
  async withdraw(p: { address: string; amountSat: Sat }): Promise<{ txid: string }> {
    const script = this.#script(p.address);
    if (p.amountSat < DUST_SAT)
      throw new WalletError("INVALID_AMOUNT", `a withdrawal pays at least ${DUST_SAT} sat (the dust limit)`);
    await this.o.chain.watchScripts([script.toString("hex")]);
    const change = await this.#newKey();
    const tx = await inTransaction(this.o.pool, async (c) => {
      const { spend, coins } = await this.#selectCoins(c, p.amountSat, (utxos) =>
        buildWalletSpend(utxos, [{ script, amount: p.amountSat }], change.script, this.o.feeRatePerKvb),
      );
      const owners: Sendable<OutputOwnerMsg>[] = [
        { external: { script } },
        ...(spend.changeVout === undefined ? [] : [{ wallet_key_index: change.keyIndex }]),
      ];
      const signed = await this.#sign(spend, coins, owners, "withdrawal");
      await this.#store(c, signed, coins, spend, "withdrawal", null, true);
      return signed;
    });
    // Stored first: if the broadcast fails it is re-sent by rebroadcastUnconfirmed.
    const txid = await this.o.chain.broadcast(tx.toHex());
    return { txid };
  }

  #script(address: string): Buffer {
    let script: Buffer;
    try {
      script = Buffer.from(bjsAddress.toOutputScript(address, this.o.network));
    } catch {
      throw new WalletError(
        "INVALID_ADDRESS",
        `${JSON.stringify(address)} is not a ${this.o.network.bech32} network address; check the address and the network`,
      );
    }
    const kinds = [payments.p2wpkh, payments.p2wsh, payments.p2sh, payments.p2pkh];
    const known = kinds.some((k) => {
      try {
        k({ output: script });
        return true;
      } catch {
        return false;
      }
    });
    if (!known)
      throw new WalletError(
        "INVALID_ADDRESS",
        `${address}: withdrawals pay only P2WPKH, P2WSH, P2SH or P2PKH addresses`,
      );
    return script;
  }

  /**
   * Locks unspent coins one at a time, largest first, skipping those another spend holds, until
   * `build` succeeds (the coins cover the outputs and the fee).
   */
  async #selectCoins<S extends WalletSpend>(
    c: pg.PoolClient,
    amount: Sat,
    build: (utxos: WalletUtxo[]) => S,
  ): Promise<{ spend: S; coins: Coin[] }> {
    const coins: Coin[] = [];
    const keys = new Map<number, Buffer>();
    for (;;) {
      const taken = coins.map((x) => `${x.utxo.outpoint.txid}:${x.utxo.outpoint.vout}`);
      const r = await c.query<CoinRow>(
        `SELECT txid, vout, amount_sat::text, key_index FROM ${this.#s}.wallet_utxos
         WHERE spent_by IS NULL AND NOT (txid || ':' || vout) = ANY($1::text[])
         ORDER BY wallet_utxos.amount_sat DESC, txid, vout LIMIT 1 FOR UPDATE SKIP LOCKED`,
        [taken],
      );
      const row = r.rows[0];
      if (row === undefined) {
        const total = coins.reduce<bigint>((a, x) => a + x.utxo.amount, 0n);
        if (coins.length === 0)
          throw new WalletError(
            "NO_SEGWIT_COINS",
            `the wallet has no confirmed segwit coin to spend (or all are in use by other spends); ${DEPOSIT_HINT}`,
          );
        throw new WalletError(
          "INSUFFICIENT_FUNDS",
          `the wallet's available coins (${total} sat) do not cover ${amount} sat plus the fee at ${this.o.feeRatePerKvb} sat/kvB; ${DEPOSIT_HINT}`,
        );
      }
      let pubkey = keys.get(row.key_index);
      if (pubkey === undefined) {
        pubkey = Buffer.from((await this.o.signer.call("WalletKey", { index: row.key_index })).pubkey);
        keys.set(row.key_index, pubkey);
      }
      coins.push({
        keyIndex: row.key_index,
        utxo: {
          outpoint: { txid: txidFromHex(row.txid), vout: row.vout },
          amount: sat(BigInt(row.amount_sat)),
          pubkey,
        },
      });
      try {
        return { spend: build(coins.map((x) => x.utxo)), coins };
      } catch (e) {
        if (!(e instanceof TxWalletError)) throw e;
      }
    }
  }

  async #sign(
    spend: WalletSpend,
    coins: readonly Coin[],
    outputs: Sendable<OutputOwnerMsg>[],
    what: string,
  ): Promise<Transaction> {
    let reply;
    try {
      reply = await this.o.signer.call("SignWalletSpend", {
        tx_hex: spend.tx.toHex(),
        inputs: coins.map((x) => ({ key_index: x.keyIndex, amount_sat: x.utxo.amount })),
        outputs,
      });
    } catch (e) {
      const r = signerRefusal(e);
      if (r === undefined) throw e;
      const limit = r.code === "WITHDRAWALS_DISABLED" || r.code === "WITHDRAWAL_TOO_LARGE";
      throw new WalletError(
        limit ? "WITHDRAWAL_LIMIT" : "SIGNER_REFUSED",
        `the signer refused the ${what}: ${r.details}`,
      );
    }
    const sigs = [...reply.signatures].sort((a, b) => a.input_index - b.input_index).map((s) => s.signature);
    return finalizeWalletSpend(spend, sigs);
  }

  async #store(
    c: pg.PoolClient,
    tx: Transaction,
    coins: readonly Coin[],
    spend: WalletSpend,
    purpose: "anchor" | "withdrawal",
    channelId: string | null,
    broadcast: boolean,
  ): Promise<void> {
    const txid = tx.getId();
    const change = spend.changeVout === undefined ? 0n : tx.outs[spend.changeVout]!.value;
    await c.query(
      `INSERT INTO ${this.#s}.wallet_spends (txid, tx_hex, purpose, channel_id, change_sat, broadcast_at)
       VALUES ($1, $2, $3, $4, $5, ${broadcast ? "now()" : "NULL"})`,
      [txid, tx.toHex(), purpose, channelId, change.toString()],
    );
    for (const x of coins)
      await c.query(`UPDATE ${this.#s}.wallet_utxos SET spent_by = $3 WHERE txid = $1 AND vout = $2`, [
        x.utxo.outpoint.txid,
        x.utxo.outpoint.vout,
        txid,
      ]);
  }

  /**
   * Re-sends every spend handed out for broadcast and not yet seen in a block (call at start).
   * Returns how many the chain took; the others are logged and tried again next time.
   */
  async rebroadcastUnconfirmed(): Promise<number> {
    const r = await this.o.pool.query<SpendRow>(
      `SELECT txid, tx_hex FROM ${this.#s}.wallet_spends
       WHERE broadcast_at IS NOT NULL AND confirmed_height IS NULL ORDER BY created_at`,
    );
    let sent = 0;
    for (const row of r.rows) {
      try {
        await this.o.chain.broadcast(row.tx_hex);
        sent++;
      } catch (e) {
        this.o.log?.(
          `wallet: re-broadcast of ${row.txid} failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
    return sent;
  }
}
