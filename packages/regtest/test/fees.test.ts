import { afterAll, beforeAll, describe, expect, it } from "vitest";
import bcoin, { type Coin, type KeyRing, type TX } from "bcoin";
import { sat } from "@ln/bitcoin";
import { RpcError } from "@ln/chain-client";
import { startRegtest, type Regtest } from "@ln/regtest";

// One node for the file: every test leaves the mempool empty (mines what it added).
let rt: Regtest;
let ring: KeyRing;
let ringAddress: string;

beforeAll(async () => {
  rt = await startRegtest({ height: 101 });
  ring = bcoin.KeyRing.generate(true);
  ring.witness = true;
  ringAddress = ring.getAddress("string", "regtest");
});

afterAll(async () => {
  await rt.stop();
});

const RBF = 0xfffffffd;
const FINAL = 0xffffffff;

/** A confirmed coin of `value` sat held by the test's key. */
async function coin(value: number): Promise<Coin> {
  const f = await rt.fund(ringAddress, sat(BigInt(value)));
  return bcoin.Coin.fromTX(bcoin.TX.fromRaw(f.hex, "hex"), f.vout, rt.height());
}

/** Spends `coins` (signed by the test key) to one fresh address per output value. */
function spend(coins: readonly Coin[], values: readonly number[], sequence = RBF): TX {
  const mtx = new bcoin.MTX();
  for (const c of coins) mtx.addCoin(c);
  for (const input of mtx.inputs) input.sequence = sequence;
  for (const v of values) mtx.addOutput(bcoin.Address.fromString(ringAddress, "regtest"), v);
  mtx.sign(ring);
  return mtx.toTX();
}

/** Output `vout` of an unconfirmed tx as a coin. */
const out = (tx: TX, vout = 0): Coin => bcoin.Coin.fromTX(tx, vout, -1);
const hex = (tx: TX): string => tx.toRaw().toString("hex");

async function rejection(tx: TX): Promise<RpcError> {
  const err = await rt.rpc.sendRawTransaction(hex(tx)).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(RpcError);
  return err as RpcError;
}

async function mempool(): Promise<string[]> {
  return [...(await rt.rpc.getRawMempool())].sort();
}

async function blockTxids(hash: string): Promise<readonly string[]> {
  return (await rt.rpc.getBlock(hash, 1)).tx;
}

describe("BIP125 replacement", () => {
  it("a replacement paying more evicts the original, and the block holds the replacement", async () => {
    const c = await coin(100_000);
    const original = spend([c], [99_000]); // fee 1000, ~9 sat/vB
    expect(await rt.rpc.sendRawTransaction(hex(original))).toBe(original.txid());
    expect(await mempool()).toEqual([original.txid()]);

    const replacement = spend([c], [97_000]); // fee 3000
    expect(await rt.submit(hex(replacement))).toBe(replacement.txid());
    expect(await mempool()).toEqual([replacement.txid()]);

    const [hash] = await rt.mine(1);
    const txs = await blockTxids(hash ?? "");
    expect(txs).toContain(replacement.txid());
    expect(txs).not.toContain(original.txid());
    expect(await mempool()).toEqual([]);
    const err = await rt.rpc.getRawTransaction(original.txid()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
  });

  it("rejects a replacement with an equal fee, or a higher one short of the relay fee, and keeps the original", async () => {
    const c = await coin(100_000);
    const original = spend([c], [98_000]); // fee 2000
    await rt.submit(hex(original));

    const sameFee = spend([c], [97_000, 1_000]); // fee 2000, larger: lower rate
    const e1 = await rejection(sameFee);
    expect(e1.code).toBe(-26);
    expect(e1.rpcMessage).toBe("insufficient fee");

    // Higher fee and rate, but not by 1 sat/vB of its ~110 vB (rule 4).
    const tooLittle = spend([c], [97_950]); // fee 2050
    const e2 = await rejection(tooLittle);
    expect(e2.code).toBe(-26);
    expect(e2.rpcMessage).toBe("insufficient fee");

    const lower = spend([c], [99_000]); // fee 1000
    expect((await rejection(lower)).rpcMessage).toBe("insufficient fee");

    expect(await mempool()).toEqual([original.txid()]);
    const [hash] = await rt.mine(1);
    expect(await blockTxids(hash ?? "")).toContain(original.txid());
  });

  it("rejects any double spend of a tx that does not signal with txn-mempool-conflict", async () => {
    const c = await coin(100_000);
    const original = spend([c], [99_000], 0xfffffffe); // final-ish: no BIP125 signal
    await rt.submit(hex(original));

    const err = await rejection(spend([c], [50_000]));
    expect(err.code).toBe(-26);
    expect(err.rpcMessage).toBe("txn-mempool-conflict");
    expect(await mempool()).toEqual([original.txid()]);
    await rt.mine(1);
    expect(await mempool()).toEqual([]);
  });

  it("evicts the replaced tx's descendants too, when the replacement pays for them", async () => {
    const c = await coin(200_000);
    const otherCoin = await coin(50_000); // (mines a block)
    const parent = spend([c], [100_000, 99_000]); // fee 1000
    await rt.submit(hex(parent));
    const child = spend([out(parent, 0)], [98_000], FINAL); // fee 2000, does not signal itself
    const grandchild = spend([out(child, 0)], [97_000]); // fee 1000
    await rt.submit(hex(child));
    await rt.submit(hex(grandchild));
    // An unrelated mempool tx stays.
    const other = spend([otherCoin], [49_000]);
    await rt.submit(hex(other));
    expect(await mempool()).toEqual([parent.txid(), child.txid(), grandchild.txid(), other.txid()].sort());

    // Pays more than the parent alone, less than the parent + descendants (4000) + relay fee.
    const cheap = spend([c], [196_000]); // fee 4000
    expect((await rejection(cheap)).rpcMessage).toBe("insufficient fee");
    expect(await mempool()).toEqual([parent.txid(), child.txid(), grandchild.txid(), other.txid()].sort());

    // The child's own input is not a conflict: a tx spending parent:0 again conflicts with the
    // non-signalling child.
    expect((await rejection(spend([out(parent, 0)], [90_000]))).rpcMessage).toBe("txn-mempool-conflict");

    const replacement = spend([c], [195_000]); // fee 5000 >= 4000 + ~110
    await rt.submit(hex(replacement));
    expect(await mempool()).toEqual([replacement.txid(), other.txid()].sort());

    const [hash] = await rt.mine(1);
    const txs = await blockTxids(hash ?? "");
    expect(txs).toEqual(expect.arrayContaining([replacement.txid(), other.txid()]));
    expect(txs).toHaveLength(3);
    expect(await mempool()).toEqual([]);
  });

  it("rejects a replacement that spends an output of the tx it replaces", async () => {
    const c1 = await coin(100_000);
    const original = spend([c1], [99_000]);
    await rt.submit(hex(original));
    const err = await rejection(spend([c1, out(original, 0)], [150_000]));
    expect(err.rpcMessage).toBe("bad-txns-spends-conflicting-tx");
    expect(await mempool()).toEqual([original.txid()]);
    await rt.mine(1);
  });

  it("a replacement with a bad signature is rejected and leaves the original", async () => {
    const c = await coin(100_000);
    const original = spend([c], [99_000]);
    await rt.submit(hex(original));
    const replacement = spend([c], [90_000]);
    // Flip a byte of the signature (inside the witness, near the end of the serialization).
    const raw = hex(replacement);
    const at = raw.length - 2 * (4 + 34 + 10); // locktime, pubkey push, then into the signature
    const bad = raw.slice(0, at) + (raw.slice(at, at + 2) === "00" ? "01" : "00") + raw.slice(at + 2);
    const err = await rt.rpc.sendRawTransaction(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(-26);
    expect((err as RpcError).rpcMessage).toMatch(/script-verify-flag/);
    expect(await mempool()).toEqual([original.txid()]);
    await rt.mine(1);
  });
});

describe("fee estimate control", () => {
  it("estimatesmartfee answers the set rate and bcoin's own answer once unset", async () => {
    rt.setFeeEstimate(25_000);
    expect(await rt.rpc.estimateSmartFee(6)).toEqual({ feerate: 0.00025, blocks: 6 });
    expect(await rt.rpc.call("estimatesmartfee", [2])).toEqual({ feerate: 0.00025, blocks: 2 });
    rt.setFeeEstimate(1234);
    expect((await rt.rpc.estimateSmartFee(1)).feerate).toBe(0.00001234);

    rt.setFeeEstimate(undefined);
    const raw = await rt.rpc.call("estimatesmartfee", [6]);
    expect(raw).toHaveProperty("fee");
    expect(raw).not.toHaveProperty("feerate");
    expect(() => rt.setFeeEstimate(-1)).toThrow(/setFeeEstimate/);
  });
});

describe("miner fee floor", () => {
  it("holds back txs below the floor and their descendants over several blocks, and mines them once lifted", async () => {
    const c1 = await coin(100_000);
    const c2 = await coin(100_000);
    const low = spend([c1], [99_700]); // fee 300 over ~110 vB: ~2700 sat/kvB
    const lowChild = spend([out(low, 0)], [96_700]); // fee 3000: high rate, but its parent is low
    const high = spend([c2], [98_000]); // fee 2000: ~18000 sat/kvB
    for (const tx of [low, lowChild, high]) await rt.submit(hex(tx));
    expect(low.getVirtualSize()).toBeGreaterThan(100);
    const lowRate = (300 * 1000) / low.getVirtualSize();
    expect(lowRate).toBeLessThan(5000);

    rt.setMinMiningFeeRate(5000);
    const heldBack = [low.txid(), lowChild.txid()].sort();
    const mined = await rt.mine(3);
    const first = await rt.rpc.getBlock(mined[0] ?? "", 2);
    expect(first.tx.map((t) => t.txid)).toEqual([expect.any(String), high.txid()]);
    // The coinbase claims the subsidy plus the fee of `high` only.
    const subsidy = Math.floor(50e8 / 2 ** Math.floor(first.height / 150));
    const coinbase = await rt.rpc.getRawTransaction(first.tx[0]?.txid ?? "", true);
    const claimed = coinbase.vout.reduce((a, o) => a + Math.round(o.value * 1e8), 0);
    expect(claimed).toBe(subsidy + 2000);
    for (const h of mined.slice(1)) expect(await blockTxids(h)).toHaveLength(1);
    expect(await mempool()).toEqual(heldBack);

    // fund() pays above the floor so its funding confirms.
    const f = await rt.fund(rt.newAddress(), sat(10_000n));
    expect((await rt.rpc.getRawTransaction(f.txid, true)).confirmations).toBe(1);
    expect(await mempool()).toEqual(heldBack);

    rt.setMinMiningFeeRate(0);
    const [hash] = await rt.mine(1);
    expect(await blockTxids(hash ?? "")).toEqual(expect.arrayContaining(heldBack));
    expect(await mempool()).toEqual([]);
  });
});
