/**
 * The HTLCs offered to us in the commitments the signer saw signed, so that `RevealInvoice` gives
 * R only for an invoice someone is really paying: without that check a payer could get its proof
 * of payment (R) from a compromised caller without paying. Recorded from our commitments with the
 * peer's valid signature (RevealRevocation's `revoke + 1`, SignLocalCommitment) and the peer's
 * commitments we signed (SignRemoteCommitment: an on-chain claim of the HTLC on the peer's
 * commitment needs R too); forgotten once that commitment is revoked.
 */
import type { Msat } from "@ln/bitcoin";
import type { CommitmentParams } from "@ln/tx";
import { refuse } from "./errors.js";

export type CommitmentSide = "local" | "remote";

export interface ReceivedHtlc {
  id: bigint;
  rHash: Buffer;
  amountMsat: Msat;
}

/** What the channel's locked store keeps of them. */
export interface ReceivedHtlcStore {
  putReceivedHtlcs(side: CommitmentSide, number: bigint, htlcs: readonly ReceivedHtlc[]): Promise<void>;
  /** Forgets those of `side`'s commitments up to `number` (revoked). */
  pruneReceivedHtlcs(side: CommitmentSide, number: bigint): Promise<void>;
}

/** The HTLCs offered to us: on our commitment those not offered by its owner, on theirs those offered by it. */
export const receivedHtlcs = (side: CommitmentSide, p: CommitmentParams): ReceivedHtlc[] =>
  p.htlcs
    .filter((h) => h.offeredByOwner === (side === "remote"))
    .map((h) => ({ id: h.id, rHash: Buffer.from(h.rHash), amountMsat: h.amountMsat }));

/** Records the HTLCs offered to us in `side`'s signed commitment `number`. */
export async function recordReceivedHtlcs(
  store: ReceivedHtlcStore,
  side: CommitmentSide,
  number: bigint,
  p: CommitmentParams,
): Promise<void> {
  const htlcs = receivedHtlcs(side, p);
  if (htlcs.length > 0) await store.putReceivedHtlcs(side, number, htlcs);
}

/** What RevealInvoice knows when it decides. */
export interface InvoiceRevealFacts {
  index: number;
  /** R was revealed before: the caller has it already (a retry after a crash, an on-chain claim). */
  revealedBefore: boolean;
  /** The invoice's amount, if InvoiceHash was told it. */
  amountMsat: Msat | undefined;
  /** A commitment not revoked holds an HTLC offered to us with the hash and at least that amount. */
  matchingHtlc: boolean;
}

export function authorizeInvoiceReveal(f: InvoiceRevealFacts): void {
  if (f.revealedBefore || f.matchingHtlc) return;
  throw refuse(
    "NO_MATCHING_HTLC",
    `invoice ${f.index}: no signed commitment that is not revoked holds an HTLC offered to us with its payment hash` +
      (f.amountMsat === undefined ? "" : ` and at least its ${f.amountMsat} msat`),
  );
}
