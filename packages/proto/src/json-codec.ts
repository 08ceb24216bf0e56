/*~ What the codecs of the JSON-compiled schemas (events.proto, tower.proto) share: loading a
 * generated schema, decoding to plain data, writing a uint64 without precision loss. */
import { readFileSync } from "node:fs";
import protobuf from "protobufjs";

/** A schema compiled by `pnpm gen` into gen/<name>.json. */
export const loadSchema = (name: string): protobuf.Root =>
  protobuf.Root.fromJSON(
    JSON.parse(readFileSync(new URL(`../gen/${name}.json`, import.meta.url), "utf8")) as protobuf.INamespace,
  );

/** Decodes to plain data (integers above 32 bits as decimal strings); `fail` names the error. */
export function decodeMessage(
  type: protobuf.Type,
  bytes: Uint8Array,
  fail: (message: string) => Error,
): Record<string, unknown> {
  try {
    return type.toObject(type.decode(bytes), { defaults: true, oneofs: true, longs: String }) as Record<
      string,
      unknown
    >;
  } catch (e) {
    throw fail(`not a ${type.name}: ${(e as Error).message}`);
  }
}

const U64_MAX = (1n << 64n) - 1n;

/** A uint64 for protobufjs's writer, without precision loss. */
export function u64(v: bigint): { low: number; high: number; unsigned: true } {
  if (v < 0n || v > U64_MAX) throw new RangeError(`uint64 out of range: ${v}`);
  return { low: Number(v & 0xffffffffn), high: Number(v >> 32n), unsigned: true };
}
