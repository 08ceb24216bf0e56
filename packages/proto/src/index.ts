export * from "./pkt.js";
export { WireError, type WireErrorCode } from "./wire-error.js";
export { lightningRoot } from "./schema.js";
export * from "./events.js";
export * from "./peer-events.js";
export * from "./signer-proto.js";
export * from "./tower.js";
