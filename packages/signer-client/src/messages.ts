/**
 * The protobuf messages of packages/proto/signer.proto as @grpc/proto-loader gives them (keepCase,
 * longs as decimal strings, bytes as Buffer, defaults, oneofs), and their encoding from the
 * domain types of @ln/tx. uint64 values never pass through a JS number.
 */
import type { Locktime } from "@ln/bitcoin";
import type { CloseParams, CommitmentParams } from "@ln/tx";

/** A uint64 as proto-loader gives it (`longs: String`); a bigint or string may be sent. */
export type U64 = string;
export type U64In = string | bigint;

export interface LocktimeMsg {
  unit?: "blocks" | "seconds";
  blocks?: number;
  seconds?: number;
}
export interface OutPointMsg {
  txid: string;
  vout: number;
}
export interface AnchorInputMsg {
  outpoint: OutPointMsg | null;
  amount_sat: U64;
  commit_keys: Buffer[];
}
export interface CommitmentHtlcMsg {
  id: U64;
  offered_by_owner: boolean;
  amount_msat: U64;
  r_hash: Buffer;
  expiry: LocktimeMsg | null;
}
export interface CommitmentParamsMsg {
  anchor: AnchorInputMsg | null;
  owner_final: Buffer;
  other_final: Buffer;
  revocation_hash: Buffer;
  delay: LocktimeMsg | null;
  owner_msat: U64;
  other_msat: U64;
  htlcs: CommitmentHtlcMsg[];
  fee_rate: number;
}
export interface CloseSideMsg {
  final_key: Buffer;
  msat: U64;
}
export interface CloseParamsMsg {
  anchor: AnchorInputMsg | null;
  a: CloseSideMsg | null;
  b: CloseSideMsg | null;
  close_fee_sat: U64;
}

export type NodeInfoRequest = Record<string, never>;
export interface NodeInfoReply {
  node_pubkey: Buffer;
}
export interface EcdhRequest {
  point: Buffer;
}
export interface EcdhReply {
  shared_secret: Buffer;
}
export interface SignSessionRequest {
  handshake_hash: Buffer;
}
export interface SignatureReply {
  signature: Buffer;
}
export type NewChannelRequest = Record<string, never>;
export interface NewChannelReply {
  channel: number;
  commit_pubkey: Buffer;
  final_pubkey: Buffer;
  revocation_hash_0: Buffer;
  revocation_hash_1: Buffer;
}
export interface RevocationHashRequest {
  channel: number;
  number: U64;
}
export interface RevocationHashReply {
  revocation_hash: Buffer;
}
export interface SignedCommitmentMsg {
  number: U64;
  params: CommitmentParamsMsg | null;
  their_sig: Buffer;
}
export interface RevealRevocationRequest {
  channel: number;
  revoke: U64;
  next: U64;
  signed_commitment: SignedCommitmentMsg | null;
  preimages: Buffer[];
}
export interface RevealRevocationReply {
  preimage: Buffer;
  next_hash: Buffer;
}
export interface SignRemoteCommitmentRequest {
  channel: number;
  number: U64;
  params: CommitmentParamsMsg | null;
  preimages: Buffer[];
}
export interface SignLocalCommitmentRequest {
  channel: number;
  number: U64;
  params: CommitmentParamsMsg | null;
  their_sig: Buffer;
  preimages: Buffer[];
}
export interface SignedTxReply {
  tx_hex: string;
  txid: string;
}
export interface SignCloseRequest {
  channel: number;
  params: CloseParamsMsg | null;
}
export interface RecordPeerRevocationRequest {
  channel: number;
  number: U64;
  preimage: Buffer;
}
export type RecordPeerRevocationReply = Record<string, never>;
export interface SignJusticeRequest {
  channel: number;
  revoked_number: U64;
  params: CommitmentParamsMsg | null;
  commitment_tx_hex: string;
  justice_tx_hex: string;
  wallet_key_indexes: number[];
}
export interface InputSignatureMsg {
  input_index: number;
  pubkey: Buffer;
  signature: Buffer;
}
export interface SignaturesReply {
  signatures: InputSignatureMsg[];
}
export interface WalletKeyRequest {
  index: number;
}
export interface WalletKeyReply {
  pubkey: Buffer;
}
export interface WalletInputMsg {
  key_index: number;
  amount_sat: U64;
  /** The transaction that created the coin (hex): the signer reads the amount from it. */
  prev_tx_hex: string;
}
export interface AnchorFundingMsg {
  channel: number;
  peer_commit_key: Buffer;
}
/** A withdrawal output: a P2WPKH, P2WSH, P2SH or P2PKH script that is not ours. */
export interface ExternalOutputMsg {
  script: Buffer;
}
export interface OutputOwnerMsg {
  owner?: "wallet_key_index" | "anchor" | "external";
  wallet_key_index?: number;
  anchor?: AnchorFundingMsg | null;
  external?: ExternalOutputMsg | null;
}
export interface SignWalletSpendRequest {
  tx_hex: string;
  inputs: WalletInputMsg[];
  outputs: OutputOwnerMsg[];
}
/** A sweep input paying `P2SH(<our final key> OP_CHECKSIG)`: signed with the channel's final key. */
export type FinalKeySpendMsg = Record<string, never>;
/**
 * A sweep input spending an output of a published commitment, ours or the peer's, by the path on
 * which our final key signs (the signer derives it from the output; `preimage` is R for an HTLC
 * offered to us, empty otherwise).
 */
export interface CommitmentOutputSpendMsg {
  ours: boolean;
  number: U64;
  params: CommitmentParamsMsg | null;
  vout: number;
  preimage: Buffer;
  /** The commitment as seen on chain. */
  commitment_tx_hex: string;
}
/** One input of a sweep; `kind` names the spend path. */
export interface SweepInputMsg {
  input_index: number;
  amount_sat: U64;
  kind?: "final_key" | "commitment_output";
  final_key?: FinalKeySpendMsg | null;
  commitment_output?: CommitmentOutputSpendMsg | null;
  /** For a final_key input: the transaction that created the coin (hex). */
  prev_tx_hex: string;
}
export interface SignSweepRequest {
  channel: number;
  tx_hex: string;
  inputs: SweepInputMsg[];
  outputs: OutputOwnerMsg[];
}
export interface InvoiceHashRequest {
  index: number;
  /** The invoice's amount (0: none), recorded for RevealInvoice's check. */
  amount_msat: U64;
}
export interface InvoiceHashReply {
  r_hash: Buffer;
}
export interface RevealInvoiceRequest {
  index: number;
}
export interface InvoiceRouteHintHopMsg {
  node_id: Buffer;
  short_channel_id: U64;
  fee_base_msat: number;
  fee_proportional_millionths: number;
  cltv_expiry_delta: number;
}
export interface InvoiceRouteHintMsg {
  hops: InvoiceRouteHintHopMsg[];
}
export interface SignInvoiceRequest {
  index: number;
  network: string;
  /** 0: any amount. */
  amount_msat: U64;
  timestamp: U64;
  payment_hash: Buffer;
  payment_secret: Buffer;
  description: string;
  /** Empty: none (then description is the invoice's). */
  description_hash: Buffer;
  expiry_seconds: number;
  min_final_cltv_expiry_delta: number;
  payee: Buffer;
  route_hints: InvoiceRouteHintMsg[];
}
export interface SignInvoiceReply {
  invoice: string;
}
export interface RevealInvoiceReply {
  r: Buffer;
}
export interface ChannelStatusRequest {
  channel: number;
}
export interface ChannelStatusReply {
  has_revealed: boolean;
  highest_revealed: U64;
  has_local_signed: boolean;
  highest_local_signed: U64;
  has_remote_signed: boolean;
  highest_remote_signed: U64;
}
export interface SignerStatusesRequest {
  channels: number[];
}
export interface ChannelStatusEntry {
  channel: number;
  /** False: the signer never allocated this channel. */
  known: boolean;
  status: ChannelStatusReply;
}
export interface SignerStatusesReply {
  statuses: ChannelStatusEntry[];
}

export interface SignChannelAnnouncementRequest {
  channel: number;
  short_channel_id: U64;
  other_node_id: Buffer;
  other_commit_key: Buffer;
}
export interface SignChannelAnnouncementReply {
  node_sig: Buffer;
  commit_sig: Buffer;
}
export interface SignChannelUpdateRequest {
  short_channel_id: U64;
  direction: number;
  timestamp: number;
  disabled: boolean;
  cltv_expiry_delta: number;
  htlc_minimum_msat: U64;
  htlc_maximum_msat: U64;
  fee_base_msat: number;
  fee_proportional_millionths: number;
}
export interface SignNodeAnnouncementRequest {
  timestamp: number;
  alias: string;
  addresses: string[];
}

/** Every RPC: [request, reply]. */
export interface SignerMethods {
  NodeInfo: [NodeInfoRequest, NodeInfoReply];
  Ecdh: [EcdhRequest, EcdhReply];
  OnionEcdh: [EcdhRequest, EcdhReply];
  SignSession: [SignSessionRequest, SignatureReply];
  NewChannel: [NewChannelRequest, NewChannelReply];
  RevocationHash: [RevocationHashRequest, RevocationHashReply];
  RevealRevocation: [RevealRevocationRequest, RevealRevocationReply];
  SignRemoteCommitment: [SignRemoteCommitmentRequest, SignatureReply];
  SignLocalCommitment: [SignLocalCommitmentRequest, SignedTxReply];
  SignClose: [SignCloseRequest, SignatureReply];
  RecordPeerRevocation: [RecordPeerRevocationRequest, RecordPeerRevocationReply];
  SignJustice: [SignJusticeRequest, SignaturesReply];
  WalletKey: [WalletKeyRequest, WalletKeyReply];
  SignWalletSpend: [SignWalletSpendRequest, SignaturesReply];
  SignSweep: [SignSweepRequest, SignaturesReply];
  InvoiceHash: [InvoiceHashRequest, InvoiceHashReply];
  RevealInvoice: [RevealInvoiceRequest, RevealInvoiceReply];
  SignInvoice: [SignInvoiceRequest, SignInvoiceReply];
  ChannelStatus: [ChannelStatusRequest, ChannelStatusReply];
  SignerStatuses: [SignerStatusesRequest, SignerStatusesReply];
  SignChannelAnnouncement: [SignChannelAnnouncementRequest, SignChannelAnnouncementReply];
  SignChannelUpdate: [SignChannelUpdateRequest, SignatureReply];
  SignNodeAnnouncement: [SignNodeAnnouncementRequest, SignatureReply];
}
export type SignerMethod = keyof SignerMethods;

/** What a client may send: uint64 fields also as bigint, omitted fields default. */
export type Sendable<T> = T extends Buffer
  ? Uint8Array
  : T extends string
    ? T | bigint
    : T extends (infer E)[]
      ? Sendable<E>[]
      : T extends object
        ? { [K in keyof T]?: Sendable<T[K]> }
        : T;
export type SignerRequestOf<M extends SignerMethod> = Sendable<SignerMethods[M][0]>;

// ---- encoding (client side) ----

const locktimeMsg = (l: Locktime): Sendable<LocktimeMsg> =>
  "blocks" in l ? { blocks: l.blocks } : { seconds: l.seconds };

function anchorMsg(a: CommitmentParams["anchor"]): Sendable<AnchorInputMsg> {
  return {
    outpoint: { txid: a.outpoint.txid, vout: a.outpoint.vout },
    amount_sat: a.amount,
    commit_keys: [a.commitKeys[0], a.commitKeys[1]],
  };
}

export function commitmentParamsMsg(p: CommitmentParams): Sendable<CommitmentParamsMsg> {
  return {
    anchor: anchorMsg(p.anchor),
    owner_final: p.ownerFinal,
    other_final: p.otherFinal,
    revocation_hash: p.revocationHash,
    delay: locktimeMsg(p.delay),
    owner_msat: p.ownerMsat,
    other_msat: p.otherMsat,
    htlcs: p.htlcs.map((h) => ({
      id: h.id,
      offered_by_owner: h.offeredByOwner,
      amount_msat: h.amountMsat,
      r_hash: h.rHash,
      expiry: locktimeMsg(h.expiry),
    })),
    fee_rate: p.feeRate,
  };
}

export function closeParamsMsg(p: CloseParams): Sendable<CloseParamsMsg> {
  return {
    anchor: anchorMsg(p.anchor),
    a: { final_key: p.a.finalKey, msat: p.a.msat },
    b: { final_key: p.b.finalKey, msat: p.b.msat },
    close_fee_sat: p.closeFee,
  };
}
