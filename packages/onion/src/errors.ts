import type { Failure } from "./failure.js";

export type OnionErrorCode =
  /** The packet is not exactly ONION_PACKET_BYTES long. */
  | "INVALID_LENGTH"
  /** Version byte other than 0. */
  | "INVALID_VERSION"
  /** The ephemeral key is not a compressed secp256k1 point. */
  | "INVALID_KEY"
  /** The packet's HMAC does not match. */
  | "INVALID_HMAC"
  /** A hop payload that cannot be decoded or lacks a required TLV. */
  | "INVALID_PAYLOAD"
  /** The ECDH (the signer) failed or answered something other than 32 bytes: not the peer's fault. */
  | "ECDH_FAILED"
  /** A failure message that is truncated, or one we were asked to encode that is out of range. */
  | "INVALID_FAILURE"
  /** A fail reason that is neither an error packet nor a malformed reason. */
  | "INVALID_FAIL_REASON"
  /** No shared secret of the route authenticates the error packet. */
  | "UNREADABLE_ERROR"
  /** The hop payloads do not fit in the 1300 bytes of the packet. */
  | "ROUTE_TOO_LONG"
  /** buildOnion's own input is wrong: no hop, a bad node id, session key or payload prefix. */
  | "INVALID_ROUTE";

export interface OnionErrorDetails {
  failure?: Failure;
  sharedSecret?: Buffer;
  hop?: number;
  cause?: unknown;
}

/** The one error of @ln/onion: bad input from a peer, or a route we cannot build. */
export class OnionError extends Error {
  override readonly name = "OnionError";
  /**
   * For peeling errors: the BOLT #4 failure to send back (invalid_onion_version/hmac/key with the
   * sha256 of the onion, or invalid_onion_payload). Absent for ECDH_FAILED (retry, or fail as the
   * caller sees fit: the onion itself was not found bad).
   */
  readonly failure?: Failure;
  /** For errors found after the ECDH (bad HMAC, bad payload): the shared secret, to make an error packet. */
  readonly sharedSecret?: Buffer;
  /**
   * decodeErrorPacket only: the hop whose HMAC matched but whose failure message is unreadable
   * (INVALID_FAILURE), so the payer still knows whom to blame.
   */
  readonly hop?: number;

  constructor(
    readonly code: OnionErrorCode,
    message: string,
    details: OnionErrorDetails = {},
  ) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    if (details.failure !== undefined) this.failure = details.failure;
    if (details.sharedSecret !== undefined) this.sharedSecret = details.sharedSecret;
    if (details.hop !== undefined) this.hop = details.hop;
  }
}
