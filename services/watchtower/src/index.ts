/*~ The watchtower: follows the chain, publishes chain events for the channel service, and
 * punishes revoked commitments from encrypted revocation records (DESIGN.md 7).
 * What exists: the chain watcher (chain-watcher.ts over the pure anchor-watch.ts), publishing
 * block, anchor and wallet-output events on JetStream (streams.ts: the stream and its subjects)
 * and serving the channel service's requests (watch an anchor, watch wallet scripts, broadcast a
 * transaction, the tip). The tower proper (tower.ts wiring records/intake.ts, breaches/detection.ts
 * and justice/worker.ts over the pure justice-core.ts, under claims of justice/claims.ts) stores
 * sealed revocation records, matches breaches in blocks and the mempool, and has the signer sign
 * justice, which it broadcasts, fee-bumps, re-broadcasts after reorgs and prunes once buried. main.ts runs
 * both as a process (configuration in config.ts). */
export * from "./anchor-watch.js";
export * from "./chain-watcher.js";
export * from "./config.js";
export * from "./streams.js";
export * from "./justice-core.js";
export * from "./migrations.js";
export * from "./tower.js";
