/*~ The channel service: runs the pure channel state machine per channel, persists every
 * transition with its outbound messages in one Postgres transaction (persist, then send), keeps the
 * on-chain wallet's books, and serves the HTTP control API.
 * What exists: ChannelStore and ChannelRunner (store.ts, runner.ts), the NATS link to the peer
 * gateway (peer-link.ts) and the control API over a NodeBackend (api/). Not yet wired here as a
 * process (config, signer gRPC client, the real NodeBackend, the wallet): see "The running node". */
export * from "./store.js";
export * from "./runner.js";
export * from "./peer-link.js";
export * from "./migrations.js";
export * from "./signer-adapter.js";
export * from "./chain-link.js";
export * from "./broadcast.js";
