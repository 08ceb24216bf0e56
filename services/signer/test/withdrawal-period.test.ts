/**
 * The cumulative withdrawal limit (SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY, withdrawals.ts): spends each
 * within the per-spend limit are refused once together they would exceed the limit of the last 24
 * hours, against the signer's durable record, also when they race and across a restart.
 */
import { randomBytes } from "node:crypto";
import { sat, sha256 } from "@ln/bitcoin";
import { buildWalletSpend, p2wpkhOutput } from "@ln/tx";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SignerError } from "../src/errors.js";
import { KeyRing } from "../src/keys.js";
import { SignerService } from "../src/service.js";
import { SignerStore } from "../src/store.js";
import { walletCoin } from "./coins.js";
import { DATABASE_URL, signerCode, TEST_SEED } from "./helpers.js";

const PER_SPEND = 600_000n;
const PER_DAY = 1_000_000n;
const cfg = { maxFeeSat: 5000n, maxWithdrawalSat: PER_SPEND, maxWithdrawalSatPerDay: PER_DAY };
const keys = new KeyRing(TEST_SEED);
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 6 });
const schemas: string[] = [];

afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

async function freshService(): Promise<{ service: SignerService; store: SignerStore; schema: string }> {
  const schema = `signer_wd_${randomBytes(6).toString("hex")}`;
  schemas.push(schema);
  const store = new SignerStore(pool, schema);
  await store.migrate();
  return { service: new SignerService(keys, store, cfg), store, schema };
}

const elsewhere = p2wpkhOutput(Buffer.from(ecc.pointFromScalar(sha256(Buffer.from("exchange")), true)!));

/** A wallet spend of a fresh 3,000,000 sat coin of wallet key 0: `amount` out, the change to key 1. */
function spendOf(amount: bigint) {
  const coin = walletCoin(keys.wallet(0).pub, 3_000_000n);
  const spend = buildWalletSpend(
    [coin],
    [{ script: elsewhere, amount: sat(amount) }],
    p2wpkhOutput(keys.wallet(1).pub),
    2000,
  );
  return { tx: spend.tx, prevTx: coin.prevTx };
}

const withdraw = (s: SignerService, { tx, prevTx }: ReturnType<typeof spendOf>) =>
  s.signWalletSpend(
    tx,
    [{ keyIndex: 0, amount: sat(3_000_000n), prevTx }],
    [{ external: { script: elsewhere } }, { walletKeyIndex: 1 }],
  );

const codeOf = (p: Promise<unknown>): Promise<string | undefined> => signerCode(() => p);

let s: Awaited<ReturnType<typeof freshService>>;
beforeAll(async () => {
  s = await freshService();
});

describe("withdrawals over 24 hours", () => {
  it("two spends each within the per-spend limit, together over the daily one: the second is refused", async () => {
    expect(await withdraw(s.service, spendOf(600_000n))).toHaveLength(1);
    // 600,000 + 500,000 > 1,000,000: refused, and not recorded.
    expect(await codeOf(withdraw(s.service, spendOf(500_000n)))).toBe("WITHDRAWAL_LIMIT_REACHED");
    // Exactly up to the limit passes (the refused spend counted nothing) ...
    expect(await withdraw(s.service, spendOf(400_000n))).toHaveLength(1);
    // ... and then not one more satoshi, also for a signer restarted on the same database.
    const restarted = new SignerService(keys, s.store, cfg);
    expect(await codeOf(withdraw(restarted, spendOf(1000n)))).toBe("WITHDRAWAL_LIMIT_REACHED");
  });

  it("the same transaction signed again (a retry) counts once", async () => {
    const f = await freshService();
    const tx = spendOf(600_000n);
    await withdraw(f.service, tx);
    await withdraw(f.service, tx);
    // 600,000 recorded once: 400,000 more still fits.
    expect(await withdraw(f.service, spendOf(400_000n))).toHaveLength(1);
  });

  it("two concurrent spends that only together exceed the limit: exactly one is signed", async () => {
    const f = await freshService();
    const results = await Promise.allSettled([
      withdraw(f.service, spendOf(600_000n)),
      withdraw(f.service, spendOf(600_000n)),
    ]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
    const rejected = results.find((r) => r.status === "rejected");
    expect((rejected?.reason as SignerError).code).toBe("WITHDRAWAL_LIMIT_REACHED");
  });

  it("a withdrawal older than 24 hours no longer counts", async () => {
    const f = await freshService();
    await withdraw(f.service, spendOf(600_000n));
    expect(await codeOf(withdraw(f.service, spendOf(600_000n)))).toBe("WITHDRAWAL_LIMIT_REACHED");
    await pool.query(`UPDATE "${f.schema}".withdrawals SET signed_at = now() - interval '24 hours 1 second'`);
    expect(await withdraw(f.service, spendOf(600_000n))).toHaveLength(1);
  });

  it("a spend without external outputs records nothing", async () => {
    const f = await freshService();
    const coin = walletCoin(keys.wallet(0).pub, 3_000_000n);
    const internal = buildWalletSpend(
      [coin],
      [{ script: p2wpkhOutput(keys.wallet(2).pub), amount: sat(2_000_000n) }],
      p2wpkhOutput(keys.wallet(1).pub),
      2000,
    ).tx;
    await f.service.signWalletSpend(
      internal,
      [{ keyIndex: 0, amount: sat(3_000_000n), prevTx: coin.prevTx }],
      [{ walletKeyIndex: 2 }, { walletKeyIndex: 1 }],
    );
    const r = await pool.query(`SELECT count(*)::int AS n FROM "${f.schema}".withdrawals`);
    expect(r.rows[0]).toEqual({ n: 0 });
  });
});
