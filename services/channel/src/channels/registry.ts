import type { ChannelState } from "@ln/channel-core";
import { NodeError } from "./errors.js";

/** What this replica knows of a channel it runs. */
export interface RunMeta {
  peer: string;
  signerChannel: number;
  /** It waits for a new connection before it takes the peer's messages (see openings.ts). */
  awaitingConnection: boolean;
}

export const LIVE = (phase: ChannelState["phase"]): boolean => phase !== "closed" && phase !== "failed";

/**
 * The channels this replica runs (it holds their lease) and, per channel, its peer and signer
 * index. `meta` outlives `held` when a lease is lost: the channel's last effects still find it.
 */
export class ChannelRegistry {
  private readonly held = new Set<string>();
  private readonly meta = new Map<string, RunMeta>();
  /**
   * Moves on whenever which channel is live with a peer may have changed (a channel held anew,
   * forgotten, or ended): what was looked up by peer before is looked up again.
   */
  generation = 0;

  holds(id: string): boolean {
    return this.held.has(id);
  }

  /** The channels held now (a copy: callers await between them). */
  heldIds(): string[] {
    return [...this.held];
  }

  /** Runs a channel here: its meta first, so its first input finds it. */
  hold(id: string, meta: RunMeta): void {
    if (!this.held.has(id)) this.generation++;
    this.meta.set(id, meta);
    this.held.add(id);
  }

  /** The lease is gone (another replica runs it, or we stopped); its meta stays. */
  release(id: string): void {
    this.held.delete(id);
  }

  releaseAll(): void {
    this.held.clear();
  }

  /** Forgets the channel entirely (deleted, or forgotten as a failed opening). */
  forget(id: string): void {
    this.generation++;
    this.held.delete(id);
    this.meta.delete(id);
  }

  /** A channel ended (closed, failed, behind): the peer's live channel is another, or none. */
  ended(): void {
    this.generation++;
  }

  metaOf(id: string): RunMeta | undefined {
    return this.meta.get(id);
  }

  /** Its meta, or NOT_FOUND: the channel is not run here. */
  require(id: string): RunMeta {
    const m = this.meta.get(id);
    if (!m) throw new NodeError("NOT_FOUND", `channel ${id} is not run here`);
    return m;
  }

  signerChannel(id: string): number {
    return this.require(id).signerChannel;
  }
}
