/**
 * The wallet sweeps cooperative-close outputs to our final key (P2SH(<final> OP_CHECKSIG)) into
 * wallet coins: an embedded signer (gRPC/mTLS, its own Postgres schema) and a real regtest node;
 * the chain watcher is faked and its wallet_output events are built here, as in wallet.test.ts.
 */
import { recordingLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { sat } from "@ln/bitcoin";
import type { ChainEvent } from "@ln/proto";
import type { Regtest } from "@ln/regtest";
import { SignerClient } from "@ln/signer-client";
import { networks, payments, script as bscript, Transaction } from "bitcoinjs-lib";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Wallet, type WalletChain } from "../src/onchain/wallet.js";
import { FakeChain, startWalletFixture, type WalletFixture } from "./wallet-fixture.js";

const FEE_RATE = 2000;

/** Names unique to this run (channel ids). */
const run = randomBytes(4).toString("hex");
let fx: WalletFixture;
let rt: Regtest;
let pool: pg.Pool;
let signer: SignerClient;

const newSchema = (): Promise<string> => fx.newSchema();
const outputsOf = (txHex: string, scripts: readonly string[]): Promise<ChainEvent[]> =>
  fx.outputsOf(txHex, scripts);

const walletOn = (schema: string, chain: WalletChain, client = signer, logs: string[] = []): Wallet =>
  new Wallet({
    pool,
    schema,
    signer: client,
    chain,
    network: networks.regtest,
    feeRatePerKvb: FEE_RATE,
    log: recordingLog((r) => logs.push(`${r.level} ${r.msg}`)),
  });

beforeAll(async () => {
  fx = await startWalletFixture("sweep");
  ({ rt, pool, signer } = fx);
}, 120_000);

afterAll(async () => {
  await fx?.close();
});

/** A channel's final key from the signer, and the close output script, built here by hand. */
async function channelFinal(): Promise<{
  signerChannel: number;
  final: Buffer;
  scriptHex: string;
  address: string;
}> {
  const r = await signer.call("NewChannel", {});
  const redeem = Buffer.concat([Buffer.of(0x21), r.final_pubkey, Buffer.of(0xac)]); // <final> OP_CHECKSIG
  const p2sh = payments.p2sh({ redeem: { output: redeem }, network: networks.regtest });
  return {
    signerChannel: r.channel,
    final: r.final_pubkey,
    scriptHex: Buffer.from(p2sh.output!).toString("hex"),
    address: p2sh.address!,
  };
}

const walletScripts = async (schema: string): Promise<string[]> =>
  (await pool.query<{ script_hex: string }>(`SELECT script_hex FROM "${schema}".wallet_keys`)).rows.map(
    (r) => r.script_hex,
  );

/** Checks a sweep independently: spends exactly `coin`, signed by `final`, pays one wallet key. */
async function checkSweep(
  hex: string,
  coin: { txid: string; vout: number; amount: bigint },
  final: Buffer,
  schema: string,
): Promise<{ tx: Transaction; fee: bigint }> {
  const tx = Transaction.fromHex(hex);
  expect(tx.ins).toHaveLength(1);
  expect(Buffer.from(tx.ins[0]!.hash).reverse().toString("hex")).toBe(coin.txid);
  expect(tx.ins[0]!.index).toBe(coin.vout);
  expect(tx.outs).toHaveLength(1);
  expect(await walletScripts(schema)).toContain(Buffer.from(tx.outs[0]!.script).toString("hex"));
  const [sig, redeem] = bscript.decompile(tx.ins[0]!.script)! as Uint8Array[];
  const redeemHex = Buffer.concat([Buffer.of(0x21), final, Buffer.of(0xac)]).toString("hex");
  expect(Buffer.from(redeem!).toString("hex")).toBe(redeemHex);
  const decoded = bscript.signature.decode(sig!);
  const digest = tx.hashForSignature(0, Buffer.from(redeem!), Transaction.SIGHASH_ALL);
  expect(ecc.verify(digest, final, decoded.signature, true)).toBe(true);
  const fee = coin.amount - tx.outs[0]!.value;
  // At FEE_RATE per 1000 bytes of the signed (legacy: virtual = real) size, within a few bytes
  // (sized with a worst-case 73-byte signature).
  const size = BigInt(tx.virtualSize());
  expect(fee).toBeGreaterThanOrEqual((size * BigInt(FEE_RATE)) / 1000n);
  expect(fee).toBeLessThanOrEqual(((size + 3n) * BigInt(FEE_RATE)) / 1000n + 1n);
  return { tx, fee };
}

describe("sweeping close outputs", () => {
  it("sweeps a close output to our final key into the wallet, once", async () => {
    const schema = await newSchema();
    const chain = new FakeChain(rt);
    const wallet = walletOn(schema, chain);
    const ch = await channelFinal();
    const channelId = `c-${run}-1`;
    await wallet.watchFinalKey({
      channelId,
      signerChannel: ch.signerChannel,
      finalPubkeyHex: ch.final.toString("hex"),
    });
    await wallet.watchFinalKey({
      channelId,
      signerChannel: ch.signerChannel,
      finalPubkeyHex: ch.final.toString("hex"),
    }); // idempotent
    expect(chain.watched).toContain(ch.scriptHex);
    expect(await wallet.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: 0n });

    // The close's output to us, confirmed.
    const amount = 700_000n;
    const f = await rt.fund(ch.address, sat(amount));
    const [event, ...more] = await outputsOf(f.hex, [ch.scriptHex]);
    expect(more).toHaveLength(0);
    await wallet.onChainEvent(event!);
    await wallet.onChainEvent(event!); // delivered twice: still one sweep
    expect(chain.broadcasts).toHaveLength(1);
    const sweepHex = chain.broadcasts[0]!;
    const { tx, fee } = await checkSweep(sweepHex, { txid: f.txid, vout: f.vout, amount }, ch.final, schema);
    // The node took it.
    expect(await rt.rpc.getRawMempool()).toContain(tx.getId());
    const spends = await pool.query<{ purpose: string; channel_id: string; broadcast_at: Date | null }>(
      `SELECT purpose, channel_id, broadcast_at FROM "${schema}".wallet_spends WHERE txid = $1`,
      [tx.getId()],
    );
    expect(spends.rows).toMatchObject([{ purpose: "sweep", channel_id: channelId }]);
    expect(spends.rows[0]!.broadcast_at).not.toBeNull();
    // Until the sweep is in a block, its output is unconfirmed.
    expect(await wallet.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: amount - fee });
    // Listed as a close output being swept, with the coin's own amount and the sweep's txid.
    expect(await wallet.closeOutputs()).toEqual([
      {
        channelId,
        txid: f.txid,
        vout: f.vout,
        amountSat: amount,
        status: "sweeping",
        maturesAtHeight: undefined,
        sweepTxid: tx.getId(),
      },
    ]);
    expect(await wallet.sweepPending()).toBe(0);

    await rt.mine(1);
    const block = await rt.rpc.getBlock(await rt.rpc.getBlockHash(rt.height()));
    expect(block.tx).toContain(tx.getId());
    const swept = await outputsOf(sweepHex, await walletScripts(schema));
    expect(swept).toHaveLength(1);
    for (const e of swept) await wallet.onChainEvent(e);
    expect(await wallet.balance()).toEqual({ confirmedSat: amount - fee, unconfirmedSat: 0n });
    expect(await wallet.closeOutputs()).toEqual([]); // a wallet coin now
    expect(await wallet.rebroadcastUnconfirmed()).toBe(0);
    expect(chain.broadcasts).toHaveLength(1);
  });

  it("keeps an unswept coin when the signer is down, forgets it on a reorg, sweeps it after a restart", async () => {
    const schema = await newSchema();
    const chain = new FakeChain(rt);
    const logs: string[] = [];
    // A signer client to nowhere: every call fails (UNAVAILABLE).
    const down = new SignerClient("127.0.0.1:1", {
      ca: fx.pems.ca,
      cert: fx.pems.clientCert,
      key: fx.pems.clientKey,
    });
    const ch = await channelFinal();
    const channelId = `c-${run}-2`;
    // The final key is watched while the signer was still up (keys come from NewChannel).
    await walletOn(schema, chain).watchFinalKey({
      channelId,
      signerChannel: ch.signerChannel,
      finalPubkeyHex: ch.final.toString("hex"),
    });
    const broken = walletOn(schema, chain, down, logs);
    const amount = 300_000n;
    const f = await rt.fund(ch.address, sat(amount));
    const height = rt.height();
    const [event] = await outputsOf(f.hex, [ch.scriptHex]);
    await broken.onChainEvent(event!); // recorded, the sweep fails and is logged, the event is handled
    expect(chain.broadcasts).toHaveLength(0);
    expect(logs.some((l) => l.startsWith("warn ") && l.includes(`sweeping ${f.txid}:${f.vout} failed`))).toBe(
      true,
    );
    expect(await broken.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: amount });
    expect(await broken.closeOutputs()).toEqual([
      {
        channelId,
        txid: f.txid,
        vout: f.vout,
        amountSat: amount,
        status: "unswept",
        maturesAtHeight: undefined,
        sweepTxid: undefined,
      },
    ]);

    // Its block is disconnected: the unswept coin is forgotten; the new branch reports it again.
    await broken.onChainEvent({ kind: "block_disconnected", height, hash: "00".repeat(32) });
    expect(await broken.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: 0n });
    await broken.onChainEvent(event!);
    expect(await broken.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: amount });
    down.close();

    // Restarted with the signer up: swept at start.
    const wallet = walletOn(schema, chain);
    expect(await wallet.rebroadcastUnconfirmed()).toBe(1);
    expect(chain.broadcasts).toHaveLength(1);
    const { tx, fee } = await checkSweep(
      chain.broadcasts[0]!,
      { txid: f.txid, vout: f.vout, amount },
      ch.final,
      schema,
    );
    expect(await wallet.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: amount - fee });
    // A disconnected block no longer forgets the coin: the sweep is kept and re-broadcast.
    await wallet.onChainEvent({ kind: "block_disconnected", height, hash: "00".repeat(32) });
    expect(await wallet.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: amount - fee });
    expect(await wallet.rebroadcastUnconfirmed()).toBe(1);
    expect(chain.broadcasts).toHaveLength(2);
    await rt.mine(1);
    for (const e of await outputsOf(tx.toHex(), await walletScripts(schema))) await wallet.onChainEvent(e);
    expect(await wallet.balance()).toEqual({ confirmedSat: amount - fee, unconfirmedSat: 0n });
  });

  it("lists a unilateral close's claims still time-locked or being swept, not the final key's or the peer's", async () => {
    const schema = await newSchema();
    const wallet = walletOn(schema, new FakeChain(rt));
    const channelId = `c-${run}-3`;
    const spendTxid = "ab".repeat(32);
    // The rows resolution.ts writes for our own commitment on chain (its view is tested there).
    await pool.query(`INSERT INTO "${schema}".channels (id, state) VALUES ($1, '{}')`, [channelId]);
    await pool.query(
      `INSERT INTO "${schema}".onchain_resolutions (channel_id, kind, spend_txid, spend_hex, number, height)
       VALUES ($1, 'our_commitment', $2, '00', 3, 200)`,
      [channelId, spendTxid],
    );
    const claims: [number, string, number, string, number | null, string | null][] = [
      [0, "delayed", 40_000, "waiting", 344, null],
      [1, "htlc_timeout", 5_000, "sweeping", 250, "cd".repeat(32)],
      [2, "to_us", 7_000, "wallet", null, null], // the wallet's final coin, listed from there
      [3, "watch", 6_000, "watching", null, null], // the peer's HTLC: not ours unless R
      [4, "htlc_redeem", 8_000, "swept", null, "ef".repeat(32)], // a wallet coin now
    ];
    for (const [vout, what, amount, status, ready, sweep] of claims)
      await pool.query(
        `INSERT INTO "${schema}".onchain_claims (channel_id, vout, what, amount_sat, ready_height, status, sweep_txid)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
        [channelId, vout, what, amount, ready, status, sweep],
      );
    expect(await wallet.closeOutputs()).toEqual([
      {
        channelId,
        txid: spendTxid,
        vout: 0,
        amountSat: 40_000n,
        status: "waiting",
        maturesAtHeight: 344,
        sweepTxid: undefined,
      },
      {
        channelId,
        txid: spendTxid,
        vout: 1,
        amountSat: 5_000n,
        status: "sweeping",
        maturesAtHeight: undefined,
        sweepTxid: "cd".repeat(32),
      },
    ]);
  });
});
