/*~ Between the peer gateway and the channel service on NATS: per-peer subjects, connection events,
 * the ack question and control requests. The payloads are peer.proto's messages; every decoder
 * throws only its typed error (a `code` and the `field`) on bytes it cannot take. */
import type protobuf from "protobufjs";
import { loadSchema, u64 } from "./json-codec.js";
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
 * Payload of `<prefix>.<peerNodeIdHex>.events` (peer.proto `peer_event`). `theirAck` is the peer's
 * authenticate `ack` as a decimal string: resend our outbox after it.
 */
export type PeerEvent =
  { type: "connected"; theirAck: string } | { type: "disconnected"; reason: DisconnectReason };

/** Why a peer message did not decode: not protobuf, no (known) kind, or a field out of bounds. */
export type PeerDecodeErrorCode = "MALFORMED" | "UNKNOWN_KIND" | "MISSING_FIELD" | "BAD_FIELD";

/** A peer.proto payload that does not decode; `field` names the offending one. */
export class PeerMessageDecodeError extends Error {
  override readonly name: string = "PeerMessageDecodeError";
  constructor(
    readonly code: PeerDecodeErrorCode,
    readonly field: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** A `peer_event` or `ack_reply` that does not decode. */
export class PeerEventDecodeError extends PeerMessageDecodeError {
  override readonly name = "PeerEventDecodeError";
}

const root = loadSchema("peer");
const PeerEventType = root.lookupType("peer.peer_event");
const AckReplyType = root.lookupType("peer.ack_reply");
const ConnectRequestType = root.lookupType("peer.connect_request");
const ConnectReplyType = root.lookupType("peer.connect_reply");
const PeersReplyType = root.lookupType("peer.peers_reply");
const ResyncRequestType = root.lookupType("peer.resync_request");

type Fail = (code: PeerDecodeErrorCode, field: string | undefined, message: string) => Error;
const eventFail: Fail = (code, field, message) => new PeerEventDecodeError(code, field, message);
const controlFail: Fail = (code, field, message) => new PeerControlDecodeError(code, field, message);

/** Plain data: absent fields absent (presence checks), uint64 as decimal, enums by name. */
function decodeRaw(
  type: protobuf.Type,
  bytes: Uint8Array,
  fail: Fail,
  what: string,
): Record<string, unknown> {
  try {
    return type.toObject(type.decode(bytes), { longs: String, enums: String, oneofs: true }) as Record<
      string,
      unknown
    >;
  } catch (e) {
    throw fail("MALFORMED", undefined, `${what}: not a ${type.name}: ${(e as Error).message}`);
  }
}

const sub = (o: Record<string, unknown>, k: string): Record<string, unknown> => {
  const v = o[k];
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
};

const DECIMAL_U64 = /^(0|[1-9][0-9]{0,19})$/;
const U64_MAX = (1n << 64n) - 1n;
const decimalU64 = (v: string): bigint => {
  if (!DECIMAL_U64.test(v) || BigInt(v) > U64_MAX) throw new RangeError(`not a uint64: ${v}`);
  return BigInt(v);
};

export function encodePeerEvent(e: PeerEvent): Buffer {
  const msg =
    e.type === "connected"
      ? { connected: { their_ack: u64(decimalU64(e.theirAck)) } }
      : { disconnected: { reason: e.reason } };
  return Buffer.from(PeerEventType.encode(PeerEventType.fromObject(msg)).finish());
}

export function decodePeerEvent(bytes: Uint8Array): PeerEvent {
  const o = decodeRaw(PeerEventType, bytes, eventFail, "peer event");
  if (o["event"] === "connected") {
    const ack = sub(o, "connected")["their_ack"];
    if (typeof ack !== "string")
      throw new PeerEventDecodeError(
        "MISSING_FIELD",
        "connected.their_ack",
        "peer event: connected without their_ack",
      );
    return { type: "connected", theirAck: ack };
  }
  if (o["event"] === "disconnected") {
    const reason = sub(o, "disconnected")["reason"];
    if (typeof reason !== "string" || !DISCONNECT_REASONS.has(reason))
      throw new PeerEventDecodeError(
        "BAD_FIELD",
        "disconnected.reason",
        `peer event: unknown disconnect reason ${String(reason ?? "(none)")}`,
      );
    return { type: "disconnected", reason: reason as DisconnectReason };
  }
  throw new PeerEventDecodeError("UNKNOWN_KIND", "event", "peer event: neither connected nor disconnected");
}

/** The channel service's answer on `<prefix>.<peer>.ack`: our authenticate ack for the peer. */
export const encodeAckReply = (ack: bigint): Buffer =>
  Buffer.from(AckReplyType.encode(AckReplyType.fromObject({ ack: u64(ack) })).finish());

/** The ack; an answer without one is an error, never 0 (a guessed 0 could fail the channel). */
export function decodeAckReply(bytes: Uint8Array): bigint {
  const ack = decodeRaw(AckReplyType, bytes, eventFail, "ack reply")["ack"];
  if (typeof ack !== "string")
    throw new PeerEventDecodeError("MISSING_FIELD", "ack", "ack reply without ack");
  return BigInt(ack);
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
 * Control requests from the channel service to the peer gateway (peer.proto, NATS request/reply):
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

/** A control request or reply (peer.proto) that does not decode. */
export class PeerControlDecodeError extends PeerMessageDecodeError {
  override readonly name = "PeerControlDecodeError";
}

const NODE_ID_HEX = /^0[23][0-9a-f]{64}$/;
// A DNS name or an IP literal: printable, no spaces, no control characters.
const HOST = /^[\x21-\x7e]{1,255}$/;
const MAX_MESSAGE = 1000;
const NODE_ID_PROBLEM = "must be the peer's compressed public key (33 bytes, 02... or 03...)";

const isPort = (v: unknown, min: number): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= min && v <= 65535;

/** A node id as it travels (33 bytes), from its 66 lowercase hex. */
function nodeIdBytes(hex: string): Buffer {
  if (!NODE_ID_HEX.test(hex)) throw new RangeError(`nodeId ${NODE_ID_PROBLEM}, as 66 lowercase hex`);
  return Buffer.from(hex, "hex");
}

/** The node id's hex, or undefined if the bytes are not a compressed key's shape. */
function nodeIdHex(v: unknown): string | undefined {
  if (!(v instanceof Uint8Array) || v.length !== 33) return undefined;
  const hex = Buffer.from(v.buffer, v.byteOffset, v.length).toString("hex");
  return NODE_ID_HEX.test(hex) ? hex : undefined;
}

const encode = (type: protobuf.Type, o: Record<string, unknown>): Buffer =>
  Buffer.from(type.encode(type.fromObject(o)).finish());

export const encodePeerResyncRequest = (r: PeerResyncRequest): Buffer =>
  encode(ResyncRequestType, { node_id: nodeIdBytes(r.nodeId) });

export function decodePeerResyncRequest(bytes: Uint8Array): PeerResyncRequest {
  const nodeId = nodeIdHex(decodeRaw(ResyncRequestType, bytes, controlFail, "resync request")["node_id"]);
  if (nodeId === undefined)
    throw new PeerControlDecodeError("BAD_FIELD", "node_id", `resync request: nodeId ${NODE_ID_PROBLEM}`);
  return { nodeId };
}

export const encodePeerConnectRequest = (r: PeerConnectRequest): Buffer =>
  encode(ConnectRequestType, { host: r.host, port: r.port, node_id: nodeIdBytes(r.nodeId) });

export function decodePeerConnectRequest(bytes: Uint8Array): PeerConnectRequest {
  const r = decodeRaw(ConnectRequestType, bytes, controlFail, "connect request");
  const host = r["host"] ?? "";
  const port = r["port"] ?? 0;
  if (typeof host !== "string" || !HOST.test(host))
    throw new PeerControlDecodeError(
      "BAD_FIELD",
      "host",
      "connect request: host must be a hostname or IP address (1-255 printable characters, no spaces)",
    );
  if (!isPort(port, 1))
    throw new PeerControlDecodeError(
      "BAD_FIELD",
      "port",
      "connect request: port must be an integer from 1 to 65535",
    );
  const nodeId = nodeIdHex(r["node_id"]);
  if (nodeId === undefined)
    throw new PeerControlDecodeError("BAD_FIELD", "node_id", `connect request: nodeId ${NODE_ID_PROBLEM}`);
  return { host, port, nodeId };
}

export const encodePeerConnectReply = (r: PeerConnectReply): Buffer =>
  encode(
    ConnectReplyType,
    r.ok ? { ok: { node_id: nodeIdBytes(r.nodeId) } } : { error: { code: r.code, message: r.message } },
  );

export function decodePeerConnectReply(bytes: Uint8Array): PeerConnectReply {
  const r = decodeRaw(ConnectReplyType, bytes, controlFail, "connect reply");
  if (r["result"] === "ok") {
    const nodeId = nodeIdHex(sub(r, "ok")["node_id"]);
    if (nodeId === undefined)
      throw new PeerControlDecodeError("BAD_FIELD", "ok.node_id", `connect reply: nodeId ${NODE_ID_PROBLEM}`);
    return { ok: true, nodeId };
  }
  if (r["result"] === "error") {
    const e = sub(r, "error");
    const code = e["code"];
    const message = e["message"] ?? "";
    if (typeof code !== "string" || !CONNECT_ERROR_CODES.has(code))
      throw new PeerControlDecodeError(
        "BAD_FIELD",
        "error.code",
        `connect reply: unknown code ${String(code ?? "(none)")}`,
      );
    if (typeof message !== "string" || message.length > MAX_MESSAGE)
      throw new PeerControlDecodeError(
        "BAD_FIELD",
        "error.message",
        `connect reply: message over ${MAX_MESSAGE} characters`,
      );
    return { ok: false, code: code as PeerConnectErrorCode, message };
  }
  throw new PeerControlDecodeError("UNKNOWN_KIND", "result", "connect reply: neither ok nor error");
}

export const encodePeersReply = (r: PeersReply): Buffer =>
  encode(PeersReplyType, {
    peers: r.peers.map((p) => ({
      node_id: nodeIdBytes(p.nodeId),
      host: p.host,
      port: p.port,
      direction: p.direction === "inbound" ? "INBOUND" : "OUTBOUND",
    })),
  });

export function decodePeersReply(bytes: Uint8Array): PeersReply {
  const list = decodeRaw(PeersReplyType, bytes, controlFail, "peers reply")["peers"] ?? [];
  if (!Array.isArray(list))
    throw new PeerControlDecodeError("MALFORMED", "peers", "peers reply: peers is not a list");
  const peers = list.map((p: Record<string, unknown>, i): PeerConnectionInfo => {
    const nodeId = nodeIdHex(p["node_id"]);
    const host = p["host"] ?? "";
    const port = p["port"] ?? 0;
    const direction = p["direction"];
    if (
      nodeId === undefined ||
      typeof host !== "string" ||
      host.length > 255 ||
      !isPort(port, 0) ||
      (direction !== "INBOUND" && direction !== "OUTBOUND")
    )
      throw new PeerControlDecodeError(
        "BAD_FIELD",
        `peers[${i}]`,
        `peers reply: peers[${i}] is not {nodeId, host, port, direction}`,
      );
    return { nodeId, host, port, direction: direction === "INBOUND" ? "inbound" : "outbound" };
  });
  return { peers };
}
