import { createHash, hash } from "node:crypto";

/**
 * One-shot crypto.hash (Node >= 20.12): no Hash object per call, which for the small inputs
 * hashed here (txids of every transaction in a block) costs more than the hashing itself.
 */
export const sha256 = (data: Uint8Array): Buffer => hash("sha256", data, "buffer");
/** SHA256(SHA256(x)): txids, the authenticate digest. */
export const sha256d = (data: Uint8Array): Buffer => sha256(sha256(data));
export const ripemd160 = (data: Uint8Array): Buffer => createHash("ripemd160").update(data).digest();
/** RIPEMD160(SHA256(x)), as OP_HASH160 computes it. */
export const hash160 = (data: Uint8Array): Buffer => ripemd160(sha256(data));

/** SHA-256 round constants (FIPS 180-4, 4.2.2). */
const K = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
  0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
  0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
  0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
  0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
  0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
  0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
  0xc67178f2,
]);
/** The initial hash value (FIPS 180-4, 5.3.3). */
const H0 = Int32Array.from([
  0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
]);
/** The message schedule, reused: sha256Of32Into allocates nothing. */
const W = new Int32Array(64);
/** The resulting hash value, reused likewise. */
const S = new Int32Array(8);

/**
 * SHA256 of the 32 bytes at data[from..from+32), its first `len` bytes written to out at `at`: the
 * same bytes as sha256(data.subarray(from, from + 32)).subarray(0, len). A 32-byte message is one
 * padded block, so this is a single compression with nothing allocated; for the hashes of hashes
 * the tower takes of every transaction of a block (the second half of a txid, a locator) it is
 * several times faster than a call into OpenSSL, whose cost at this size is the call, the Buffer
 * it returns and the garbage that makes. Public data only: no constant-time claim.
 */
export function sha256Of32Into(data: Uint8Array, from: number, out: Uint8Array, at: number, len = 32): void {
  if (from < 0 || from + 32 > data.length) throw new RangeError("sha256Of32Into: 32 bytes needed");
  if (len < 0 || len > 32 || at < 0 || at + len > out.length)
    throw new RangeError("sha256Of32Into: the output does not fit");
  for (let i = 0; i < 8; i++) {
    const p = from + 4 * i;
    W[i] = (data[p]! << 24) | (data[p + 1]! << 16) | (data[p + 2]! << 8) | data[p + 3]!;
  }
  // The padding: a 1 bit, zeros, the length in bits (256) in the last word.
  W[8] = 0x80000000;
  for (let i = 9; i < 15; i++) W[i] = 0;
  W[15] = 256;
  for (let i = 16; i < 64; i++) {
    const x = W[i - 15]!;
    const y = W[i - 2]!;
    const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
    const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
    W[i] = (W[i - 16]! + s0 + W[i - 7]! + s1) | 0;
  }
  let a = H0[0]!;
  let b = H0[1]!;
  let c = H0[2]!;
  let d = H0[3]!;
  let e = H0[4]!;
  let f = H0[5]!;
  let g = H0[6]!;
  let h = H0[7]!;
  for (let i = 0; i < 64; i++) {
    const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
    const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[i]! + W[i]!) | 0;
    const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
    const t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
    h = g;
    g = f;
    f = e;
    e = (d + t1) | 0;
    d = c;
    c = b;
    b = a;
    a = (t1 + t2) | 0;
  }
  S[0] = a + H0[0]!;
  S[1] = b + H0[1]!;
  S[2] = c + H0[2]!;
  S[3] = d + H0[3]!;
  S[4] = e + H0[4]!;
  S[5] = f + H0[5]!;
  S[6] = g + H0[6]!;
  S[7] = h + H0[7]!;
  for (let k = 0; k < len; k++) out[at + k] = S[k >>> 2]! >>> (24 - 8 * (k & 3));
}
