import type { Input, Output } from "@ln/channel-core";
import type { ChainEvent } from "@ln/proto";
import type { Report } from "../channels/errors.js";
import type { ResolutionPort } from "../channels/ports.js";
import type { ChannelRegistry } from "../channels/registry.js";
import type { ChannelStore } from "../channels/store.js";
import type { Ledger } from "../payments/ledger.js";
import { parseOutputWatchId } from "./resolution.js";
import type { ChainTip } from "./tip.js";

export interface ChainEventsOptions {
  ledger: Ledger;
  store: Pick<ChannelStore, "setShortChannelId">;
  registry: ChannelRegistry;
  resolution: ResolutionPort;
  tip: ChainTip;
  /** Feeds one input to a channel run here (the node's input). */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  report: Report;
}

/** The chain watcher's events to the channels this replica runs and to the on-chain resolution. */
export class ChainEvents {
  constructor(private readonly o: ChainEventsOptions) {}

  /** One event from the chain watcher's stream; the wallet's kinds are handled by the caller. */
  async onChainEvent(ev: ChainEvent): Promise<void> {
    switch (ev.kind) {
      case "block_connected": {
        await this.o.ledger.setTip({ height: ev.height, hash: ev.hash, time: ev.time });
        this.o.tip.set(ev.height, ev.time);
        const event = { kind: "block" as const, height: ev.height, time: ev.time };
        await this.eachHeld((id) => this.o.feed(id, { type: "chain", event }));
        await this.o.resolution
          .sweepReady({ height: ev.height, time: ev.time })
          .catch((e: unknown) => this.o.report("sweeping claimed outputs", e));
        return;
      }
      case "block_disconnected":
        // Failing here redelivers the event: the resolution must not keep a spend that is gone.
        return this.o.resolution.onBlockDisconnected(ev.height);
      case "anchor_depth":
        // Every replica records where the anchor is (idempotent), before the core hears of it:
        // a failure redelivers the event. Depth 0: out of the best chain, no place until the
        // new branch reports one. An older watcher's report (no position) changes nothing.
        if (parseOutputWatchId(ev.channelId) === undefined) {
          if (ev.depth === 0) await this.o.store.setShortChannelId(ev.channelId, undefined);
          else if (ev.position) await this.o.store.setShortChannelId(ev.channelId, ev.position);
        }
        if (this.o.registry.holds(ev.channelId))
          await this.o.feed(ev.channelId, {
            type: "chain",
            event: { kind: "anchor_depth", depth: ev.depth },
          });
        return;
      case "anchor_spent": {
        const output = parseOutputWatchId(ev.channelId);
        if (output)
          return this.o.resolution.onOutputSpent(output.channelId, output.vout, ev.txHex, ev.height);
        if (this.o.registry.holds(ev.channelId)) {
          const ours = await this.o.ledger.isOurBroadcast(ev.channelId, ev.txid);
          await this.o.feed(ev.channelId, {
            type: "chain",
            event: { kind: "anchor_spent", txid: ev.txid, ours },
          });
        }
        // Every replica records it (idempotent): the channel has failed, its lease may be gone.
        return this.o.resolution.onAnchorSpent(ev.channelId, ev.txHex, ev.height);
      }
      default:
        return;
    }
  }

  private async eachHeld(fn: (id: string) => Promise<unknown>): Promise<void> {
    const failures: unknown[] = [];
    for (const id of this.o.registry.heldIds()) await fn(id).catch((e: unknown) => failures.push(e));
    for (const e of failures) this.o.report("block", e);
  }
}
