/*~ The channel service: runs the pure channel state machine per channel, persists every
 * transition with its outbound messages in one Postgres transaction (persist, then send), keeps the
 * on-chain wallet's books, and serves the HTTP control API. The process is main.ts, built by
 * service.ts (buildChannelService, which the cross tests call too); this index exports its parts
 * for tests and tools. One folder per job: channels/ (the store, the runner,
 * the node that composes the rest, leases, effects), peers/ (routing, the one send path, the
 * gateway's control requests), payments/ (the ledger, the payee), onchain/ (wallet, resolution,
 * chain and tower links), api/ (the control API), events/ (the status event log). */
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
export * from "./channels/ports.js";
export { NodeError } from "./channels/errors.js";
export * from "./api/node-backend.js";
export * from "./onchain/tower-link.js";
export * from "./onchain/resolution.js";
export * from "./onchain/wallet.js";
export {
  ApiStore,
  buildApi,
  type ApiOptions,
  type ChannelDetail,
  type NodeBackend,
  type Payment,
} from "./api/index.js";
export * from "./peers/inbound-openings.js";
export * from "./service.js";
export * from "./events/event-log.js";
export * from "./events/event-json.js";
export * from "./events/feed.js";
export * from "./events/relay.js";
export * from "./gossip/gossip.js";
export * from "./gossip/graph-store.js";
export { registerGossipMetrics } from "./api/metrics.js";
