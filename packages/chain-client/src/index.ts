export * from "./errors.js";
export * from "./rpc.js";
export * from "./follower.js";
