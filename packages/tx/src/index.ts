export * from "./fees.js";
export * from "./sign.js";
export * from "./commitment.js";
export * from "./spends.js";
export * from "./wallet.js";
export * from "./normalized.js";
