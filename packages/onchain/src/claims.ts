/**
 * What is ours on a published commitment (draft 6.2), when it becomes spendable, and the
 * transactions that claim it. All built against the txid seen on chain, after the commitment is
 * seen: no pre-signed children of a malleable commitment (DESIGN.md 7).
 */
import { sha256, txidFromInternal, type Locktime, type OutPoint, type Sat, type Txid } from "@ln/bitcoin";
import { LOCKTIME_THRESHOLD, absoluteExpiry, relativeDelay } from "@ln/scripts";
import { buildJustice, type P2shCoin, type Spend, type SpendPath } from "@ln/tx";
import { script as bscript, type Transaction } from "bitcoinjs-lib";
import { OnchainError, type AnchorSpend } from "./classify.js";

/**
 * How we take an output: "to_us" their commitment's to-other output (at once), "delayed" our
 * to-owner output (after our CSV delay), "htlc_timeout" an HTLC we offered (after its expiry,
 * plus the delay on our commitment), "htlc_redeem" an HTLC offered to us with R (at once on theirs,
 * after the delay on ours).
 */
export type ClaimWhat = "to_us" | "delayed" | "htlc_timeout" | "htlc_redeem";

export interface ClaimHtlc {
  id: bigint;
  rHash: Buffer;
  expiry: Locktime;
}

export interface Claim {
  what: ClaimWhat;
  /** On the commitment's txid as seen on chain; signed by our final key over its redeem script. */
  coin: P2shCoin;
  path: SpendPath;
  /** The locks: `csv` relative to the commitment's confirmation, `cltv` absolute. */
  after: { csv?: Locktime; cltv?: Locktime };
  htlc?: ClaimHtlc;
}

/**
 * An HTLC offered to us whose R we do not know. Draft 6.2: ignored unless we have an outgoing
 * HTLC with the same R; we never route, so nothing to do, but it stays visible (the peer takes
 * it back after its expiry).
 */
export interface Watched {
  what: "watch";
  outpoint: OutPoint;
  amount: Sat;
  htlc: ClaimHtlc;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/**
 * Every output of a published commitment we can take, and the HTLCs offered to us we cannot
 * (R unknown). `preimages` maps hex rHash to R. A close or an unknown spend yields nothing.
 */
export function claimsFor(
  spend: AnchorSpend,
  spendTxid: Txid,
  preimages: ReadonlyMap<string, Buffer>,
): { claims: Claim[]; watched: Watched[] } {
  const claims: Claim[] = [];
  const watched: Watched[] = [];
  if (spend.kind !== "our_commitment" && spend.kind !== "their_commitment") return { claims, watched };
  const ours = spend.kind === "our_commitment";
  const p = spend.params;
  const ourFinal = Buffer.from(ours ? p.ownerFinal : p.otherFinal);
  const delay = p.delay;
  for (const o of spend.commitment.outputs) {
    const coin: P2shCoin = {
      outpoint: { txid: spendTxid, vout: o.vout },
      amount: o.amount,
      redeemScript: o.redeemScript,
      pubkey: ourFinal,
    };
    switch (o.kind) {
      case "to_owner":
        // Theirs on their commitment (ours only by revocation: the tower's business).
        if (ours)
          claims.push({ what: "delayed", coin, path: { kind: "delayed", delay }, after: { csv: delay } });
        break;
      case "to_other":
        if (!ours) claims.push({ what: "to_us", coin, path: { kind: "key" }, after: {} });
        break;
      case "htlc_offered":
      case "htlc_received": {
        const htlc: ClaimHtlc = { id: o.htlc.id, rHash: Buffer.from(o.htlc.rHash), expiry: o.htlc.expiry };
        const weOffered = (o.kind === "htlc_offered") === ours;
        if (weOffered) {
          claims.push({
            what: "htlc_timeout",
            coin,
            path: ours
              ? { kind: "htlc_timeout", expiry: htlc.expiry, delay }
              : { kind: "htlc_timeout", expiry: htlc.expiry },
            after: ours ? { csv: delay, cltv: htlc.expiry } : { cltv: htlc.expiry },
            htlc,
          });
          break;
        }
        const r = preimages.get(hex(htlc.rHash));
        if (r === undefined || !sha256(r).equals(htlc.rHash)) {
          watched.push({ what: "watch", outpoint: coin.outpoint, amount: coin.amount, htlc });
          break;
        }
        claims.push({
          what: "htlc_redeem",
          coin,
          path: ours ? { kind: "htlc_redeem", preimage: r, delay } : { kind: "htlc_redeem", preimage: r },
          after: ours ? { csv: delay } : {},
          htlc,
        });
        break;
      }
    }
  }
  return { claims, watched };
}

/** Where the confirming block sits: its height, and for time-based CSV the median time past of its predecessor. */
export interface Confirmation {
  height: number;
  medianTime?: number;
}

/**
 * The first block that may include a spend of the claim: its height is at least `height`, and
 * when a time lock applies its predecessor's median time past (BIP113) is at least `medianTime`.
 */
export interface Ready {
  height: number;
  medianTime: number;
}

/** BIP68 time units (bit 22) are 512 seconds. */
const TYPE_FLAG = 1 << 22;

export function readyAt(claim: Claim, confirmed: Confirmation): Ready {
  let height = confirmed.height;
  let medianTime = 0;
  const { csv, cltv } = claim.after;
  if (csv !== undefined) {
    const seq = relativeDelay(csv);
    if (seq & TYPE_FLAG) {
      if (confirmed.medianTime === undefined)
        throw new OnchainError(
          "a time-based CSV delay needs the confirming block's predecessor's median time",
        );
      medianTime = Math.max(medianTime, confirmed.medianTime + (seq & 0xffff) * 512);
    } else height = Math.max(height, confirmed.height + seq);
  }
  if (cltv !== undefined) {
    const lock = absoluteExpiry(cltv);
    // nLockTime must be below the block's height, or below its predecessor's median time.
    if (lock < LOCKTIME_THRESHOLD) height = Math.max(height, lock + 1);
    else medianTime = Math.max(medianTime, lock + 1);
  }
  return { height, medianTime };
}

/** Whether a spend of the claim may go into the block after `tip` (the mempool's question). */
export function isSpendable(
  claim: Claim,
  tip: { height: number; medianTime: number },
  confirmed: Confirmation,
): boolean {
  const r = readyAt(claim, confirmed);
  return tip.height + 1 >= r.height && tip.medianTime >= r.medianTime;
}

/** Our offered HTLC outputs among the claims: the ones whose spend by the peer reveals R. */
export const offeredHtlcOutpoints = (claims: readonly Claim[]): { outpoint: OutPoint; rHash: Buffer }[] =>
  claims.flatMap((c) =>
    c.what === "htlc_timeout" && c.htlc ? [{ outpoint: c.coin.outpoint, rHash: c.htlc.rHash }] : [],
  );

/**
 * Draft 6.2: a spend of an HTLC we offered reveals R, which settles the matching incoming HTLC.
 * An input spending one of `htlcs` with a 32-byte push whose SHA256 is the rHash reveals it.
 */
export function preimagesRevealed(
  tx: Transaction,
  htlcs: readonly { outpoint: OutPoint; rHash: Uint8Array }[],
): { rHash: Buffer; r: Buffer; outpoint: OutPoint }[] {
  const found: { rHash: Buffer; r: Buffer; outpoint: OutPoint }[] = [];
  for (const input of tx.ins) {
    const txid = txidFromInternal(input.hash);
    const htlc = htlcs.find((h) => h.outpoint.txid === txid && h.outpoint.vout === input.index);
    if (htlc === undefined) continue;
    const chunks = bscript.decompile(input.script) ?? [];
    for (const c of chunks) {
      if (typeof c === "number" || c.length !== 32) continue;
      if (sha256(c).equals(htlc.rHash)) {
        found.push({ rHash: Buffer.from(htlc.rHash), r: Buffer.from(c), outpoint: htlc.outpoint });
        break;
      }
    }
  }
  return found;
}

const lockKind = (c: Claim): "none" | "height" | "time" =>
  c.after.cltv === undefined ? "none" : absoluteExpiry(c.after.cltv) < LOCKTIME_THRESHOLD ? "height" : "time";

/**
 * Claim transactions to `destination` at `feeRate` satoshi per 1000 bytes: one group per kind of
 * nLockTime, in this order: none, a height, a time (a transaction has one), each split to stay below 100,000
 * bytes. Pass the claims spendable now: the group's nLockTime is its latest expiry.
 */
export function buildClaimSpend(claims: readonly Claim[], destination: Uint8Array, feeRate: number): Spend[] {
  const groups = (["none", "height", "time"] as const)
    .map((k) => claims.filter((c) => lockKind(c) === k))
    .filter((g) => g.length > 0);
  // buildJustice is buildSpend in chunks below the standard size; nothing justice-specific.
  return groups.flatMap((g) =>
    buildJustice(
      g.map((c) => ({ coin: c.coin, path: c.path })),
      destination,
      feeRate,
    ),
  );
}
