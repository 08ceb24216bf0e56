/**
 * The on-chain wallet against an embedded signer (gRPC/mTLS, its own Postgres schema) and a real
 * regtest node: the chain watcher is faked (it records watched scripts and broadcasts through the
 * node), and the wallet_output events are built here from the funding transactions.
 */
import { randomBytes } from "node:crypto";
import { sat, sha256 } from "@ln/bitcoin";
import type { ChainEvent } from "@ln/proto";
import type { Regtest } from "@ln/regtest";
import { SignerClient } from "@ln/signer-client";
import { address as bjsAddress, networks, payments, Transaction } from "bitcoinjs-lib";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Wallet, WalletError, type WalletChain } from "../src/onchain/wallet.js";
import { FakeChain, startWalletFixture, type WalletFixture } from "./wallet-fixture.js";

const MAX_WITHDRAWAL = 400_000n;
const FEE_RATE = 2000;

/** Names unique to this run (channel ids). */
const run = randomBytes(4).toString("hex");
let fx: WalletFixture;
let rt: Regtest;
let pool: pg.Pool;
let signer: SignerClient;
let chain: FakeChain;
let wallet: Wallet;

/** The schema of `wallet`, the first one made. */
let walletSchema: string;
async function newWallet(c: WalletChain): Promise<Wallet> {
  const schema = await fx.newSchema();
  walletSchema ??= schema;
  return new Wallet({ pool, schema, signer, chain: c, network: networks.regtest, feeRatePerKvb: FEE_RATE });
}
const outputsOf = (txHex: string, scripts: readonly string[]): Promise<ChainEvent[]> =>
  fx.outputsOf(txHex, scripts);

beforeAll(async () => {
  fx = await startWalletFixture("wallet", { maxWithdrawalSat: MAX_WITHDRAWAL });
  ({ rt, pool, signer } = fx);
  chain = new FakeChain(rt);
  wallet = await newWallet(chain);
}, 120_000);

afterAll(async () => {
  await fx?.close();
});

/** Pays `amount` to a new wallet address (confirmed) and feeds the wallet its output. */
async function deposit(amount: bigint, w = wallet, c = chain): Promise<{ txid: string; height: number }> {
  const { address } = await w.newAddress();
  const script = bjsAddress.toOutputScript(address, networks.regtest);
  expect(c.watched).toContain(Buffer.from(script).toString("hex"));
  const f = await rt.fund(address, sat(amount));
  const events = await outputsOf(f.hex, [Buffer.from(script).toString("hex")]);
  expect(events).toHaveLength(1);
  for (const e of events) {
    await w.onChainEvent(e);
    await w.onChainEvent(e); // the stream may deliver it twice
  }
  return { txid: f.txid, height: rt.height() };
}

const pub = (label: string): Buffer => Buffer.from(ecc.pointFromScalar(sha256(Buffer.from(label)), true)!);

async function newChannel(): Promise<{ signerChannel: number; commitKeys: [string, string] }> {
  const r = await signer.call("NewChannel", {});
  return {
    signerChannel: r.channel,
    commitKeys: [
      r.commit_pubkey.toString("hex"),
      pub(`peer ${randomBytes(4).toString("hex")}`).toString("hex"),
    ],
  };
}

async function walletError(p: Promise<unknown>): Promise<WalletError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof WalletError) return e;
    throw e;
  }
  throw new Error("expected a WalletError");
}

const watchedKeys = async (schema: string): Promise<string[]> =>
  (await pool.query<{ script_hex: string }>(`SELECT script_hex FROM "${schema}".wallet_keys`)).rows.map(
    (r) => r.script_hex,
  );

describe("wallet", () => {
  it("hands out watched P2WPKH addresses of the signer's wallet keys and counts confirmed deposits", async () => {
    const a = await wallet.newAddress();
    const b = await wallet.newAddress();
    expect(b.keyIndex).toBe(a.keyIndex + 1);
    expect(a.address.startsWith("bcrt1q")).toBe(true);
    const key = (await signer.call("WalletKey", { index: a.keyIndex })).pubkey;
    expect(payments.p2wpkh({ pubkey: key, network: networks.regtest }).address).toBe(a.address);
    expect(await wallet.balance()).toEqual({ confirmedSat: 0n, unconfirmedSat: 0n });
    await deposit(300_000n);
    await deposit(200_000n);
    expect(await wallet.balance()).toEqual({ confirmedSat: 500_000n, unconfirmedSat: 0n });
    // An output paying a script that is not ours is ignored.
    const [foreign] = await outputsOf((await rt.fund(rt.newAddress(), sat(10_000n))).hex, []);
    expect(foreign).toBeUndefined();
  });

  it("funds an anchor the node accepts: the 2-of-2 P2SH and change to a fresh wallet key", async () => {
    await deposit(1_000_000n);
    const before = await wallet.balance();
    const ch = await newChannel();
    const amount = sat(600_000n);
    const funded = await wallet.fundAnchor({ channelId: `c-${run}-1`, ...ch, amount });
    expect(funded.amount).toBe(amount);
    expect(funded.outpoint).toEqual({ txid: funded.txid, vout: 0 });
    // Not broadcast by fundAnchor.
    expect(chain.broadcasts).toHaveLength(0);
    const hex = (await wallet.anchorTx(`c-${run}-1`))!;
    const tx = Transaction.fromHex(hex);
    expect(tx.getId()).toBe(funded.txid);
    // The anchor output, checked independently: P2SH of OP_2 <k1> <k2> OP_2 OP_CHECKMULTISIG, keys in byte order.
    const keys = ch.commitKeys.map((k) => Buffer.from(k, "hex")).sort(Buffer.compare);
    const expected = payments.p2sh({ redeem: payments.p2ms({ m: 2, pubkeys: keys }) }).output!;
    expect(Buffer.from(tx.outs[0]!.script).equals(Buffer.from(expected))).toBe(true);
    expect(tx.outs[0]!.value).toBe(600_000n);
    // Every input is segwit (witness, empty scriptSig): the txid is not malleable.
    for (const input of tx.ins) {
      expect(input.script.length).toBe(0);
      expect(input.witness.length).toBe(2);
    }
    const ours = await watchedKeys(walletSchema);
    const change = tx.outs[1]!;
    expect(ours).toContain(Buffer.from(change.script).toString("hex"));
    expect(chain.watched).toContain(Buffer.from(change.script).toString("hex"));
    const after = await wallet.balance();
    expect(after.unconfirmedSat).toBe(change.value);
    const spent = tx.ins.length; // largest first: the 1,000,000 coin alone covers it
    expect(spent).toBe(1);
    expect(after.confirmedSat).toBe(before.confirmedSat - 1_000_000n);
    // Idempotent per channel.
    expect(await wallet.fundAnchor({ channelId: `c-${run}-1`, ...ch, amount })).toEqual(funded);
    // The node accepts it; once mined, the change is a confirmed coin.
    expect(await rt.submit(hex)).toBe(funded.txid);
    await rt.mine(1);
    for (const e of await outputsOf(hex, ours)) await wallet.onChainEvent(e);
    await wallet.onChainEvent({ kind: "anchor_depth", channelId: `c-${run}-1`, depth: 1 });
    expect(await wallet.balance()).toEqual({
      confirmedSat: after.confirmedSat + change.value,
      unconfirmedSat: 0n,
    });
  });

  it("refuses an anchor it cannot fund with a typed error saying what to do", async () => {
    const ch = await newChannel();
    const e = await walletError(
      wallet.fundAnchor({ channelId: `c-${run}-big`, ...ch, amount: sat(50_000_000n) }),
    );
    expect(e.code).toBe("INSUFFICIENT_FUNDS");
    expect(e.message).toContain("POST /v1/wallet/address");
    // Nothing was reserved by the failed attempt.
    expect(await wallet.anchorTx(`c-${run}-big`)).toBeUndefined();
    const empty = await newWallet(new FakeChain(rt));
    const none = await walletError(empty.fundAnchor({ channelId: "x", ...ch, amount: sat(10_000n) }));
    expect(none.code).toBe("NO_SEGWIT_COINS");
  });

  it("gives two concurrent anchors disjoint coins", async () => {
    const c = new FakeChain(rt);
    const w = await newWallet(c);
    for (const amount of [400_000n, 300_000n, 250_000n, 200_000n]) await deposit(amount, w, c);
    const [a, b] = await Promise.all([newChannel(), newChannel()]);
    const [fa, fb] = await Promise.all([
      w.fundAnchor({ channelId: "a", ...a, amount: sat(350_000n) }),
      w.fundAnchor({ channelId: "b", ...b, amount: sat(350_000n) }),
    ]);
    const ins = async (id: string): Promise<string[]> =>
      Transaction.fromHex((await w.anchorTx(id))!).ins.map(
        (i) => `${Buffer.from(i.hash).reverse().toString("hex")}:${i.index}`,
      );
    const [ia, ib] = [await ins("a"), await ins("b")];
    expect(ia.filter((x) => ib.includes(x))).toEqual([]);
    expect(await rt.submit((await w.anchorTx("a"))!)).toBe(fa.txid);
    expect(await rt.submit((await w.anchorTx("b"))!)).toBe(fb.txid);
  });

  it("withdraws within the signer's limit and refuses above it or to a bad address", async () => {
    await deposit(800_000n);
    const before = await wallet.balance();
    const over = await walletError(
      wallet.withdraw({ address: rt.newAddress(), amountSat: sat(MAX_WITHDRAWAL + 1n) }),
    );
    expect(over.code).toBe("WITHDRAWAL_LIMIT");
    expect(over.message).toContain("SIGNER_MAX_WITHDRAWAL_SAT");
    expect(await wallet.balance()).toEqual(before); // nothing spent
    const mainnet = payments.p2wpkh({ pubkey: pub("someone"), network: networks.bitcoin }).address!;
    expect((await walletError(wallet.withdraw({ address: mainnet, amountSat: sat(10_000n) }))).code).toBe(
      "INVALID_ADDRESS",
    );
    expect(
      (await walletError(wallet.withdraw({ address: "bcrt1qnope", amountSat: sat(10_000n) }))).code,
    ).toBe("INVALID_ADDRESS");
    const to = rt.newAddress();
    const { txid } = await wallet.withdraw({ address: to, amountSat: sat(MAX_WITHDRAWAL) });
    const tx = Transaction.fromHex(chain.broadcasts.at(-1)!);
    expect(tx.getId()).toBe(txid);
    const dest = bjsAddress.toOutputScript(to, networks.regtest);
    expect(
      tx.outs.some((o) => Buffer.from(o.script).equals(Buffer.from(dest)) && o.value === MAX_WITHDRAWAL),
    ).toBe(true);
    expect(chain.watched).toContain(Buffer.from(dest).toString("hex"));
    const mid = await wallet.balance();
    expect(mid.unconfirmedSat).toBeGreaterThan(0n);
    // Not confirmed yet: re-broadcast at start.
    expect(await wallet.rebroadcastUnconfirmed()).toBe(1);
    await rt.mine(1);
    const ours = await watchedKeys(walletSchema);
    for (const e of await outputsOf(tx.toHex(), [...ours, Buffer.from(dest).toString("hex")]))
      await wallet.onChainEvent(e);
    expect(await wallet.rebroadcastUnconfirmed()).toBe(0);
    expect((await wallet.balance()).unconfirmedSat).toBe(0n);
  });

  it("forgets coins of disconnected blocks, but keeps its own spends", async () => {
    const before = await wallet.balance();
    const { height } = await deposit(123_456n);
    expect((await wallet.balance()).confirmedSat).toBe(before.confirmedSat + 123_456n);
    await wallet.onChainEvent({
      kind: "block_disconnected",
      height,
      hash: await rt.rpc.getBlockHash(height),
    });
    expect(await wallet.balance()).toEqual(before);
    // A spend confirmed at or above the disconnected height is unconfirmed again (re-broadcast).
    await wallet.onChainEvent({ kind: "block_disconnected", height: 1, hash: "00".repeat(32) });
    expect(await wallet.rebroadcastUnconfirmed()).toBeGreaterThan(0);
  });
});
