/** BOLT #1 BigSize and truncated integers, and a reader that names where it failed. */

/** BigSize: minimal encoding of a value up to 2^64 - 1. */
export function encodeBigSize(n: bigint): Buffer {
  if (n < 0n || n > 0xffff_ffff_ffff_ffffn) throw new RangeError("BigSize out of range");
  if (n < 0xfdn) return Buffer.from([Number(n)]);
  if (n <= 0xffffn) {
    const b = Buffer.alloc(3);
    b[0] = 0xfd;
    b.writeUInt16BE(Number(n), 1);
    return b;
  }
  if (n <= 0xffff_ffffn) {
    const b = Buffer.alloc(5);
    b[0] = 0xfe;
    b.writeUInt32BE(Number(n), 1);
    return b;
  }
  const b = Buffer.alloc(9);
  b[0] = 0xff;
  b.writeBigUInt64BE(n, 1);
  return b;
}

/** A truncated unsigned integer: big-endian with no leading zero byte (0 is empty). */
export function encodeTruncated(n: bigint, maxBytes: number): Buffer {
  if (n < 0n || n >= 1n << BigInt(8 * maxBytes)) throw new RangeError(`tu${8 * maxBytes} out of range`);
  const full = Buffer.alloc(8);
  full.writeBigUInt64BE(n);
  let start = 0;
  while (start < 8 && full[start] === 0) start++;
  return full.subarray(start);
}

/** Why a read failed; the caller turns it into its own error. */
export class ReadFailure {
  constructor(
    readonly offset: number,
    readonly reason: string,
  ) {}
}

/** A cursor over bytes whose reads return ReadFailure-throwing results (never a RangeError). */
export class Reader {
  #pos = 0;
  constructor(readonly bytes: Buffer) {}

  get pos(): number {
    return this.#pos;
  }
  get remaining(): number {
    return this.bytes.length - this.#pos;
  }

  take(n: number, what: string): Buffer {
    if (n > this.remaining)
      throw new ReadFailure(this.#pos, `${what}: ${n} bytes wanted, ${this.remaining} left`);
    const b = this.bytes.subarray(this.#pos, this.#pos + n);
    this.#pos += n;
    return b;
  }
  u16(what: string): number {
    return this.take(2, what).readUInt16BE(0);
  }
  u32(what: string): number {
    return this.take(4, what).readUInt32BE(0);
  }
  u64(what: string): bigint {
    return this.take(8, what).readBigUInt64BE(0);
  }
  rest(): Buffer {
    return this.take(this.remaining, "rest");
  }

  /** BigSize, refusing a non-minimal encoding (BOLT #1). */
  bigSize(what: string): bigint {
    const at = this.#pos;
    const first = this.take(1, what)[0]!;
    if (first < 0xfd) return BigInt(first);
    const n =
      first === 0xfd
        ? BigInt(this.take(2, what).readUInt16BE(0))
        : first === 0xfe
          ? BigInt(this.take(4, what).readUInt32BE(0))
          : this.take(8, what).readBigUInt64BE(0);
    const min = first === 0xfd ? 0xfdn : first === 0xfe ? 0x1_0000n : 0x1_0000_0000n;
    if (n < min) throw new ReadFailure(at, `${what}: BigSize not minimally encoded`);
    return n;
  }
}

/** A truncated integer of at most maxBytes, refusing a leading zero byte (BOLT #1). */
export function decodeTruncated(b: Buffer, maxBytes: number): bigint | string {
  if (b.length > maxBytes) return `longer than ${maxBytes} bytes`;
  if (b.length > 0 && b[0] === 0) return "not minimally encoded";
  let n = 0n;
  for (const byte of b) n = (n << 8n) | BigInt(byte);
  return n;
}
