/** Coins with a real previous transaction: what the signer needs to learn an input's amount. */
import { randomBytes } from "node:crypto";
import { sat, txidFromHex, type Sat } from "@ln/bitcoin";
import { p2wpkhOutput, type WalletUtxo } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";

/** A transaction (spending a random outpoint) whose output `vout` pays `amount` to `script`. */
export function fundingTx(script: Uint8Array, amount: bigint, vout = 0): Transaction {
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(randomBytes(32), 0);
  for (let i = 0; i < vout; i++) tx.addOutput(p2wpkhOutput(Buffer.alloc(33, 2)), 1000n);
  tx.addOutput(script, amount);
  return tx;
}

/** A P2WPKH coin of `pubkey` and the transaction that created it. */
export function walletCoin(
  pubkey: Buffer,
  amount: bigint,
): WalletUtxo & { prevTx: Transaction; amount: Sat } {
  const prevTx = fundingTx(p2wpkhOutput(pubkey), amount);
  return { outpoint: { txid: txidFromHex(prevTx.getId()), vout: 0 }, amount: sat(amount), pubkey, prevTx };
}
