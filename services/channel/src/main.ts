/*~ The channel service: runs the pure channel state machine per channel, persists every
 * transition with its outbound messages in one Postgres transaction (persist, then send), keeps the
 * on-chain wallet's books, and serves the HTTP control API. Not yet wired: see "The running node". */
export {};
