export { OnionError, type OnionErrorCode, type OnionErrorDetails } from "./errors.js";
export { cipherStream, generateKey, type OnionKeyType } from "./crypto.js";
export { encodeBigSize } from "./tlv.js";
export { decodeHopPayload, encodeHopPayload, type HopPayload, type PaymentData } from "./payload.js";
export {
  buildOnion,
  HOP_PAYLOADS_BYTES,
  ONION_PACKET_BYTES,
  peelOnion,
  type Ecdh,
  type OnionHop,
  type Peeled,
} from "./packet.js";
export {
  BADONION,
  decodeFailure,
  describeFailure,
  encodeFailure,
  FAILURE_CODES,
  failureCode,
  NODE,
  PERM,
  UPDATE,
  type Failure,
  type FailureName,
  type NoDataFailureName,
} from "./failure.js";
export {
  createErrorPacket,
  decodeErrorPacket,
  decodeFailReason,
  encodeMalformedReason,
  MALFORMED_REASON_BYTES,
  MIN_ERROR_PACKET_BYTES,
  wrapErrorPacket,
  type FailReason,
} from "./error-packet.js";
