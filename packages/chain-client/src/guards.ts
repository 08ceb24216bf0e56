import { RpcTransportError } from "./errors.js";

export type JsonRecord = Readonly<Record<string, unknown>>;

export const isRecord = (v: unknown): v is JsonRecord =>
  typeof v === "object" && v !== null && !Array.isArray(v);

const HEX = /^(?:[0-9a-fA-F]{2})*$/;
const HASH = /^[0-9a-fA-F]{64}$/;

/** Reads fields of one RPC result and reports a precise BAD_RESPONSE when the shape is wrong. */
export class Shape {
  constructor(
    private readonly method: string,
    private readonly what: string,
  ) {}

  fail(detail: string): never {
    throw new RpcTransportError(
      "BAD_RESPONSE",
      `${this.method} answered with an unexpected ${this.what}: ${detail}; is the URL pointing at a bitcoind-compatible JSON-RPC server?`,
      this.method,
    );
  }

  record(v: unknown): JsonRecord {
    return isRecord(v) ? v : this.fail(`expected an object, got ${typeName(v)}`);
  }

  array(v: unknown): readonly unknown[] {
    return Array.isArray(v) ? v : this.fail(`expected an array, got ${typeName(v)}`);
  }

  string(o: JsonRecord, key: string): string {
    const v = o[key];
    return typeof v === "string" ? v : this.fail(`field ${key} should be a string, got ${typeName(v)}`);
  }

  optString(o: JsonRecord, key: string): string | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    return typeof v === "string" ? v : this.fail(`field ${key} should be a string, got ${typeName(v)}`);
  }

  number(o: JsonRecord, key: string): number {
    const v = o[key];
    return typeof v === "number" && Number.isFinite(v)
      ? v
      : this.fail(`field ${key} should be a number, got ${typeName(v)}`);
  }

  optNumber(o: JsonRecord, key: string): number | undefined {
    const v = o[key];
    if (v === undefined || v === null) return undefined;
    return typeof v === "number" && Number.isFinite(v)
      ? v
      : this.fail(`field ${key} should be a number, got ${typeName(v)}`);
  }

  hash(v: unknown, label = "hash"): string {
    return typeof v === "string" && HASH.test(v)
      ? v.toLowerCase()
      : this.fail(`${label} should be 64 hex characters, got ${typeName(v)}`);
  }

  hex(v: unknown, label = "hex"): string {
    return typeof v === "string" && HEX.test(v)
      ? v.toLowerCase()
      : this.fail(`${label} should be a hex string, got ${typeName(v)}`);
  }

  stringArray(v: unknown, label: string): string[] {
    const arr = this.array(v);
    return arr.map((x) => (typeof x === "string" ? x : this.fail(`${label} should hold strings`)));
  }
}

export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "string") return v.length > 40 ? `string "${v.slice(0, 40)}..."` : `string "${v}"`;
  return typeof v;
}
