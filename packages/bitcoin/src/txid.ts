/**
 * A txid in display order (the reversed hex that block explorers and bitcoind RPC print).
 * On the wire (`open_anchor.txid`) and inside transactions it travels in internal byte order;
 * convert only through these functions so the order is never guessed.
 */
declare const txidBrand: unique symbol;
export type Txid = string & { readonly [txidBrand]: true };

export class TxidError extends Error {
  override readonly name = "TxidError";
  readonly code = "BAD_TXID";
}

const HEX64 = /^[0-9a-f]{64}$/;

export function txidFromHex(displayHex: string): Txid {
  const lower = displayHex.toLowerCase();
  if (!HEX64.test(lower))
    throw new TxidError(`a txid is 64 hex characters, got ${JSON.stringify(displayHex)}`);
  return lower as Txid;
}

export function txidFromInternal(internal: Uint8Array): Txid {
  if (internal.length !== 32) throw new TxidError(`a txid is 32 bytes, got ${internal.length}`);
  return Buffer.from(internal).reverse().toString("hex") as Txid;
}

export const txidToInternal = (txid: Txid): Buffer => Buffer.from(txid, "hex").reverse();

/** A transaction output: the anchor, an HTLC output of a commitment, a wallet coin. */
export interface OutPoint {
  readonly txid: Txid;
  readonly vout: number;
}

export const outPointKey = (o: OutPoint): string => `${o.txid}:${o.vout}`;
