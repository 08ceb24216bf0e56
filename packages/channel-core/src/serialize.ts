import type { ChannelState } from "./types.js";

/**
 * Channel state as JSON for Postgres: bigints become {"$bigint": "..."}; everything else in the
 * state is already JSON (bytes are hex). Lossless: `deserializeState(serializeState(s))` equals `s`.
 */
export function serializeState(s: ChannelState): string {
  return JSON.stringify(s, (_k, v: unknown) => (typeof v === "bigint" ? { $bigint: v.toString() } : v));
}

export function deserializeState(json: string): ChannelState {
  return JSON.parse(json, (_k, v: unknown) =>
    v !== null &&
    typeof v === "object" &&
    "$bigint" in v &&
    typeof (v as { $bigint: unknown }).$bigint === "string"
      ? BigInt((v as { $bigint: string }).$bigint)
      : v,
  ) as ChannelState;
}
