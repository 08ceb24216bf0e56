/*~ The channel service's control API contract, shared by the service (services/channel/src/api)
 * and its clients (lnctl): the request and response schemas (TypeBox; clients use their
 * `Static<>` types) and the error codes with the status each is answered with. */
export * from "./schemas.js";
export * from "./errors.js";
export * from "./graph.js";
export type { Static } from "typebox";
