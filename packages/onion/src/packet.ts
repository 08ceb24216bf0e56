/** BOLT #4 "Packet Construction" and "Packet Forwarding": the 1,366-byte onion, version 0. */
import * as ecc from "tiny-secp256k1";
import { cipherStream, generateKey, hmacEqual, hmacSha256, sha256, xor } from "./crypto.js";
import { OnionError } from "./errors.js";
import { decodeHopPayload, invalidPayload, type HopPayload } from "./payload.js";
import { Reader, ReadFailure } from "./tlv.js";

/** Version 0, 33-byte ephemeral key, 1300 bytes of hop payloads, 32-byte HMAC. */
export const ONION_PACKET_BYTES = 1366;
export const HOP_PAYLOADS_BYTES = 1300;
const HMAC_BYTES = 32;
const VERSION = 0;

/** ECDH with the node key, done by the signer: SHA256 of the compressed shared point k*point. */
export type Ecdh = (point: Buffer) => Promise<Buffer>;

export interface OnionHop {
  /** The hop's 33-byte node id. */
  nodeId: Buffer;
  /** The hop payload already encoded, with its BigSize length prefix (encodeHopPayload). */
  payload: Buffer;
}

export type Peeled =
  | { kind: "forward"; payload: HopPayload; next: Buffer; sharedSecret: Buffer }
  /** The next HMAC is all zero: we are the final hop. */
  | { kind: "final"; payload: HopPayload; sharedSecret: Buffer };

const isCompressedPoint = (p: Buffer): boolean =>
  p.length === 33 && (p[0] === 2 || p[0] === 3) && ecc.isPoint(p);

/** point * scalar, or undefined for infinity or a scalar not below the group order. */
function multiply(point: Uint8Array, scalar: Uint8Array): Buffer | undefined {
  try {
    const p = ecc.pointMultiply(point, scalar, true);
    return p === null ? undefined : Buffer.from(p);
  } catch {
    return undefined;
  }
}

function blind(point: Uint8Array, scalar: Uint8Array): Buffer {
  const p = multiply(point, scalar);
  if (p === undefined) throw new OnionError("INVALID_ROUTE", "a blinded key is not a point");
  return p;
}

/** The blinding factor of a hop: SHA256(ephemeral public key || shared secret). */
const blindingFactor = (ephemeralKey: Buffer, sharedSecret: Buffer): Buffer =>
  sha256(ephemeralKey, sharedSecret);

/** The length of a payload's BigSize prefix plus what it announces, checked against its buffer. */
function payloadLength(payload: Buffer, hop: number): number {
  try {
    const r = new Reader(payload);
    const n = r.bigSize("payload length");
    if (n !== BigInt(r.remaining)) throw new ReadFailure(0, "the length prefix does not match");
    return payload.length;
  } catch (e) {
    if (e instanceof ReadFailure)
      throw new OnionError(
        "INVALID_ROUTE",
        `hop ${hop}: the payload's length prefix does not match its bytes`,
      );
    throw e;
  }
}

/**
 * Builds the onion for `hops` (the first is our peer). Returns the packet and each hop's shared
 * secret (the payer keeps them to read an error packet). The session key must be random and used
 * once; route errors (no hop, a bad key, payloads over 1300 bytes) are OnionErrors.
 */
export function buildOnion(o: { sessionKey: Buffer; hops: OnionHop[]; associatedData: Buffer }): {
  packet: Buffer;
  sharedSecrets: Buffer[];
} {
  const { sessionKey, hops, associatedData } = o;
  if (hops.length === 0) throw new OnionError("INVALID_ROUTE", "a route needs at least one hop");
  if (sessionKey.length !== 32 || !ecc.isPrivate(sessionKey))
    throw new OnionError("INVALID_ROUTE", "the session key is not a secp256k1 private key");
  const sizes = hops.map((h, i) => {
    if (!isCompressedPoint(h.nodeId))
      throw new OnionError("INVALID_ROUTE", `hop ${i}: the node id is not a point`);
    return payloadLength(h.payload, i) + HMAC_BYTES;
  });
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total > HOP_PAYLOADS_BYTES)
    throw new OnionError(
      "ROUTE_TOO_LONG",
      `the hop payloads take ${total} bytes, more than ${HOP_PAYLOADS_BYTES}`,
    );

  // Each hop's ephemeral key and shared secret. The ephemeral private key of hop i is the session
  // key times the blinding factors of hops 0..i-1; we apply them to points instead (no scalar
  // product in tiny-secp256k1): shared point i = nodeId_i * session * b_0 * ... * b_(i-1).
  const ephemeralKeys: Buffer[] = [];
  const sharedSecrets: Buffer[] = [];
  const blindings: Buffer[] = [];
  let ephemeral: Buffer = Buffer.from(ecc.pointFromScalar(sessionKey, true)!);
  for (const [i, hop] of hops.entries()) {
    let shared = blind(hop.nodeId, sessionKey);
    for (const b of blindings) shared = blind(shared, b);
    const secret = sha256(shared);
    ephemeralKeys.push(ephemeral);
    sharedSecrets.push(secret);
    const b = blindingFactor(ephemeral, secret);
    blindings.push(b);
    if (i + 1 < hops.length) ephemeral = blind(ephemeral, b);
  }

  // The filler: what hops 0..n-2 shift in at the end of the payloads, as the last hop sees it.
  let filler: Buffer = Buffer.alloc(0);
  for (let i = 0; i < hops.length - 1; i++) {
    const size = sizes[i]!;
    const stream = cipherStream(generateKey("rho", sharedSecrets[i]!), HOP_PAYLOADS_BYTES + size);
    filler = xor(
      Buffer.concat([filler, Buffer.alloc(size)]),
      stream.subarray(HOP_PAYLOADS_BYTES - filler.length),
    );
  }

  // From the last hop back: shift right, put in the payload and the next HMAC, encrypt.
  let payloads: Buffer = cipherStream(generateKey("pad", sessionKey), HOP_PAYLOADS_BYTES);
  let nextHmac: Buffer = Buffer.alloc(HMAC_BYTES);
  for (let i = hops.length - 1; i >= 0; i--) {
    const secret = sharedSecrets[i]!;
    const shifted = Buffer.concat([
      hops[i]!.payload,
      nextHmac,
      payloads.subarray(0, HOP_PAYLOADS_BYTES - sizes[i]!),
    ]);
    payloads = xor(shifted, cipherStream(generateKey("rho", secret), HOP_PAYLOADS_BYTES));
    if (i === hops.length - 1) filler.copy(payloads, HOP_PAYLOADS_BYTES - filler.length);
    nextHmac = hmacSha256(generateKey("mu", secret), payloads, associatedData);
  }
  const packet = Buffer.concat([Buffer.from([VERSION]), ephemeralKeys[0]!, payloads, nextHmac]);
  return { packet, sharedSecrets };
}

function badOnion(
  code: "INVALID_LENGTH" | "INVALID_VERSION" | "INVALID_KEY" | "INVALID_HMAC",
  name: "invalid_onion_version" | "invalid_onion_key" | "invalid_onion_hmac",
  packet: Buffer,
  message: string,
  sharedSecret?: Buffer,
): OnionError {
  return new OnionError(code, message, {
    failure: { name, sha256OfOnion: sha256(packet) },
    ...(sharedSecret === undefined ? {} : { sharedSecret }),
  });
}

/**
 * Peels our layer of an onion: checks the version, key and HMAC, decodes our payload and makes the
 * packet for the next hop (or says we are the final one). Rejects only with OnionError: with the
 * failure to send back for a bad onion, or ECDH_FAILED (no failure) if `ecdh` itself failed.
 */
export async function peelOnion(packet: Buffer, associatedData: Buffer, ecdh: Ecdh): Promise<Peeled> {
  if (packet.length !== ONION_PACKET_BYTES)
    throw badOnion("INVALID_LENGTH", "invalid_onion_version", packet, `an onion of ${packet.length} bytes`);
  if (packet[0] !== VERSION)
    throw badOnion("INVALID_VERSION", "invalid_onion_version", packet, `onion version ${packet[0]}`);
  const ephemeralKey = Buffer.from(packet.subarray(1, 34));
  if (!isCompressedPoint(ephemeralKey))
    throw badOnion("INVALID_KEY", "invalid_onion_key", packet, "the ephemeral key is not a point");
  const payloads = packet.subarray(34, 34 + HOP_PAYLOADS_BYTES);
  const hmac = packet.subarray(34 + HOP_PAYLOADS_BYTES);

  let sharedSecret: Buffer;
  try {
    const s: unknown = await ecdh(ephemeralKey);
    if (!(s instanceof Uint8Array) || s.length !== 32) throw new Error("the ECDH answer is not 32 bytes");
    sharedSecret = Buffer.from(s);
  } catch (e) {
    throw new OnionError("ECDH_FAILED", "the onion's ECDH failed", { cause: e });
  }

  if (!hmacEqual(hmacSha256(generateKey("mu", sharedSecret), payloads, associatedData), hmac))
    throw badOnion(
      "INVALID_HMAC",
      "invalid_onion_hmac",
      packet,
      "the onion's HMAC does not match",
      sharedSecret,
    );

  // Decrypt our payloads with 1300 more zero bytes behind them: what shifts in for the next hop.
  const stream = cipherStream(generateKey("rho", sharedSecret), 2 * HOP_PAYLOADS_BYTES);
  const clear = xor(Buffer.concat([payloads, Buffer.alloc(HOP_PAYLOADS_BYTES)]), stream);
  let size: number;
  try {
    const r = new Reader(clear);
    const length = r.bigSize("payload length");
    size = r.pos + Number(length > BigInt(HOP_PAYLOADS_BYTES) ? BigInt(HOP_PAYLOADS_BYTES) : length);
    if (length > BigInt(HOP_PAYLOADS_BYTES) || size + HMAC_BYTES > HOP_PAYLOADS_BYTES)
      throw new ReadFailure(0, `a hop payload of ${length} bytes does not fit`);
  } catch (e) {
    if (e instanceof ReadFailure) throw invalidPayload(0n, 0, e.reason, sharedSecret);
    throw e;
  }
  let payload: HopPayload;
  try {
    payload = decodeHopPayload(Buffer.from(clear.subarray(0, size)));
  } catch (e) {
    if (e instanceof OnionError && e.failure !== undefined)
      throw new OnionError(e.code, e.message, { failure: e.failure, sharedSecret });
    throw e;
  }
  const nextHmac = clear.subarray(size, size + HMAC_BYTES);
  if (nextHmac.every((b) => b === 0)) return { kind: "final", payload, sharedSecret };
  if (payload.shortChannelId === undefined)
    throw invalidPayload(6n, 0, "a hop that forwards needs short_channel_id", sharedSecret);

  const nextKey = multiply(ephemeralKey, blindingFactor(ephemeralKey, sharedSecret));
  if (nextKey === undefined)
    throw badOnion("INVALID_KEY", "invalid_onion_key", packet, "the next key is infinity");
  const next = Buffer.concat([
    Buffer.from([VERSION]),
    nextKey,
    clear.subarray(size + HMAC_BYTES, size + HMAC_BYTES + HOP_PAYLOADS_BYTES),
    nextHmac,
  ]);
  return { kind: "forward", payload, next, sharedSecret };
}
