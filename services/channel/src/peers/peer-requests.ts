/** The channel service's side of the peer gateway's control requests (services/peer, control.ts). */
import {
  decodePeerConnectReply,
  decodePeersReply,
  encodePeerConnectRequest,
  encodePeerResyncRequest,
  peerControlSubjects,
  PeerControlDecodeError,
  type PeerConnectErrorCode,
  type PeerConnectRequest,
  type PeerConnectionInfo,
} from "@ln/proto";
import { ErrorCode, NatsError, type NatsConnection } from "nats";

/**
 * A control request failed. `UNAVAILABLE`: no gateway serves `<peerPrefix>.ctl.*` (none is
 * running for that prefix); `TIMEOUT`: no answer in time; `BAD_REPLY`: the answer did not decode;
 * otherwise the gateway's own code (`UNREACHABLE`, `HANDSHAKE_FAILED`, ...) and message.
 */
export class PeerRequestError extends Error {
  override readonly name = "PeerRequestError";
  constructor(
    readonly code: "UNAVAILABLE" | "TIMEOUT" | "BAD_REPLY" | PeerConnectErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const DEFAULT_CONNECT_TIMEOUT_MS = 30_000;
const DEFAULT_LIST_TIMEOUT_MS = 5_000;

async function request(
  nc: NatsConnection,
  peerPrefix: string,
  subject: string,
  data: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array> {
  try {
    return (await nc.request(subject, data, { timeout: timeoutMs })).data;
  } catch (e) {
    if (e instanceof NatsError && e.code === ErrorCode.NoResponders)
      throw new PeerRequestError(
        "UNAVAILABLE",
        `no peer gateway answers on ${subject}: start the peer gateway for ${peerPrefix} (LN_PREFIX=${peerPrefix.replace(/\.peer$/, "")})`,
        { cause: e },
      );
    if (e instanceof NatsError && e.code === ErrorCode.Timeout)
      throw new PeerRequestError(
        "TIMEOUT",
        `the peer gateway for ${peerPrefix} did not answer on ${subject} within ${timeoutMs} ms`,
        { cause: e },
      );
    throw e;
  }
}

/**
 * Asks a peer gateway (one replica of those serving `peerPrefix`) to connect to `nodeId` at
 * `host:port`; resolves with the peer's node id once the connection is authenticated (its
 * `connected` event is published on `<peerPrefix>.<nodeId>.events`). `timeoutMs` (default 30 s)
 * should exceed twice the gateway's handshake timeout.
 */
export async function connectPeer(
  nc: NatsConnection,
  peerPrefix: string,
  req: PeerConnectRequest,
  timeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
): Promise<{ nodeId: string }> {
  const data = await request(
    nc,
    peerPrefix,
    peerControlSubjects(peerPrefix).connect,
    encodePeerConnectRequest(req),
    timeoutMs,
  );
  let reply;
  try {
    reply = decodePeerConnectReply(data);
  } catch (e) {
    if (e instanceof PeerControlDecodeError)
      throw new PeerRequestError("BAD_REPLY", `the peer gateway for ${peerPrefix}: ${e.message}`, {
        cause: e,
      });
    throw e;
  }
  if (!reply.ok) throw new PeerRequestError(reply.code, reply.message);
  return { nodeId: reply.nodeId };
}

/**
 * The live connections of one gateway replica serving `peerPrefix` (with one replica: all of
 * them).
 */
export async function listPeers(
  nc: NatsConnection,
  peerPrefix: string,
  timeoutMs = DEFAULT_LIST_TIMEOUT_MS,
): Promise<PeerConnectionInfo[]> {
  const data = await request(
    nc,
    peerPrefix,
    peerControlSubjects(peerPrefix).peers,
    new Uint8Array(),
    timeoutMs,
  );
  try {
    return decodePeersReply(data).peers;
  } catch (e) {
    if (e instanceof PeerControlDecodeError)
      throw new PeerRequestError("BAD_REPLY", `the peer gateway for ${peerPrefix}: ${e.message}`, {
        cause: e,
      });
    throw e;
  }
}

/**
 * Asks every gateway replica serving `peerPrefix` to drop its connection with `nodeId`, so the
 * next connection runs authenticate again and both sides retransmit what the other missed.
 * Fire and forget: with no connection there is nothing to drop.
 */
export function resyncPeer(nc: NatsConnection, peerPrefix: string, nodeId: string): void {
  nc.publish(peerControlSubjects(peerPrefix).resync, encodePeerResyncRequest({ nodeId }));
}
