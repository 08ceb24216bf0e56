import type { ChannelState } from "./types.js";

/**
 * Channel state as JSON for Postgres: bigints become {"$bigint": "..."}; byte arrays become
 * {"$bytes": "<hex>"} and come back as Buffers (the state's own bytes are hex strings, but
 * `deferred` holds peer packets received while a signer reply was awaited, and their fields are
 * Buffers). Lossless: `deserializeState(serializeState(s))` equals `s`.
 */
export function serializeState(s: ChannelState): string {
  return JSON.stringify(s, function (this: Record<string, unknown>, k: string, v: unknown) {
    // JSON.stringify has already applied Buffer's toJSON to `v`: look at the original value.
    const original = this[k];
    if (original instanceof Uint8Array) return { $bytes: Buffer.from(original).toString("hex") };
    return typeof v === "bigint" ? { $bigint: v.toString() } : v;
  });
}

export function deserializeState(json: string): ChannelState {
  return JSON.parse(json, (_k, v: unknown) => {
    if (v === null || typeof v !== "object") return v;
    if ("$bigint" in v && typeof (v as { $bigint: unknown }).$bigint === "string")
      return BigInt((v as { $bigint: string }).$bigint);
    if ("$bytes" in v && typeof (v as { $bytes: unknown }).$bytes === "string")
      return Buffer.from((v as { $bytes: string }).$bytes, "hex");
    return v;
  }) as ChannelState;
}
