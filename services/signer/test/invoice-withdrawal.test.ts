/** InvoiceHash/RevealInvoice and withdrawals (external outputs of SignWalletSpend), over gRPC/mTLS and Postgres. */
import { createHmac, randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { hash160, sat, sha256 } from "@ln/bitcoin";
import { buildWalletSpend, p2wpkhOutput, p2wpkhSighash, verifyDigest } from "@ln/tx";
import { BIP32Factory } from "bip32";
import { payments } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyRing } from "../src/keys.js";
import { isWithdrawalScript } from "../src/policy.js";
import { walletCoin } from "./coins.js";
import { paying } from "./received.js";
import { refusal, startTestSigner, TEST_SEED, type TestSigner } from "./helpers.js";

const LIMIT = 1_000_000n;
let t: TestSigner;
let closed: TestSigner;
beforeAll(async () => {
  [t, closed] = await Promise.all([startTestSigner(5000n, LIMIT), startTestSigner(5000n)]);
});
afterAll(async () => {
  await t?.close();
  await closed?.close();
});

const FP = grpc.status.FAILED_PRECONDITION;

describe("InvoiceHash / RevealInvoice", () => {
  it("reveals R with SHA256(R) = the hash, different per index, the same for the same seed", async () => {
    const hashes = new Set<string>();
    for (const index of [0, 1, 2, 77, 0x7fff_ffff]) {
      const { r_hash } = await t.client.call("InvoiceHash", { index });
      await paying(t, index); // R only for an invoice someone is paying (reveal-invoice.test.ts)
      const { r } = await t.client.call("RevealInvoice", { index });
      expect(r.length).toBe(32);
      expect(sha256(r).equals(r_hash)).toBe(true);
      hashes.add(r_hash.toString("hex"));
      // Another signer process from the same seed derives the same R.
      expect(new KeyRing(TEST_SEED).invoicePreimage(index).equals(r)).toBe(true);
    }
    expect(hashes.size).toBe(5);
  });

  it("derives R as documented: HMAC-SHA256 under the key at m/1017'/3'/0' over the label and the index", async () => {
    const key = BIP32Factory(ecc).fromSeed(TEST_SEED).derivePath("m/1017'/3'/0'").privateKey!;
    const msg = Buffer.concat([Buffer.from("ln-signer invoice"), Buffer.from([0, 0, 1, 2])]);
    const expected = createHmac("sha256", key).update(msg).digest();
    await paying(t, 258);
    expect((await t.client.call("RevealInvoice", { index: 258 })).r.equals(expected)).toBe(true);
    // Another seed, another R.
    expect(new KeyRing(Buffer.alloc(32, 1)).invoicePreimage(258).equals(expected)).toBe(false);
  });

  it("reveals the same index again and records every reveal", async () => {
    const index = 1000 + randomBytes(2).readUInt16BE();
    expect(await t.store.invoiceReveal(index)).toBeUndefined();
    await t.client.call("InvoiceHash", { index });
    expect(await t.store.invoiceReveal(index)).toBeUndefined(); // a hash is no reveal
    await paying(t, index);
    const first = await t.client.call("RevealInvoice", { index });
    const again = await t.client.call("RevealInvoice", { index });
    expect(again.r.equals(first.r)).toBe(true);
    const audit = await t.store.invoiceReveal(index);
    expect(audit?.reveals).toBe(2);
    expect(audit!.lastRevealedAt.getTime()).toBeGreaterThanOrEqual(audit!.firstRevealedAt.getTime());
  });

  it("refuses an index that is not below 2^31", async () => {
    const e = await refusal(t.client.call("RevealInvoice", { index: 0x8000_0000 }));
    expect(e).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });
  });
});

describe("withdrawals (external outputs of SignWalletSpend)", () => {
  const elsewhere = p2wpkhOutput(Buffer.from(ecc.pointFromScalar(sha256(Buffer.from("exchange")), true)!));

  async function withdraw(s: TestSigner, amount: bigint, script: Buffer = elsewhere, named = script) {
    const w0 = (await s.client.call("WalletKey", { index: 0 })).pubkey;
    const w1 = (await s.client.call("WalletKey", { index: 1 })).pubkey;
    const c0 = walletCoin(w0, 3_000_000n);
    const spend = buildWalletSpend([c0], [{ script, amount: sat(amount) }], p2wpkhOutput(w1), 2000);
    const reply = await s.client.call("SignWalletSpend", {
      tx_hex: spend.tx.toHex(),
      inputs: [{ key_index: 0, amount_sat: 3_000_000n, prev_tx_hex: c0.prevTx.toHex() }],
      outputs: [{ external: { script: named } }, { wallet_key_index: 1 }],
    });
    return { reply, spend, w0 };
  }

  it("signs a withdrawal within the limit, with change to our wallet key", async () => {
    const { reply, spend, w0 } = await withdraw(t, LIMIT);
    const s = reply.signatures[0]!;
    expect(verifyDigest(w0, p2wpkhSighash(spend.tx, 0, w0, 3_000_000n), s.signature)).toBe(true);
  });

  it("refuses external outputs above the limit, and every withdrawal when the limit is 0", async () => {
    const over = await refusal(withdraw(t, LIMIT + 1n));
    expect(over).toMatchObject({ grpcCode: FP, code: "WITHDRAWAL_TOO_LARGE" });
    expect(over.details).toContain("SIGNER_MAX_WITHDRAWAL_SAT");
    const disabled = await refusal(withdraw(closed, 10_000n));
    expect(disabled).toMatchObject({ grpcCode: FP, code: "WITHDRAWALS_DISABLED" });
    expect(disabled.details).toContain("set SIGNER_MAX_WITHDRAWAL_SAT");
  });

  it("counts every external output of the spend toward the limit", async () => {
    const w0 = (await t.client.call("WalletKey", { index: 0 })).pubkey;
    const half = LIMIT / 2n + 1n;
    const c0 = walletCoin(w0, 3_000_000n);
    const spend = buildWalletSpend(
      [c0],
      [
        { script: elsewhere, amount: sat(half) },
        { script: elsewhere, amount: sat(half) },
      ],
      p2wpkhOutput(w0),
      2000,
    );
    const e = await refusal(
      t.client.call("SignWalletSpend", {
        tx_hex: spend.tx.toHex(),
        inputs: [{ key_index: 0, amount_sat: 3_000_000n, prev_tx_hex: c0.prevTx.toHex() }],
        outputs: [
          { external: { script: elsewhere } },
          { external: { script: elsewhere } },
          { wallet_key_index: 0 },
        ],
      }),
    );
    expect(e.code).toBe("WITHDRAWAL_TOO_LARGE");
  });

  it("refuses a script other than the one named, and scripts that are not P2WPKH/P2WSH/P2SH/P2PKH", async () => {
    const other = p2wpkhOutput(Buffer.from(ecc.pointFromScalar(sha256(Buffer.from("other")), true)!));
    expect((await refusal(withdraw(t, 10_000n, elsewhere, other))).code).toBe("FOREIGN_OUTPUT");
    const bare = Buffer.from("51", "hex"); // OP_TRUE: anyone can spend it
    expect((await refusal(withdraw(t, 10_000n, bare))).code).toBe("UNSUPPORTED_SCRIPT");
  });

  it("accepts exactly the four script types", () => {
    const h20 = hash160(Buffer.from("x"));
    const pub = Buffer.from(ecc.pointFromScalar(sha256(Buffer.from("k")), true)!);
    const good = [
      payments.p2wpkh({ hash: h20 }).output!,
      payments.p2wsh({ hash: sha256(Buffer.from("w")) }).output!,
      payments.p2sh({ hash: h20 }).output!,
      payments.p2pkh({ hash: h20 }).output!,
    ];
    for (const s of good) expect(isWithdrawalScript(s)).toBe(true);
    const bad = [
      payments.p2pk({ pubkey: pub }).output!,
      Buffer.concat([Buffer.from("5120", "hex"), pub.subarray(1)]), // P2TR: OP_1 <32>
      payments.embed({ data: [Buffer.from("hi")] }).output!,
      Buffer.from("0014", "hex"),
    ];
    for (const s of bad) expect(isWithdrawalScript(s)).toBe(false);
  });
});
