import type { FieldSpec, MessageSpec } from "./schema.js";
import { WireError } from "./wire-error.js";

/**
 * A decoded protobuf message as plain data, keyed by the .proto field names: every integer a
 * bigint (no silent truncation), bytes as Buffer, nested messages as RawMessage.
 */
export type RawValue = bigint | boolean | Buffer | string | RawMessage | readonly RawValue[];
export interface RawMessage {
  readonly [field: string]: RawValue | undefined;
}

const WIRE_VARINT = 0;
const WIRE_FIXED64 = 1;
const WIRE_LEN = 2;
const WIRE_FIXED32 = 5;

const WIRE_TYPE_OF: Readonly<Record<FieldSpec["kind"], number>> = {
  uint64: WIRE_VARINT,
  uint32: WIRE_VARINT,
  enum: WIRE_VARINT,
  fixed64: WIRE_FIXED64,
  bool: WIRE_VARINT,
  bytes: WIRE_LEN,
  string: WIRE_LEN,
  message: WIRE_LEN,
};

const U32_MAX = 0xffff_ffffn;
const U64_MAX = 0xffff_ffff_ffff_ffffn;
const utf8 = new TextDecoder("utf-8", { fatal: true });

class Reader {
  private pos: number;
  constructor(
    private readonly buf: Buffer,
    start: number,
    readonly end: number,
  ) {
    this.pos = start;
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  varint(path: string): bigint {
    let value = 0n;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.end)
        throw new WireError("TRUNCATED", `${path}: message ends inside a varint`, path);
      const byte = this.buf[this.pos++] as number;
      value |= BigInt(byte & 0x7f) << BigInt(7 * i);
      if ((byte & 0x80) === 0) {
        if (value > U64_MAX) throw new WireError("MALFORMED", `${path}: varint exceeds 64 bits`, path);
        return value;
      }
    }
    throw new WireError("MALFORMED", `${path}: varint longer than 10 bytes`, path);
  }

  fixed64(path: string): bigint {
    const at = this.take(8, path);
    return this.buf.readBigUInt64LE(at);
  }

  /** Returns the offset of n bytes and steps over them. */
  take(n: number, path: string): number {
    if (this.end - this.pos < n)
      throw new WireError("TRUNCATED", `${path}: needs ${n} bytes, ${this.end - this.pos} left`, path);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  skip(wireType: number, path: string): void {
    switch (wireType) {
      case WIRE_VARINT:
        this.varint(path);
        return;
      case WIRE_FIXED64:
        this.take(8, path);
        return;
      case WIRE_LEN:
        this.take(this.length(path), path);
        return;
      case WIRE_FIXED32:
        this.take(4, path);
        return;
      default:
        throw new WireError("MALFORMED", `${path}: wire type ${wireType} is not allowed`, path);
    }
  }

  length(path: string): number {
    const n = this.varint(path);
    if (n > BigInt(this.end - this.pos))
      throw new WireError("TRUNCATED", `${path}: length ${n} runs past the end of the message`, path);
    return Number(n);
  }
}

/**
 * Decodes one message, enforcing on every level: unknown even field numbers rejected, unknown odd
 * ones skipped (the draft's "it's OK to be odd"), the declared wire type, no field twice, every
 * required field present, exactly one member of each oneof (the schema's oneofs are all "one of
 * these must be given": the pkt kind, a locktime's unit), uint32 and enum values in range.
 */
export function decodeMessage(
  spec: MessageSpec,
  buf: Buffer,
  start: number,
  end: number,
  path: string,
): RawMessage {
  const r = new Reader(buf, start, end);
  const out: Record<string, RawValue> = {};
  while (!r.done) {
    const tag = r.varint(path);
    const id = Number(tag >> 3n);
    const wireType = Number(tag & 7n);
    if (id === 0 || tag > U32_MAX)
      throw new WireError("MALFORMED", `${path}: invalid field number ${tag >> 3n}`, path);
    const field = spec.byId.get(id);
    if (!field) {
      if (id % 2 === 0)
        throw new WireError("UNKNOWN_EVEN_FIELD", `${path}: unknown even field ${id} in ${spec.name}`, path);
      r.skip(wireType, `${path}.${id}`);
      continue;
    }
    const at = `${path}.${field.name}`;
    if (wireType !== WIRE_TYPE_OF[field.kind])
      throw new WireError(
        "WRONG_WIRE_TYPE",
        `${at}: wire type ${wireType}, expected ${WIRE_TYPE_OF[field.kind]}`,
        at,
      );
    if (field.repeated) {
      const list = (out[field.name] ??= []) as RawValue[];
      list.push(readValue(r, field, buf, `${at}[${list.length}]`));
      continue;
    }
    if (field.name in out) throw new WireError("DUPLICATE_FIELD", `${at}: field ${id} appears twice`, at);
    out[field.name] = readValue(r, field, buf, at);
  }
  for (const oneof of spec.oneofs) {
    const present = oneof.members.filter((m) => m in out);
    if (present.length > 1)
      throw new WireError(
        "MULTIPLE_ONEOF",
        `${path}: ${oneof.name} has ${present.join(" and ")}, expected one`,
        path,
      );
    if (present.length === 0)
      throw new WireError(
        "MISSING_FIELD",
        `${path}: ${oneof.name} needs one of ${oneof.members.join(", ")}`,
        path,
      );
  }
  for (const field of spec.fields) {
    if (field.required && !(field.name in out))
      throw new WireError(
        "MISSING_FIELD",
        `${path}.${field.name}: required field missing`,
        `${path}.${field.name}`,
      );
  }
  return out;
}

function readValue(r: Reader, field: FieldSpec, buf: Buffer, at: string): RawValue {
  switch (field.kind) {
    case "uint64":
      return r.varint(at);
    case "uint32": {
      const v = r.varint(at);
      if (v > U32_MAX) throw new WireError("FIELD_RANGE", `${at}: ${v} does not fit in uint32`, at);
      return v;
    }
    case "enum": {
      const v = r.varint(at);
      if (v > U32_MAX || !field.enumValues?.has(Number(v)))
        throw new WireError("FIELD_RANGE", `${at}: ${v} is not a known value`, at);
      return v;
    }
    case "fixed64":
      return r.fixed64(at);
    case "bool": {
      const v = r.varint(at);
      if (v > 1n) throw new WireError("FIELD_RANGE", `${at}: ${v} is not a bool (0 or 1)`, at);
      return v === 1n;
    }
    case "bytes": {
      const n = r.length(at);
      const from = r.take(n, at);
      return Buffer.from(buf.subarray(from, from + n));
    }
    case "string": {
      const n = r.length(at);
      const from = r.take(n, at);
      try {
        return utf8.decode(buf.subarray(from, from + n));
      } catch {
        throw new WireError("MALFORMED", `${at}: not valid UTF-8`, at);
      }
    }
    case "message": {
      const n = r.length(at);
      const from = r.take(n, at);
      return decodeMessage(field.message as MessageSpec, buf, from, from + n, at);
    }
  }
}

function varint(v: bigint, out: number[]): void {
  while (v > 0x7fn) {
    out.push(Number(v & 0x7fn) | 0x80);
    v >>= 7n;
  }
  out.push(Number(v));
}

/** Encodes in field-number order, the canonical order, so equal messages give equal bytes. */
export function encodeMessage(spec: MessageSpec, msg: RawMessage): Buffer {
  const parts: Buffer[] = [];
  for (const field of spec.fields) {
    const given = msg[field.name];
    if (given === undefined) continue;
    const values = field.repeated ? (given as readonly RawValue[]) : [given];
    for (const value of values) parts.push(...encodeField(field, value));
  }
  return Buffer.concat(parts);
}

function encodeField(field: FieldSpec, value: RawValue): Buffer[] {
  const head: number[] = [];
  varint((BigInt(field.id) << 3n) | BigInt(WIRE_TYPE_OF[field.kind]), head);
  let body: Buffer;
  if (typeof value === "boolean") {
    body = Buffer.from([value ? 1 : 0]);
  } else if (typeof value === "bigint") {
    const max = field.kind === "uint64" || field.kind === "fixed64" ? U64_MAX : U32_MAX;
    if (value < 0n || value > max) throw new WireError("FIELD_RANGE", `${field.name}: ${value} out of range`);
    if (field.kind === "fixed64") {
      body = Buffer.alloc(8);
      body.writeBigUInt64LE(value);
    } else {
      const v: number[] = [];
      varint(value, v);
      body = Buffer.from(v);
    }
  } else {
    const bytes =
      typeof value === "string"
        ? Buffer.from(value, "utf8")
        : Buffer.isBuffer(value)
          ? value
          : encodeMessage(field.message as MessageSpec, value as RawMessage);
    varint(BigInt(bytes.length), head);
    body = bytes;
  }
  return [Buffer.from(head), body];
}
