/**
 * Gossip is not a channel message (DESIGN.md 10): the shell routes it elsewhere, and a gossip pkt
 * fed to the core anyway is refused unprocessed: the state unchanged (not even counted towards
 * `ack`), nothing sent, one pkt_refused output naming the kind.
 */
import { msat } from "@ln/bitcoin";
import { step, type ChannelState } from "@ln/channel-core";
import type { Pkt } from "@ln/proto";
import { describe, expect, it } from "vitest";
import { openPair, Pair } from "./harness.js";

const G = Buffer.from("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798", "hex");
const SIG = Buffer.alloc(64, 1);

const GOSSIP: Pkt[] = [
  {
    kind: "channel_announcement",
    shortChannelId: 1n,
    nodeId1: G,
    nodeId2: G,
    commitKey1: G,
    commitKey2: G,
    nodeSig1: SIG,
    nodeSig2: SIG,
    commitSig1: SIG,
    commitSig2: SIG,
  },
  {
    kind: "channel_update",
    shortChannelId: 1n,
    direction: 0,
    timestamp: 1,
    disabled: false,
    cltvExpiryDelta: 6,
    htlcMinimumMsat: msat(0n),
    htlcMaximumMsat: msat(1n),
    feeBaseMsat: msat(0n),
    feeProportionalMillionths: 0n,
    sig: SIG,
  },
  { kind: "node_announcement", nodeId: G, timestamp: 1, alias: "a", addresses: [], sig: SIG },
];

function expectRefused(state: ChannelState): void {
  for (const pkt of GOSSIP) {
    const r = step(state, { type: "pkt", pkt });
    expect(r.outputs).toEqual([
      { type: "pkt_refused", kind: pkt.kind, problem: `${pkt.kind} is gossip, not a message of the channel` },
    ]);
    expect(r.state).toEqual(state);
  }
}

describe("a gossip pkt fed to the channel core", () => {
  it("is refused while the channel opens", () => {
    const p = new Pair();
    expect(p.a.state.phase).toBe("opening");
    expectRefused(p.a.state);
  });

  it("is refused on an open channel, which goes on as before", () => {
    const p = openPair();
    expect(p.b.state.phase).toBe("normal");
    expectRefused(p.b.state);
  });
});
