export * from "./amounts.js";
export * from "./hashes.js";
export * from "./txid.js";
export * from "./locktime.js";
export * from "./short-channel-id.js";
