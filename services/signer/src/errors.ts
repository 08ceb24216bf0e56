/**
 * The signer's one error class. A policy refusal, a malformed request, or a start-up problem, each
 * with an enumerated `code` (tests assert on it; the gRPC layer puts it in the status message and
 * in the "signer-refusal" metadata).
 */
export type RefusalCode =
  /** The channel index was never allocated by NewChannel. */
  | "UNKNOWN_CHANNEL"
  /** The commitment/close does not spend the anchor outpoint recorded for this channel. */
  | "WRONG_ANCHOR"
  /** Our commit key is not in the anchor's 2-of-2, or the peer's differs from the recorded one. */
  | "WRONG_COMMIT_KEY"
  /** Our final key is not where it belongs, or the peer's differs from the recorded one. */
  | "WRONG_FINAL_KEY"
  /** Our commitment's revocation hash is not ours for that number, or the peer's changed. */
  | "WRONG_REVOCATION_HASH"
  /** RevealRevocation: the signed commitment is not number revoke + 1. */
  | "NOT_NEXT_COMMITMENT"
  /** The counterparty's signature does not sign this commitment with the channel's peer commit key. */
  | "BAD_COUNTERPARTY_SIG"
  /** RevealRevocation: the next commitment (revoke + 1) is itself already revoked. */
  | "NEXT_COMMITMENT_REVOKED"
  /** RevealRevocation: we signed commitment `revoke` (or a later one) for broadcast. */
  | "REVOKE_AFTER_BROADCAST"
  /** SignLocalCommitment, SignSweep: that commitment of ours is revoked (number <= highest revealed). */
  | "COMMITMENT_REVOKED"
  /**
   * SignRemoteCommitment: the peer already revoked that commitment number. SignSweep: the peer's
   * commitment is revoked, its outputs are taken by SignJustice.
   */
  | "REMOTE_REVOKED"
  /** A close (or wallet spend) fee above the bound. */
  | "FEE_TOO_HIGH"
  /** RecordPeerRevocation: we never signed the peer's commitment number + 1. */
  | "NOT_SUPERSEDED"
  /** RecordPeerRevocation: the preimage does not hash to the commitment's revocation hash. */
  | "PREIMAGE_MISMATCH"
  /** SignJustice: no record that the peer revoked that commitment. */
  | "NOT_REVOKED"
  /** SignJustice: the transaction or commitment is not the recorded revoked commitment. */
  | "JUSTICE_MISMATCH"
  /** An output pays a script that is not one of our own keys (or the channel's anchor). */
  | "FOREIGN_OUTPUT"
  /** A wallet spend has external outputs while SIGNER_MAX_WITHDRAWAL_SAT is 0 (the default). */
  | "WITHDRAWALS_DISABLED"
  /** A wallet spend's external outputs total more than SIGNER_MAX_WITHDRAWAL_SAT. */
  | "WITHDRAWAL_TOO_LARGE"
  /** An external output's script is not P2WPKH, P2WSH, P2SH or P2PKH. */
  | "UNSUPPORTED_SCRIPT"
  /** A sweep input of a kind the signer does not sign (or does not name one). */
  | "UNSUPPORTED_INPUT"
  /**
   * SignSweep: the commitment is not one the signer signed (ours: never signed for broadcast;
   * theirs: never signed with that number and revocation hash), or the transaction seen on chain
   * does not carry our commit key's signature over it.
   */
  | "COMMITMENT_NOT_SIGNED"
  /**
   * SignSweep: the transaction given is not that commitment (normalized txid), the input does not
   * spend the named output of it as seen on chain, or the amount named is not the output's.
   */
  | "SWEEP_MISMATCH"
  /** SignSweep: the commitment output is not one our final key takes without a revocation preimage. */
  | "NOT_OUR_OUTPUT"
  /** SignSweep: an HTLC offered to us without a preimage that hashes to its payment hash. */
  | "HTLC_PREIMAGE_MISMATCH"
  /**
   * SignSweep: the input's nSequence is below the CSV delay (or does not enforce it, or the
   * transaction is not version 2), or the nLockTime below the HTLC's expiry (or not enforced).
   */
  | "TIMELOCK_TOO_EARLY"
  /**
   * A commitment's balances do not follow from the channel's previous one (value conserved, our
   * balance reduced only into HTLCs we offer or towards the peer against R), or a close pays us
   * less than our balance less our share of its fee (channel-policy.ts).
   */
  | "BALANCE_MISMATCH"
  /** A commitment changes an HTLC that the previous one of the same side held (amount, hash, expiry). */
  | "HTLC_MISMATCH"
  /** A commitment adds an HTLC of ours whose id is not above every id we offered before. */
  | "HTLC_ID_REUSED"
  /** A commitment's fee rate is above the configured maximum (SIGNER_MAX_FEE_RATE). */
  | "FEE_RATE_TOO_HIGH"
  /** A commitment's delay differs from the one recorded for that side of the channel. */
  | "WRONG_DELAY"
  /** The first commitment of a side has a delay outside SIGNER_MIN/MAX_DELAY_BLOCKS/SECONDS. */
  | "DELAY_OUT_OF_BOUNDS"
  /** A commitment older than the latest one of that side the signer recorded. */
  | "STALE_COMMITMENT"
  /** A close while the latest commitment of either side still holds HTLCs. */
  | "HTLCS_OUTSTANDING"
  /** The HTLCs paid to peers over the period would exceed SIGNER_MAX_PAYMENTS_SAT. */
  | "PAYMENT_LIMIT"
  /**
   * The client (its certificate's subject CN) is not in SIGNER_CLIENTS, or its role may not call
   * that RPC (permissions.ts). gRPC PERMISSION_DENIED.
   */
  | "NOT_PERMITTED"
  /** A wallet spend's external outputs would take the last 24 h over SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY. */
  | "WITHDRAWAL_LIMIT_REACHED"
  /**

   * SignWalletSpend, SignSweep: the previous transaction given for an input is not the one it
   * spends (txid), has no such output, or that output does not pay the key named for the input.
   */
  | "PREV_TX_MISMATCH"
  /** SignWalletSpend, SignSweep: an input's stated amount is not its previous output's. */
  | "AMOUNT_MISMATCH"
  /** SignJustice: the fee rate or the fee's share of the value taken is above its bound. */
  | "JUSTICE_FEE_TOO_HIGH"
  /**
   * RevealInvoice: no commitment the signer saw signed (ours with the peer's signature, or the
   * peer's we signed), not revoked, holds an HTLC offered to us paying this invoice's hash with at
   * least its amount.
   */
  | "NO_MATCHING_HTLC"
  /** InvoiceHash, SignInvoice: the invoice index was first registered with another amount. */
  | "INVOICE_AMOUNT_MISMATCH"
  /** SignInvoice: the payment hash given is not the one the signer derives for the index. */
  | "INVOICE_HASH_MISMATCH"
  /** SignInvoice: the invoice's payee is not our node id. */
  | "WRONG_PAYEE"
  /** A commitment with more than the draft's 1500 HTLCs offered by one side (channel-policy.ts). */
  | "TOO_MANY_HTLCS"
  /**
   * SignChannelAnnouncement: the channel was announced with another short_channel_id or peer node
   * id, that short_channel_id is another channel's, or its output index is not the anchor's.
   */
  | "ANNOUNCEMENT_MISMATCH"
  /** SignChannelUpdate: no channel_announcement was signed for that short_channel_id. */
  | "UNKNOWN_SHORT_CHANNEL_ID"
  /** SignChannelUpdate: our node is not the forwarding node of that direction. */
  | "NOT_FORWARDING_NODE";

export type SignerErrorCode =
  | RefusalCode
  /** The request is malformed (wrong lengths, missing fields, undecodable transaction). */
  | "INVALID_REQUEST"
  /** A setting is missing or invalid (start-up). */
  | "CONFIG"
  /** The seed file does not decrypt under SIGNER_SEED_KEY (start-up). */
  | "WRONG_SEED_KEY"
  /** The seed file is not a seed file (start-up). */
  | "BAD_SEED_FILE"
  /** SIGNER_SEED_KEY_FILE is readable by others, or holds neither 64 hex characters nor 32 bytes (start-up). */
  | "BAD_SEED_KEY_FILE"
  /** A seed file next to a database without the signer's state (start-up, startup.ts). */
  | "STATE_MISSING"
  /** No seed file next to a database holding a seed's state (start-up, startup.ts). */
  | "SEED_MISSING"
  /** The seed file is not the seed the database's state belongs to (start-up, startup.ts). */
  | "SEED_STATE_MISMATCH";

const NOT_REFUSALS: ReadonlySet<SignerErrorCode> = new Set([
  "INVALID_REQUEST",
  "CONFIG",
  "WRONG_SEED_KEY",
  "BAD_SEED_FILE",
  "BAD_SEED_KEY_FILE",
  "STATE_MISSING",
  "SEED_MISSING",
  "SEED_STATE_MISMATCH",
]);

export class SignerError extends Error {
  override readonly name = "SignerError";
  constructor(
    readonly code: SignerErrorCode,
    message: string,
  ) {
    super(message);
  }

  /** A refusal of the policy (as opposed to a malformed request or a start-up problem). */
  get isRefusal(): boolean {
    return !NOT_REFUSALS.has(this.code);
  }
}

export const refuse = (code: RefusalCode, message: string): SignerError => new SignerError(code, message);
export const invalid = (message: string): SignerError => new SignerError("INVALID_REQUEST", message);
