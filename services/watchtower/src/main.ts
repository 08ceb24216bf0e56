/*~ The watchtower: follows the chain, publishes chain events for the channel service, and
 * punishes revoked commitments from encrypted revocation records (DESIGN.md 7). Not yet wired. */
export {};
