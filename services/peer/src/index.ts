/*~ The peer gateway: owns TCP listen/dial and the encrypted transport (BOLT #8), frames and
 * decodes pkts (enforcing the unknown-field rule), asks the signer for the handshake ECDH and the
 * authenticate signature, and relays messages to and from the channel service over NATS.
 * What exists: `PeerGateway` (gateway.ts: listen/connect, authenticate, one connection per peer,
 * `<prefix>.<peer>.{in,out,events}` relay, pending-handshake cap) (its connection events and subjects are
 * in @ln/proto, peer-events.ts); see README.md. Not yet wired here (config, signer gRPC client for ECDH and
 * session_sig, ackFor from the channel service, process lifecycle): see the issue "The running node". */
export * from "./gateway.js";
