import type { Input, Output } from "@ln/channel-core";
import type { Report } from "./errors.js";
import type { LogLine, PeerControl } from "./ports.js";
import { LIVE, type ChannelRegistry } from "./registry.js";
import type { ChannelRow, ChannelStore } from "./store.js";

export interface LeasesOptions {
  store: ChannelStore;
  registry: ChannelRegistry;
  peers: PeerControl;
  replicaId: string;
  /** Lease length; renewed every third of it. */
  leaseMs: number;
  /** Feeds one input to a channel (the node's input): the adopted channel's resume. */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  /** The channel is compared with the signer's records again at its next resume. */
  recheckSigner: (channelId: string) => void;
  log: LogLine;
  report: Report;
}

/**
 * The leases of the channels this replica runs: renewed every third of their length; a channel
 * whose lease expired (its replica died or stopped) is taken over and resumed here.
 */
export class Leases {
  constructor(private readonly o: LeasesOptions) {}

  /** Renews our leases and takes channels whose lease expired (a replica died or stopped). */
  async leaseRound(): Promise<void> {
    for (const row of await this.o.store.rows()) {
      const ours = this.o.registry.holds(row.id);
      if (!ours && (!LIVE(row.phase) || (row.leaseHeld && row.leaseOwner !== this.o.replicaId))) continue;
      if (!(await this.o.store.acquireLease(row.id, this.o.replicaId, this.o.leaseMs))) {
        if (ours) this.o.log.warn(`channel ${row.id}: lease lost to another replica`, { channelId: row.id });
        this.o.registry.release(row.id);
        continue;
      }
      if (ours) continue;
      await this.adopt(row);
    }
  }

  /** Releases every lease we hold, so another replica takes the channels at once. */
  async releaseAll(): Promise<void> {
    for (const id of this.o.registry.heldIds())
      await this.o.store.releaseLease(id, this.o.replicaId).catch(() => undefined);
    this.o.registry.releaseAll();
  }

  private async adopt(row: ChannelRow): Promise<void> {
    if (row.peerNodeId === undefined || row.signerChannel === undefined) return;
    this.o.registry.hold(row.id, {
      peer: row.peerNodeId,
      signerChannel: row.signerChannel,
      awaitingConnection: false,
    });
    // Compared with the signer's records again at every takeover (CONFORMANCE 12), not only once.
    this.o.recheckSigner(row.id);
    this.o.log.info(`channel ${row.id}: running it here (lease taken)`, { channelId: row.id });
    // Messages the gateway relayed while nobody ran the channel are lost, and ones the last holder
    // stored may be unsent: a new connection's authenticate exchange retransmits both ways.
    this.o.peers.resync(row.peerNodeId);
    // Whatever the last holder left half done: the signer request the state awaits, payee work.
    await this.o
      .feed(row.id, { type: "resume" })
      .catch((e: unknown) => this.o.report(`channel ${row.id}`, e));
  }
}
