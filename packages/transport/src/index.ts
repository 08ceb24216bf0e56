export * from "./errors.js";
export * from "./cipher.js";
export * from "./handshake.js";
export * from "./connection.js";
export * from "./authenticate.js";
