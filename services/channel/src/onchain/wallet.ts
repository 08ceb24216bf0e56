/**
 * The channel service's on-chain wallet: P2WPKH coins only (DESIGN.md 7: an anchor funded from
 * segwit inputs keeps its txid unmalleable). Keys come from the signer (`WalletKey`), signatures
 * too (`SignWalletSpend`, whose policy checks every output); the books are in this service's
 * schema (migrations 3 and 4: wallet_keys, wallet_utxos, wallet_spends).
 *
 * - Coins are learned only from the chain watcher's `wallet_output` events (confirmed outputs
 *   paying a watched script); a script is watched before its address is handed out. Each event
 *   carries the transaction holding the coin (migration 12: `tx_hex`), sent with the coin to the
 *   signer (`prev_tx_hex`), which reads the coin's amount there rather than trusting ours.
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
 * - Sweeps (migration 5: final_scripts, final_coins): a cooperative close pays us to
 *   P2SH(<final key> OP_CHECKSIG), a script of the signer's channel keys, not a wallet key.
 *   `watchFinalKey` watches it when the channel is created; each such confirmed output (a "final
 *   coin") is recorded and swept at once, alone, to a fresh wallet key (`SignSweep`; stored in
 *   wallet_spends as purpose 'sweep', then broadcast). The swept output comes back as an
 *   ordinary wallet coin. Until the sweep is signed the coin counts in `unconfirmedSat`, and
 *   from then on the sweep's output (the coin less the fee) does, until it is seen in a block.
 *   A coin whose sweep failed (signer unreachable, refusal, too small for the fee) stays unswept
 *   and is tried again by `sweepPending` (at each new block and from `rebroadcastUnconfirmed`).
 *   Reorg: unswept final coins at heights >= h are forgotten; a signed sweep is kept and
 *   re-broadcast like any other spend.
 */
import type { Log } from "@ln/log";
import { sat, txidFromHex, type OutPoint, type Sat } from "@ln/bitcoin";
import { inTransaction, quoteSchema } from "@ln/postgres";
import type { ChainEvent } from "@ln/proto";
import type { OutputOwnerMsg, Sendable, SignerClient, SweepInputMsg } from "@ln/signer-client";
import {
  buildAnchor,
  buildSpend,
  buildWalletSpend,
  finalizeSpend,
  finalizeWalletSpend,
  p2wpkhOutput,
  SpendError,
  WalletError as TxWalletError,
  type Spend,
  type WalletSpend,
  type WalletUtxo,
} from "@ln/tx";
import {
  address as bjsAddress,
  opcodes,
  payments,
  script as bscript,
  Transaction,
  type Network,
} from "bitcoinjs-lib";
import type pg from "pg";
import type { WithdrawalRecord } from "../api/backend.js";

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
  /** The signer refused the withdrawal for its limits (SIGNER_MAX_WITHDRAWAL_SAT, ..._PER_DAY). */
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

const DEPOSIT_HINT = "deposit to an address from POST /v1/wallet/address and wait for one confirmation";
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
  log?: Log;
}

interface CoinRow {
  txid: string;
  vout: number;
  amount_sat: string;
  key_index: number;
  tx_hex: string;
}

interface Coin {
  utxo: WalletUtxo;
  keyIndex: number;
  /** The transaction holding the coin: the signer reads its amount from it. */
  txHex: string;
}

interface SpendRow {
  txid: string;
  tx_hex: string;
}

interface FinalCoinRow {
  txid: string;
  vout: number;
  amount_sat: string;
  tx_hex: string | null;
  channel_id: string;
  signer_channel: number;
  final_pubkey: string;
}

/** `<final key> OP_CHECKSIG`: what a cooperative close's output to us locks (packages/scripts toOtherScript). */
export function finalRedeemScript(finalPubkey: Uint8Array): Buffer {
  return Buffer.from(bscript.compile([Buffer.from(finalPubkey), opcodes.OP_CHECKSIG]));
}

/** The P2SH output script of `finalRedeemScript`. */
export function finalOutputScript(finalPubkey: Uint8Array): Buffer {
  return Buffer.from(payments.p2sh({ redeem: { output: finalRedeemScript(finalPubkey) } }).output!);
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/** The signer's refusal code and text from a gRPC error ("CODE: text" in `details`). */
export function signerRefusal(e: unknown): { code: string; details: string } | undefined {
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

  /**
   * Watches the output a cooperative close of `channelId` pays us: P2SH(<final key> OP_CHECKSIG)
   * of the signer's channel `signerChannel` (NewChannel's final_pubkey). Watched first, then
   * stored; idempotent. Its confirmed outputs are then swept to the wallet (see the top).
   */
  async watchFinalKey(p: {
    channelId: string;
    signerChannel: number;
    finalPubkeyHex: string;
  }): Promise<void> {
    const pubkey = Buffer.from(p.finalPubkeyHex, "hex");
    if (pubkey.length !== 33 || (pubkey[0] !== 0x02 && pubkey[0] !== 0x03))
      throw new Error(`channel ${p.channelId}: the final key is not a 33-byte compressed point`);
    const scriptHex = finalOutputScript(pubkey).toString("hex");
    await this.o.chain.watchScripts([scriptHex]);
    await this.o.pool.query(
      `INSERT INTO ${this.#s}.final_scripts (script_hex, channel_id, signer_channel, final_pubkey)
       VALUES ($1, $2, $3, $4) ON CONFLICT (script_hex) DO NOTHING`,
      [scriptHex, p.channelId, p.signerChannel, pubkey.toString("hex")],
    );
  }

  // ------------------------------------------------------------ books

  /**
   * `confirmedSat`: confirmed wallet coins not spent by us. `unconfirmedSat`: what our own spends
   * not yet seen in a block pay back to wallet keys (change, a sweep's output), plus the final
   * coins (close outputs) not swept yet.
   */
  async balance(): Promise<{ confirmedSat: Sat; unconfirmedSat: Sat }> {
    const r = await this.o.pool.query<{ confirmed: string; unconfirmed: string }>(
      `SELECT
         (SELECT COALESCE(SUM(amount_sat), 0) FROM ${this.#s}.wallet_utxos WHERE spent_by IS NULL)::text AS confirmed,
         ((SELECT COALESCE(SUM(change_sat), 0) FROM ${this.#s}.wallet_spends WHERE confirmed_height IS NULL)
          + (SELECT COALESCE(SUM(amount_sat), 0) FROM ${this.#s}.final_coins WHERE swept_by IS NULL))::text AS unconfirmed`,
    );
    const row = r.rows[0]!;
    return { confirmedSat: sat(BigInt(row.confirmed)), unconfirmedSat: sat(BigInt(row.unconfirmed)) };
  }

  /**
   * Outputs of closes that pay us and are not a confirmed wallet coin yet, so a balance read right
   * after a close does not look like lost money: final coins not swept (`unswept`) or whose sweep
   * is not in a block (`sweeping`), and the resolution's claims of a unilateral close still time
   * locked (`waiting`, from `maturesAtHeight`) or being swept. A claim the wallet sweeps (status
   * 'wallet', an output to our final key) is listed once, as its final coin.
   */
  async closeOutputs(): Promise<
    {
      channelId: string;
      txid: string;
      vout: number;
      amountSat: Sat;
      status: "unswept" | "waiting" | "sweeping";
      maturesAtHeight: number | undefined;
      sweepTxid: string | undefined;
    }[]
  > {
    const r = await this.o.pool.query<{
      channel_id: string;
      txid: string;
      vout: number;
      amount_sat: string;
      status: "unswept" | "waiting" | "sweeping";
      matures_at: number | null;
      sweep_txid: string | null;
    }>(
      `SELECT fs.channel_id, fc.txid, fc.vout, fc.amount_sat::text,
              CASE WHEN fc.swept_by IS NULL THEN 'unswept' ELSE 'sweeping' END AS status,
              NULL::integer AS matures_at, fc.swept_by AS sweep_txid
         FROM ${this.#s}.final_coins fc JOIN ${this.#s}.final_scripts fs USING (script_hex)
         LEFT JOIN ${this.#s}.wallet_spends ws ON ws.txid = fc.swept_by
        WHERE fc.swept_by IS NULL OR ws.confirmed_height IS NULL
       UNION ALL
       SELECT c.channel_id, r.spend_txid, c.vout, c.amount_sat::text, c.status,
              CASE WHEN c.status = 'waiting' THEN c.ready_height END, c.sweep_txid
         FROM ${this.#s}.onchain_claims c JOIN ${this.#s}.onchain_resolutions r USING (channel_id)
        WHERE c.status IN ('waiting', 'sweeping') AND c.what <> 'watch'
        ORDER BY 1, 2, 3`,
    );
    return r.rows.map((row) => ({
      channelId: row.channel_id,
      txid: row.txid,
      vout: row.vout,
      amountSat: sat(BigInt(row.amount_sat)),
      status: row.status,
      maturesAtHeight: row.matures_at ?? undefined,
      sweepTxid: row.sweep_txid ?? undefined,
    }));
  }

  /** One chain watcher event (idempotent: the stream may deliver an event again). */
  async onChainEvent(e: ChainEvent): Promise<void> {
    switch (e.kind) {
      case "block_connected":
        // Retries the sweeps that failed (nothing to do, one query, in the usual case).
        await this.sweepPending();
        return;
      case "block_disconnected":
        await inTransaction(this.o.pool, async (c) => {
          await c.query(`DELETE FROM ${this.#s}.wallet_utxos WHERE height >= $1 AND spent_by IS NULL`, [
            e.height,
          ]);
          await c.query(`DELETE FROM ${this.#s}.final_coins WHERE height >= $1 AND swept_by IS NULL`, [
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
      case "wallet_output": {
        const final = await inTransaction(this.o.pool, async (c) => {
          // Any output of one of our spends in a block (our change, or a watched withdrawal
          // destination) confirms that spend.
          await c.query(`UPDATE ${this.#s}.wallet_spends SET confirmed_height = $2 WHERE txid = $1`, [
            e.txid,
            e.height,
          ]);
          const txHex = e.txHex === "" ? null : e.txHex;
          await c.query(
            `INSERT INTO ${this.#s}.wallet_utxos (txid, vout, amount_sat, key_index, height, block_hash, tx_hex)
             SELECT $1, $2, $3, key_index, $5, $6, $7 FROM ${this.#s}.wallet_keys WHERE script_hex = $4
             ON CONFLICT (txid, vout) DO UPDATE SET height = EXCLUDED.height, block_hash = EXCLUDED.block_hash,
               tx_hex = COALESCE(EXCLUDED.tx_hex, wallet_utxos.tx_hex)`,
            [e.txid, e.vout, e.amountSat.toString(), e.scriptHex.toLowerCase(), e.height, e.blockHash, txHex],
          );
          // A close output to one of our final keys: recorded, then swept below.
          const f = await c.query<{ swept_by: string | null }>(
            `INSERT INTO ${this.#s}.final_coins (txid, vout, amount_sat, script_hex, height, block_hash, tx_hex)
             SELECT $1, $2, $3, script_hex, $5, $6, $7 FROM ${this.#s}.final_scripts WHERE script_hex = $4
             ON CONFLICT (txid, vout) DO UPDATE SET height = EXCLUDED.height, block_hash = EXCLUDED.block_hash,
               tx_hex = COALESCE(EXCLUDED.tx_hex, final_coins.tx_hex)
             RETURNING swept_by`,
            [e.txid, e.vout, e.amountSat.toString(), e.scriptHex.toLowerCase(), e.height, e.blockHash, txHex],
          );
          return f.rows[0] !== undefined && f.rows[0].swept_by === null;
        });
        if (final) {
          // A failure leaves the coin unswept for sweepPending; the event itself is handled.
          try {
            await this.#sweepCoin(e.txid, e.vout);
          } catch (err) {
            this.o.log?.warn(`wallet: sweeping ${e.txid}:${e.vout} failed: ${message(err)}`);
          }
        }
        return;
      }
    }
  }

  // ------------------------------------------------------------ sweeps

  /**
   * Sweeps every final coin not swept yet (one transaction each); returns how many sweeps were
   * signed and handed to the chain. Failures are logged and left for the next call.
   */
  async sweepPending(): Promise<number> {
    const r = await this.o.pool.query<{ txid: string; vout: number }>(
      `SELECT txid, vout FROM ${this.#s}.final_coins WHERE swept_by IS NULL ORDER BY created_at, txid, vout`,
    );
    let swept = 0;
    for (const row of r.rows) {
      try {
        if ((await this.#sweepCoin(row.txid, row.vout)) !== undefined) swept++;
      } catch (e) {
        this.o.log?.warn(`wallet: sweeping ${row.txid}:${row.vout} failed: ${message(e)}`);
      }
    }
    return swept;
  }

  /**
   * Sweeps one final coin, if not swept yet (nor being swept by a concurrent call: the row is
   * locked, SKIP LOCKED), to a fresh wallet key at `feeRatePerKvb` of its signed size (worst-case
   * signature); signed by SignSweep, stored (purpose 'sweep', its output as the spend's change)
   * and the coin marked in one transaction, then broadcast (a failed broadcast is retried by
   * rebroadcastUnconfirmed). The sweep's txid, or undefined if there was nothing to do.
   */
  async #sweepCoin(txid: string, vout: number): Promise<string | undefined> {
    const unswept = await this.o.pool.query(
      `SELECT 1 FROM ${this.#s}.final_coins WHERE txid = $1 AND vout = $2 AND swept_by IS NULL`,
      [txid, vout],
    );
    if (unswept.rowCount === 0) return undefined;
    const dest = await this.#newKey();
    const tx = await inTransaction(this.o.pool, async (c) => {
      const r = await c.query<FinalCoinRow>(
        `SELECT fc.txid, fc.vout, fc.amount_sat::text, fs.channel_id, fs.signer_channel, fs.final_pubkey,
           COALESCE(fc.tx_hex, (SELECT spend_hex FROM ${this.#s}.onchain_resolutions WHERE spend_txid = fc.txid LIMIT 1)) AS tx_hex
         FROM ${this.#s}.final_coins fc JOIN ${this.#s}.final_scripts fs USING (script_hex)
         WHERE fc.txid = $1 AND fc.vout = $2 AND fc.swept_by IS NULL
         FOR UPDATE OF fc SKIP LOCKED`,
        [txid, vout],
      );
      const row = r.rows[0];
      if (row === undefined) return undefined;
      const pubkey = Buffer.from(row.final_pubkey, "hex");
      const amount = sat(BigInt(row.amount_sat));
      let spend: Spend;
      try {
        spend = buildSpend(
          [
            {
              coin: {
                outpoint: { txid: txidFromHex(row.txid), vout: row.vout },
                amount,
                redeemScript: finalRedeemScript(pubkey),
                pubkey,
              },
              path: { kind: "key" },
            },
          ],
          dest.script,
          this.o.feeRatePerKvb,
        );
      } catch (e) {
        if (!(e instanceof SpendError)) throw e;
        throw new WalletError(
          "INSUFFICIENT_FUNDS",
          `the close output ${row.txid}:${row.vout} (${amount} sat) does not cover a sweep at ${this.o.feeRatePerKvb} sat/kvB: ${e.message}`,
        );
      }
      const signed = await this.#signSweep(
        spend,
        row.signer_channel,
        [{ input_index: 0, amount_sat: amount, final_key: {}, prev_tx_hex: row.tx_hex ?? "" }],
        dest.keyIndex,
      );
      const sweepTxid = signed.getId();
      await c.query(
        `INSERT INTO ${this.#s}.wallet_spends (txid, tx_hex, purpose, channel_id, change_sat, broadcast_at)
         VALUES ($1, $2, 'sweep', $3, $4, now())`,
        [sweepTxid, signed.toHex(), row.channel_id, signed.outs[0]!.value.toString()],
      );
      await c.query(`UPDATE ${this.#s}.final_coins SET swept_by = $3 WHERE txid = $1 AND vout = $2`, [
        row.txid,
        row.vout,
        sweepTxid,
      ]);
      return signed;
    });
    if (tx === undefined) return undefined;
    try {
      await this.o.chain.broadcast(tx.toHex());
    } catch (e) {
      this.o.log?.warn(`wallet: broadcast of sweep ${tx.getId()} failed (re-broadcast later): ${message(e)}`);
    }
    return tx.getId();
  }

  /**
   * Sweeps outputs of a unilateral close (draft 6.2; resolution.ts) to a fresh wallet key: `build`
   * makes the unsigned spends paying the key's script, `describe` tells the signer how each input
   * is spent; each spend is signed, stored as a sweep (purpose 'sweep') in one transaction with
   * what `record` writes, then broadcast (a failed broadcast is retried by rebroadcastUnconfirmed).
   * Returns the sweeps' txids.
   */
  async sweepOutputs(p: {
    channelId: string;
    signerChannel: number;
    build: (destination: Buffer) => Spend[];
    describe: (spend: Spend) => Sendable<SweepInputMsg>[];
    record: (c: pg.PoolClient, spend: Spend, txid: string) => Promise<void>;
  }): Promise<string[]> {
    const dest = await this.#newKey();
    const signed: Transaction[] = [];
    for (const spend of p.build(dest.script)) {
      const tx = await this.#signSweep(spend, p.signerChannel, p.describe(spend), dest.keyIndex);
      await inTransaction(this.o.pool, async (c) => {
        await c.query(
          `INSERT INTO ${this.#s}.wallet_spends (txid, tx_hex, purpose, channel_id, change_sat, broadcast_at)
           VALUES ($1, $2, 'sweep', $3, $4, now()) ON CONFLICT DO NOTHING`,
          [tx.getId(), tx.toHex(), p.channelId, tx.outs[0]!.value.toString()],
        );
        await p.record(c, spend, tx.getId());
      });
      signed.push(tx);
    }
    for (const tx of signed)
      await this.o.chain.broadcast(tx.toHex()).catch((e: unknown) => {
        this.o.log?.warn(
          `wallet: broadcast of sweep ${tx.getId()} failed (re-broadcast later): ${message(e)}`,
        );
      });
    return signed.map((tx) => tx.getId());
  }

  async #signSweep(
    spend: Spend,
    signerChannel: number,
    inputs: Sendable<SweepInputMsg>[],
    walletKey: number,
  ): Promise<Transaction> {
    let reply;
    try {
      reply = await this.o.signer.call("SignSweep", {
        channel: signerChannel,
        tx_hex: spend.tx.toHex(),
        inputs,
        outputs: spend.tx.outs.map(() => ({ wallet_key_index: walletKey })),
      });
    } catch (e) {
      const r = signerRefusal(e);
      if (r === undefined) throw e;
      throw new WalletError("SIGNER_REFUSED", `the signer refused the sweep: ${r.details}`);
    }
    const sigs = [...reply.signatures].sort((a, b) => a.input_index - b.input_index).map((x) => x.signature);
    return finalizeSpend(spend, sigs);
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
  async withdraw(
    p: { address: string; amountSat: Sat },
    record?: WithdrawalRecord,
  ): Promise<{ txid: string }> {
    const script = this.#script(p.address);
    if (p.amountSat < DUST_SAT)
      throw new WalletError("INVALID_AMOUNT", `a withdrawal pays at least ${DUST_SAT} sat (the dust limit)`);
    await this.o.chain.watchScripts([script.toString("hex")]);
    const change = await this.#newKey();
    const tx = await inTransaction(this.o.pool, async (c) => {
      // The caller's request record (the API's idempotency key) commits with the spend or not at all.
      await record?.claim(c);
      const { spend, coins } = await this.#selectCoins(c, p.amountSat, (utxos) =>
        buildWalletSpend(utxos, [{ script, amount: p.amountSat }], change.script, this.o.feeRatePerKvb),
      );
      const owners: Sendable<OutputOwnerMsg>[] = [
        { external: { script } },
        ...(spend.changeVout === undefined ? [] : [{ wallet_key_index: change.keyIndex }]),
      ];
      const signed = await this.#sign(spend, coins, owners, "withdrawal");
      await this.#store(c, signed, coins, spend, "withdrawal", null, true);
      await record?.complete(c, signed.getId());
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
      // A coin is spendable once we hold the transaction holding it (the signer reads its amount
      // there): from its wallet_output event, or our own spend for change recorded before those
      // events carried it.
      const r = await c.query<CoinRow>(
        `SELECT u.txid, u.vout, u.amount_sat::text, u.key_index, COALESCE(u.tx_hex, s.tx_hex) AS tx_hex
         FROM ${this.#s}.wallet_utxos u LEFT JOIN ${this.#s}.wallet_spends s ON s.txid = u.txid
         WHERE u.spent_by IS NULL AND COALESCE(u.tx_hex, s.tx_hex) IS NOT NULL
           AND NOT (u.txid || ':' || u.vout) = ANY($1::text[])
         ORDER BY u.amount_sat DESC, u.txid, u.vout LIMIT 1 FOR UPDATE OF u SKIP LOCKED`,
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
        txHex: row.tx_hex,
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
        inputs: coins.map((x) => ({
          key_index: x.keyIndex,
          amount_sat: x.utxo.amount,
          prev_tx_hex: x.txHex,
        })),
        outputs,
      });
    } catch (e) {
      const r = signerRefusal(e);
      if (r === undefined) throw e;
      const limit = ["WITHDRAWALS_DISABLED", "WITHDRAWAL_TOO_LARGE", "WITHDRAWAL_LIMIT_REACHED"].includes(
        r.code,
      );
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

  /** Re-sends one stored spend (a sweep a reorg or the mempool dropped); a failure is logged. */
  async rebroadcast(txid: string): Promise<void> {
    const r = await this.o.pool.query<SpendRow>(
      `SELECT txid, tx_hex FROM ${this.#s}.wallet_spends WHERE txid = $1`,
      [txid],
    );
    const row = r.rows[0];
    if (row === undefined) return;
    await this.o.chain.broadcast(row.tx_hex).catch((e: unknown) => {
      this.o.log?.warn(`wallet: re-broadcast of ${row.txid} failed: ${message(e)}`);
    });
  }

  /**
   * Re-sends every spend handed out for broadcast and not yet seen in a block (call at start),
   * then sweeps the final coins not swept yet (`sweepPending`). Returns how many the chain took
   * plus how many sweeps were made; the others are logged and tried again next time.
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
        this.o.log?.warn(
          `wallet: re-broadcast of ${row.txid} failed: ${e instanceof Error ? e.message : String(e)}`,
        );
      }
    }
    // Close outputs whose sweep was never signed (a crash, the signer down): swept now.
    return sent + (await this.sweepPending());
  }
}
