/**
 * What spent the anchor (draft 6.1): one of the commitments we may see on chain, a close, or
 * something else. Commitments are matched by normalized txid (DESIGN.md 7): the broadcaster can
 * re-sign its half of the anchor scriptSig and so change the txid, never the normalized one.
 */
import { txidFromInternal, type Txid } from "@ln/bitcoin";
import { p2shOutput, toOtherScript } from "@ln/scripts";
import { buildCommitment, normalizedTxid, type Commitment, type CommitmentParams } from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";

export class OnchainError extends Error {
  override readonly name = "OnchainError";
}

/** A commitment by its number and the parameters that rebuild it. */
export interface KnownCommitment {
  number: bigint;
  params: CommitmentParams;
}

export interface KnownCommitments {
  /** Our latest commitment: the only one of ours we may publish (older ones are revoked). */
  ours: KnownCommitment;
  /**
   * Their commitments not revoked: the latest and, while they owe us a revocation, the one before
   * (a revoked one is the watchtower's business).
   */
  theirs: readonly KnownCommitment[];
}

export type AnchorSpend =
  | {
      kind: "our_commitment" | "their_commitment";
      number: bigint;
      params: CommitmentParams;
      /** Rebuilt from `params`: outputs with their vouts, amounts and redeem scripts. */
      commitment: Commitment;
      /** The txid as seen on chain (spend by this one, not the rebuilt transaction's). */
      txid: Txid;
    }
  /** A cooperative close: the wallet sweeps its outputs, nothing for us to do here. */
  | { kind: "close" }
  /** Not a commitment we may claim from: a revoked one (the tower's) or something unexpected. */
  | { kind: "unknown" };

const spendsAnchor = (tx: Transaction, p: CommitmentParams): boolean =>
  tx.ins.some(
    (i) => txidFromInternal(i.hash) === p.anchor.outpoint.txid && i.index === p.anchor.outpoint.vout,
  );

/**
 * Classifies the transaction that spent the anchor. A close is recognised by its outputs: at
 * least one, each paying P2SH(<final> OP_CHECKSIG) of one of the channel's two final keys, on a
 * transaction that is none of the known commitments (matched first, so a commitment whose only
 * output is a to-other output is still a commitment).
 */
export function classifyAnchorSpend(spend: Transaction, known: KnownCommitments): AnchorSpend {
  const p = known.ours.params;
  if (!spendsAnchor(spend, p))
    throw new OnchainError(
      `transaction ${spend.getId()} does not spend the anchor ${p.anchor.outpoint.txid}:${p.anchor.outpoint.vout}`,
    );
  const normalized = normalizedTxid(spend);
  const candidates = [
    { kind: "our_commitment" as const, ...known.ours },
    ...known.theirs.map((k) => ({ kind: "their_commitment" as const, ...k })),
  ];
  for (const c of candidates) {
    const commitment = buildCommitment(c.params);
    if (normalizedTxid(commitment.tx) === normalized)
      return { ...c, commitment, txid: txidFromInternal(spend.getHash()) };
  }
  const closeScripts = [p.ownerFinal, p.otherFinal].map((k) => p2shOutput(toOtherScript(k)));
  if (spend.outs.length > 0 && spend.outs.every((o) => closeScripts.some((s) => s.equals(o.script))))
    return { kind: "close" };
  return { kind: "unknown" };
}
