import { sha256d, txidFromInternal, type Txid } from "@ln/bitcoin";
import { Transaction } from "bitcoinjs-lib";

/**
 * DESIGN.md 7: SHA256d of the transaction with every scriptSig (and witness) emptied. A P2SH
 * commitment's txid depends on the broadcaster's re-signable half of the scriptSig; this does not.
 */
export function normalizedTxid(tx: Transaction): Txid {
  const bare = tx.clone();
  bare.ins.forEach((_, i) => {
    bare.setInputScript(i, Buffer.alloc(0));
    bare.setWitness(i, []);
  });
  return txidFromInternal(sha256d(bare.toBuffer()));
}
