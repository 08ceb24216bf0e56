export * from "./scripts.js";
export * from "./timelocks.js";
