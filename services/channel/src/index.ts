/*~ The channel service: runs the pure channel state machine per channel, persists every
 * transition with its outbound messages in one Postgres transaction (persist, then send), keeps the
 * on-chain wallet's books, and serves the HTTP control API. The process is main.ts; this index
 * exports its parts for tests and tools: the store and runner, the node (node.ts: peers, chain
 * events, effects, the payee, leases), the wallet, the NATS links and the control API. */
export * from "./store.js";
export * from "./runner.js";
export * from "./migrations.js";
export * from "./signer-adapter.js";
export * from "./chain-link.js";
export * from "./chain-requests.js";
export * from "./peer-requests.js";
export * from "./broadcast.js";
export * from "./ledger.js";
export * from "./node.js";
export * from "./node-backend.js";
export * from "./tower-link.js";
export * from "./resolution.js";
export * from "./wallet.js";
export {
  ApiStore,
  buildApi,
  MemoryBackend,
  type ApiOptions,
  type ChannelDetail,
  type NodeBackend,
  type Payment,
} from "./api/index.js";
export * from "./inbound-openings.js";
export * from "./events/event-log.js";
export * from "./events/event-json.js";
export * from "./events/feed.js";
export * from "./events/relay.js";
