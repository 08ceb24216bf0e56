/** BOLT #4 "Returning Errors": the failing node's error packet and the layers the route adds. */
import { cipherStream, generateKey, hmacEqual, hmacSha256, xor } from "./crypto.js";
import { OnionError } from "./errors.js";
import { BADONION, decodeFailure, type Failure } from "./failure.js";

/** The failure message and its padding together take at least this many bytes. */
const PADDED_FAILURE_BYTES = 256;
const HMAC_BYTES = 32;
/** The smallest error packet we make: HMAC, u16 length, 256 bytes of message and pad, u16 pad length. */
export const MIN_ERROR_PACKET_BYTES = HMAC_BYTES + 2 + PADDED_FAILURE_BYTES + 2;
/** A malformed reason: u16 BADONION failure code + sha256 of the onion. */
export const MALFORMED_REASON_BYTES = 34;

/** XOR with the `ammag` stream of one hop: each node on the way back adds (and the payer removes) one. */
export function wrapErrorPacket(sharedSecret: Buffer, packet: Buffer): Buffer {
  return xor(packet, cipherStream(generateKey("ammag", sharedSecret), packet.length));
}

/**
 * The failing node's error packet: HMAC under `um` over (u16 len, message, u16 pad len, pad) with
 * the message padded to 256 bytes, then its own `ammag` layer. 292 bytes for a message up to 256.
 */
export function createErrorPacket(sharedSecret: Buffer, failureMessage: Buffer): Buffer {
  if (failureMessage.length > 0xffff)
    throw new OnionError("INVALID_FAILURE", "a failure message over 65535 bytes");
  const padLength = Math.max(0, PADDED_FAILURE_BYTES - failureMessage.length);
  const lengths = Buffer.alloc(4);
  lengths.writeUInt16BE(failureMessage.length, 0);
  lengths.writeUInt16BE(padLength, 2);
  const body = Buffer.concat([
    lengths.subarray(0, 2),
    failureMessage,
    lengths.subarray(2),
    Buffer.alloc(padLength),
  ]);
  const hmac = hmacSha256(generateKey("um", sharedSecret), body);
  return wrapErrorPacket(sharedSecret, Buffer.concat([hmac, body]));
}

/**
 * The payer: removes one layer per hop, in route order, until a hop's `um` HMAC matches; `hop` is
 * that hop's index in `sharedSecrets`. UNREADABLE_ERROR when none matches (someone on the way
 * changed it); INVALID_FAILURE (with `hop`) when the matching hop's message is malformed.
 */
export function decodeErrorPacket(
  sharedSecrets: Buffer[],
  packet: Buffer,
): { hop: number; failure: Failure } {
  let layer = packet;
  for (const [hop, secret] of sharedSecrets.entries()) {
    layer = wrapErrorPacket(secret, layer);
    if (layer.length < HMAC_BYTES + 4) continue;
    const body = layer.subarray(HMAC_BYTES);
    if (!hmacEqual(hmacSha256(generateKey("um", secret), body), layer.subarray(0, HMAC_BYTES))) continue;
    const length = body.readUInt16BE(0);
    if (2 + length + 2 > body.length)
      throw new OnionError("INVALID_FAILURE", `hop ${hop}: the failure length overruns the error packet`, {
        hop,
      });
    const padLength = body.readUInt16BE(2 + length);
    if (2 + length + 2 + padLength !== body.length)
      throw new OnionError("INVALID_FAILURE", `hop ${hop}: the pad length does not match the error packet`, {
        hop,
      });
    try {
      return { hop, failure: decodeFailure(Buffer.from(body.subarray(2, 2 + length))) };
    } catch (e) {
      if (e instanceof OnionError) throw new OnionError(e.code, `hop ${hop}: ${e.message}`, { hop });
      throw e;
    }
  }
  throw new OnionError("UNREADABLE_ERROR", "no hop of the route authenticates the error packet");
}

export type FailReason = { kind: "packet"; packet: Buffer } | { kind: "malformed"; failure: Failure };

/**
 * The reason of a node that could not peel the onion (and may have no shared secret): its
 * BADONION failure code and the sha256 of the onion it received, 34 bytes.
 */
export function encodeMalformedReason(code: number, sha256OfOnion: Buffer): Buffer {
  if (!Number.isInteger(code) || code < 0 || code > 0xffff || (code & BADONION) === 0)
    throw new OnionError("INVALID_FAILURE", `failure code ${code} is not a BADONION code`);
  if (sha256OfOnion.length !== 32) throw new OnionError("INVALID_FAILURE", "sha256_of_onion is not 32 bytes");
  const b = Buffer.alloc(MALFORMED_REASON_BYTES);
  b.writeUInt16BE(code, 0);
  sha256OfOnion.copy(b, 2);
  return b;
}

/**
 * Tells a fail reason's two forms apart by length: 34 bytes is a malformed reason (its code must be
 * a BADONION one), at least 292 an error packet; anything else is INVALID_FAIL_REASON.
 */
export function decodeFailReason(b: Buffer): FailReason {
  if (b.length === MALFORMED_REASON_BYTES) {
    const code = b.readUInt16BE(0);
    if ((code & BADONION) === 0)
      throw new OnionError(
        "INVALID_FAIL_REASON",
        `a malformed reason with code 0x${code.toString(16)}, not BADONION`,
      );
    return { kind: "malformed", failure: decodeFailure(Buffer.from(b)) };
  }
  if (b.length >= MIN_ERROR_PACKET_BYTES) return { kind: "packet", packet: Buffer.from(b) };
  throw new OnionError("INVALID_FAIL_REASON", `a fail reason of ${b.length} bytes`);
}
