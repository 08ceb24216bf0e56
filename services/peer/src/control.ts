/** The gateway's control requests on NATS (`<prefix>.ctl.connect`, `<prefix>.ctl.peers`). */
import type { Msg, NatsConnection, Subscription } from "nats";
import {
  decodePeerConnectRequest,
  decodePeerResyncRequest,
  encodePeerConnectReply,
  encodePeersReply,
  PEER_CONTROL_QUEUE,
  peerControlSubjects,
  PeerControlDecodeError,
  type PeerConnectReply,
} from "@ln/proto";
import { DialError, type PeerGateway, type PeerLogEvent } from "./gateway.js";

export interface ControlOptions {
  nats: NatsConnection;
  /** The gateway's subject prefix: requests arrive on `<prefix>.ctl.*`. */
  prefix: string;
  gateway: PeerGateway;
  /** One record per event, its level set where it happens. */
  log?: (e: PeerLogEvent) => void;
  /** Queue group shared by the replicas. Default PEER_CONTROL_QUEUE ("peer-gateway"). */
  queue?: string;
}

/**
 * Serves the control subjects in a queue group (each request reaches one replica):
 * - connect: dials `{host, port, nodeId}`; `{ok:true, nodeId}` once authenticate is done (at once
 *   if this replica already has a live connection to nodeId), else `{ok:false, code, message}`.
 * - peers: this replica's live connections.
 * Returns the subscriptions (unsubscribe or drain them to stop).
 */
export function serveControl(o: ControlOptions): Subscription[] {
  const subjects = peerControlSubjects(o.prefix);
  const queue = o.queue ?? PEER_CONTROL_QUEUE;
  const log = (line: PeerLogEvent): void => {
    try {
      o.log?.(line);
    } catch {
      // a broken logger must not stop the replies
    }
  };
  const reply = (m: Msg, data: Uint8Array): void => {
    if (!m.reply) return;
    try {
      m.respond(data);
    } catch (e) {
      log({ level: "warn", event: "ctl_reply_failed", error: e instanceof Error ? e.message : String(e) });
    }
  };
  const connect = o.nats.subscribe(subjects.connect, {
    queue,
    callback: (err, m) => {
      if (err) return log({ level: "warn", event: "ctl_subscription_error", error: err.message });
      void (async () => {
        reply(m, encodePeerConnectReply(await handleConnect(o.gateway, m.data)));
      })();
    },
  });
  const peers = o.nats.subscribe(subjects.peers, {
    queue,
    callback: (err, m) => {
      if (err) return log({ level: "warn", event: "ctl_subscription_error", error: err.message });
      reply(m, encodePeersReply({ peers: o.gateway.connections }));
    },
  });
  // Not in the queue group: whichever replica holds the connection drops it.
  const resync = o.nats.subscribe(subjects.resync, {
    callback: (err, m) => {
      if (err) return log({ level: "warn", event: "ctl_subscription_error", error: err.message });
      try {
        const { nodeId } = decodePeerResyncRequest(m.data);
        if (o.gateway.disconnect(nodeId, "RESYNC")) log({ level: "info", event: "resync", peer: nodeId });
      } catch (e) {
        log({
          level: "info",
          event: "ctl_bad_request",
          subject: m.subject,
          error: e instanceof Error ? e.message : String(e),
        });
      }
    },
  });
  return [connect, peers, resync];
}

async function handleConnect(gateway: PeerGateway, data: Uint8Array): Promise<PeerConnectReply> {
  let req;
  try {
    req = decodePeerConnectRequest(data);
  } catch (e) {
    if (e instanceof PeerControlDecodeError) return { ok: false, code: "BAD_REQUEST", message: e.message };
    throw e;
  }
  if (gateway.peers.includes(req.nodeId)) return { ok: true, nodeId: req.nodeId };
  try {
    const c = await gateway.connect(req.host, req.port, Buffer.from(req.nodeId, "hex"));
    return { ok: true, nodeId: c.peerNodeId };
  } catch (e) {
    if (e instanceof DialError) return { ok: false, code: e.code, message: e.message };
    return {
      ok: false,
      code: "INTERNAL",
      message: `connect failed: ${e instanceof Error ? e.message : String(e)}`,
    };
  }
}
