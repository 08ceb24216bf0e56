export { InvoiceError, type InvoiceErrorCode } from "./errors.js";
export { type InvoiceNetwork, NETWORKS } from "./network.js";
export type { DecodedInvoice, InvoiceFields, RouteHintHop } from "./types.js";
export { decodeInvoice, DEFAULT_EXPIRY_SECONDS, DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA } from "./decode.js";
export { assembleInvoice, unsignedInvoice, type UnsignedInvoice } from "./encode.js";
