/**
 * The channel service's answer to the gateway's ack request (peers/router.ts, draft 1.2): it is
 * the count of the peer's messages the channel processed. A message taken on the previous
 * connection but still in the channel's lane (its transaction not committed) must be counted
 * once it commits, never left out: the peer resends everything above the ack on the new
 * connection, and a message left out would be processed twice (the chaos run's "the preimage does
 * not hash to the revocation hash" on a repeated update_revocation).
 */
import { describe, expect, it } from "vitest";
import type { Msg, NatsConnection, NatsError, Subscription, SubscriptionOptions } from "nats";
import type { ChannelState, Input, Output } from "@ln/channel-core";
import { silentLog } from "@ln/log";
import { decodeAckReply, encodePeerEvent, encodePkt, peerSubjects } from "@ln/proto";
import { ChannelRegistry } from "../src/channels/registry.js";
import type { ChannelRow, ChannelStore } from "../src/channels/store.js";
import type { NatsPeerLink } from "../src/peers/peer-link.js";
import { PeerRouter } from "../src/peers/router.js";

const PREFIX = "t.peer";
const PEER = `03${"cd".repeat(32)}`;
const CHANNEL = "chan-1";

/** The subjects the router subscribed to, delivered to by hand (no NATS server involved). */
class FakeNats {
  readonly handlers = new Map<string, (e: NatsError | null, m: Msg) => void>();
  subscribe(subject: string, opts: SubscriptionOptions): Subscription {
    if (opts.callback) this.handlers.set(subject, opts.callback);
    return { unsubscribe: () => this.handlers.delete(subject) } as unknown as Subscription;
  }
  deliver(pattern: string, subject: string, data: Uint8Array, respond?: (d: Uint8Array) => void): void {
    const h = this.handlers.get(pattern);
    if (!h) throw new Error(`nothing subscribed to ${pattern}`);
    h(null, { subject, data, respond: (d?: Uint8Array) => (respond?.(d ?? new Uint8Array()), true) } as Msg);
  }
}

/** Event-loop turns (no timers): the router's fakes all answer within a few. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((r) => setImmediate(r));
}

describe("the ack answer (peers/router.ts)", () => {
  it("counts a message still in the channel's lane once it commits, so the peer does not resend it", async () => {
    const nats = new FakeNats();
    const registry = new ChannelRegistry();
    registry.hold(CHANNEL, { peer: PEER, signerChannel: 0, awaitingConnection: false });
    /** The channel's committed count of the peer's messages (what store.load shows). */
    let committed = 0;
    const row: ChannelRow = {
      id: CHANNEL,
      peerNodeId: PEER,
      signerChannel: 0,
      phase: "normal",
      leaseOwner: "r-1",
      leaseHeld: true,
      createdAt: new Date(0),
      shortChannelId: undefined,
    };
    const store = {
      liveWith: (peer: string) => Promise.resolve(peer === PEER ? row : undefined),
      load: () => Promise.resolve({ receivedCount: committed, deferred: [] } as unknown as ChannelState),
    } as unknown as ChannelStore;
    // The lane: the message's transaction commits when the test lets it.
    let commit: (() => void) | undefined;
    const taken = new Promise<void>((fedNow) => {
      const feed = (_id: string, input: Input): Promise<Output[]> => {
        expect(input.type).toBe("pkt");
        fedNow();
        return new Promise<Output[]>((resolve) => {
          commit = () => {
            committed++;
            resolve([]);
          };
        });
      };
      const router = new PeerRouter({
        nc: nats as unknown as NatsConnection,
        peerPrefix: PREFIX,
        store,
        registry,
        link: {} as NatsPeerLink,
        peers: { connect: () => Promise.resolve(), list: () => Promise.resolve([]), resync: () => undefined },
        feed,
        accept: () => Promise.reject(new Error("no openings here")),
        log: silentLog,
        report: (what: string, e: unknown) => {
          throw new Error(`${what}: ${String(e)}`);
        },
      });
      router.start();
    });
    const subjects = peerSubjects(PREFIX, PEER);
    // A message of the old connection reaches the channel's lane...
    nats.deliver(`${PREFIX}.*.in`, subjects.in, encodePkt({ kind: "update_fee", feeRate: 1000 }));
    await taken;
    // ...then the gateway asks for the ack of the new connection while it is not committed yet.
    const answer = new Promise<bigint>((resolve) =>
      nats.deliver(`${PREFIX}.*.ack`, subjects.ack, new Uint8Array(), (d) => resolve(decodeAckReply(d))),
    );
    await turns(20); // the ack request reaches the store if nothing holds it back
    commit?.();
    // The message is processed: the ack must say so, or the peer resends it and it runs twice.
    expect(await answer).toBe(1n);
  });

  it("drops the connection when a message is not stored, and the peer's next ones until it reconnects", async () => {
    const nats = new FakeNats();
    const registry = new ChannelRegistry();
    registry.hold(CHANNEL, { peer: PEER, signerChannel: 0, awaitingConnection: false });
    const row: ChannelRow = {
      id: CHANNEL,
      peerNodeId: PEER,
      signerChannel: 0,
      phase: "normal",
      leaseOwner: "r-1",
      leaseHeld: true,
      createdAt: new Date(0),
      shortChannelId: undefined,
    };
    const store = {
      liveWith: (peer: string) => Promise.resolve(peer === PEER ? row : undefined),
    } as unknown as ChannelStore;
    const fed: number[] = [];
    const reported: string[] = [];
    let resyncs = 0;
    const router = new PeerRouter({
      nc: nats as unknown as NatsConnection,
      peerPrefix: PREFIX,
      store,
      registry,
      link: {} as NatsPeerLink,
      peers: {
        connect: () => Promise.resolve(),
        list: () => Promise.resolve([]),
        resync: (peer) => void (peer === PEER && resyncs++),
      },
      // The first message's transaction fails (Postgres restarting): it is not stored.
      feed: (_id: string, input: Input): Promise<Output[]> => {
        if (input.type !== "pkt" || input.pkt.kind !== "update_fee") return Promise.resolve([]);
        fed.push(input.pkt.feeRate);
        return fed.length === 1
          ? Promise.reject(new Error("the database system is shutting down"))
          : Promise.resolve([]);
      },
      accept: () => Promise.reject(new Error("no openings here")),
      log: silentLog,
      report: (what: string) => void reported.push(what),
    });
    router.start();
    const subjects = peerSubjects(PREFIX, PEER);
    const fee = (feeRate: number): void =>
      nats.deliver(`${PREFIX}.*.in`, subjects.in, encodePkt({ kind: "update_fee", feeRate }));
    fee(1001);
    await until(() => reported.length === 1);
    // Without a new connection the peer never resends it, and waits for its answer for ever.
    expect(resyncs).toBe(1);
    // Its next message would be processed after a gap: dropped, the new connection resends both.
    fee(1002);
    nats.deliver(
      `${PREFIX}.*.events`,
      subjects.events,
      encodePeerEvent({ type: "connected", theirAck: "0" }),
    );
    fee(1001);
    await until(() => fed.length === 2);
    expect(fed).toEqual([1001, 1001]);
    expect(reported).toHaveLength(1);
  });
});

/** Waits, turn by turn, for `cond` (the fakes answer within a few turns). */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !cond(); i++) await turns(1);
  if (!cond()) throw new Error("the condition never held");
}
