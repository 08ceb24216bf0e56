import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, type KeyObject } from "node:crypto";
import { TransportError } from "./errors.js";

/** Largest plaintext one transport message can carry (its length is a u16). */
export const MAX_MESSAGE_BYTES = 65535;

const MAC_BYTES = 16;
const HEADER_BYTES = 2 + MAC_BYTES;
// BOLT 8 rotates a key once it has been used for 1000 encryptions.
const ROTATE_AT = 1000;
const EMPTY = Buffer.alloc(0);

/** HKDF-SHA256 with `salt` (the chaining key), empty info, 64 bytes split in two 32-byte halves. */
export function hkdf2(salt: Uint8Array, ikm: Uint8Array): [Buffer, Buffer] {
  const out = Buffer.from(hkdfSync("sha256", ikm, salt, EMPTY, 64));
  return [out.subarray(0, 32), out.subarray(32, 64)];
}

/** BOLT 8 nonce: 4 zero bytes then the counter as a little-endian u64. */
function writeNonce(nonce: Buffer, n: number): Buffer {
  nonce.fill(0);
  nonce.writeUInt32LE(n >>> 0, 4);
  nonce.writeUInt32LE(Math.floor(n / 0x100000000), 8);
  return nonce;
}

/** ChaCha20-Poly1305 encryption, returning ciphertext || 16-byte MAC. */
export function encryptWithAD(key: Uint8Array, n: number, ad: Uint8Array, plaintext: Uint8Array): Buffer {
  const cipher = createCipheriv("chacha20-poly1305", key, writeNonce(Buffer.alloc(12), n), {
    authTagLength: MAC_BYTES,
  });
  cipher.setAAD(ad, { plaintextLength: plaintext.length });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

/** ChaCha20-Poly1305 decryption of ciphertext || MAC; null when the MAC does not verify. */
export function decryptWithAD(key: Uint8Array, n: number, ad: Uint8Array, sealed: Uint8Array): Buffer | null {
  return open(key, writeNonce(Buffer.alloc(12), n), ad, sealed);
}

function open(key: Uint8Array | KeyObject, nonce: Buffer, ad: Uint8Array, sealed: Uint8Array): Buffer | null {
  if (sealed.length < MAC_BYTES) return null;
  const ctLen = sealed.length - MAC_BYTES;
  const decipher = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: MAC_BYTES });
  if (ad.length > 0) decipher.setAAD(ad, { plaintextLength: ctLen });
  decipher.setAuthTag(sealed.subarray(ctLen));
  const pt = decipher.update(sealed.subarray(0, ctLen));
  try {
    decipher.final();
  } catch {
    return null;
  }
  return pt;
}

/**
 * One direction of the post-handshake transport: a key, its nonce and its own copy of the
 * chaining key for rotation. Use one instance to send and another to receive.
 * After any TransportError the connection must be closed; the state is not rolled forward.
 */
export class MessageCipher {
  #key: Buffer;
  // Imported once per key rather than on every createCipheriv call.
  #keyObject: KeyObject;
  #ck: Buffer;
  #n = 0;
  // Reused for every nonce so the hot path allocates only the output.
  readonly #nonce = Buffer.alloc(12);

  constructor(key: Uint8Array, chainingKey: Uint8Array) {
    if (key.length !== 32 || chainingKey.length !== 32)
      throw new Error("key and chaining key must be 32 bytes");
    this.#key = Buffer.from(key);
    this.#keyObject = createSecretKey(this.#key);
    this.#ck = Buffer.from(chainingKey);
  }

  /** Current nonce (0..999); mainly for tests. */
  get nonce(): number {
    return this.#n;
  }

  /** Encrypts one message: encrypted 2-byte length + MAC, then encrypted body + MAC. */
  encryptMessage(plaintext: Uint8Array): Buffer {
    return Buffer.concat(this.encryptMessageParts(plaintext));
  }

  /**
   * The same frame as three pieces (length header with its MAC, body ciphertext, body MAC), so a
   * socket can write them without copying the body once more (`cork` + `write`s, i.e. writev).
   */
  encryptMessageParts(plaintext: Uint8Array): [Buffer, Buffer, Buffer] {
    const len = plaintext.length;
    if (len > MAX_MESSAGE_BYTES) {
      throw new TransportError(
        "MESSAGE_TOO_LARGE",
        `message is ${len} bytes, the most one transport message can carry is ${MAX_MESSAGE_BYTES}`,
      );
    }
    const header = Buffer.allocUnsafe(HEADER_BYTES);
    header.writeUInt16BE(len, 0);
    const [lengthCt, lengthMac] = this.#seal(header.subarray(0, 2));
    lengthCt.copy(header, 0);
    lengthMac.copy(header, 2);
    const [body, mac] = this.#seal(plaintext);
    return [header, body, mac];
  }

  /** Decrypts an 18-byte header and returns the body length (the body then has length + 16 bytes). */
  decryptLength(header18: Uint8Array): number {
    if (header18.length !== HEADER_BYTES) {
      throw new TransportError(
        "BAD_LENGTH_MAC",
        `length header is ${header18.length} bytes, expected ${HEADER_BYTES}`,
      );
    }
    const pt = this.#open(header18);
    if (pt === null) throw new TransportError("BAD_LENGTH_MAC", "length header failed authentication");
    return pt.readUInt16BE(0);
  }

  /** Decrypts a body (ciphertext + 16-byte MAC) and returns the plaintext. */
  decryptBody(body: Uint8Array): Buffer {
    if (body.length < MAC_BYTES) {
      throw new TransportError(
        "BAD_BODY_MAC",
        `message body is ${body.length} bytes, shorter than its ${MAC_BYTES}-byte MAC`,
      );
    }
    const pt = this.#open(body);
    if (pt === null) throw new TransportError("BAD_BODY_MAC", "message body failed authentication");
    return pt;
  }

  /** Encrypts `pt`, returning ciphertext and MAC, and advances the nonce. */
  #seal(pt: Uint8Array): [Buffer, Buffer] {
    const cipher = createCipheriv("chacha20-poly1305", this.#keyObject, writeNonce(this.#nonce, this.#n), {
      authTagLength: MAC_BYTES,
    });
    // chacha20 is a stream cipher: update() returns all of the ciphertext and final() nothing.
    const ct = cipher.update(pt);
    cipher.final();
    const mac = cipher.getAuthTag();
    this.#advance();
    return [ct, mac];
  }

  #open(sealed: Uint8Array): Buffer | null {
    const pt = open(this.#keyObject, writeNonce(this.#nonce, this.#n), EMPTY, sealed);
    if (pt !== null) this.#advance();
    return pt;
  }

  #advance(): void {
    this.#n += 1;
    if (this.#n === ROTATE_AT) {
      // BOLT 8 key rotation: ck', k' = HKDF(ck, k), nonce back to 0.
      const [ck, k] = hkdf2(this.#ck, this.#key);
      this.#ck = ck;
      this.#key = k;
      this.#keyObject = createSecretKey(k);
      this.#n = 0;
    }
  }
}
