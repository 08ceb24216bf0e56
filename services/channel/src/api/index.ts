export { buildApi, type Access, type ApiOptions } from "./app.js";
export {
  ApiStore,
  BOOTSTRAP_LABEL,
  SCOPES,
  hashToken,
  type BootstrapResult,
  type Scope,
  type TokenInfo,
  type TokenRecord,
} from "./api-store.js";
export * from "./backend.js";
export { ApiError } from "./errors.js";
