/**
 * The cumulative withdrawal limit: all external outputs the signer signed over the last 24 hours
 * together stay within SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY (the per-spend bound alone lets a
 * compromised caller withdraw that much per request, without end). Counted against the signer's
 * own durable record (`withdrawals`), in the transaction that authorizes the spend, before any
 * signature leaves.
 */
import type { Transaction } from "bitcoinjs-lib";
import { refuse } from "./errors.js";
import type { PolicyConfig } from "./policy.js";

export interface WithdrawalConfig extends PolicyConfig {
  /**
   * Bound on the withdrawals of any 24 hours, in satoshi; undefined: none beyond the per-spend
   * bound (only embedded uses; the signer's configuration requires it with withdrawals enabled).
   */
  maxWithdrawalSatPerDay?: bigint | undefined;
}

/** The signer's record of withdrawals, inside the transaction that authorizes a spend. */
export interface WithdrawalLedger {
  /**
   * Locks the record against other withdrawals until the transaction ends, then returns the total
   * recorded in the last 24 hours and whether `txid` is among the recorded ones.
   */
  lockAndSum(txid: string): Promise<{ total: bigint; recorded: boolean }>;
  record(txid: string, amount: bigint): Promise<void>;
}

/**
 * Records the external outputs of a spend that passed the policy, refusing it
 * (WITHDRAWAL_LIMIT_REACHED) if they would take the last 24 hours over the limit. The same
 * transaction signed again (a caller's retry) counts once: it can be mined only once.
 */
export async function limitWithdrawals(
  ledger: WithdrawalLedger,
  tx: Transaction,
  external: readonly boolean[],
  cfg: WithdrawalConfig,
): Promise<void> {
  const amount = tx.outs.reduce<bigint>((a, o, vout) => (external[vout] === true ? a + o.value : a), 0n);
  if (amount === 0n) return;
  const txid = tx.getId();
  const { total, recorded } = await ledger.lockAndSum(txid);
  if (recorded) return;
  const limit = cfg.maxWithdrawalSatPerDay;
  if (limit !== undefined && total + amount > limit)
    throw refuse(
      "WITHDRAWAL_LIMIT_REACHED",
      `${total} sat withdrawn in the last 24 hours; this spend's ${amount} sat would exceed SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY (${limit} sat): wait, or raise the limit`,
    );
  await ledger.record(txid, amount);
}
