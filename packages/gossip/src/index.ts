export type { ChannelAnnouncement, ChannelUpdate, NodeAnnouncement } from "@ln/proto";
export * from "./errors.js";
export * from "./layout.js";
export * from "./validate.js";
export * from "./verify.js";
export * from "./codec.js";
export * from "./anchor.js";
export * from "./rate-limit.js";
