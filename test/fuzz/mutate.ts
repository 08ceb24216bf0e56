/**
 * Mutators: byte-level (bit flips, byte insert/delete/duplicate, splice, truncation) for every
 * target, and field-level for protobuf (unknown even/odd fields, wrong wire types, huge lengths,
 * repeated fields, nested messages mutated in place).
 */
import type { Rng } from "./rng.js";

const INTERESTING_BYTES = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x40];

/** How long a mutated input may grow: the transport's largest message. */
export const MAX_INPUT_BYTES = 65_535 + 34;

export function mutateBytes(rng: Rng, input: Buffer, corpus: readonly Buffer[]): Buffer {
  let b = Buffer.from(input);
  const at = (extra = 0): number => rng.below(b.length + extra);
  switch (rng.below(11)) {
    case 0: // bit flip
      if (b.length > 0) {
        const i = at();
        b[i] = (b[i] as number) ^ (1 << rng.below(8));
      }
      break;
    case 1: // random byte
      if (b.length > 0) b[at()] = rng.u32() & 0xff;
      break;
    case 2: // interesting byte
      if (b.length > 0) b[at()] = rng.pick(INTERESTING_BYTES);
      break;
    case 3: {
      // insert random bytes
      const i = at(1);
      b = Buffer.concat([b.subarray(0, i), rng.bytes(1 + rng.size(16)), b.subarray(i)]);
      break;
    }
    case 4: {
      // delete a range
      const i = at();
      const n = 1 + rng.size(Math.max(0, b.length - i - 1));
      b = Buffer.concat([b.subarray(0, i), b.subarray(i + n)]);
      break;
    }
    case 5: {
      // duplicate a range in place
      if (b.length === 0) break;
      const i = at();
      const n = 1 + rng.size(Math.min(64, b.length - i - 1));
      b = Buffer.concat([b.subarray(0, i + n), b.subarray(i, i + n), b.subarray(i + n)]);
      break;
    }
    case 6: // truncate
      b = b.subarray(0, at());
      break;
    case 7: {
      // splice: a prefix of this one and a suffix of another corpus item
      const other = rng.pick(corpus);
      b = Buffer.concat([b.subarray(0, at(1)), other.subarray(rng.below(other.length + 1))]);
      break;
    }
    case 8: {
      // overwrite with a chunk of another corpus item
      const other = rng.pick(corpus);
      if (other.length === 0 || b.length === 0) break;
      const from = rng.below(other.length);
      const chunk = other.subarray(from, from + 1 + rng.size(32));
      const i = at();
      b = Buffer.concat([b.subarray(0, i), chunk, b.subarray(i + chunk.length)]);
      break;
    }
    case 9: {
      // an arithmetic change to one byte
      if (b.length === 0) break;
      const i = at();
      b[i] = ((b[i] as number) + rng.below(35) - 17) & 0xff;
      break;
    }
    default: {
      // append random bytes
      b = Buffer.concat([b, rng.bytes(1 + rng.size(32))]);
      break;
    }
  }
  return b.length > MAX_INPUT_BYTES ? b.subarray(0, MAX_INPUT_BYTES) : b;
}

// ---------------------------------------------------------------- protobuf

interface Field {
  id: number;
  wireType: number;
  /** The payload's bytes (for wire type 2, without the length). */
  payload: Buffer;
}

export function varint(v: bigint): Buffer {
  const out: number[] = [];
  let x = v;
  do {
    let byte = Number(x & 0x7fn);
    x >>= 7n;
    if (x > 0n) byte |= 0x80;
    out.push(byte);
  } while (x > 0n);
  return Buffer.from(out);
}

/** Splits a message into its top-level fields; undefined if it is not one (then bytes are mutated). */
export function parseFields(b: Buffer): Field[] | undefined {
  const fields: Field[] = [];
  let pos = 0;
  const readVarint = (): bigint | undefined => {
    let v = 0n;
    for (let shift = 0n; shift < 70n; shift += 7n) {
      if (pos >= b.length) return undefined;
      const byte = b[pos++] as number;
      v |= BigInt(byte & 0x7f) << shift;
      if ((byte & 0x80) === 0) return v;
    }
    return undefined;
  };
  while (pos < b.length) {
    const tag = readVarint();
    if (tag === undefined || tag >> 3n > 0x1fff_ffffn) return undefined;
    const id = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    const start = pos;
    if (wireType === 0) {
      if (readVarint() === undefined) return undefined;
      fields.push({ id, wireType, payload: b.subarray(start, pos) });
    } else if (wireType === 1 || wireType === 5) {
      const n = wireType === 1 ? 8 : 4;
      if (pos + n > b.length) return undefined;
      pos += n;
      fields.push({ id, wireType, payload: b.subarray(start, pos) });
    } else if (wireType === 2) {
      const n = readVarint();
      if (n === undefined || n > BigInt(b.length - pos)) return undefined;
      fields.push({ id, wireType, payload: b.subarray(pos, pos + Number(n)) });
      pos += Number(n);
    } else return undefined;
  }
  return fields;
}

export function encodeField(f: Field): Buffer {
  const tag = varint((BigInt(f.id) << 3n) | BigInt(f.wireType));
  return f.wireType === 2
    ? Buffer.concat([tag, varint(BigInt(f.payload.length)), f.payload])
    : Buffer.concat([tag, f.payload]);
}

export const encodeFields = (fs: readonly Field[]): Buffer => Buffer.concat(fs.map(encodeField));

const INTERESTING_VARINTS = [
  0n,
  1n,
  2n,
  0x7fn,
  0x80n,
  0xffff_ffffn,
  0x1_0000_0000n,
  2n ** 63n,
  2n ** 64n - 1n,
];

/** A payload that is well-formed for its wire type. */
function payloadFor(rng: Rng, wireType: number): Buffer {
  switch (wireType) {
    case 0:
      return varint(rng.chance(0.5) ? rng.pick(INTERESTING_VARINTS) : BigInt(rng.u32()));
    case 1:
      return rng.bytes(8);
    case 5:
      return rng.bytes(4);
    default:
      return rng.bytes(rng.size(40));
  }
}

/** A field number: small (near the schema's), or large, of the parity asked (or any). */
function fieldNumber(rng: Rng, parity?: 0 | 1): number {
  let id = rng.chance(0.6) ? 1 + rng.below(40) : 1 + rng.below(0x1fff_ffff);
  if (parity !== undefined && id % 2 !== parity) id = id === 1 ? 2 : id - 1;
  return id;
}

/**
 * One field-level mutation, at the top level or (recursively) inside a length-delimited field.
 * Returns undefined when the input does not parse as protobuf.
 */
export function mutateProto(rng: Rng, input: Buffer, depth = 0): Buffer | undefined {
  const fields = parseFields(input);
  if (fields === undefined) return undefined;
  const i = rng.below(fields.length);
  const f = fields[i];
  const op = rng.below(f === undefined ? 2 : 11);
  switch (op) {
    case 0: // an unknown field of either parity, anywhere
    case 1: {
      const wireType = rng.pick([0, 1, 2, 5]);
      const unknown = {
        id: fieldNumber(rng, op === 0 ? 0 : 1),
        wireType,
        payload: payloadFor(rng, wireType),
      };
      fields.splice(rng.below(fields.length + 1), 0, unknown);
      return encodeFields(fields);
    }
  }
  if (f === undefined) return undefined;
  switch (op) {
    case 2: // the wrong wire type, the payload kept
      fields[i] = { ...f, wireType: rng.pick([0, 1, 2, 3, 4, 5, 6, 7].filter((w) => w !== f.wireType)) };
      return Buffer.concat([
        ...fields.slice(0, i).map(encodeField),
        rawWrongType(fields[i] as Field),
        ...fields.slice(i + 1).map(encodeField),
      ]);
    case 3: {
      // a huge (or off by one) length
      const len = rng.pick([
        BigInt(f.payload.length + 1),
        0xffff_ffffn,
        0x1_0000_0000n,
        2n ** 63n,
        2n ** 64n - 1n,
        BigInt(rng.u32()),
      ]);
      const raw = Buffer.concat([varint((BigInt(f.id) << 3n) | 2n), varint(len), f.payload]);
      return Buffer.concat([
        ...fields.slice(0, i).map(encodeField),
        raw,
        ...fields.slice(i + 1).map(encodeField),
      ]);
    }
    case 4: // the field repeated
      fields.splice(i, 0, f);
      return encodeFields(fields);
    case 5: // the field removed
      fields.splice(i, 1);
      return encodeFields(fields);
    case 6: {
      // fields reordered
      const j = rng.below(fields.length);
      const g = fields[j] as Field;
      fields[j] = f;
      fields[i] = g;
      return encodeFields(fields);
    }
    case 7: // another field number, same payload
      fields[i] = { ...f, id: fieldNumber(rng) };
      return encodeFields(fields);
    case 8: // an interesting value for a varint, or an over-long encoding of it
      if (f.wireType === 0) {
        const v = rng.pick(INTERESTING_VARINTS);
        const enc = rng.chance(0.3)
          ? Buffer.concat([varint(v).map((x) => x | 0x80), Buffer.from([0])])
          : varint(v);
        fields[i] = { ...f, payload: enc.length > 10 && rng.chance(0.5) ? enc : enc.subarray(0, 11) };
        return encodeFields(fields);
      }
      fields[i] = { ...f, payload: payloadFor(rng, f.wireType) };
      return encodeFields(fields);
    case 9: {
      // a nested message mutated in place (or its bytes, if it is not one)
      if (f.wireType !== 2) return undefined;
      const inner =
        (depth < 4 ? mutateProto(rng, f.payload, depth + 1) : undefined) ??
        mutateBytes(rng, f.payload, [f.payload]);
      fields[i] = { ...f, payload: inner };
      return encodeFields(fields);
    }
    default: {
      // the payload resized (a bytes field too short or too long)
      if (f.wireType !== 2) return undefined;
      const n = rng.pick([0, 1, 31, 33, 63, 65, f.payload.length * 2, rng.size(2000)]);
      const payload = Buffer.alloc(n);
      f.payload.copy(payload);
      fields[i] = { ...f, payload };
      return encodeFields(fields);
    }
  }
}

/** A field whose tag claims a wire type its payload was not written for. */
function rawWrongType(f: Field): Buffer {
  const tag = varint((BigInt(f.id) << 3n) | BigInt(f.wireType));
  return Buffer.concat([tag, f.payload]);
}
