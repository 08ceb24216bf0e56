import { msat, sat, sha256, txidFromHex, type Locktime } from "@ln/bitcoin";
import type { CommitmentHtlc, CommitmentParams } from "@ln/tx";
import * as ecc from "tiny-secp256k1";

export interface Key {
  priv: Buffer;
  pub: Buffer;
}
export const key = (fill: number): Key => {
  const priv = Buffer.alloc(32, fill);
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
};
/** The peer broadcasts its revoked commitment; we hold the tower. */
export const peer = { commit: key(0x31), final: key(0x32), wallet: key(0x33) };
export const us = { commit: key(0x41), final: key(0x42) };

export const R = (n: number): Buffer => Buffer.alloc(32, n);
export const htlcFor = (
  id: number,
  offeredByOwner: boolean,
  amountSat: number,
  expiry: Locktime,
): CommitmentHtlc => ({
  id: BigInt(id),
  offeredByOwner,
  amountMsat: msat(amountSat * 1000),
  rHash: sha256(R(id)),
  expiry,
});

/** The peer's commitment: owner = the peer, other = us. */
export function peerParams(
  anchor: CommitmentParams["anchor"],
  htlcs: CommitmentHtlc[],
  revocationPreimage: Buffer,
  feeRate = 2000,
): CommitmentParams {
  const htlcMsat = htlcs.reduce((a, h) => a + h.amountMsat, 0n);
  const rest = anchor.amount * 1000n - htlcMsat;
  const owner = (rest * 6n) / 10n;
  return {
    anchor,
    ownerFinal: peer.final.pub,
    otherFinal: us.final.pub,
    revocationHash: sha256(revocationPreimage),
    delay: { blocks: 144 },
    ownerMsat: msat(owner),
    otherMsat: msat(rest - owner),
    htlcs,
    feeRate,
  };
}

export const fakeAnchor = (amount = 1_000_000): CommitmentParams["anchor"] => ({
  outpoint: { txid: txidFromHex("ab".repeat(32)), vout: 1 },
  amount: sat(amount),
  commitKeys: [peer.commit.pub, us.commit.pub],
});
