export * from "./classify.js";
export * from "./claims.js";
