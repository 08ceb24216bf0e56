export type InvoiceErrorCode =
  /** Not a bech32 string, a bad checksum, a truncated field, an amount out of range. */
  | "MALFORMED"
  /** A prefix other than lnbc, lntb, lnbcrt. */
  | "UNKNOWN_NETWORK"
  /** No signature, one that recovers no key, or one that does not recover the `n` field's key. */
  | "BAD_SIGNATURE"
  /** No `p` field of 52 words (BOLT #11: such fields are skipped). */
  | "MISSING_PAYMENT_HASH"
  /** No `s` field of 52 words: we pay and accept only payments with a payment secret. */
  | "MISSING_PAYMENT_SECRET"
  /** Neither `d` nor a 52-word `h`. */
  | "MISSING_DESCRIPTION"
  /** An even (required) feature bit we do not know (BOLT #11: MUST NOT attempt the payment). */
  | "UNKNOWN_REQUIRED_FEATURE"
  /** encode side only: fields we were asked to put in an invoice that cannot be in one. */
  | "INVALID_FIELD";

/** The one error of @ln/invoice: a bad invoice string, or fields that make no invoice. */
export class InvoiceError extends Error {
  override readonly name = "InvoiceError";
  constructor(
    readonly code: InvoiceErrorCode,
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}
