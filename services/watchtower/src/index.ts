/*~ The watchtower: follows the chain, publishes chain events for the channel service, and
 * punishes revoked commitments from encrypted revocation records (DESIGN.md 7).
 * What exists: the chain watcher (chain-watcher.ts over the pure anchor-watch.ts), publishing
 * block, anchor and wallet-output events on JetStream (streams.ts: the stream and its subjects)
 * and serving the channel service's requests (watch an anchor, watch wallet scripts, broadcast a
 * transaction, the tip). main.ts runs it as a process (configuration in config.ts). Justice for
 * revoked commitments is still to be built. */
export * from "./anchor-watch.js";
export * from "./chain-watcher.js";
export * from "./config.js";
export * from "./streams.js";
