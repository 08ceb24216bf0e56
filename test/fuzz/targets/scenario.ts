/**
 * A channel's life with the channel core's test harness, from creation to the end of the close,
 * kept as a snapshot of each node's state after every message, with the message the other node
 * would send it next: the channel-step target's phases, and real pkts for every corpus.
 */
import { msat, sha256 } from "@ln/bitcoin";
import type { ChannelState, Command } from "@ln/channel-core";
import type { Pkt } from "@ln/proto";
import { Pair, R, rHash, type TestNode } from "../../../packages/channel-core/test/harness.js";

export interface Snapshot {
  label: string;
  node: "A" | "B";
  state: ChannelState;
  /** What the other node sends next, if anything is in flight. */
  next: Pkt | undefined;
  /** The other node has no money in the channel yet (B, before it is paid): any HTLC it offers is over its balance. */
  peerOwnsNothing: boolean;
}

export interface Scenario {
  snapshots: Snapshot[];
  /** Every pkt either node sent. */
  pkts: Pkt[];
  pair: Pair;
  /** The r_hash of every HTLC of the scenario (hex): a fulfil with any other r is wrong everywhere. */
  rHashes: Set<string>;
  /** Every signature either node sent (hex): an update_commit with another one signs nothing. */
  sigs: Set<string>;
}

const PREIMAGES = [1, 2, 3, 4, 5];

let built: Promise<Scenario> | undefined;

export function scenario(): Promise<Scenario> {
  built ??= Promise.resolve(build());
  return built;
}

function build(): Scenario {
  const p = new Pair({ policy: { autoCommit: true } });
  const snapshots: Snapshot[] = [];
  let bOwnsNothing = true;
  const snap = (label: string): void => {
    for (const n of [p.a, p.b])
      snapshots.push({
        peerOwnsNothing: n === p.a && bOwnsNothing,
        label: `${label} (${n.name}, ${n.state.phase})`,
        node: n.name,
        state: n.state,
        next: p.wire[n.name][0],
      });
  };
  const settle = (label: string): void => {
    for (let i = 0; i < 1000; i++) {
      if (p.pending(p.a) > 0) p.deliver(p.a);
      else if (p.pending(p.b) > 0) p.deliver(p.b);
      else return;
      snap(label);
    }
    throw new Error(`scenario: ${label} did not settle`);
  };
  const command = (n: TestNode, c: Command): void => {
    const out = p.input(n, { type: "command", command: c });
    const refused = out.find((o) => o.type === "command_rejected");
    if (refused)
      throw new Error(
        `scenario: ${c.kind} refused: ${JSON.stringify(refused, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`,
      );
    snap(c.kind);
  };
  const add = (n: TestNode, amount: bigint, which: number): void =>
    command(n, { kind: "add_htlc", amountMsat: msat(amount), rHash: rHash(which), expiry: { blocks: 2000 } });
  const r = (which: number): string => R(which).toString("hex");

  snap("created");
  settle("opening");
  p.anchorDepth(1);
  snap("anchor deep enough");
  settle("opening");
  if (p.a.state.phase !== "normal") throw new Error(`scenario: the opening ended in ${p.a.state.phase}`);
  // Normal operation: HTLCs both ways, fulfilled and failed, a fee change, some left in flight.
  add(p.a, 50_000_000n, 1);
  settle("an HTLC offered");
  bOwnsNothing = false; // from B's first fulfil on, B may own some of the channel
  command(p.b, { kind: "fulfill_htlc", id: 0n, r: r(1) });
  settle("an HTLC fulfilled");
  add(p.a, 20_000_000n, 2);
  add(p.a, 30_000_000n, 3);
  settle("two HTLCs offered");
  command(p.b, { kind: "fail_htlc", id: 1n, reason: "00" });
  settle("an HTLC failed");
  command(p.a, { kind: "update_fee", feeRate: 20_000 });
  settle("a fee update");
  add(p.b, 10_000_000n, 4);
  add(p.a, 1_000_000n, 5);
  settle("HTLCs in flight both ways");
  command(p.a, { kind: "fulfill_htlc", id: 0n, r: r(4) });
  settle("B's HTLC fulfilled");
  // The close: clearing with HTLCs still in flight, then the fee negotiation.
  command(p.a, { kind: "close" });
  settle("clearing");
  command(p.b, { kind: "fulfill_htlc", id: 2n, r: r(3) });
  command(p.b, { kind: "fulfill_htlc", id: 3n, r: r(5) });
  settle("closing");

  const pkts = [...p.a.sent, ...p.b.sent];
  const sigs = new Set<string>();
  for (const k of pkts) {
    if (k.kind === "update_commit" || k.kind === "open_commit_sig" || k.kind === "close_signature")
      sigs.add(k.sig.toString("hex"));
    if (k.kind === "open_anchor") sigs.add(k.commitSig.toString("hex"));
  }
  const rHashes = new Set(PREIMAGES.map((i) => sha256(R(i)).toString("hex")));
  return { snapshots, pkts, pair: p, rHashes, sigs };
}
