/*~ Test support (like @ln/channel-core/testing): not for production code. */
import { sat, txidFromHex, type OutPoint, type Sat } from "@ln/bitcoin";
import { payments, networks, type Transaction } from "bitcoinjs-lib";
import type { AnchorInput } from "./commitment.js";
import { signDigest } from "./sign.js";
import { buildAnchor, finalizeWalletSpend, p2wpkhOutput } from "./wallet.js";

export interface TestKeyPair {
  pub: Buffer;
  priv: Buffer;
}

/**
 * A segwit-funded 2-of-2 anchor, signed and ready to submit: `fund` pays `amount` plus a margin
 * to the funder's regtest P2WPKH address (the regtest harness's `fund`), the anchor spends that
 * coin with change back to the funder. The caller submits and confirms the transaction.
 */
export async function segwitAnchor(p: {
  fund: (address: string, amount: Sat) => Promise<{ txid: string; vout: number }>;
  funder: TestKeyPair;
  commitKeys: readonly [Buffer, Buffer];
  amount: Sat;
  feeRate: number;
}): Promise<{ tx: Transaction; anchor: AnchorInput }> {
  const address = payments.p2wpkh({ pubkey: p.funder.pub, network: networks.regtest }).address as string;
  const funded = sat(p.amount + 100_000n);
  const coin = await p.fund(address, funded);
  const outpoint: OutPoint = { txid: txidFromHex(coin.txid), vout: coin.vout };
  const anchor = buildAnchor({
    utxos: [{ outpoint, amount: funded, pubkey: p.funder.pub }],
    commitKeys: p.commitKeys,
    amount: p.amount,
    changeScript: p2wpkhOutput(p.funder.pub),
    feeRate: p.feeRate,
  });
  const tx = finalizeWalletSpend(
    anchor,
    anchor.requests.map((r) => signDigest(p.funder.priv, r.digest)),
  );
  return {
    tx,
    anchor: {
      outpoint: { txid: txidFromHex(tx.getId()), vout: anchor.anchorVout },
      amount: p.amount,
      commitKeys: p.commitKeys,
    },
  };
}
