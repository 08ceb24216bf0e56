import type { RejectionCode } from "@ln/channel-core";

/**
 * The HTTP status of each refusal of the channel core (`command_rejected.code`): 409 when the
 * channel's state stands in the way (the same request may succeed later), 422 when the request
 * itself cannot be honoured (change it). The API answers `{ error: { code, message } }` with the
 * core's code as `code`. A new RejectionCode does not compile until it is placed here.
 */
export const REJECTION_STATUS: Readonly<Record<RejectionCode, 409 | 422>> = {
  CHANNEL_OPENING: 409,
  CHANNEL_CLOSING: 409,
  CHANNEL_CLOSED: 409,
  CHANNEL_BEHIND: 409,
  CLOSE_ALREADY_STARTED: 409,
  TOO_MANY_HTLCS: 409,
  HTLC_ALREADY_REMOVED: 409,
  NOTHING_TO_COMMIT: 409,
  AWAITING_REVOCATION: 409,
  AMOUNT_OUT_OF_RANGE: 422,
  INVALID_R_HASH: 422,
  ROUTE_TOO_LONG: 422,
  INVALID_EXPIRY: 422,
  EXPIRY_TOO_SOON: 422,
  INSUFFICIENT_FUNDS: 422,
  UNKNOWN_HTLC: 422,
  WRONG_PREIMAGE: 422,
  REASON_TOO_LONG: 422,
  FEE_RATE_OUT_OF_POLICY: 422,
};

export type { RejectionCode };

/** True if `code` is one of the channel core's refusals (a command refused, nothing done). */
export const isRejectionCode = (code: string): code is RejectionCode => Object.hasOwn(REJECTION_STATUS, code);

/**
 * Every other `error.code` the control API answers with. Clients must still expect codes not
 * listed here (a newer server), and treat them by HTTP status.
 */
export const API_ERROR_CODES = [
  "VALIDATION_FAILED", // 400: the request does not match its schema
  "BAD_REQUEST", // 400: malformed (e.g. not JSON)
  "INVALID", // 400: a value the node cannot take
  "UNAUTHENTICATED", // 401: no, unknown or revoked token
  "FORBIDDEN", // 403: the token lacks the route's scope
  "NOT_FOUND", // 404: no such route, channel or payment
  "METHOD_NOT_ALLOWED", // 405
  "CONFLICT", // 409: e.g. a live channel with that peer already
  "IDEMPOTENCY_IN_PROGRESS", // 409: a request with this key is still running
  "IDEMPOTENCY_KEY_REUSED", // 422: the key was used for another request
  "INSUFFICIENT_FUNDS", // 422: the wallet or the channel cannot pay it
  "PAYMENT_OUTCOME_UNKNOWN", // the payment may or may not have been sent (status of the cause)
  "PEER_UNREACHABLE", // 502
  "UNAVAILABLE", // 503: retry later (e.g. the channel runs on another replica)
  "NOT_READY", // 503: Postgres unreachable
  "AUDIT_UNAVAILABLE", // 503: the audit log cannot be written, nothing was done
  "INTERNAL", // 500
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number] | RejectionCode;
