import type { Report } from "../channels/errors.js";
import type { LogLine, PeerControl } from "../channels/ports.js";
import { LIVE, type ChannelRegistry } from "../channels/registry.js";
import type { ChannelStore } from "../channels/store.js";
import type { Ledger } from "../payments/ledger.js";

/** How often we check that the peers of our live channels are connected (CHANNEL_RECONNECT_S). */
export const RECONNECT_EVERY_MS = 5000;

export interface ReconnectOptions {
  store: ChannelStore;
  ledger: Pick<Ledger, "peerAddresses">;
  registry: ChannelRegistry;
  peers: PeerControl;
  log: LogLine;
  report: Report;
}

/**
 * Redials the peers of the live channels we run whose connection dropped (a gateway restart, a
 * network fault), where the operator told us their address; the authenticate exchange then
 * retransmits what is missing (draft 1.2). Peers that connected to us redial by themselves.
 */
export async function reconnectRound(o: ReconnectOptions): Promise<void> {
  const live = (await o.store.rows()).filter((r) => o.registry.holds(r.id) && LIVE(r.phase));
  if (live.length === 0) return;
  const connected = new Set((await o.peers.list()).map((p) => p.nodeId));
  const dropped = [
    ...new Set(
      live.flatMap((r) => (r.peerNodeId === undefined || connected.has(r.peerNodeId) ? [] : [r.peerNodeId])),
    ),
  ];
  if (dropped.length === 0) return;
  // One query for the addresses, whatever the number of channels.
  const addresses = await o.ledger.peerAddresses(dropped);
  for (const peer of dropped) {
    const at = addresses.get(peer);
    if (!at) continue;
    await o.peers
      .connect({ ...at, nodeId: peer })
      .then(() => o.log.info(`reconnected to ${peer.slice(0, 16)}… at ${at.host}:${at.port}`, { peer }))
      .catch((e: unknown) => o.report(`reconnecting to ${peer.slice(0, 16)}…`, e));
  }
}
