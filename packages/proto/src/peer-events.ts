/** Between the peer gateway and the channel service on NATS: per-peer subjects and connection events. */
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
