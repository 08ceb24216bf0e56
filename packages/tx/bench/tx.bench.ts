/**
 * pnpm bench:tx — commitment transactions built and signed per second with 0, 100 and 1500
 * HTLCs, and, in the same run, raw tiny-secp256k1 signatures per second as the baseline.
 */
import { msat, sat, txidFromHex } from "@ln/bitcoin";
import {
  anchorSighash,
  buildCommitment,
  signDigest,
  type CommitmentHtlc,
  type CommitmentParams,
} from "@ln/tx";
import { randomBytes } from "node:crypto";
import * as ecc from "tiny-secp256k1";

const key = (fill: number): Buffer =>
  Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, fill), true) as Uint8Array);
const signingKey = Buffer.alloc(32, 1);

function params(htlcCount: number): CommitmentParams {
  const htlcs: CommitmentHtlc[] = Array.from({ length: htlcCount }, (_, i) => ({
    id: BigInt(i),
    offeredByOwner: i % 2 === 0,
    amountMsat: msat(1_000_000 + i),
    rHash: randomBytes(32),
    expiry: { blocks: 1000 + i },
  }));
  return {
    anchor: {
      outpoint: { txid: txidFromHex("11".repeat(32)), vout: 0 },
      amount: sat(4_000_000),
      commitKeys: [key(1), key(2)],
    },
    ownerFinal: key(3),
    otherFinal: key(4),
    revocationHash: randomBytes(32),
    delay: { blocks: 144 },
    ownerMsat: msat(1_000_000_000),
    otherMsat: msat(1_000_000_000),
    htlcs,
    feeRate: 1000,
  };
}

function perSecond(minMs: number, run: () => void): number {
  let n = 0;
  const t0 = process.hrtime.bigint();
  let elapsed = 0;
  do {
    run();
    n++;
    elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (elapsed < minMs);
  return (n * 1000) / elapsed;
}

const digest = randomBytes(32);
perSecond(200, () => ecc.sign(digest, signingKey)); // warm-up
const sigsPerSecond = perSecond(1500, () => ecc.sign(digest, signingKey));
console.log(`baseline: raw tiny-secp256k1 sign: ${sigsPerSecond.toFixed(0)} signatures/s`);
for (const n of [0, 100, 1500]) {
  const p = params(n);
  const rate = perSecond(1500, () => {
    const c = buildCommitment(p);
    signDigest(signingKey, anchorSighash(c.tx, c.anchorRedeemScript));
  });
  console.log(
    `commitment with ${String(n).padStart(4)} HTLCs built and signed: ${rate.toFixed(1)} /s ` +
      `(${(rate / sigsPerSecond).toFixed(4)} of raw signatures/s)`,
  );
}
