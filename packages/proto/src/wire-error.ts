/** Why a `pkt` was rejected. `problem` is the text that goes into the `error` we send back. */
export type WireErrorCode =
  | "TOO_LARGE"
  | "TRUNCATED"
  | "MALFORMED"
  | "UNKNOWN_EVEN_FIELD"
  | "WRONG_WIRE_TYPE"
  | "DUPLICATE_FIELD"
  | "MISSING_FIELD"
  | "MULTIPLE_ONEOF"
  | "FIELD_RANGE"
  /** A bytes field longer than its content can be (a route beyond the onion's size, ...). */
  | "FIELD_TOO_LONG"
  | "BAD_PUBKEY"
  | "BAD_AMOUNT";

export class WireError extends Error {
  override readonly name = "WireError";
  constructor(
    readonly code: WireErrorCode,
    /** Human-readable, safe to send to the peer: it holds field names and numbers, never secrets. */
    readonly problem: string,
    /** Dotted path of the offending field, e.g. `pkt.open.commit_key.key`. */
    readonly field = "pkt",
  ) {
    super(problem);
  }
}
