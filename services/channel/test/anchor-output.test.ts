/**
 * `<prefix>.anchor_output` (gossip, DESIGN.md 10): the real chain watcher and regtest node,
 * asked through the channel service's client anchorOutput(). What it answers is compared with the
 * node's own getrawtransaction and getblock.
 */
import { randomBytes } from "node:crypto";
import { sat, txidFromHex } from "@ln/bitcoin";
import { buildWalletSpend, finalizeWalletSpend, p2wpkhOutput, signDigest } from "@ln/tx";
import { networks, payments, Transaction } from "bitcoinjs-lib";
import { connect, type NatsConnection, type Subscription } from "nats";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The real chain watcher and regtest node (not dependencies of this package: reached by path).
import { startRegtest, type Regtest } from "../../../packages/regtest/src/index.js";
import { ChainWatcher, serveChainRequests } from "../../watchtower/src/index.js";
import { anchorOutput, ChainRequestError } from "../src/onchain/chain-requests.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

const run = randomBytes(4).toString("hex");
const PREFIX = `anchorout_${run}.chain`;
const SCHEMA = `anchorout_${run}`;
const pool = new pg.Pool({ connectionString: testDatabaseUrl() });
let rt: Regtest;
let nc: NatsConnection;
let subs: Subscription[] = [];

beforeAll(async () => {
  rt = await startRegtest();
  nc = await connect({ servers: testNatsUrl() });
  const watcher = new ChainWatcher({
    pool,
    schema: SCHEMA,
    rpc: rt.rpc,
    js: nc.jetstream(),
    subjectPrefix: PREFIX,
  });
  await watcher.migrate();
  subs = serveChainRequests(nc, PREFIX, watcher);
}, 60_000);
afterAll(async () => {
  for (const s of subs) s.unsubscribe();
  await nc?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
  await pool.end();
  await rt?.stop();
});

describe("anchorOutput through the chain watcher", () => {
  it("finds a confirmed output by its position, as the node has it; unspent until it is spent", async () => {
    const priv = Buffer.alloc(32, 0x51);
    const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
    const address = payments.p2wpkh({ pubkey: pub, network: networks.regtest }).address as string;
    const funding = await rt.fund(address, sat(123_456), { confirm: false });
    await rt.mine(1);
    const height = rt.height();
    const block = await rt.rpc.getBlock(await rt.rpc.getBlockHash(height), 1);
    const txIndex = block.tx.indexOf(txidFromHex(funding.txid));
    expect(txIndex).toBeGreaterThan(0);

    // The node's own view of that output.
    const raw = Transaction.fromHex(await rt.rpc.getRawTransaction(funding.txid));
    const out = raw.outs[funding.vout]!;
    const found = await anchorOutput(nc, PREFIX, { height, txIndex, outputIndex: funding.vout });
    expect(found).toEqual({
      found: true,
      txid: funding.txid,
      script: Buffer.from(out.script),
      valueSat: 123_456n,
      unspent: true,
    });
    expect(BigInt(out.value)).toBe(123_456n);

    // The coinbase of the same block is found too (position 0), with its own txid.
    const coinbase = await anchorOutput(nc, PREFIX, { height, txIndex: 0, outputIndex: 0 });
    expect(coinbase).toMatchObject({ found: true, txid: block.tx[0] });

    // Spent in the mempool: still unspent on chain; once mined, spent.
    const spend = buildWalletSpend(
      [
        {
          outpoint: { txid: txidFromHex(funding.txid), vout: funding.vout },
          amount: sat(123_456),
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
    expect(await anchorOutput(nc, PREFIX, { height, txIndex, outputIndex: funding.vout })).toMatchObject({
      found: true,
      unspent: true,
    });
    await rt.mine(1);
    expect(await anchorOutput(nc, PREFIX, { height, txIndex, outputIndex: funding.vout })).toEqual({
      ...found,
      unspent: false,
    });
  });

  it("a position with nothing there: found false (no such output, transaction or block)", async () => {
    await rt.mine(1);
    const height = rt.height();
    const block = await rt.rpc.getBlock(await rt.rpc.getBlockHash(height), 2);
    const outputs = block.tx[0]!.vout.length;
    expect(await anchorOutput(nc, PREFIX, { height, txIndex: 0, outputIndex: outputs })).toEqual({
      found: false,
    });
    expect(await anchorOutput(nc, PREFIX, { height, txIndex: block.tx.length, outputIndex: 0 })).toEqual({
      found: false,
    });
    expect(await anchorOutput(nc, PREFIX, { height: height + 1000, txIndex: 0, outputIndex: 0 })).toEqual({
      found: false,
    });
  });

  it("no chain watcher on the prefix: UNAVAILABLE", async () => {
    const e = await anchorOutput(
      nc,
      `nobody_${run}.chain`,
      { height: 1, txIndex: 0, outputIndex: 0 },
      500,
    ).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(ChainRequestError);
    expect((e as ChainRequestError).code).toBe("UNAVAILABLE");
  });
});
