/** Between the peer gateway and the channel service on NATS: per-peer subjects, connection events and control requests. */
/** Why a peer's connection ended: the transport's reasons plus the gateway's own. */
export type DisconnectReason =
  // the transport's close codes (@ln/transport CloseCode)
  | "LOCAL_CLOSE"
  | "PEER_CLOSED"
  | "HANDSHAKE_TIMEOUT"
  | "HANDSHAKE_FAILED"
  | "BAD_MAC"
  | "SLOW_PEER"
  | "SOCKET_ERROR"
  | "REPLACED" // a newer connection from the same node took over
  | "BAD_PKT" // the peer sent a pkt that failed decodePkt; we sent `error` and closed
  | "RESYNC" // the channel service asked for a fresh authenticate exchange (it restarted or took over)
  | "SENT_ERROR" // the channel service sent the peer `error`: the connection fails (draft 6.3)
  | "GATEWAY_CLOSED"; // PeerGateway.close()

const DISCONNECT_REASONS: ReadonlySet<string> = new Set<DisconnectReason>([
  "LOCAL_CLOSE",
  "PEER_CLOSED",
  "HANDSHAKE_TIMEOUT",
  "HANDSHAKE_FAILED",
  "BAD_MAC",
  "SLOW_PEER",
  "SOCKET_ERROR",
  "REPLACED",
  "BAD_PKT",
  "RESYNC",
  "SENT_ERROR",
  "GATEWAY_CLOSED",
]);

/**
 * Payload of `<prefix>.<peerNodeIdHex>.events` (JSON). `theirAck` is the peer's authenticate
 * `ack` as a decimal string: resend our outbox after it.
 */
export type PeerEvent =
  { type: "connected"; theirAck: string } | { type: "disconnected"; reason: DisconnectReason };

export class PeerEventDecodeError extends Error {
  override readonly name = "PeerEventDecodeError";
}

export const encodePeerEvent = (e: PeerEvent): Buffer => Buffer.from(JSON.stringify(e), "utf8");

export function decodePeerEvent(bytes: Uint8Array): PeerEvent {
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8"));
  } catch {
    throw new PeerEventDecodeError("peer event: not JSON");
  }
  if (typeof o !== "object" || o === null) throw new PeerEventDecodeError("peer event: not an object");
  const r = o as Record<string, unknown>;
  if (
    r["type"] === "connected" &&
    typeof r["theirAck"] === "string" &&
    /^(0|[1-9][0-9]*)$/.test(r["theirAck"])
  )
    return { type: "connected", theirAck: r["theirAck"] };
  if (r["type"] === "disconnected" && typeof r["reason"] === "string" && DISCONNECT_REASONS.has(r["reason"]))
    return { type: "disconnected", reason: r["reason"] as DisconnectReason };
  throw new PeerEventDecodeError("peer event: unknown type or bad fields");
}

/**
 * NATS header on each pkt the channel service publishes to a peer's `out` subject: its sequence
 * number (draft 1.2: the messages `ack` counts). The gateway writes each number once per
 * connection, so a retransmission after `connected` never repeats a message that already went out
 * on that connection (a channel created while the `connected` event was still on its way).
 */
export const OUT_SEQ_HEADER = "Ln-Seq";

/**
 * The NATS subjects for one peer (node id as 66 lowercase hex): pkts in and out, connection
 * events, and `ack`, a request the channel service answers with our authenticate ack (decimal).
 */
export function peerSubjects(
  prefix: string,
  peerNodeIdHex: string,
): { in: string; out: string; events: string; ack: string } {
  const base = `${prefix}.${peerNodeIdHex}`;
  return { in: `${base}.in`, out: `${base}.out`, events: `${base}.events`, ack: `${base}.ack` };
}

/*
 * Control requests from the channel service to the peer gateway (JSON, NATS request/reply):
 * `<prefix>.ctl.connect` dials a peer, `<prefix>.ctl.peers` lists live connections. The gateway
 * serves both in the queue group `PEER_CONTROL_QUEUE`, so each request reaches one replica.
 * ("ctl" is never a node id, so these never meet the per-peer subjects.)
 */

/** The NATS queue group the gateway replicas serve the control subjects in. */
export const PEER_CONTROL_QUEUE = "peer-gateway";

/** The control subjects under a peer prefix (e.g. "ln1.peer" → "ln1.peer.ctl.connect"). */
export function peerControlSubjects(prefix: string): { connect: string; peers: string; resync: string } {
  return { connect: `${prefix}.ctl.connect`, peers: `${prefix}.ctl.peers`, resync: `${prefix}.ctl.resync` };
}

/**
 * `<prefix>.ctl.resync` (published to every replica, no reply): drop the connection with this
 * peer, so that the next one runs authenticate again and each side retransmits what the other
 * has not processed (draft 1.2). The channel service asks it when it starts running a channel
 * whose messages it may have missed (a restart, a lease takeover).
 */
export interface PeerResyncRequest {
  nodeId: string;
}

export const encodePeerResyncRequest = (r: PeerResyncRequest): Buffer => json({ nodeId: r.nodeId });

export function decodePeerResyncRequest(bytes: Uint8Array): PeerResyncRequest {
  const r = parseObject(bytes, "resync request");
  const nodeId = r["nodeId"];
  if (typeof nodeId !== "string" || !NODE_ID_HEX.test(nodeId))
    throw new PeerControlDecodeError(
      "resync request: nodeId must be the peer's compressed public key as 66 lowercase hex (02... or 03...)",
    );
  return { nodeId };
}

/** Why a connect request failed (`{ok:false, code, message}`); `message` says what to do. */
export type PeerConnectErrorCode =
  | "BAD_REQUEST" // the request did not decode: message names the field
  | "UNREACHABLE" // no TCP connection to host:port (refused, no route, DNS, timed out)
  | "HANDSHAKE_FAILED" // BOLT #8 failed: usually nodeId is not the node listening at host:port
  | "HANDSHAKE_TIMEOUT" // the acts or authenticate did not finish in time
  | "AUTHENTICATE_FAILED" // the peer's authenticate was invalid, or it sent `error`
  | "ACK_UNAVAILABLE" // the channel service's answer to the ack request was an error
  | "GATEWAY_CLOSED" // the gateway is shutting down
  | "INTERNAL";

const CONNECT_ERROR_CODES: ReadonlySet<string> = new Set<PeerConnectErrorCode>([
  "BAD_REQUEST",
  "UNREACHABLE",
  "HANDSHAKE_FAILED",
  "HANDSHAKE_TIMEOUT",
  "AUTHENTICATE_FAILED",
  "ACK_UNAVAILABLE",
  "GATEWAY_CLOSED",
  "INTERNAL",
]);

/** `<prefix>.ctl.connect` request: dial `host:port`, expecting the node `nodeId` (66 hex). */
export interface PeerConnectRequest {
  host: string;
  port: number;
  nodeId: string;
}

export type PeerConnectReply =
  { ok: true; nodeId: string } | { ok: false; code: PeerConnectErrorCode; message: string };

/** One live, authenticated connection of the answering gateway replica. */
export interface PeerConnectionInfo {
  nodeId: string;
  /** What we dialled (outbound), or the remote socket address (inbound). */
  host: string;
  port: number;
  direction: "inbound" | "outbound";
}

/** `<prefix>.ctl.peers` reply (the request payload is ignored). */
export interface PeersReply {
  peers: PeerConnectionInfo[];
}

export class PeerControlDecodeError extends Error {
  override readonly name = "PeerControlDecodeError";
}

const NODE_ID_HEX = /^0[23][0-9a-f]{64}$/;
// A DNS name or an IP literal: printable, no spaces, no control characters.
const HOST = /^[\x21-\x7e]{1,255}$/;
const MAX_MESSAGE = 1000;

function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  let o: unknown;
  try {
    o = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString("utf8"));
  } catch {
    throw new PeerControlDecodeError(`${what}: not JSON`);
  }
  if (typeof o !== "object" || o === null || Array.isArray(o))
    throw new PeerControlDecodeError(`${what}: not a JSON object`);
  return o as Record<string, unknown>;
}

const isPort = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= 65535;

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v), "utf8");

export const encodePeerConnectRequest = (r: PeerConnectRequest): Buffer =>
  json({ host: r.host, port: r.port, nodeId: r.nodeId });

export function decodePeerConnectRequest(bytes: Uint8Array): PeerConnectRequest {
  const r = parseObject(bytes, "connect request");
  const host = r["host"];
  const port = r["port"];
  const nodeId = r["nodeId"];
  if (typeof host !== "string" || !HOST.test(host))
    throw new PeerControlDecodeError(
      "connect request: host must be a hostname or IP address (1-255 printable characters, no spaces)",
    );
  if (!isPort(port, 1))
    throw new PeerControlDecodeError("connect request: port must be an integer from 1 to 65535");
  if (typeof nodeId !== "string" || !NODE_ID_HEX.test(nodeId))
    throw new PeerControlDecodeError(
      "connect request: nodeId must be the peer's compressed public key as 66 lowercase hex (02... or 03...)",
    );
  return { host, port, nodeId };
}

export const encodePeerConnectReply = (r: PeerConnectReply): Buffer =>
  json(r.ok ? { ok: true, nodeId: r.nodeId } : { ok: false, code: r.code, message: r.message });

export function decodePeerConnectReply(bytes: Uint8Array): PeerConnectReply {
  const r = parseObject(bytes, "connect reply");
  if (r["ok"] === true && typeof r["nodeId"] === "string" && NODE_ID_HEX.test(r["nodeId"]))
    return { ok: true, nodeId: r["nodeId"] };
  if (
    r["ok"] === false &&
    typeof r["code"] === "string" &&
    CONNECT_ERROR_CODES.has(r["code"]) &&
    typeof r["message"] === "string" &&
    r["message"].length <= MAX_MESSAGE
  )
    return { ok: false, code: r["code"] as PeerConnectErrorCode, message: r["message"] };
  throw new PeerControlDecodeError("connect reply: neither {ok:true,nodeId} nor {ok:false,code,message}");
}

export const encodePeersReply = (r: PeersReply): Buffer =>
  json({
    peers: r.peers.map((p) => ({ nodeId: p.nodeId, host: p.host, port: p.port, direction: p.direction })),
  });

export function decodePeersReply(bytes: Uint8Array): PeersReply {
  const r = parseObject(bytes, "peers reply");
  const list = r["peers"];
  if (!Array.isArray(list)) throw new PeerControlDecodeError("peers reply: peers is not an array");
  const peers = list.map((p: unknown, i): PeerConnectionInfo => {
    if (typeof p !== "object" || p === null) throw new PeerControlDecodeError(`peers reply: peers[${i}]`);
    const q = p as Record<string, unknown>;
    const { nodeId, host, port, direction } = q;
    if (
      typeof nodeId !== "string" ||
      !NODE_ID_HEX.test(nodeId) ||
      typeof host !== "string" ||
      host.length > 255 ||
      !isPort(port, 0) ||
      (direction !== "inbound" && direction !== "outbound")
    )
      throw new PeerControlDecodeError(`peers reply: peers[${i}] is not {nodeId, host, port, direction}`);
    return { nodeId, host, port, direction };
  });
  return { peers };
}
