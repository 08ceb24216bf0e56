/**
 * The amounts of the coins a transaction spends, learned from their previous transactions (as
 * hardware wallets do), never from the caller's word. A BIP143 signature commits to its own
 * input's amount only, and a legacy one to none: with caller-stated amounts, two requests for
 * the same transaction, each understating another input, give signatures that combine into a
 * transaction whose true fee no check ever saw.
 */
import { sat, txidFromInternal, type Sat } from "@ln/bitcoin";
import { p2wpkhOutput } from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";
import { invalid, refuse } from "./errors.js";

/**
 * The output input `inputIndex` of `tx` spends, read from `prevTx`: its txid must be the input's
 * outpoint hash (so its outputs are the chain's, not the caller's), the output must exist and
 * pay `script`, and the amount the caller stated must be that output's.
 */
export function prevOutputAmount(
  tx: Transaction,
  inputIndex: number,
  prevTx: Transaction | undefined,
  script: Buffer,
  stated: Sat,
  what: string,
): Sat {
  if (prevTx === undefined) throw invalid(`${what}: prev_tx_hex (the transaction it spends) is required`);
  const input = tx.ins[inputIndex];
  if (input === undefined) throw invalid(`${what}: not an input of the transaction`);
  const spent = txidFromInternal(input.hash);
  if (prevTx.getId() !== spent)
    throw refuse(
      "PREV_TX_MISMATCH",
      `${what}: the previous transaction given is ${prevTx.getId()}, the input spends ${spent}`,
    );
  const out = prevTx.outs[input.index];
  if (out === undefined) throw refuse("PREV_TX_MISMATCH", `${what}: ${spent} has no output ${input.index}`);
  if (!script.equals(out.script))
    throw refuse(
      "PREV_TX_MISMATCH",
      `${what}: output ${input.index} of ${spent} does not pay the script of the key named for it`,
    );
  const amount = sat(out.value);
  if (amount !== stated)
    throw refuse(
      "AMOUNT_MISMATCH",
      `${what}: states ${stated} sat, output ${input.index} of ${spent} holds ${amount} sat`,
    );
  return amount;
}

/** Every input of a wallet spend: a P2WPKH coin of its key, with the amount its previous transaction holds. */
export function checkWalletInputs(
  tx: Transaction,
  inputs: readonly { pubkey: Buffer; amount: Sat; prevTx?: Transaction | undefined }[],
): void {
  inputs.forEach((i, n) => prevOutputAmount(tx, n, i.prevTx, p2wpkhOutput(i.pubkey), i.amount, `input ${n}`));
}
