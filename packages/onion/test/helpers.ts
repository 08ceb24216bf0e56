import { createCipheriv, createHash, createHmac } from "node:crypto";
import * as ecc from "tiny-secp256k1";
import type { Ecdh } from "@ln/onion";

export const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ""), "hex");
export const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();
export const hmac = (key: Buffer, ...parts: Buffer[]): Buffer => {
  const h = createHmac("sha256", key);
  for (const p of parts) h.update(p);
  return h.digest();
};

/** A node's key pair from a label. */
export function node(label: string): { priv: Buffer; pub: Buffer } {
  const priv = sha256(Buffer.from(label));
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true)!) };
}

/** The node's ECDH as the signer does it: SHA256 of the compressed point priv * P. */
export const localEcdh =
  (priv: Buffer): Ecdh =>
  (point) =>
    Promise.resolve(sha256(ecc.pointMultiply(point, priv, true)!));

/** Calls `f` and returns what it threw or rejected with (fails if it did not). */
export async function caught(f: () => unknown): Promise<unknown> {
  try {
    await f();
  } catch (e) {
    return e;
  }
  throw new Error("no error");
}

/**
 * A one-hop packet whose decrypted hop payloads are `clear` (1300 bytes), made with node:crypto
 * alone: the rho stream is ChaCha20 with a zero nonce, the HMAC under mu over payloads || ad.
 */
export function craft(
  clear: Buffer,
  to: Buffer,
  sessionKey: Buffer,
  ad: Buffer,
): { packet: Buffer; secret: Buffer } {
  const secret = sha256(ecc.pointMultiply(to, sessionKey, true)!);
  const rho = hmac(Buffer.from("rho"), secret);
  const mu = hmac(Buffer.from("mu"), secret);
  const stream = createCipheriv("chacha20", rho, Buffer.alloc(16)).update(Buffer.alloc(1300));
  const payloads = Buffer.from(clear.map((b, i) => b ^ stream[i]!));
  const ephemeral = Buffer.from(ecc.pointFromScalar(sessionKey, true)!);
  return { packet: Buffer.concat([Buffer.from([0]), ephemeral, payloads, hmac(mu, payloads, ad)]), secret };
}
