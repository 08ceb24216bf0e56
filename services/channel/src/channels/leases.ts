import {
  htlcsToSettle,
  signerAhead,
  type ChannelState,
  type Input,
  type Output,
  type SignerChannelStatus,
} from "@ln/channel-core";
import type { Report } from "./errors.js";
import type { LogLine, PeerControl } from "./ports.js";
import type { ChannelRegistry } from "./registry.js";
import type { ChannelStore } from "./store.js";

/** Channels compared with the signer and taken into the registry per slice of an adoption. */
export const ADOPT_SLICE = 2000;
/** Resumes of adopted channels running at once (each is a transaction, perhaps a signer call). */
export const RESUMES_AT_ONCE = 8;
/** Up to this many channels adopted in a round, each gets its own log line; beyond, a summary. */
const LOG_EACH_UP_TO = 20;

/** A channel whose lease we just took, to run here. */
interface Adoptee {
  id: string;
  peer: string;
  signerChannel: number;
}

export interface LeasesOptions {
  store: ChannelStore;
  registry: ChannelRegistry;
  peers: PeerControl;
  replicaId: string;
  /** Lease length; renewed every third of it. */
  leaseMs: number;
  /** Feeds one input to a channel (the node's input): an adopted channel's resume, or `behind`. */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  /**
   * The signer's records of these signer channels (SignerStatuses); a channel it never allocated
   * is absent.
   */
  signerStatuses: (signerChannels: readonly number[]) => Promise<Map<number, SignerChannelStatus>>;
  /** The channel was compared with the signer's records here: its resume need not compare again. */
  signerChecked: (channelId: string) => void;
  /** Channels per SignerStatuses call and state read when taking channels over (default ADOPT_SLICE). */
  adoptSlice?: number;
  log: LogLine;
  report: Report;
}

/**
 * Why the signer's records show a later state than the channel's, if they do (DESIGN.md 6,
 * CONFORMANCE 12): only a channel with commitments in normal operation or clearing is compared.
 */
export function behindSigner(state: ChannelState, status: SignerChannelStatus): string | undefined {
  if (!state.localCommit || (state.phase !== "normal" && state.phase !== "clearing")) return undefined;
  return signerAhead(state, status);
}

/**
 * Whether a channel taken over has work its resume does: a signer request the state awaits, an
 * opening's anchor to watch again, incoming HTLCs for the payee (or the forwarder) to settle. A
 * channel that awaits nothing needs no transition to run here: its next input finds it.
 */
export function needsResume(state: ChannelState): boolean {
  if (state.phase === "closed" || state.phase === "failed" || state.phase === "behind") return false;
  return state.awaiting !== undefined || state.phase === "opening" || htlcsToSettle(state).length > 0;
}

/**
 * The leases of the channels this replica runs: renewed every third of their length; a channel
 * whose lease expired (its replica died or stopped) is taken over and resumed here. A round is one
 * statement whatever the number of channels (ChannelStore.takeLeases); the channels it takes are
 * compared with the signer's records in slices (one SignerStatuses call each), and only then run
 * here, before any input reaches them.
 */
export class Leases {
  /** The lease statement in progress: one at a time. */
  private renewing: Promise<{ adopted: Promise<void> }> | undefined;
  /** Channels being compared and taken in (not held yet): a later round leaves them to that. */
  private readonly adopting = new Set<string>();
  private stopped = false;
  /** Adopted channels whose resume is still to run. */
  private readonly resumes: string[] = [];
  private resuming = 0;

  constructor(private readonly o: LeasesOptions) {}

  /**
   * Renews our leases and takes channels whose lease expired (a replica died or stopped); resolves
   * once the channels it took run here. Renewal never waits for an adoption still at work (the
   * signer may be slow): only the lease statements run one at a time.
   */
  async leaseRound(): Promise<void> {
    this.stopped = false;
    const round = (this.renewing ??= this.renew().finally(() => (this.renewing = undefined)));
    await (
      await round
    ).adopted;
  }

  /** Releases every lease we hold, so another replica takes the channels at once. */
  async releaseAll(): Promise<void> {
    this.stopped = true; // an adoption at work takes nothing more in
    await this.renewing?.catch(() => undefined);
    const ids = this.o.registry.heldIds();
    this.o.registry.releaseAll();
    this.resumes.length = 0;
    await this.o.store.releaseLeases(ids, this.o.replicaId).catch(() => undefined);
  }

  /** Adopted channels whose resume has not finished yet (queued or running). */
  get pendingResumes(): number {
    return this.resumes.length + this.resuming;
  }

  private async renew(): Promise<{ adopted: Promise<void> }> {
    const held = this.o.registry.heldIds();
    const t0 = Date.now();
    const rows = await this.o.store.takeLeases(this.o.replicaId, this.o.leaseMs, held);
    const ms = Date.now() - t0;
    // A round slower than a tenth of the lease eats into the margin before the leases expire.
    if (ms > this.o.leaseMs / 10)
      this.o.log.warn(`lease round: ${rows.length} leases taken or renewed in ${ms} ms`);
    const ours = new Set(rows.map((r) => r.id));
    for (const id of held)
      if (!ours.has(id) && this.o.registry.holds(id)) {
        this.o.log.warn(`channel ${id}: lease lost to another replica`, { channelId: id });
        this.o.registry.release(id);
      }
    const fresh = rows.flatMap((r) =>
      this.o.registry.holds(r.id) ||
      this.adopting.has(r.id) ||
      r.peerNodeId === undefined ||
      r.signerChannel === undefined
        ? []
        : [{ id: r.id, peer: r.peerNodeId, signerChannel: r.signerChannel }],
    );
    if (fresh.length === 0 || this.stopped) return { adopted: Promise.resolve() };
    for (const r of fresh) this.adopting.add(r.id);
    const adopted = this.adopt(fresh).finally(() => {
      for (const r of fresh) this.adopting.delete(r.id);
    });
    return { adopted };
  }

  /**
   * Runs channels here whose lease we just took, ADOPT_SLICE at a time: each compared with the
   * signer's records first (CONFORMANCE 12), then held (its peer's messages and acks are taken
   * from then on), stopped at once if it is behind, resumed if its state has work left; each peer
   * asked once to reconnect. The signer reads the next slice's records while we read this slice's
   * states. A slice that fails ends this adoption (the signer is likely down): the channels not
   * taken in keep their leases, unheld, and the next round takes them up again.
   */
  private async adopt(all: readonly Adoptee[]): Promise<void> {
    const slices: Adoptee[][] = [];
    const size = this.o.adoptSlice ?? ADOPT_SLICE;
    for (let i = 0; i < all.length; i += size) slices.push(all.slice(i, i + size));
    const ask = (slice: Adoptee[] | undefined): Promise<Map<number, SignerChannelStatus>> | undefined => {
      if (slice === undefined) return undefined;
      const p = this.o.signerStatuses(slice.map((r) => r.signerChannel));
      p.catch(() => undefined); // awaited in its turn; not an unhandled rejection meanwhile
      return p;
    };
    let next = ask(slices[0]);
    for (const [i, slice] of slices.entries()) {
      const asked = next;
      if (asked === undefined || this.stopped) return;
      next = ask(slices[i + 1]);
      try {
        await this.adoptSlice(slice, asked);
      } catch (e) {
        const left = all.length - i * size;
        this.o.report(`taking over ${left} channel(s) (the next lease round tries again)`, e);
        return;
      }
    }
  }

  private async adoptSlice(
    runnable: readonly Adoptee[],
    asked: Promise<Map<number, SignerChannelStatus>>,
  ): Promise<void> {
    // The signer's records first, then the states: a step running meanwhile (the last holder's,
    // finishing) stores its state before it asks the signer, so a state read after the records
    // is never behind them (unless it was restored).
    const t0 = Date.now();
    const statuses = await asked;
    const t1 = Date.now();
    const states = await this.o.store.states(runnable.map((r) => r.id));
    const t2 = Date.now();
    const peers = new Set<string>();
    let adopted = 0;
    let behind = 0;
    let resumed = 0;
    if (this.stopped) return;
    for (const r of runnable) {
      const state = states.get(r.id);
      if (state === undefined || this.o.registry.holds(r.id)) continue; // deleted, or run here already
      const status = statuses.get(r.signerChannel);
      if (status === undefined) {
        this.o.report(
          `channel ${r.id}`,
          new Error(`the signer has no channel ${r.signerChannel}: not running the channel here`),
        );
        continue;
      }
      const problem = behindSigner(state, status);
      this.o.registry.hold(r.id, { peer: r.peer, signerChannel: r.signerChannel, awaitingConnection: false });
      this.o.signerChecked(r.id);
      adopted++;
      if (runnable.length <= LOG_EACH_UP_TO)
        this.o.log.info(`channel ${r.id}: running it here (lease taken)`, { channelId: r.id });
      // Messages the gateway relayed while nobody ran the channel are lost, and ones the last
      // holder stored may be unsent: a new connection's authenticate exchange retransmits both ways.
      peers.add(r.peer);
      if (problem !== undefined) {
        // Queued as the channel's first input, before any message of its peer can be.
        behind++;
        void this.o
          .feed(r.id, { type: "behind", problem })
          .catch((e: unknown) => this.o.report(`channel ${r.id}`, e));
      } else if (needsResume(state)) {
        // Whatever the last holder left half done: the signer request the state awaits, payee work.
        resumed++;
        this.resumes.push(r.id);
      }
    }
    for (const peer of peers) this.o.peers.resync(peer);
    if (runnable.length > LOG_EACH_UP_TO && adopted > 0)
      this.o.log.info(
        `running ${adopted} channels here (leases taken): ${behind} behind the signer, ${resumed} to resume` +
          ` (the signer's records awaited ${t1 - t0} ms, the states in ${t2 - t1} ms, taken in ${Date.now() - t2} ms)`,
      );
    this.drainResumes();
  }

  /** Runs the queued resumes, RESUMES_AT_ONCE at a time, in the background. */
  private drainResumes(): void {
    while (this.resuming < RESUMES_AT_ONCE && this.resumes.length > 0) {
      const id = this.resumes.shift() as string;
      if (!this.o.registry.holds(id)) continue;
      this.resuming++;
      void this.o
        .feed(id, { type: "resume" })
        .catch((e: unknown) => this.o.report(`channel ${id}`, e))
        .finally(() => {
          this.resuming--;
          this.drainResumes();
        });
    }
  }
}
