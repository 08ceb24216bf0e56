import { createHash } from "node:crypto";

export const sha256 = (data: Uint8Array): Buffer => createHash("sha256").update(data).digest();
/** SHA256(SHA256(x)): txids, the authenticate digest. */
export const sha256d = (data: Uint8Array): Buffer => sha256(sha256(data));
export const ripemd160 = (data: Uint8Array): Buffer => createHash("ripemd160").update(data).digest();
/** RIPEMD160(SHA256(x)), as OP_HASH160 computes it. */
export const hash160 = (data: Uint8Array): Buffer => ripemd160(sha256(data));
