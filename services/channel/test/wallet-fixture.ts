/**
 * What the wallet tests share: a real regtest node, an embedded signer (gRPC/mTLS, its own
 * Postgres schema), schemas of the channel service's tables, a fake chain watcher that records
 * watched scripts and broadcasts through the node, and wallet_output events built from a
 * transaction as the chain watcher would send them.
 */
import { silentLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import type { ChainEvent } from "@ln/proto";
import { startRegtest, type Regtest } from "@ln/regtest";
import { SignerClient } from "@ln/signer-client";
import { KeyRing, SignerService, SignerStore, startServer } from "@ln/signer-service/embedded";
import { Transaction } from "bitcoinjs-lib";
import pg from "pg";
import { migrateChannelService } from "../src/migrations.js";
import type { WalletChain } from "../src/onchain/wallet.js";
import { CLIENT_OPTIONS, makePems, TEST_CLIENTS, type Pems } from "../../signer/test/helpers.js";
import { testDatabaseUrl } from "@ln/testkit";

const DATABASE_URL = testDatabaseUrl();

export class FakeChain implements WalletChain {
  readonly watched: string[] = [];
  readonly broadcasts: string[] = [];
  constructor(private readonly rt: Regtest) {}
  watchScripts(scriptsHex: string[]): Promise<void> {
    this.watched.push(...scriptsHex);
    return Promise.resolve();
  }
  async broadcast(txHex: string): Promise<string> {
    this.broadcasts.push(txHex);
    try {
      return await this.rt.submit(txHex);
    } catch (e) {
      // As the chain watcher does: a transaction the node already has is accepted.
      const txid = Transaction.fromHex(txHex).getId();
      if ((await this.rt.rpc.getRawTransaction(txid).catch(() => undefined)) !== undefined) return txid;
      throw e;
    }
  }
}

export interface WalletFixture {
  rt: Regtest;
  pool: pg.Pool;
  signer: SignerClient;
  /** The certificates the signer and its client use. */
  pems: Pems;
  /** A new schema with the channel service's tables. */
  newSchema(): Promise<string>;
  /** The wallet_output events of `txHex` paying `scripts`, at the node's current tip. */
  outputsOf(txHex: string, scripts: readonly string[]): Promise<ChainEvent[]>;
  close(): Promise<void>;
}

export async function startWalletFixture(
  name: string,
  policy: { maxWithdrawalSat?: bigint } = {},
): Promise<WalletFixture> {
  const run = `${name}_${randomBytes(4).toString("hex")}`;
  const schemas: string[] = [];
  const rt = await startRegtest();
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 20 });
  const pems = makePems();
  const signerSchema = `${run}_signer`;
  schemas.push(signerSchema);
  const store = new SignerStore(pool, signerSchema);
  await store.migrate();
  const signerServer = await startServer({
    service: new SignerService(new KeyRing(randomBytes(32)), store, { maxFeeSat: 100_000n, ...policy }),
    listen: "127.0.0.1:0",
    tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
    clients: TEST_CLIENTS,
    log: silentLog,
  });
  const signer = new SignerClient(
    `127.0.0.1:${signerServer.port}`,
    { ca: pems.ca, cert: pems.clientCert, key: pems.clientKey },
    CLIENT_OPTIONS,
  );
  return {
    rt,
    pool,
    signer,
    pems,
    async newSchema() {
      const schema = `${run}_${schemas.length}`;
      schemas.push(schema);
      await migrateChannelService(pool, schema);
      return schema;
    },
    async outputsOf(txHex, scripts) {
      const tx = Transaction.fromHex(txHex);
      const height = rt.height();
      const blockHash = await rt.rpc.getBlockHash(height);
      return tx.outs.flatMap((o, vout): ChainEvent[] => {
        const scriptHex = Buffer.from(o.script).toString("hex");
        if (!scripts.includes(scriptHex)) return [];
        return [
          {
            kind: "wallet_output",
            txid: tx.getId(),
            vout,
            amountSat: o.value,
            scriptHex,
            height,
            blockHash,
            txHex: tx.toHex(),
          },
        ];
      });
    },
    async close() {
      signer.close();
      await signerServer.shutdown(1000);
      await rt.stop();
      for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
      await pool.end();
      rmSync(pems.dir, { recursive: true, force: true });
    },
  };
}
