export { buildApi, type Access, type ApiOptions } from "./app.js";
export { ApiStore, SCOPES, hashToken, type Scope, type TokenInfo } from "./api-store.js";
export * from "./backend.js";
export { ApiError } from "./errors.js";
export { MemoryBackend } from "./memory-backend.js";
