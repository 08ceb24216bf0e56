/** BOLT #4's primitives: key derivation, the ChaCha20 stream, HMACs. */
import { createCipheriv, createHash, createHmac, timingSafeEqual } from "node:crypto";

/** The key types of BOLT #4 "Key Generation". */
export type OnionKeyType = "rho" | "mu" | "um" | "ammag" | "pad";

/** HMAC-SHA256 keyed with the ASCII key type, over the 32-byte secret. */
export function generateKey(keyType: OnionKeyType, secret: Buffer): Buffer {
  return createHmac("sha256", Buffer.from(keyType, "ascii")).update(secret).digest();
}

// ChaCha20 with a zero nonce: OpenSSL's 16-byte IV is the 4-byte block counter then the 12-byte nonce.
const ZERO_IV = Buffer.alloc(16);

/** `length` bytes of the ChaCha20 key stream of `key` (nonce zero, counter from zero). */
export function cipherStream(key: Buffer, length: number): Buffer {
  return createCipheriv("chacha20", key, ZERO_IV).update(Buffer.alloc(length));
}

/** a XOR b into a new buffer of a's length (b at least as long). */
export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

export function hmacSha256(key: Buffer, ...parts: Buffer[]): Buffer {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return h.digest();
}

export function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** Constant-time equality of two HMACs (false if the lengths differ). */
export function hmacEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
