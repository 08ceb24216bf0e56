import { DUST_LIMIT_SAT, hash160, sat, txidToInternal } from "@ln/bitcoin";
import type { OutPoint, Sat } from "@ln/bitcoin";
import { anchorScript, p2shOutput } from "@ln/scripts";
import { payments, Transaction } from "bitcoinjs-lib";
import { TX_VERSION } from "./commitment.js";
import { encodeSignature, p2wpkhSighash, type SignatureRequest } from "./sign.js";

/** A wallet coin. Only P2WPKH: a segwit input keeps the anchor's txid unmalleable (DESIGN.md 7). */
export interface WalletUtxo {
  outpoint: OutPoint;
  amount: Sat;
  pubkey: Buffer;
}

export interface WalletOutput {
  script: Uint8Array;
  amount: Sat;
}

export class WalletError extends Error {
  override readonly name = "WalletError";
}

export const p2wpkhOutput = (pubkey: Uint8Array): Buffer =>
  Buffer.from(payments.p2wpkh({ hash: hash160(pubkey) }).output as Uint8Array);

// vbytes: 10.5 overhead (rounded up to 11), 68 per P2WPKH input (41 + 27 witness vbytes, worst-case sig), 31 per P2WPKH change.
const OVERHEAD_VBYTES = 11;
const P2WPKH_INPUT_VBYTES = 68;
const outputVbytes = (script: Uint8Array): number => 8 + 1 + script.length;

export interface WalletSpend {
  /** Unsigned; `finalizeWalletSpend` adds the witnesses. */
  tx: Transaction;
  utxos: readonly WalletUtxo[];
  fee: Sat;
  /** The change output's index, if there is one. */
  changeVout: number | undefined;
  requests: SignatureRequest[];
}

/**
 * Pays `outputs` from P2WPKH coins (all of `utxos`, in the order given), change to `changeScript`
 * unless it would be dust (then it goes to the fee). `feeRate` is satoshi per 1000 vbytes.
 */
export function buildWalletSpend(
  utxos: readonly WalletUtxo[],
  outputs: readonly WalletOutput[],
  changeScript: Uint8Array,
  feeRate: number,
): WalletSpend {
  if (utxos.length === 0) throw new WalletError("no coins to spend");
  const tx = new Transaction();
  tx.version = TX_VERSION;
  for (const u of utxos) {
    if (u.pubkey.length !== 33) throw new WalletError("wallet coins are P2WPKH with a 33-byte key");
    tx.addInput(txidToInternal(u.outpoint.txid), u.outpoint.vout, 0xffff_fffd);
  }
  for (const o of outputs) tx.addOutput(o.script, o.amount);
  const inTotal = utxos.reduce<bigint>((a, u) => a + u.amount, 0n);
  const outTotal = outputs.reduce<bigint>((a, o) => a + o.amount, 0n);
  const vbytes =
    OVERHEAD_VBYTES +
    P2WPKH_INPUT_VBYTES * utxos.length +
    outputs.reduce((a, o) => a + outputVbytes(o.script), 0);
  const feeOf = (v: number): bigint => (BigInt(v) * BigInt(feeRate) + 999n) / 1000n;
  const feeWithout = feeOf(vbytes);
  const feeWith = feeOf(vbytes + outputVbytes(changeScript));
  if (inTotal < outTotal + feeWithout)
    throw new WalletError(
      `the coins (${inTotal} sat) do not cover ${outTotal} sat plus a fee of ${feeWithout} sat`,
    );
  const change = inTotal - outTotal - feeWith;
  let changeVout: number | undefined;
  if (change >= DUST_LIMIT_SAT) changeVout = tx.addOutput(changeScript, change);
  const fee = sat(inTotal - outTotal - (changeVout === undefined ? 0n : change));
  const requests = utxos.map((u, inputIndex) => ({
    inputIndex,
    digest: p2wpkhSighash(tx, inputIndex, u.pubkey, u.amount),
    pubkey: u.pubkey,
  }));
  return { tx, utxos, fee, changeVout, requests };
}

export function finalizeWalletSpend(spend: WalletSpend, compactSigs: readonly Uint8Array[]): Transaction {
  if (compactSigs.length !== spend.utxos.length) throw new WalletError("one signature per input");
  const signed = spend.tx.clone();
  spend.utxos.forEach((u, i) => signed.setWitness(i, [encodeSignature(compactSigs[i]!), u.pubkey]));
  return signed;
}

/**
 * The anchor (funding) transaction (draft 2.2): `amount` to the 2-of-2 of both commit keys, from
 * segwit coins only, with change. Built, never broadcast here: the opener sends `open_anchor`
 * first and broadcasts only after `open_commit_sig` (draft 2.3).
 */
export function buildAnchor(p: {
  utxos: readonly WalletUtxo[];
  commitKeys: readonly [Uint8Array, Uint8Array];
  amount: Sat;
  changeScript: Uint8Array;
  feeRate: number;
}): WalletSpend & { anchorVout: number; anchorRedeemScript: Buffer } {
  const anchorRedeemScript = anchorScript(...p.commitKeys);
  const spend = buildWalletSpend(
    p.utxos,
    [{ script: p2shOutput(anchorRedeemScript), amount: p.amount }],
    p.changeScript,
    p.feeRate,
  );
  return { ...spend, anchorVout: 0, anchorRedeemScript };
}
