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

// A real regtest node, real NATS JetStream and real Postgres; this run's own stream and schema.
const run = randomBytes(4).toString("hex");
const STREAM = `CHAIN_TEST_${run}`;
const PREFIX = `test_${run}.chain`;
const SCHEMA = `watchtower_test_${run}`;
const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test" });
let rt: Regtest;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  rt = await startRegtest();
  nc = await connect({ servers: "127.0.0.1:4222" });
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
    await w.syncOnce();
    await rt.mine(1);
    await w.syncOnce();
    const depths = (await published()).filter((e) => e.kind === "anchor_depth");
    expect(depths).toEqual([
      { kind: "anchor_depth", channelId: "c1", depth: 1 },
      { kind: "anchor_depth", channelId: "c1", depth: 2 },
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
    await w.syncOnce(); // the watcher has seen that block before the request
    await w.watch({ channelId: "c2", txid: early.txid, vout: early.vout, depth: 2 });
    await rt.mine(1);
    await w.syncOnce();
    expect((await published()).filter((e) => e.kind === "anchor_depth" && e.channelId === "c2")).toEqual([
      { kind: "anchor_depth", channelId: "c2", depth: 1 },
      { kind: "anchor_depth", channelId: "c2", depth: 2 },
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
});
