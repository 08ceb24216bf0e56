export * from "./shachain.js";
