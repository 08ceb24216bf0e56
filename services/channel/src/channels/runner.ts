import { crashPoint } from "@ln/crash";
import {
  stepAll,
  type ChannelState,
  type Input,
  type Output,
  type SignerReply,
  type SignerRequest,
  type Step,
} from "@ln/channel-core";
import type { ChannelStore, OutboxMessage, Transitions, WithinTransition } from "./store.js";

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
  /** Inputs of one channel in one transaction at most (default MAX_BATCH). */
  maxBatch?: number;
}

/** Inputs of one channel taken into one transaction at most (the core's bounds stay far above). */
export const MAX_BATCH = 256;

/** One input waiting for its transaction, and for the caller's answer. */
interface Entry {
  input: Input;
  within: WithinTransition | undefined;
  outputs: Output[];
  failedEffects: unknown[];
  resolve: (s: Step) => void;
  reject: (e: unknown) => void;
}

/** Answers callers: with the stored state, or with `error`, or with their effects' failures. */
function settle(
  channelId: string,
  entries: readonly Entry[],
  state: ChannelState | undefined,
  error?: unknown,
): void {
  for (const e of entries)
    if (error !== undefined) e.reject(error);
    else if (e.failedEffects.length > 0)
      e.reject(
        new AggregateError(
          e.failedEffects,
          `channel ${channelId}: ${e.failedEffects.length} effect(s) failed`,
        ),
      );
    else e.resolve({ state: state as ChannelState, outputs: e.outputs });
}

/** A channel's inputs not yet taken, and whether its drain loop runs. */
interface Lane {
  pending: Entry[];
  running: boolean;
  /** Inputs to run one per transaction (a batch whose transaction failed, run again apart). */
  singles: number;
}

/**
 * The thin shell around the pure core for the channels this replica holds leases on. A channel's
 * inputs wait in its lane while its previous transaction or signer request runs, and the next
 * transaction takes all of them (group commit, the core's stepAll): state, outbox and money records
 * together, one commitment for every update. Only after it commits are messages sent and the
 * signer asked. So a revocation preimage is requested only once the commitment that replaces it
 * is durable, and a crash between commit and send is healed by retransmission.
 */
export class ChannelRunner {
  private readonly lanes = new Map<string, Lane>();
  /** Per channel: when our update_commit awaiting its revocation was sent (memory only). */
  private readonly commitSentAt = new Map<string, number>();
  /** Also settable after construction (the node passes it in its options). */
  onCommitRound: ((seconds: number) => void) | undefined;
  onCommitSent: ((updates: number) => void) | undefined;
  private readonly now: () => number;
  private readonly maxBatch: number;

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
    this.maxBatch = opts.maxBatch ?? MAX_BATCH;
  }

  /**
   * Feeds one input to a channel; inputs to the same channel run in the order given. Resolves
   * with this input's outputs, those of the signer's answer to the request its transaction made,
   * and the state as stored then. `within` writes more in the transaction of this input (its
   * outputs only are given to it).
   */
  input(channelId: string, input: Input, within?: WithinTransition): Promise<Step> {
    let lane = this.lanes.get(channelId);
    if (!lane) this.lanes.set(channelId, (lane = { pending: [], running: false, singles: 0 }));
    const l = lane;
    return new Promise<Step>((resolve, reject) => {
      l.pending.push({ input, within, outputs: [], failedEffects: [], resolve, reject });
      if (!l.running) {
        l.running = true;
        void this.drain(channelId, l);
      }
    });
  }

  /**
   * Asks the signer again for whatever the stored state awaits: after a failed signer call, and
   * for every channel when a replica takes it over.
   */
  resume(channelId: string): Promise<Step> {
    return this.input(channelId, { type: "resume" });
  }

  /**
   * Runs a channel's lane until it is empty: each round one transaction over the signer's answer
   * (if one is due) and every input waiting, then sends, then the signer's next answer (inputs
   * arriving meanwhile wait for the next round), then the other effects. An input's caller is
   * answered after the round that answers its round's signer request, or at once if none.
   */
  private async drain(channelId: string, lane: Lane): Promise<void> {
    /** Entries answered once the signer's reply to their round's request is stepped. */
    let riders: Entry[] = [];
    let reply: Input | undefined;
    while (reply !== undefined || lane.pending.length > 0) {
      const room = lane.singles > 0 ? 1 : this.maxBatch;
      const fresh = lane.pending.splice(0, reply !== undefined ? room - 1 : room);
      lane.singles = Math.max(0, lane.singles - fresh.length);
      const inputs = [...(reply !== undefined ? [reply] : []), ...fresh.map((e) => e.input)];
      const offset = inputs.length - fresh.length;
      let t: Transitions;
      try {
        t = await this.store.transitionAll(channelId, this.owner, (s) => stepAll(s, inputs), [
          ...(offset === 1 ? [undefined] : []),
          ...fresh.map((e) => e.within),
        ]);
      } catch (e) {
        if (inputs.length > 1) {
          // One input's writes (its `within`) may be what failed: each runs again on its own,
          // the signer's reply first.
          lane.pending.unshift(...fresh);
          lane.singles += fresh.length;
          continue;
        }
        settle(channelId, [...riders, ...fresh], undefined, e);
        [riders, reply] = [[], undefined];
        continue;
      }
      crashPoint("channel.transition.committed");
      // Inputs after one that made the state await the signer were not taken: they go first in
      // the next round, with the signer's answer.
      lane.pending.unshift(...fresh.splice(Math.max(0, t.outputs.length - offset)));
      const answered = offset === 1 ? riders : [];
      // A rejection among the answer's outputs is of a command deferred in the state (after a
      // failed signer call), never of a rider's: its own were decided in its own round.
      const followUp = (t.outputs[0] ?? []).filter((o) => o.type !== "command_rejected");
      for (const r of answered) r.outputs.push(...followUp);
      fresh.forEach((e, i) => e.outputs.push(...(t.outputs[i + offset] ?? [])));
      const request = t.outputs.flat().find((o) => o.type === "signer");
      // Who is answered after this round: everyone if it asked the signer nothing; else those
      // answered in it while new inputs joined (not held for yet another round); the rest ride.
      const done = request === undefined ? [...riders, ...fresh] : fresh.length > 0 ? answered : [];
      riders = request === undefined ? [] : fresh.length > 0 ? fresh : riders;
      reply = undefined;
      try {
        reply = await this.afterCommit(channelId, inputs, t, request, [
          ...(offset === 1 ? [answered] : []),
          ...fresh.map((e) => [e]),
        ]);
      } catch (e) {
        // A send, the outbox or the signer failed: the state is stored; the callers hear it and
        // the retry round resumes the channel.
        settle(channelId, [...done, ...riders], undefined, e);
        riders = [];
        continue;
      }
      settle(channelId, done, t.state);
    }
    lane.running = false;
    this.lanes.delete(channelId);
  }

  /**
   * What follows a committed round: its messages sent (durable now), retransmissions, the
   * signer's answer to its request, then its other effects. A failed effect (a broadcast, a
   * record) must not hold up the channel: it is raised to the inputs it came from (`owners`, by
   * position) once the channel has moved as far as it can.
   */
  private async afterCommit(
    channelId: string,
    inputs: readonly Input[],
    t: Transitions,
    request: Output | undefined,
    owners: readonly Entry[][],
  ): Promise<Input | undefined> {
    for (const m of t.sends) await this.peer.send(channelId, m);
    crashPoint("channel.transition.sent");
    t.outputs.forEach((outs, i) => this.timeCommitRound(channelId, inputs[i] as Input, outs, t.state));
    for (const o of t.outputs.flat())
      if (o.type === "retransmit")
        for (const m of await this.store.outboxAfter(channelId, o.afterSeq))
          await this.peer.send(channelId, m);
    let reply: Input | undefined;
    let signerFailed: { error: unknown } | undefined;
    if (request?.type === "signer")
      try {
        reply = { type: "signer", reply: await this.signer.answer(channelId, request.request, t.state) };
        crashPoint("channel.signer.answered");
      } catch (error) {
        signerFailed = { error }; // the round's effects are still carried out
      }
    for (const [i, outs] of t.outputs.entries())
      for (const o of outs) {
        if (o.type === "send" || o.type === "signer" || o.type === "retransmit") continue;
        await this.effects(channelId, o, t.state).catch((e: unknown) => {
          for (const x of owners[i] ?? []) x.failedEffects.push(e);
        });
      }
    if (signerFailed) throw signerFailed.error;
    return reply;
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
