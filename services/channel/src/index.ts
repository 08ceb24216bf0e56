/*~ The channel service: runs the pure channel state machine per channel, persists every
 * transition with its outbound messages in one Postgres transaction (persist, then send), keeps the
 * on-chain wallet's books, and serves the HTTP control API. The process is main.ts; this index
 * exports its parts for tests and tools: the store and runner, the node (node.ts: peers, chain
 * events, effects, the payee, leases), the wallet, the NATS links and the control API. */
export * from "./channels/store.js";
export * from "./channels/runner.js";
export * from "./migrations.js";
export * from "./channels/signer-adapter.js";
export * from "./onchain/chain-link.js";
export * from "./onchain/chain-requests.js";
export * from "./peers/peer-requests.js";
export * from "./onchain/broadcast.js";
export * from "./payments/ledger.js";
export * from "./channels/node.js";
export * from "./api/node-backend.js";
export * from "./onchain/tower-link.js";
export * from "./onchain/resolution.js";
export * from "./onchain/wallet.js";
export {
  ApiStore,
  buildApi,
  MemoryBackend,
  type ApiOptions,
  type ChannelDetail,
  type NodeBackend,
  type Payment,
} from "./api/index.js";
export * from "./peers/inbound-openings.js";
