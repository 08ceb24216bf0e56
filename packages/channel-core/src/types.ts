import type { Locktime, Msat, OutPoint, Sat } from "@ln/bitcoin";
import type { Pkt, PktKind, AnchorOffer } from "@ln/proto";
import type { ShachainStore } from "@ln/shachain";
import type { CloseParams, CommitmentParams } from "@ln/tx";
import type { CommitmentView, Htlc, Side, UpdateLog } from "./views.js";

/** Our side of `open_channel`: keys and revocation hashes come from the signer. */
export interface OpenTerms {
  /** The CSV delay we ask the other node to put on its own outputs. */
  delay: Locktime;
  minDepth: number;
  initialFeeRate: number;
  commitKey: string;
  finalKey: string;
  /** Our revocation hashes for commitments 0 and 1. */
  revocationHash: string;
  nextRevocationHash: string;
}

/** What we accept from the other node, and how we run the channel. Every bound is a clear error. */
export interface ChannelPolicy {
  maxDelayBlocks: number;
  maxDelaySeconds: number;
  maxMinDepth: number;
  minFeeRate: number;
  maxFeeRate: number;
  /** Blocks we wait for the other node's part of the opening (and for its open_complete). */
  openTimeoutBlocks: number;
  /**
   * Safety margin before an HTLC's expiry, beyond the delay, for the confirmations (draft 3.1):
   * its redemption deadline is `expiry - delay - margin`, for HTLCs in either direction.
   */
  deadlineMarginBlocks: number;
  deadlineMarginSeconds: number;
  /** Satoshi per 1000 bytes for our first close_signature offer. */
  closeFeeRate: number;
  /** Sign the other node's commitment by ourselves whenever there is something to commit. */
  autoCommit: boolean;
  /**
   * The peer's updates we keep until both commitments include them: a peer that withholds its
   * revocation and streams updates fails the channel (TOO_MANY_UPDATES) beyond this many, before
   * each step grows costly. Room for 1500 adds (draft 3.2), 1500 removals and fee updates.
   */
  maxPendingUpdates: number;
  /**
   * Peer messages kept while a signer reply is awaited (the signer may be down). Beyond it we
   * take no more of them until the peer reconnects (`disconnect`): unprocessed, they are not
   * acknowledged, and the peer retransmits them (draft 1.2).
   */
  maxDeferredPkts: number;
}

export const DEFAULT_POLICY: ChannelPolicy = {
  maxDelayBlocks: 2016,
  maxDelaySeconds: 14 * 24 * 3600,
  maxMinDepth: 100,
  minFeeRate: 1000,
  maxFeeRate: 1_000_000,
  openTimeoutBlocks: 144,
  deadlineMarginBlocks: 6,
  deadlineMarginSeconds: 3600,
  closeFeeRate: 2000,
  autoCommit: true,
  maxPendingUpdates: 3100,
  maxDeferredPkts: 200,
};

export interface PeerTerms {
  delay: Locktime;
  minDepth: number;
  initialFeeRate: number;
  commitKey: string;
  finalKey: string;
  anch: AnchorOffer;
}

/**
 * `behind`: our stored state is older than the peer's or the signer's (a restored database,
 * DESIGN.md 6 "Data-loss protection"): the channel is stopped and never broadcasts its commitment;
 * the peer closes with its latest one and the wallet sweeps our output from it.
 */
export type Phase = "opening" | "normal" | "clearing" | "closed" | "failed" | "behind";

export interface OpeningProgress {
  sentOpenAnchor: boolean;
  /** Creator: the peer's open_commit_sig arrived. Acceptor: we sent open_commit_sig. */
  anchorSigned: boolean;
  sentComplete: boolean;
  receivedComplete: boolean;
  /** Height at which the anchor reached the depth we wait for. */
  depthReachedAt: number | undefined;
}

export interface CloseNegotiation {
  sentClearing: boolean;
  receivedClearing: boolean;
  ourLastFee: Sat | undefined;
  theirLastFee: Sat | undefined;
  /** The peer's signature for its last offer: what we broadcast if the connection fails (6.3). */
  theirLastSig: string | undefined;
  /** HTLCs the peer added after our close_clearing: we fail them once committed (4.1). */
  failOnceCommitted: bigint[];
}

/** One channel, as plain data: it lives in Postgres (see `serializeState`). */
export interface ChannelState {
  phase: Phase;
  role: "creator" | "acceptor";
  policy: ChannelPolicy;
  local: OpenTerms;
  remote: PeerTerms | undefined;
  anchor: { outpoint: OutPoint; amount: Sat } | undefined;
  /** Creator: the amount it will fund. */
  fundingSat: Sat | undefined;
  opening: OpeningProgress;
  createdAt: number;
  chain: { height: number; time: number };

  /** Our current commitment, with the peer's signature on it (the one we would broadcast). */
  localCommit: (CommitmentView & { theirSig: string }) | undefined;
  /** The peer's current commitment. */
  remoteCommit: CommitmentView | undefined;
  /** The peer's next commitment: signed and sent by us, its revocation of the current one awaited. */
  remotePending: CommitmentView | undefined;
  localRevocationHash: { current: string; next: string };
  remoteRevocationHash: { current: string; next: string };
  localLog: UpdateLog;
  remoteLog: UpdateLog;
  /** Non-authenticate messages sent and processed: the draft's acknowledge counters (1.2). */
  sentCount: number;
  receivedCount: number;
  /**
   * The peer's last `authenticate.ack` and last `update_commit.ack`: each never decreases (1.2).
   * Kept apart because a retransmitted update_commit carries the ack it was first signed with.
   */
  peerAck: number;
  peerCommitAck: number;
  /** The peer's revocation preimages, compactly (draft 5). */
  theirSecrets: ShachainStore;
  nextHtlcId: bigint;
  everHadHtlc: boolean;
  /**
   * Offered HTLCs the peer failed: reported once the removal is in both commitments. `htlc`: the
   * HTLC itself, for the payment record; absent in states stored before it existed.
   */
  failedByPeer: { id: bigint; reason: string; htlc?: Htlc }[];
  close: CloseNegotiation;
  /**
   * HTLCs the peer offered whose expiry left no time to redeem them on chain (draft 3.1): failed
   * once committed. Absent in states stored before it existed.
   */
  expiryTooSoon?: bigint[];
  /** A signer request is out: other inputs wait in `deferred`, so replies apply in order. */
  awaiting: SignerRequest["kind"] | undefined;
  deferred: Input[];
  /**
   * We dropped a peer message (too many deferred): every later one is dropped too, so none is
   * processed out of order, until the peer reconnects and retransmits from our ack.
   */
  shedding: boolean;
  failure: { code: FailureCode; problem: string } | undefined;
}

export type Command =
  /**
   * `forward`: the forwarding table's row this HTLC continues (the shell's, echoed in `htlc_added`
   * so the step that offers it claims that row, as LDK's HTLC source).
   */
  | { kind: "add_htlc"; amountMsat: Msat; rHash: string; expiry: Locktime; route?: string; forward?: bigint }
  | { kind: "fulfill_htlc"; id: bigint; r: string }
  | { kind: "fail_htlc"; id: bigint; reason: string }
  | { kind: "update_fee"; feeRate: number }
  | { kind: "commit" }
  | { kind: "close" }
  | { kind: "force_close" };

export type ChainEvent =
  | { kind: "block"; height: number; time: number }
  | { kind: "anchor_depth"; depth: number }
  | { kind: "anchor_spent"; txid: string; ours: boolean };

export type SignerRequest =
  | { kind: "sign_remote_commitment"; number: bigint; params: CommitmentParams }
  /** Reveal our preimage for `revoke`, and give the hash for `next`: only with a valid signature on `revoke + 1` shown. */
  | {
      kind: "reveal_revocation";
      revoke: bigint;
      next: bigint;
      signedCommitment: { number: bigint; params: CommitmentParams; theirSig: string };
    }
  | { kind: "sign_close"; closeFee: Sat; params: CloseParams };

export type SignerReply =
  | { kind: "sign_remote_commitment"; sig: string }
  | { kind: "reveal_revocation"; preimage: string; nextHash: string }
  | { kind: "sign_close"; sig: string };

export type Input =
  | { type: "pkt"; pkt: Pkt }
  | { type: "command"; command: Command }
  | { type: "chain"; event: ChainEvent }
  | { type: "signer"; reply: SignerReply }
  /** The wallet built the anchor we asked for (creator). */
  | { type: "anchor_built"; outpoint: OutPoint; amount: Sat }
  /** A new transport connection authenticated, with the peer's `authenticate.ack`. */
  | { type: "reconnected"; theirAck: number }
  /**
   * The shell found our state behind the signer's records (the signer revealed a preimage of or
   * signed a commitment our state does not know, or refused our latest commitment as revoked).
   */
  | { type: "behind"; problem: string }
  /**
   * Asks again for the signer request the state awaits (after a failed call or a restart), and
   * for the anchor's depth while the opening waits for it.
   */
  | { type: "resume" };

export type HtlcResult = { kind: "fulfilled"; r: string } | { kind: "failed"; reason: string };

export type Broadcast =
  | { tx: "nothing" }
  | { tx: "commitment"; number: bigint; params: CommitmentParams; theirSig: string }
  | { tx: "close"; closeFee: Sat; params: CloseParams; theirSig: string };

export type FailureCode =
  | "PROTOCOL_VIOLATION" // the peer broke a rule of the draft
  | "PEER_ERROR" // the peer sent `error`
  | "POLICY" // the peer's terms are outside our policy
  | "TIMEOUT"
  | "HTLC_DEADLINE" // draft 3.1
  | "ANCHOR_SPENT" // draft 6.1
  | "TOO_MANY_UPDATES" // the peer's uncommitted updates beyond policy.maxPendingUpdates
  | "OPERATOR" // force close
  | "DATA_LOSS"; // our state is behind the peer's or the signer's (phase "behind")

export type Output =
  | { type: "send"; seq: number; pkt: Pkt }
  | { type: "signer"; request: SignerRequest }
  | { type: "build_anchor"; amount: Sat; commitKeys: [string, string] }
  | { type: "broadcast_anchor"; outpoint: OutPoint }
  | { type: "watch_anchor"; outpoint: OutPoint; depth: number }
  | { type: "broadcast"; broadcast: Broadcast }
  /**
   * An HTLC's outcome, with what its money record needs (DESIGN.md 11). Offered by us
   * (`local`): fulfilled as soon as the peer's R arrives (R in hand settles the payment), failed
   * once the peer's removal is in every commitment (irrevocable). Offered to us (`remote`): our
   * fulfil (we give R away: the invoice is settled) or our fail, in the step that stages it.
   * `htlc` is the HTLC (amount, r_hash, expiry); absent only for a peer's failure received by a
   * state stored before it was kept.
   */
  | { type: "htlc_result"; id: bigint; offerer: Side; result: HtlcResult; htlc?: Htlc }
  /**
   * An HTLC offered, by us (the payment's record starts pending) or by the peer (received, not
   * yet committed). `route`: its onion (hex), reported here once; the core keeps it only while staged.
   * `forward`: the add_htlc command's, for an HTLC we offered continuing a forward.
   */
  | { type: "htlc_added"; id: bigint; offerer: Side; route: string; htlc: Htlc; forward?: bigint }
  /**
   * Drop the connection with the peer: we stopped taking its messages (`shedding`); the next
   * connection's authenticate acks retransmit what we did not process.
   */
  | { type: "disconnect"; problem: string }
  /** The peer revoked its commitment `number`: the record for the watchtower (DESIGN.md 7). */
  | { type: "revoked"; number: bigint; preimage: string; params: CommitmentParams }
  /** Resend every stored message after `afterSeq`, bitwise identical (draft 1.2). */
  | { type: "retransmit"; afterSeq: number }
  | { type: "opened" }
  | { type: "closed"; broadcast: Broadcast }
  | { type: "failed"; code: FailureCode; problem: string }
  /** Data loss suspected: the channel stopped without broadcasting; `error` asks the peer to close. */
  | { type: "behind"; problem: string }
  | { type: "command_rejected"; command: Command["kind"]; code: RejectionCode; problem: string }
  /**
   * A pkt that is not the channel's (gossip, DESIGN.md 10): refused unprocessed and uncounted,
   * the state unchanged. The shell routes gossip elsewhere; this is only the core's guard.
   */
  | { type: "pkt_refused"; kind: PktKind; problem: string };

/**
 * Why the core refused an operator command (the state is unchanged). One value per refusal the
 * core makes; the control API maps each to an HTTP status and lnctl to its exit code.
 */
export const REJECTION_CODES = [
  "CHANNEL_OPENING", // the channel is not open yet (draft 2.4)
  "CHANNEL_CLOSING", // close_clearing sent or received: no new HTLCs (draft 4.1)
  "CHANNEL_CLOSED", // the channel is closed or failed
  "CHANNEL_BEHIND", // data loss suspected: the channel takes no command but a force close
  "CLOSE_ALREADY_STARTED", // our close_clearing was sent already
  "AMOUNT_OUT_OF_RANGE", // amount_msat outside 1..2^32-1
  "INVALID_R_HASH", // r_hash is not 32 bytes
  "ROUTE_TOO_LONG", // route longer than a BOLT #4 onion
  "INVALID_EXPIRY", // the expiry is not a valid absolute locktime
  "EXPIRY_TOO_SOON", // no time left to redeem on chain after the delay (draft 3.1)
  "TOO_MANY_HTLCS", // more HTLCs offered by us than one commitment takes (draft 3.2)
  "INSUFFICIENT_FUNDS", // we cannot pay the HTLC and our share of the fee (draft 3.2)
  "UNKNOWN_HTLC", // no HTLC of the peer's with that id in both commitments
  "HTLC_ALREADY_REMOVED", // its fulfil or fail is staged already
  "WRONG_PREIMAGE", // r does not hash to the HTLC's r_hash
  "REASON_TOO_LONG", // a fail reason longer than a BOLT #4 error packet
  "FEE_RATE_OUT_OF_POLICY", // update_fee outside our policy's bounds
  "NOTHING_TO_COMMIT", // no update to commit
  "AWAITING_REVOCATION", // our previous commitment is not revoked yet (draft 3.5)
] as const;
export type RejectionCode = (typeof REJECTION_CODES)[number];

export interface Step {
  state: ChannelState;
  outputs: Output[];
}
