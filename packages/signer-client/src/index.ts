export * from "./messages.js";
export * from "./proto.js";
export * from "./client.js";
