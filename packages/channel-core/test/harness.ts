/**
 * Test harness: two channel cores wired through a model of the transport (in order per
 * direction), each with an in-process signer that answers at once, as the shell would.
 */
import { sat, sha256, txidFromHex, type Sat } from "@ln/bitcoin";
import {
  ackFor,
  createChannel,
  step,
  type ChannelPolicy,
  type ChannelState,
  type Input,
  type Output,
} from "@ln/channel-core";
import type { Pkt } from "@ln/proto";
import { TestSigner } from "@ln/channel-core/testing";

export { TestSigner };
const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export interface TestNode {
  name: "A" | "B";
  state: ChannelState;
  signer: TestSigner;
  /** Every message sent, by seq: the durable outbox retransmission reads from. */
  sent: Pkt[];
  /** Everything the core output, in order, for assertions. */
  log: Output[];
}

export const DEFAULT_TEST_POLICY: Partial<ChannelPolicy> = { autoCommit: false };

export class Pair {
  readonly a: TestNode;
  readonly b: TestNode;
  /** In-flight messages towards each node; `connected` false drops new ones. */
  readonly wire: Record<"A" | "B", Pkt[]> = { A: [], B: [] };
  connected = true;
  height = 1000;

  constructor(
    opts: { fundingSat?: Sat; policy?: Partial<ChannelPolicy>; policyB?: Partial<ChannelPolicy> } = {},
  ) {
    const make = (name: "A" | "B", fill: number, policy: Partial<ChannelPolicy>): TestNode => {
      const signer = new TestSigner(fill);
      const created = createChannel({
        role: name === "A" ? "creator" : "acceptor",
        local: {
          delay: { blocks: 144 },
          minDepth: 1,
          initialFeeRate: 10_000,
          commitKey: signer.commitKey,
          finalKey: signer.finalKey,
          revocationHash: signer.revocationHash(0n),
          nextRevocationHash: signer.revocationHash(1n),
        },
        ...(name === "A" ? { fundingSat: opts.fundingSat ?? sat(1_000_000) } : {}),
        policy,
        chain: { height: this.height, time: 1_700_000_000 },
      });
      initial.push(created.outputs);
      return { name, state: created.state, signer, sent: [], log: [] };
    };
    const initial: Output[][] = [];
    this.a = make("A", 0x10, { ...DEFAULT_TEST_POLICY, ...opts.policy });
    this.b = make("B", 0x20, { ...DEFAULT_TEST_POLICY, ...(opts.policyB ?? opts.policy) });
    // Each side's open_channel, produced at creation.
    for (const o of initial[0] ?? []) this.effect(this.a, o);
    for (const o of initial[1] ?? []) this.effect(this.b, o);
  }

  peerOf(n: TestNode): TestNode {
    return n === this.a ? this.b : this.a;
  }

  /** Feeds an input to a node and carries out its outputs as the shell would. */
  input(n: TestNode, input: Input): Output[] {
    const r = step(n.state, input);
    n.state = r.state;
    const all: Output[] = [];
    for (const o of r.outputs) all.push(...this.effect(n, o));
    return all;
  }

  /** Carries out one output as the shell would (public for batch drivers). */
  effect(n: TestNode, o: Output): Output[] {
    n.log.push(o);
    const done: Output[] = [o];
    switch (o.type) {
      case "send":
        if (o.seq !== n.sent.length + 1) throw new Error(`${n.name}: seq ${o.seq} after ${n.sent.length}`);
        n.sent.push(o.pkt);
        if (this.connected) this.wire[this.peerOf(n).name].push(o.pkt);
        break;
      case "signer":
        done.push(...this.input(n, { type: "signer", reply: n.signer.answer(o.request) }));
        break;
      case "build_anchor":
        done.push(
          ...this.input(n, {
            type: "anchor_built",
            outpoint: { txid: txidFromHex("aa".repeat(32)), vout: 0 },
            amount: o.amount,
          }),
        );
        break;
      case "retransmit":
        if (this.connected) this.wire[this.peerOf(n).name].push(...n.sent.slice(o.afterSeq));
        break;
      default:
        break;
    }
    return done;
  }

  /** Delivers the next in-flight message to `n`. */
  deliver(n: TestNode): Output[] {
    const pkt = this.wire[n.name].shift();
    if (!pkt) throw new Error(`nothing in flight to ${n.name}`);
    return this.input(n, { type: "pkt", pkt });
  }

  pending(n: TestNode): number {
    return this.wire[n.name].length;
  }

  /** Delivers everything, both ways, until nothing is in flight. */
  settle(maxSteps = 10_000): void {
    for (let i = 0; i < maxSteps; i++) {
      if (this.pending(this.a) > 0) this.deliver(this.a);
      else if (this.pending(this.b) > 0) this.deliver(this.b);
      else return;
    }
    throw new Error("did not settle");
  }

  /** The transport drops; messages in flight are lost. */
  disconnect(): void {
    this.connected = false;
    this.wire.A = [];
    this.wire.B = [];
  }

  /** New connection: each side's authenticate carries its ack; each resends what the other missed. */
  reconnect(): void {
    this.connected = true;
    const ackA = ackFor(this.a.state);
    const ackB = ackFor(this.b.state);
    this.input(this.a, { type: "reconnected", theirAck: ackB });
    this.input(this.b, { type: "reconnected", theirAck: ackA });
  }

  anchorDepth(depth: number): void {
    for (const n of [this.a, this.b])
      this.input(n, { type: "chain", event: { kind: "anchor_depth", depth } });
  }

  block(height: number, time = 1_700_000_000 + (height - 1000) * 600): void {
    this.height = height;
    for (const n of [this.a, this.b])
      this.input(n, { type: "chain", event: { kind: "block", height, time } });
  }
}

/** Creates both ends and runs the opening (draft 2) to normal operation. */
export function openPair(opts: ConstructorParameters<typeof Pair>[0] = {}): Pair {
  const p = new Pair(opts);
  p.settle();
  p.anchorDepth(1);
  p.settle();
  if (p.a.state.phase !== "normal" || p.b.state.phase !== "normal")
    throw new Error(`opening did not complete: ${p.a.state.phase}/${p.b.state.phase}`);
  return p;
}

export const R = (n: number): Buffer => Buffer.alloc(32, n);
export const rHash = (n: number): string => hex(sha256(R(n)));
