/** Failure codes of the BOLT #8 handshake, named as in the spec's test vectors. */
export type HandshakeErrorCode =
  | "ACT1_READ_FAILED"
  | "ACT1_BAD_VERSION"
  | "ACT1_BAD_PUBKEY"
  | "ACT1_BAD_TAG"
  | "ACT2_READ_FAILED"
  | "ACT2_BAD_VERSION"
  | "ACT2_BAD_PUBKEY"
  | "ACT2_BAD_TAG"
  | "ACT3_READ_FAILED"
  | "ACT3_BAD_VERSION"
  | "ACT3_BAD_CIPHERTEXT"
  | "ACT3_BAD_PUBKEY"
  | "ACT3_BAD_TAG";

/** The peer sent a handshake act we must reject; the connection has to be closed. */
export class HandshakeError extends Error {
  override readonly name = "HandshakeError";
  constructor(
    readonly code: HandshakeErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export type TransportErrorCode = "BAD_LENGTH_MAC" | "BAD_BODY_MAC" | "MESSAGE_TOO_LARGE";

/** A transport message could not be sent or authenticated; the connection has to be closed. */
export class TransportError extends Error {
  override readonly name = "TransportError";
  constructor(
    readonly code: TransportErrorCode,
    message: string,
  ) {
    super(message);
  }
}
