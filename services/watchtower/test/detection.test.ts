/**
 * Breach detection's matching (breaches/detection.ts) on a real Postgres, without a node or a
 * signer: a block's transactions, legacy and segwit, looked up in several chunks. Which of them
 * match is worked out here independently: normalized txids through bitcoinjs (parse, clone, empty
 * every scriptSig and witness, re-serialize, SHA256d) and locators with node:crypto's streaming
 * SHA256, never through the tower's fast path from the hex.
 */
import { createHash, randomBytes } from "node:crypto";
import { txidToInternal } from "@ln/bitcoin";
import { silentLog, recordingLog, type LogRecord } from "@ln/log";
import { newRegistry } from "@ln/metrics";
import { migrate } from "@ln/postgres";
import { defaultSweepScript, normalizedTxidBytes, sealRecord } from "@ln/justice";
import { buildCommitment, normalizedTxid } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { makePeer, randomAnchor, remoteParams, type Ours } from "../../signer/test/helpers.js";
import { BreachDetector, type SeenTx } from "../src/breaches/detection.js";
import { tablesOf, type TowerContext, type TowerRpc, type JusticeSigner } from "../src/context.js";
import { towerMetrics } from "../src/metrics.js";
import { MIGRATIONS } from "../src/migrations.js";
import { DB, SETTINGS, STATE } from "./justice-fixture.js";

const pool = new pg.Pool({ connectionString: DB, max: 4 });
const schemas: string[] = [];
afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

/** Matching never calls the node or the signer: any call fails the test. */
const unused = <T extends object>(): T =>
  new Proxy({} as T, {
    get: (_, name) => () => Promise.reject(new Error(`unexpected call ${String(name)}`)),
  });

async function detector(log = silentLog) {
  const schema = `tower_detect_${randomBytes(4).toString("hex")}`;
  schemas.push(schema);
  await migrate(pool, schema, MIGRATIONS);
  const metrics = towerMetrics(newRegistry("watchtower"));
  const ctx: TowerContext = {
    pool,
    table: tablesOf(schema),
    rpc: unused<TowerRpc>(),
    signer: unused<JusticeSigner>(),
    settings: SETTINGS,
    metrics,
    log,
    workerId: "test",
    claimTtlMs: 30_000,
    signerTimeoutMs: 1000,
    onBroadcast: undefined,
  };
  const handed: Buffer[] = [];
  const d = new BreachDetector(ctx, async (ntxid) => {
    handed.push(ntxid);
  });
  return { d, schema, metrics, handed };
}

/** A random transaction: 1-3 inputs with random scriptSigs, 1-3 outputs, a witness now and then. */
function randomTx(): Transaction {
  const tx = new Transaction();
  tx.version = 2;
  tx.locktime = randomBytes(1)[0]!;
  const ins = 1 + (randomBytes(1)[0]! % 3);
  for (let k = 0; k < ins; k++)
    tx.addInput(randomBytes(32), k, 0xfffffffd, randomBytes(randomBytes(1)[0]! % 120));
  for (let k = 0; k < 1 + (randomBytes(1)[0]! % 3); k++)
    tx.addOutput(randomBytes(22 + (k % 2) * 12), BigInt(1000 + k));
  if (randomBytes(1)[0]! < 96)
    for (let k = 0; k < ins; k++) tx.setWitness(k, [randomBytes(72), randomBytes(33)]);
  return tx;
}

/** The locator as the channel service derives it: SHA256 of the bitcoinjs-computed ntxid, 16 bytes. */
const referenceLocator = (tx: Transaction): Buffer =>
  createHash("sha256")
    .update(txidToInternal(normalizedTxid(tx)))
    .digest()
    .subarray(0, 16);

const seen = (tx: Transaction): SeenTx => ({ txid: tx.getId(), hex: tx.toHex() });

describe("BreachDetector.match", () => {
  it("finds the transactions whose locators are stored, across lookup chunks, in block order", async () => {
    const records: LogRecord[] = [];
    const { d, schema, metrics, handed } = await detector(recordingLog((r) => records.push(r)));
    const txs = Array.from({ length: 1_234 }, () => randomTx());
    const block = txs.map(seen);
    // Not transactions: refused by the parser, skipped (they shift the places of what follows).
    block.splice(
      3,
      0,
      { txid: "not hex", hex: "zz" },
      { txid: "truncated", hex: block[5]!.hex.slice(0, 40) },
    );
    // Stored records under the locators of some (their blobs do not open: matched, then ignored),
    // two records under one locator, and one transaction listed twice.
    const stored = [0, 1, 498, 499, 500, 501, 777, 999, 1_000, 1_233];
    for (const i of stored)
      await pool.query(
        `INSERT INTO "${schema}".tower_records (locator, blob_hash, blob) VALUES ($1, $2, $3)`,
        [referenceLocator(txs[i]!), randomBytes(32), randomBytes(200)],
      );
    await pool.query(`INSERT INTO "${schema}".tower_records (locator, blob_hash, blob) VALUES ($1, $2, $3)`, [
      referenceLocator(txs[777]!),
      randomBytes(32),
      randomBytes(200),
    ]);
    block.push(seen(txs[501]!));

    expect(await d.match(block, "block")).toBe(0);
    const matched = records
      .filter((r) => r.msg.startsWith("a record matched transaction"))
      .map((r) => r.fields["txid"]);
    const id = (i: number): string => txs[i]!.getId();
    expect(matched).toEqual([
      ...[0, 1, 498, 499, 500, 501, 777, 777, 999, 1_000, 1_233].map(id),
      id(501), // listed again at the end
    ]);
    expect(
      (await metrics.recordsRejected.get()).values.find((v) => v.labels.reason === "unopenable")?.value,
    ).toBe(12);
    expect(handed).toEqual([]);
  });

  it("a revoked commitment among them, re-signed: the breach stored with its bytes and handed on once", async () => {
    const { d, schema, handed } = await detector();
    const peer = makePeer("detect peer");
    const o = makePeer("detect ours");
    const ours: Ours = { channel: 7, commitPub: o.commit.pub, finalPub: o.final.pub };
    const params = remoteParams(ours, peer, randomAnchor(), 0n, STATE);
    const sealed = sealRecord({
      signerChannel: 7,
      revokedNumber: 0n,
      revocationPreimage: peer.preimage(0n),
      params,
      sweepScript: defaultSweepScript(params),
    });
    await pool.query(`INSERT INTO "${schema}".tower_records (locator, blob_hash, blob) VALUES ($1, $2, $3)`, [
      sealed.locator,
      createHash("sha256").update(sealed.blob).digest(),
      sealed.blob,
    ]);
    // The commitment with some scriptSig: the normalized txid ignores it, the txid does not.
    const breach = buildCommitment(params).tx;
    breach.setInputScript(0, randomBytes(150));
    const block = Array.from({ length: 700 }, () => seen(randomTx()));
    block.splice(600, 0, seen(breach));

    expect(await d.match(block, "block")).toBe(1);
    expect(handed).toEqual([normalizedTxidBytes(breach)]);
    const rows = await pool.query<{ ntxid: Buffer; breach_hex: string }>(
      `SELECT ntxid, breach_hex FROM "${schema}".tower_breaches`,
    );
    expect(rows.rows).toEqual([{ ntxid: normalizedTxidBytes(breach), breach_hex: breach.toHex() }]);
  });
});
