export * from "./record.js";
export * from "./justice.js";
