/**
 * Issue 13: input amounts come from the previous transactions, never from the caller's word
 * (SignWalletSpend's BIP143 amounts, SignSweep's legacy inputs), so the fee bound sees the true fee.
 */
import * as grpc from "@grpc/grpc-js";
import { sat, txidFromHex } from "@ln/bitcoin";
import { p2shOutput, toOtherScript } from "@ln/scripts";
import { buildSpend, p2wpkhOutput, p2wpkhSighash, verifyDigest } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import { describe, expect, it } from "vitest";
import { fundingTx, walletCoin } from "./coins.js";
import { refusal, useTestSigner } from "./helpers.js";

const MAX_FEE = 5000n;
const FP = grpc.status.FAILED_PRECONDITION;
const t = useTestSigner(MAX_FEE);

/** An unsigned version 2 transaction spending `coins` to `outputs` (no change, any fee). */
function spendTx(
  coins: readonly { prevTx: Transaction }[],
  outputs: readonly [Buffer, bigint][],
): Transaction {
  const tx = new Transaction();
  tx.version = 2;
  for (const c of coins) tx.addInput(c.prevTx.getHash(), 0, 0xffff_fffd);
  for (const [script, value] of outputs) tx.addOutput(script, value);
  return tx;
}

const walletKey = async (index: number): Promise<Buffer> =>
  (await t.client.call("WalletKey", { index })).pubkey;

describe("SignWalletSpend learns each input's amount from its previous transaction", () => {
  /**
   * Two coins of 1,000,000 sat each, one output of 998,000 sat to our wallet key: a true fee of
   * 1,002,000 sat. Stating either coin as 1,000 sat makes the fee look like 3,000 sat; today each
   * such request is signed, and each signs its truly-stated input correctly (BIP143 commits to
   * that input's amount only): the two requests' signatures together make the whole transaction.
   */
  async function twoCoinSpend() {
    const w0 = await walletKey(0);
    const w1 = await walletKey(1);
    const a = walletCoin(w0, 1_000_000n);
    const b = walletCoin(w0, 1_000_000n);
    const tx = spendTx([a, b], [[p2wpkhOutput(w1), 998_000n]]);
    const request = (amountA: bigint, amountB: bigint, prevA = a.prevTx, prevB = b.prevTx) =>
      t.client.call("SignWalletSpend", {
        tx_hex: tx.toHex(),
        inputs: [
          { key_index: 0, amount_sat: amountA, prev_tx_hex: prevA.toHex() },
          { key_index: 0, amount_sat: amountB, prev_tx_hex: prevB.toHex() },
        ],
        outputs: [{ wallet_key_index: 1 }],
      });
    return { w0, w1, a, b, request };
  }

  it("refuses an understated amount (the fee would look small)", async () => {
    const { request } = await twoCoinSpend();
    expect(await refusal(request(1_000_000n, 1000n))).toMatchObject({
      grpcCode: FP,
      code: "AMOUNT_MISMATCH",
    });
    expect((await refusal(request(1000n, 1_000_000n))).code).toBe("AMOUNT_MISMATCH");
    // With the true amounts the fee is 1,002,000 sat: above the bound.
    expect((await refusal(request(1_000_000n, 1_000_000n))).code).toBe("FEE_TOO_HIGH");
  });

  it("refuses a previous transaction that is not the one spent, or whose output is not the key's", async () => {
    const { w0, w1, a, request } = await twoCoinSpend();
    // A made-up transaction paying 1,000 sat to the same key: another txid.
    const forged = fundingTx(p2wpkhOutput(w0), 1000n);
    expect(await refusal(request(1_000_000n, 1000n, a.prevTx, forged))).toMatchObject({
      grpcCode: FP,
      code: "PREV_TX_MISMATCH",
    });
    // The right transaction under the other input: its txid is not that input's outpoint.
    expect((await refusal(request(1_000_000n, 1_000_000n, a.prevTx, a.prevTx))).code).toBe(
      "PREV_TX_MISMATCH",
    );
    // A coin of wallet key 1 named as key 0's.
    const c = walletCoin(w1, 1_000_000n);
    const spend = { tx: spendTx([c], [[p2wpkhOutput(w1), 998_000n]]) };
    const wrongKey = await refusal(
      t.client.call("SignWalletSpend", {
        tx_hex: spend.tx.toHex(),
        inputs: [{ key_index: 0, amount_sat: 1_000_000n, prev_tx_hex: c.prevTx.toHex() }],
        outputs: [{ wallet_key_index: 1 }],
      }),
    );
    expect(wrongKey.code).toBe("PREV_TX_MISMATCH");
    // No previous transaction at all: a malformed request.
    const missing = await refusal(
      t.client.call("SignWalletSpend", {
        tx_hex: spend.tx.toHex(),
        inputs: [{ key_index: 1, amount_sat: 1_000_000n }],
        outputs: [{ wallet_key_index: 1 }],
      }),
    );
    expect(missing).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });
  });

  it("signs with the true amounts when they are stated and the true fee is within the bound", async () => {
    const w0 = await walletKey(0);
    const w1 = await walletKey(1);
    const a = walletCoin(w0, 1_000_000n);
    const b = walletCoin(w0, 700_000n);
    const spend = { tx: spendTx([a, b], [[p2wpkhOutput(w1), 1_696_000n]]) };
    const reply = await t.client.call("SignWalletSpend", {
      tx_hex: spend.tx.toHex(),
      inputs: [
        { key_index: 0, amount_sat: 1_000_000n, prev_tx_hex: a.prevTx.toHex() },
        { key_index: 0, amount_sat: 700_000n, prev_tx_hex: b.prevTx.toHex() },
      ],
      outputs: [{ wallet_key_index: 1 }],
    });
    const [s0, s1] = reply.signatures;
    expect(verifyDigest(w0, p2wpkhSighash(spend.tx, 0, w0, 1_000_000n), s0!.signature)).toBe(true);
    expect(verifyDigest(w0, p2wpkhSighash(spend.tx, 1, w0, 700_000n), s1!.signature)).toBe(true);
  });
});

describe("SignSweep learns a final-key input's amount from its previous transaction", () => {
  /**
   * Two close outputs to our final key, 500,000 and 4,000,000 sat, swept to one 499,000 sat output:
   * a true fee of 4,001,000 sat. A legacy signature commits to no amount: stated as 1,000 sat the
   * second coin makes the fee look like 2,000 sat, and today's signatures are valid as they are.
   */
  async function twoCloseOutputs() {
    const r = await t.client.call("NewChannel", {});
    const final = r.final_pubkey;
    const script = p2shOutput(toOtherScript(final));
    const prevA = fundingTx(script, 500_000n, 1);
    const prevB = fundingTx(script, 4_000_000n, 0);
    const w0 = await walletKey(0);
    const coin = (prev: Transaction, vout: number, amount: bigint) => ({
      coin: {
        outpoint: { txid: txidFromHex(prev.getId()), vout },
        amount: sat(amount),
        redeemScript: toOtherScript(final),
        pubkey: final,
      },
      path: { kind: "key" as const },
    });
    const spend = buildSpend([coin(prevA, 1, 500_000n), coin(prevB, 0, 4_000_000n)], p2wpkhOutput(w0), 0);
    spend.tx.outs[0]!.value = 499_000n;
    const request = (amountB: bigint, prev: Transaction | null = prevB) =>
      t.client.call("SignSweep", {
        channel: r.channel,
        tx_hex: spend.tx.toHex(),
        inputs: [
          { input_index: 0, amount_sat: 500_000n, final_key: {}, prev_tx_hex: prevA.toHex() },
          { input_index: 1, amount_sat: amountB, final_key: {}, prev_tx_hex: prev?.toHex() ?? "" },
        ],
        outputs: [{ wallet_key_index: 0 }],
      });
    return { final, script, request };
  }

  it("refuses an understated amount, and with the true one the fee is above the bound", async () => {
    const { request } = await twoCloseOutputs();
    expect(await refusal(request(1000n))).toMatchObject({ grpcCode: FP, code: "AMOUNT_MISMATCH" });
    expect((await refusal(request(4_000_000n))).code).toBe("FEE_TOO_HIGH");
  });

  it("refuses a previous transaction that is not the one spent, or none", async () => {
    const { script, request } = await twoCloseOutputs();
    const forged = fundingTx(script, 1000n, 0);
    expect(await refusal(request(1000n, forged))).toMatchObject({ grpcCode: FP, code: "PREV_TX_MISMATCH" });
    const missing = await refusal(request(4_000_000n, null));
    expect(missing).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });
  });
});
