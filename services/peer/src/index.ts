/*~ The peer gateway: owns TCP listen/dial and the encrypted transport (BOLT #8), frames and
 * decodes pkts (enforcing the unknown-field rule), asks the signer for the handshake ECDH and the
 * authenticate signature, and relays messages to and from the channel service over NATS.
 * The library: `PeerGateway` (gateway.ts: listen/connect with typed `DialError`s, authenticate,
 * one connection per peer, `<prefix>.<peer>.{in,out,events}` relay, pending-handshake cap),
 * `serveControl` (control.ts: `<prefix>.ctl.connect` / `<prefix>.ctl.peers` in the queue group
 * "peer-gateway"), `natsAckFor` (ack.ts: the ack from the channel service; none answering closes the connection) and
 * `loadConfig` (config.ts). Subjects and JSON shapes are in @ln/proto (peer-events.ts).
 * The process is main.ts: configuration from the environment, the signer over gRPC/mTLS for ECDH
 * and session_sig, NATS, listen, control requests, graceful SIGTERM; see README.md. */
export * from "./gateway.js";
export * from "./control.js";
export * from "./ack.js";
export * from "./config.js";
