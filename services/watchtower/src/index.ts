/*~ The watchtower: follows the chain, publishes chain events for the channel service, and
 * punishes revoked commitments from encrypted revocation records (DESIGN.md 7).
 * What exists: the chain watcher (chain-watcher.ts over the pure anchor-watch.ts) and the
 * service side of watch requests. Not yet wired as a process; justice is still to be built. */
export * from "./anchor-watch.js";
export * from "./chain-watcher.js";
