/*~ The peer gateway: owns TCP listen/dial and the encrypted transport (BOLT #8), frames and
 * decodes pkts (enforcing the unknown-field rule), asks the signer for the handshake ECDH and the
 * authenticate signature, and relays messages to and from the channel service over NATS.
 * Not yet wired: see the issue "The running node". */
export {};
