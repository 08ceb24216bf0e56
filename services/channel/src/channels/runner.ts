import { crashPoint } from "@ln/crash";
import {
  step,
  type ChannelState,
  type Input,
  type Output,
  type SignerReply,
  type SignerRequest,
  type Step,
} from "@ln/channel-core";
import type { ChannelStore, OutboxMessage, WithinTransition } from "./store.js";

/** The signer, as the shell sees it: the core's requests (gRPC in production: signer-adapter.ts). */
export interface CoreSigner {
  /** `state`: the stored state that asked (the signer adapter takes R values from it). */
  answer(channelId: string, request: SignerRequest, state?: ChannelState): Promise<SignerReply>;
}

/** Where encoded messages go: the peer gateway (NATS in production). */
export interface PeerLink {
  send(channelId: string, message: OutboxMessage): Promise<void>;
}

/**
 * Everything else the core asks for: broadcasts, anchors, HTLC results, chain watches; with the
 * stored state of the transition that asked.
 */
export type EffectSink = (
  channelId: string,
  output: Exclude<Output, { type: "send" | "signer" | "retransmit" }>,
  state: ChannelState,
) => Promise<void>;

export interface RunnerOptions {
  /**
   * A commitment round completed: seconds from our update_commit being sent to the peer's
   * update_revocation for it being applied (the channel_commitment_round_seconds histogram).
   */
  onCommitRound?: (seconds: number) => void;
  /**
   * We sent an update_commit (its first send): `updates` is how many updates (ours and the
   * peer's) it commits the peer to (the channel_commitment_updates histogram).
   */
  onCommitSent?: (updates: number) => void;
  /** The clock, in milliseconds. Default Date.now (tests give their own). */
  now?: () => number;
}

/**
 * The thin shell around the pure core for the channels this replica holds leases on: each input
 * runs as one Postgres transaction (state and outbox together); only after it commits are messages
 * sent and the signer asked. So a revocation preimage is requested only once the commitment that
 * replaces it is durable, and a crash between commit and send is healed by retransmission.
 */
export class ChannelRunner {
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Per channel: when our update_commit awaiting its revocation was sent (memory only). */
  private readonly commitSentAt = new Map<string, number>();
  /** Also settable after construction (the node passes it in its options). */
  onCommitRound: ((seconds: number) => void) | undefined;
  onCommitSent: ((updates: number) => void) | undefined;
  private readonly now: () => number;

  constructor(
    private readonly store: ChannelStore,
    private readonly owner: string,
    private readonly signer: CoreSigner,
    private readonly peer: PeerLink,
    private readonly effects: EffectSink,
    opts: RunnerOptions = {},
  ) {
    this.onCommitRound = opts.onCommitRound;
    this.onCommitSent = opts.onCommitSent;
    this.now = opts.now ?? Date.now;
  }

  /**
   * Feeds one input to a channel; inputs to the same channel run one after another. Resolves
   * with every output and the state as stored at the end. `within` writes more in the
   * transaction of this input's own step (not of the steps that follow it).
   */
  input(channelId: string, input: Input, within?: WithinTransition): Promise<Step> {
    const prev = this.queues.get(channelId) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(() => this.run(channelId, input, within));
    this.queues.set(channelId, run);
    // Forgotten once done, so the map holds only channels with work in progress.
    const done = (): void => void (this.queues.get(channelId) === run && this.queues.delete(channelId));
    run.then(done, done);
    return run;
  }

  /**
   * Asks the signer again for whatever the stored state awaits: after a failed signer call, and
   * for every channel when a replica takes it over.
   */
  resume(channelId: string): Promise<Step> {
    return this.input(channelId, { type: "resume" });
  }

  private async run(channelId: string, first: Input, within?: WithinTransition): Promise<Step> {
    const all: Output[] = [];
    let state: ChannelState | undefined;
    const failedEffects: unknown[] = [];
    const queue: Input[] = [first];
    for (let input = queue.shift(); input; input = queue.shift()) {
      const current = input;
      const t = await this.store.transition(
        channelId,
        this.owner,
        (s) => step(s, current),
        current === first ? within : undefined,
      );
      crashPoint("channel.transition.committed");
      all.push(...t.outputs);
      state = t.state;
      // Durable now: send, then carry out the rest. A failed effect (a broadcast, a record) must
      // not hold up the channel: the signer's answers and retransmissions go first, and effect
      // failures are raised together once the channel has moved as far as it can.
      for (const m of t.sends) await this.peer.send(channelId, m);
      crashPoint("channel.transition.sent");
      this.timeCommitRound(channelId, current, t.outputs, t.state);
      for (const o of t.outputs) {
        if (o.type === "signer") {
          const reply = await this.signer.answer(channelId, o.request, t.state);
          crashPoint("channel.signer.answered");
          queue.push({ type: "signer", reply });
        } else if (o.type === "retransmit")
          for (const m of await this.store.outboxAfter(channelId, o.afterSeq))
            await this.peer.send(channelId, m);
      }
      for (const o of t.outputs) {
        if (o.type === "send" || o.type === "signer" || o.type === "retransmit") continue;
        await this.effects(channelId, o, t.state).catch((e: unknown) => failedEffects.push(e));
      }
    }
    if (failedEffects.length > 0)
      throw new AggregateError(
        failedEffects,
        `channel ${channelId}: ${failedEffects.length} effect(s) failed`,
      );
    return { state: state as ChannelState, outputs: all };
  }

  /**
   * Round-trip time of our commitments: the first send of an update_commit starts it (a
   * retransmission does not restart it), the revocation the core accepted for it ends it. A
   * round open when the replica started (or took the channel over) is not measured.
   */
  private timeCommitRound(
    channelId: string,
    input: Input,
    outputs: readonly Output[],
    state: ChannelState,
  ): void {
    if (
      input.type === "pkt" &&
      input.pkt.kind === "update_revocation" &&
      outputs.some((o) => o.type === "revoked")
    ) {
      const sent = this.commitSentAt.get(channelId);
      this.commitSentAt.delete(channelId);
      if (sent !== undefined) this.onCommitRound?.(Math.max(0, this.now() - sent) / 1000);
    }
    for (const o of outputs) {
      if (o.type === "send" && o.pkt.kind === "update_commit" && !this.commitSentAt.has(channelId)) {
        this.commitSentAt.set(channelId, this.now());
        const [next, prev] = [state.remotePending, state.remoteCommit];
        if (next && prev)
          this.onCommitSent?.(
            next.localUpdates - prev.localUpdates + (next.remoteUpdates - prev.remoteUpdates),
          );
      } else if (o.type === "closed" || o.type === "failed") this.commitSentAt.delete(channelId);
    }
  }
}
