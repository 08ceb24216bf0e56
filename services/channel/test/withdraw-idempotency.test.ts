/**
 * Idempotent withdrawals through the control API over the real wallet (an embedded signer, the
 * regtest node, Postgres): a retry with the same Idempotency-Key returns the first withdrawal and
 * broadcasts nothing new, concurrent retries withdraw once, and the key's record commits in the
 * wallet's own transaction: if it cannot be stored, no withdrawal is stored or broadcast either.
 */
import { sat } from "@ln/bitcoin";
import type { Regtest } from "@ln/regtest";
import { address as bjsAddress, networks } from "bitcoinjs-lib";
import type { FastifyInstance } from "fastify";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi, type Withdrawal, type WithdrawalRecord } from "../src/api/index.js";
import { MemoryBackend } from "./memory-backend.js";
import { Wallet } from "../src/onchain/wallet.js";
import { FakeChain, startWalletFixture, type WalletFixture } from "./wallet-fixture.js";

/** The API's backend with the real wallet behind withdrawals (as ChannelNodeBackend.withdraw). */
class WalletBackend extends MemoryBackend {
  constructor(private readonly wallet: Wallet) {
    super();
  }
  override async withdraw(
    req: { address: string; amountSat: ReturnType<typeof sat> },
    record: WithdrawalRecord,
  ): Promise<Withdrawal> {
    const { txid } = await this.wallet.withdraw(req, record);
    return { txid, address: req.address, amountSat: req.amountSat };
  }
}

let fx: WalletFixture;
let rt: Regtest;
let pool: pg.Pool;
let chain: FakeChain;
let wallet: Wallet;
let schema: string;
let app: FastifyInstance;
let admin: string;

beforeAll(async () => {
  fx = await startWalletFixture("withdraw_idem", { maxWithdrawalSat: 400_000n });
  ({ rt, pool } = fx);
  chain = new FakeChain(rt);
  schema = await fx.newSchema();
  wallet = new Wallet({
    pool,
    schema,
    signer: fx.signer,
    chain,
    network: networks.regtest,
    feeRatePerKvb: 2000,
  });
  app = await buildApi({ pool, schema, backend: new WalletBackend(wallet) });
  admin = (await new ApiStore(pool, schema).createToken("withdraw test", ["admin"])).token;
  // Confirmed coins for each withdrawal (change is unconfirmed until a block holds it).
  for (let i = 0; i < 4; i++) {
    const { address } = await wallet.newAddress();
    const script = Buffer.from(bjsAddress.toOutputScript(address, networks.regtest)).toString("hex");
    const f = await rt.fund(address, sat(300_000n));
    for (const e of await fx.outputsOf(f.hex, [script])) await wallet.onChainEvent(e);
  }
}, 120_000);

afterAll(async () => {
  await app?.close();
  await fx?.close();
});

const withdraw = (key: string, address: string, amountSat: string) =>
  app.inject({
    method: "POST",
    url: "/v1/wallet/withdraw",
    headers: { authorization: `Bearer ${admin}`, "idempotency-key": key },
    payload: { address, amountSat },
  });
const withdrawals = async (): Promise<string[]> =>
  (
    await pool.query<{ txid: string }>(
      `SELECT txid FROM "${schema}".wallet_spends WHERE purpose = 'withdrawal' ORDER BY created_at`,
    )
  ).rows.map((r) => r.txid);

describe("idempotent withdrawals over the wallet", () => {
  it("a retry with the same key returns the first withdrawal and broadcasts nothing new", async () => {
    const to = rt.newAddress();
    const first = await withdraw("w-1", to, "100000");
    expect(first.statusCode).toBe(200);
    const { txid } = JSON.parse(first.body) as { txid: string };
    expect(await withdrawals()).toEqual([txid]);
    expect(chain.broadcasts).toHaveLength(1);
    const retry = await withdraw("w-1", to, "100000");
    expect(retry.statusCode).toBe(200);
    expect(retry.headers["idempotent-replayed"]).toBe("true");
    expect(JSON.parse(retry.body)).toEqual({ txid, address: to, amountSat: "100000" });
    expect(await withdrawals()).toEqual([txid]);
    expect(chain.broadcasts).toHaveLength(1);
  });

  it("concurrent requests with one key withdraw once", async () => {
    const to = rt.newAddress();
    const before = (await withdrawals()).length;
    const results = await Promise.all([1, 2, 3].map(() => withdraw("w-2", to, "50000")));
    for (const r of results) expect(r.statusCode, r.body).toBe(200);
    expect(new Set(results.map((r) => (JSON.parse(r.body) as { txid: string }).txid)).size).toBe(1);
    expect((await withdrawals()).length).toBe(before + 1);
    expect(chain.broadcasts).toHaveLength(2);
  });

  it("the key's record commits with the withdrawal: if it cannot be stored, nothing is withdrawn", async () => {
    const to = rt.newAddress();
    const spends = await withdrawals();
    const balance = await wallet.balance();
    await pool.query(`CREATE FUNCTION "${schema}".idem_down() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'idempotency record unavailable'; END $$`);
    await pool.query(`CREATE TRIGGER idem_down BEFORE UPDATE ON "${schema}".api_idempotency
      FOR EACH ROW EXECUTE FUNCTION "${schema}".idem_down()`);
    try {
      const failed = await withdraw("w-3", to, "70000");
      expect(failed.statusCode).toBe(500);
      expect((JSON.parse(failed.body) as { error: { code: string } }).error.code).toBe("INTERNAL");
    } finally {
      await pool.query(`DROP TRIGGER idem_down ON "${schema}".api_idempotency`);
    }
    expect(await withdrawals()).toEqual(spends);
    expect(chain.broadcasts).toHaveLength(2);
    expect(await wallet.balance()).toEqual(balance);
    const key = await pool.query(`SELECT 1 FROM "${schema}".api_idempotency WHERE key = 'w-3'`);
    expect(key.rowCount).toBe(0);
    // Nothing was bound: the same request goes through once now.
    const ok = await withdraw("w-3", to, "70000");
    expect(ok.statusCode).toBe(200);
    expect(await withdraw("w-3", to, "70000")).toMatchObject({ statusCode: 200 });
    expect((await withdrawals()).length).toBe(spends.length + 1);
    expect(chain.broadcasts).toHaveLength(3);
  });
});
