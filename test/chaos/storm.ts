/**
 * What a chaos run did, as the invariant checker needs it: the storm's own record, kept by the
 * runner (chaos.ts) and read by the checker (invariants.ts). Everything else the checker reads
 * from the nodes themselves (control APIs, their tables, the regtest chain).
 */

/** One payment request the storm sent (POST /v1/payments), whether or not it was answered. */
export interface StormRequest {
  readonly payer: string;
  readonly payee: string;
  /** What the payee gets. */
  readonly amountMsat: bigint;
  /** The Idempotency-Key sent (and re-sent on retries): at most one payment per key. */
  readonly idempotencyKey: string;
  /** The payee's invoice (payment hash), when paid by invoice or by hash of an invoice. */
  readonly rHash: string;
  /** "direct": over the payer's channel with the payee; "routed": through another node. */
  readonly kind: "direct" | "routed";
  /** The payment id the API answered with; undefined when no answer came (killed, timed out). */
  paymentId: string | undefined;
}

/** Peak resident memory of one process over the run. */
export interface MemoryPeak {
  readonly process: string;
  readonly peakBytes: number;
}

export interface StormRecord {
  /** Satoshis sent to each node's wallet by the run (node name → sat). */
  readonly funded: ReadonlyMap<string, bigint>;
  readonly requests: readonly StormRequest[];
  readonly memory: readonly MemoryPeak[];
}

/** One invariant checked at the end of a run, printed with its figure. */
export interface InvariantResult {
  readonly name: string;
  readonly ok: boolean;
  /** e.g. "412 payments final: 398 succeeded, 14 failed". */
  readonly figure: string;
  /** What broke it (empty when ok), at most a few dozen lines. */
  readonly violations: readonly string[];
}
