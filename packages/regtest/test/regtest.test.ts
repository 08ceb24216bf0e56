import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sat } from "@ln/bitcoin";
import {
  BitcoinRpc,
  BlockFollower,
  MemoryCursorStore,
  RpcError,
  RpcTransportError,
  type FollowerEvent,
} from "@ln/chain-client";
import { startRegtest, type Regtest } from "@ln/regtest";

let rt: Regtest;

beforeAll(async () => {
  rt = await startRegtest({ height: 101 });
});

afterAll(async () => {
  await rt.stop();
});

const brief = (e: FollowerEvent): string => `${e.type}:${e.height}:${e.hash}`;

describe("startRegtest", () => {
  it("mines the requested height and answers getblockchaininfo", async () => {
    const info = await rt.rpc.getBlockchainInfo();
    expect(info.chain).toBe("regtest");
    expect(info.blocks).toBe(101);
    expect(rt.height()).toBe(101);
    expect(rt.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
  });

  it("rejects a wrong password with an HTTP transport error", async () => {
    const bad = new BitcoinRpc({ url: rt.url, user: rt.user, password: "wrong", retries: 0 });
    const err = await bad.getBlockCount().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcTransportError);
    expect((err as RpcTransportError).code).toBe("HTTP");
    expect((err as RpcTransportError).message).not.toContain(rt.password);
  });

  it("funds a fresh p2wpkh address and the tx is visible through getrawtransaction and getblock 2", async () => {
    const addr = rt.newAddress("p2wpkh");
    expect(addr).toMatch(/^bcrt1q[0-9a-z]{38}$/);
    const f = await rt.fund(addr, sat(1_234_567n));
    const out = (await rt.rpc.getRawTransaction(f.txid, true)).vout[f.vout];
    expect(out?.value).toBe(0.01234567);
    expect(await rt.rpc.getRawTransaction(f.txid)).toBe(f.hex);
    const verbose = await rt.rpc.getRawTransaction(f.txid, true);
    expect(verbose.confirmations).toBe(1);
    const hash = await rt.rpc.getBlockHash(rt.height());
    expect(verbose.blockhash).toBe(hash);
    const block = await rt.rpc.getBlock(hash, 2);
    expect(block.height).toBe(rt.height());
    const inBlock = block.tx.find((t) => t.txid === f.txid);
    expect(inBlock?.hex).toBe(f.hex);
    expect((await rt.rpc.getBlock(hash, 1)).tx).toContain(f.txid);
    expect(await rt.rpc.getBlock(hash, 0)).toMatch(/^[0-9a-f]+$/);
  });

  it("funds without confirming: the tx sits in the mempool", async () => {
    const f = await rt.fund(rt.newAddress(), sat(50_000n), { confirm: false });
    expect(await rt.rpc.getRawMempool()).toContain(f.txid);
    // Re-submitting a mempool tx is accepted like bitcoind does.
    expect(await rt.rpc.sendRawTransaction(f.hex)).toBe(f.txid);
    await rt.mine(1);
    expect(await rt.rpc.getRawMempool()).toEqual([]);
  });

  it("estimatesmartfee answers a feerate or errors", async () => {
    const fee = await rt.rpc.estimateSmartFee(6);
    expect(fee.feerate !== undefined || (fee.errors?.length ?? 0) > 0).toBe(true);
  });

  it("maps node rejections to RpcError with bitcoind's codes", async () => {
    const garbage = await rt.rpc.sendRawTransaction("00").catch((e: unknown) => e);
    expect(garbage).toBeInstanceOf(RpcError);
    expect((garbage as RpcError).code).toBe(-22);
    const notFound = await rt.rpc.getRawTransaction("11".repeat(32)).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(RpcError);
  });

  it("reports -25 for a tx spending a missing input", async () => {
    const f = await rt.fund(rt.newAddress(), sat(100_000n));
    // Same tx with the first input's prevout txid changed: its input does not exist.
    const hex = f.hex;
    const tampered = hex.slice(0, 14) + (hex.slice(14, 16) === "00" ? "01" : "00") + hex.slice(16);
    const err = await rt.rpc.sendRawTransaction(tampered).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect([-25, -26]).toContain((err as RpcError).code);
  });
});

describe("BlockFollower against the regtest node", () => {
  it("follows, reports a reorg as disconnected then connected, and resumes from the cursor", async () => {
    const store = new MemoryCursorStore();
    const events: FollowerEvent[] = [];
    const follower = new BlockFollower({
      rpc: rt.rpc,
      store,
      onEvent: async (e) => {
        events.push(e);
      },
    });
    await follower.syncOnce(); // anchors at the tip
    expect(events).toEqual([]);
    const mined = await rt.mine(3);
    await follower.syncOnce();
    expect(events.map((e) => e.hash)).toEqual(mined);
    expect(events.every((e) => e.type === "connected")).toBe(true);

    events.length = 0;
    const { disconnected, connected } = await rt.reorg(2, 1);
    expect(disconnected).toEqual(mined.slice(1));
    await follower.syncOnce();
    const tip = rt.height();
    expect(events.map(brief)).toEqual([
      `disconnected:${tip - 1}:${mined[2]}`,
      `disconnected:${tip - 2}:${mined[1]}`,
      `connected:${tip - 2}:${connected[0]}`,
      `connected:${tip - 1}:${connected[1]}`,
      `connected:${tip}:${connected[2]}`,
    ]);
    const cursor = await store.load();
    expect(cursor?.height).toBe(tip);
    expect(cursor?.hash).toBe(connected[2]);

    // A new follower with the same store continues: no duplicates, no gaps.
    events.length = 0;
    const more = await rt.mine(2);
    const again = new BlockFollower({
      rpc: rt.rpc,
      store,
      onEvent: async (e) => {
        events.push(e);
      },
    });
    await again.syncOnce();
    expect(events.map(brief)).toEqual([`connected:${tip + 1}:${more[0]}`, `connected:${tip + 2}:${more[1]}`]);
  });

  it("start()/stop() polls in the background", async () => {
    const events: FollowerEvent[] = [];
    const follower = new BlockFollower({
      rpc: rt.rpc,
      intervalMs: 20,
      onEvent: async (e) => {
        events.push(e);
      },
    });
    const done = follower.start();
    await new Promise((r) => setTimeout(r, 60));
    const mined = await rt.mine(2);
    const deadline = Date.now() + 5000;
    while (events.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await follower.stop();
    await done;
    expect(events.map((e) => e.hash)).toEqual(mined);
  });
});

describe("long work and shutdown", () => {
  it("activates CLTV with progress reports, then stop() frees the port", async () => {
    const progress: number[] = [];
    const other = await startRegtest({ onProgress: (p) => progress.push(p.height) });
    const t0 = Date.now();
    await other.activateCltv();
    expect(other.height()).toBe(1351);
    expect(progress.length).toBeGreaterThanOrEqual(5);
    expect(progress.at(-1)).toBe(1351);
    expect(Date.now() - t0).toBeLessThan(15_000);
    // A CLTV-era fund still works (coinbase subsidy has halved many times).
    const f = await other.fund(other.newAddress(), sat(10_000n));
    expect(f.vout).toBeGreaterThanOrEqual(0);
    const rpc = new BitcoinRpc({ url: other.url, password: other.password, retries: 0, timeoutMs: 2000 });
    expect(await rpc.getBlockCount()).toBe(1352);
    await other.stop();
    await other.stop();
    const err = await rpc.getBlockCount().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcTransportError);
    expect((err as RpcTransportError).code).toBe("NETWORK");
  });
});
