import { randomBytes } from "node:crypto";
import { sat, txidFromHex } from "@ln/bitcoin";
import { decodeChainEvent, type ChainEvent } from "@ln/proto";
import { startRegtest, type Regtest } from "@ln/regtest";
import { buildWalletSpend, finalizeWalletSpend, p2wpkhOutput, signDigest } from "@ln/tx";
import { networks, payments, Transaction } from "bitcoinjs-lib";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChainWatcher } from "../src/chain-watcher.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

// A real regtest node, real NATS JetStream and real Postgres; this run's own stream and schema.
const run = randomBytes(4).toString("hex");
const STREAM = `CHAIN_TEST_${run}`;
const PREFIX = `test_${run}.chain`;
const SCHEMA = `watchtower_test_${run}`;
const pool = new pg.Pool({ connectionString: testDatabaseUrl() });
let rt: Regtest;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  rt = await startRegtest();
  nc = await connect({ servers: testNatsUrl() });
  jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: STREAM, subjects: [`${PREFIX}.>`] });
}, 60_000);
afterAll(async () => {
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await nc?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await pool.end();
  await rt?.stop();
});

async function published(): Promise<ChainEvent[]> {
  const info = await jsm.streams.info(STREAM);
  const out: ChainEvent[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++)
    out.push(decodeChainEvent((await jsm.streams.getMessage(STREAM, { seq })).data));
  return out;
}

/** Where the node's getblock puts a transaction in the block at `height`: its index in `tx`. */
async function indexInBlock(height: number, txid: string): Promise<number> {
  const block = await rt.rpc.getBlock(await rt.rpc.getBlockHash(height), 1);
  return block.tx.indexOf(txidFromHex(txid));
}

const watcher = (): ChainWatcher =>
  new ChainWatcher({
    pool,
    schema: SCHEMA,
    rpc: rt.rpc,
    js: nc.jetstream(),
    subjectPrefix: PREFIX,
    startHeight: rt.height() + 1,
  });

describe("chain watcher on a regtest node, publishing to JetStream", () => {
  it("reports the anchor's depth, its spend, a reorg, and resumes from its cursor without repeats", async () => {
    const priv = Buffer.alloc(32, 0x44);
    const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
    const address = payments.p2wpkh({ pubkey: pub, network: networks.regtest }).address as string;
    const w = watcher();
    await w.migrate();
    const anchor = await rt.fund(address, sat(200_000), { confirm: false });
    await w.watch({ channelId: "c1", txid: anchor.txid, vout: anchor.vout, depth: 2 });
    await rt.mine(1);
    const at = {
      height: rt.height(),
      txIndex: await indexInBlock(rt.height(), anchor.txid),
      outputIndex: anchor.vout,
    };
    expect(at.txIndex).toBeGreaterThan(0); // after the coinbase
    await w.syncOnce();
    await rt.mine(1);
    await w.syncOnce();
    const depths = (await published()).filter((e) => e.kind === "anchor_depth");
    expect(depths).toEqual([
      { kind: "anchor_depth", channelId: "c1", depth: 1, position: at },
      { kind: "anchor_depth", channelId: "c1", depth: 2, position: at },
    ]);

    // Something spends the anchor: the watcher says so, whoever it was.
    const spend = buildWalletSpend(
      [
        {
          outpoint: { txid: txidFromHex(anchor.txid), vout: anchor.vout },
          amount: sat(200_000),
          pubkey: pub,
        },
      ],
      [],
      p2wpkhOutput(pub),
      2000,
    );
    const tx = finalizeWalletSpend(
      spend,
      spend.requests.map((r) => signDigest(priv, r.digest)),
    );
    await rt.rpc.sendRawTransaction(tx.toHex());
    await rt.mine(1);
    await w.syncOnce();
    expect((await published()).filter((e) => e.kind === "anchor_spent")).toEqual([
      { kind: "anchor_spent", channelId: "c1", txid: tx.getId(), height: rt.height(), txHex: tx.toHex() },
    ]);

    // A reorg of the last block: reported as disconnected, then the new branch as connected.
    const before = (await published()).length;
    const tipBefore = rt.height();
    await rt.reorg(1);
    await w.syncOnce();
    const after = (await published())
      .slice(before)
      .map((e) => `${e.kind}${"height" in e ? `@${e.height}` : ""}`);
    expect(after[0]).toBe(`block_disconnected@${tipBefore}`);
    expect(after).toContain(`block_connected@${tipBefore}`);
    expect(after).toContain(`block_connected@${tipBefore + 1}`);

    // An anchor confirmed before its watch request: the request reports its depth at once (for a
    // channel service asking again after a restart), the next block its whole depth.
    const early = await rt.fund(address, sat(50_000)); // mined, 1 confirmation
    const earlyAt = {
      height: rt.height(),
      txIndex: await indexInBlock(rt.height(), early.txid),
      outputIndex: early.vout,
    };
    await w.syncOnce(); // the watcher has seen that block before the request
    await w.watch({ channelId: "c2", txid: early.txid, vout: early.vout, depth: 2 });
    await rt.mine(1);
    await w.syncOnce();
    expect((await published()).filter((e) => e.kind === "anchor_depth" && e.channelId === "c2")).toEqual([
      { kind: "anchor_depth", channelId: "c2", depth: 1, position: earlyAt },
      { kind: "anchor_depth", channelId: "c2", depth: 2, position: earlyAt },
    ]);

    // A new watcher (a restart) resumes from the stored cursor: nothing published twice.
    const count = (await published()).length;
    await watcher().syncOnce();
    expect((await published()).length).toBe(count);
    await rt.mine(1);
    await watcher().syncOnce();
    const last = (await published()).slice(count);
    expect(last.map((e) => e.kind)).toEqual(["block_connected"]);
  }, 120_000);

  it("reports outputs paying the wallet's scripts, and again on the new branch after a reorg", async () => {
    const pub = Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, 0x66), true) as Uint8Array);
    const pay = payments.p2wpkh({ pubkey: pub, network: networks.regtest });
    const scriptHex = Buffer.from(pay.output as Uint8Array).toString("hex");
    const w = watcher();
    await w.migrate();
    await w.syncOnce();
    await w.watchScripts([scriptHex]);
    await w.watchScripts([scriptHex]); // idempotent
    const before = (await published()).length;
    const funding = await rt.fund(pay.address as string, sat(70_000)); // mined
    await rt.fund(rt.newAddress(), sat(10_000)); // not ours
    await w.syncOnce();
    const outputs = (await published()).slice(before).filter((e) => e.kind === "wallet_output");
    expect(outputs).toEqual([
      {
        kind: "wallet_output",
        txid: funding.txid,
        vout: funding.vout,
        amountSat: 70_000n,
        scriptHex,
        height: rt.height() - 1,
        blockHash: await rt.rpc.getBlockHash(rt.height() - 1),
        txHex: expect.any(String),
      },
    ]);
    // The whole transaction holding it (the signer reads a coin's amount from it).
    const txHex = outputs[0]?.kind === "wallet_output" ? outputs[0].txHex : "";
    expect(Transaction.fromHex(txHex).getId()).toBe(funding.txid);

    // The block holding it leaves the chain: disconnected, and the new branch reports it again.
    const mark = (await published()).length;
    await rt.reorg(2);
    // Whether or not the node put it back in its mempool, it confirms again on the new branch.
    await rt.submit(funding.hex).catch(() => undefined);
    await rt.mine(1);
    await w.syncOnce();
    const after = (await published()).slice(mark);
    expect(after[0]).toMatchObject({ kind: "block_disconnected" });
    const again = after.filter((e) => e.kind === "wallet_output");
    expect(again).toHaveLength(1);
    expect(again[0]).toMatchObject({ txid: funding.txid, vout: funding.vout, amountSat: 70_000n });
    expect(again[0]).not.toMatchObject({
      blockHash: outputs[0]?.kind === "wallet_output" ? outputs[0].blockHash : "",
    });

    // A restarted watcher (fresh follower over the stored cursor) publishes nothing twice.
    const count = (await published()).length;
    w.restartFollower();
    await w.syncOnce();
    expect((await published()).length).toBe(count);
  }, 60_000);
  it("reports the anchor's place in its block (not the first tx there), and its new place after a reorg", async () => {
    const priv = Buffer.alloc(32, 0x55);
    const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
    const other = Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, 0x56), true) as Uint8Array);
    const address = payments.p2wpkh({ pubkey: pub, network: networks.regtest }).address as string;
    const w = watcher();
    await w.migrate();
    await w.syncOnce();
    // The anchor spends an output of a transaction in the same block, so it cannot come first
    // after the coinbase; it pays someone else first, so the watched output is its vout 1.
    const parent = await rt.fund(address, sat(300_000), { confirm: false });
    const spend = buildWalletSpend(
      [
        {
          outpoint: { txid: txidFromHex(parent.txid), vout: parent.vout },
          amount: sat(300_000),
          pubkey: pub,
        },
      ],
      [{ script: p2wpkhOutput(other), amount: sat(40_000) }],
      p2wpkhOutput(pub),
      2000,
    );
    expect(spend.changeVout).toBe(1);
    const anchor = finalizeWalletSpend(
      spend,
      spend.requests.map((r) => signDigest(priv, r.digest)),
    );
    await rt.submit(anchor.toHex());
    await w.watch({ channelId: "c3", txid: anchor.getId(), vout: 1, depth: 3 });
    const mark = (await published()).length;
    await rt.mine(1);
    await w.syncOnce();
    const first = {
      height: rt.height(),
      txIndex: await indexInBlock(rt.height(), anchor.getId()),
      outputIndex: 1,
    };
    expect(first.txIndex).toBeGreaterThan(1);
    expect(await indexInBlock(rt.height(), parent.txid)).toBeLessThan(first.txIndex);
    expect((await published()).slice(mark).filter((e) => e.kind === "anchor_depth")).toEqual([
      { kind: "anchor_depth", channelId: "c3", depth: 1, position: first },
    ]);

    // A reorg takes the anchor's block out; the new branch confirms it one block later.
    const reorgMark = (await published()).length;
    await rt.rpc.call("invalidateblock", [await rt.rpc.getBlockHash(first.height)]);
    rt.setMinMiningFeeRate(1_000_000); // the next block leaves every mempool transaction out
    await rt.mine(1, rt.newAddress());
    rt.setMinMiningFeeRate(0);
    // Back in the mempool, whether or not the node put them back itself.
    for (const hex of [parent.hex, anchor.toHex()]) {
      const inPool = await rt.rpc.getRawMempool();
      if (!inPool.includes(txidFromHex(Transaction.fromHex(hex).getId()))) await rt.submit(hex);
    }
    await rt.mine(1);
    await w.syncOnce();
    const moved = {
      height: first.height + 1,
      txIndex: await indexInBlock(first.height + 1, anchor.getId()),
      outputIndex: 1,
    };
    expect(await indexInBlock(first.height, anchor.getId())).toBe(-1);
    expect(moved.txIndex).toBeGreaterThan(1);
    expect((await published()).slice(reorgMark).filter((e) => e.kind === "anchor_depth")).toEqual([
      { kind: "anchor_depth", channelId: "c3", depth: 0 },
      { kind: "anchor_depth", channelId: "c3", depth: 1, position: moved },
    ]);

    // A watch request after the fact (a restarted channel service) reports the same place.
    const again = (await published()).length;
    await w.watch({ channelId: "c3", txid: anchor.getId(), vout: 1, depth: 3 });
    expect((await published()).slice(again)).toEqual([
      { kind: "anchor_depth", channelId: "c3", depth: 1, position: moved },
    ]);
  }, 120_000);
});
