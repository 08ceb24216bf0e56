/**
 * Across services: two channel services (store + runner on real Postgres) talking through two
 * peer gateways (real TCP, BOLT #8, authenticate) over real NATS. A channel opens, pays, loses
 * its connection mid-payment and finishes after the reconnect retransmits from the outbox.
 */
import { randomBytes } from "node:crypto";
import { msat, sat, sha256, txidFromHex } from "@ln/bitcoin";
import { createChannel, type ChannelState, type Input } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import { attachPeer, ChannelRunner, ChannelStore, NatsPeerLink } from "@ln/channel-service";
import { PeerGateway } from "@ln/peer-service";
import { peerSubjects } from "@ln/proto";
import { localSignSession, localStaticEcdh } from "@ln/transport";
import { connect, type NatsConnection } from "nats";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = randomBytes(4).toString("hex");
const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test", max: 8 });
let nc: NatsConnection;
const CHANNEL = "chan-1";

type Side = "A" | "B";
interface Node {
  side: Side;
  prefix: string;
  nodeKey: { priv: Buffer; pub: Buffer };
  signer: TestSigner;
  store: ChannelStore;
  runner: ChannelRunner;
  gateway: PeerGateway;
}

const nodeKey = (fill: number): { priv: Buffer; pub: Buffer } => {
  const priv = Buffer.alloc(32, fill);
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
};
const keys = { A: nodeKey(0x71), B: nodeKey(0x72) };
const other = (s: Side): Side => (s === "A" ? "B" : "A");
const nodes = {} as Record<Side, Node>;

function gatewayFor(side: Side): PeerGateway {
  const prefix = nodes[side]?.prefix ?? `t${run}.${side.toLowerCase()}.peer`;
  return new PeerGateway({
    nodeId: keys[side].pub,
    staticEcdh: localStaticEcdh(keys[side].priv),
    signSession: localSignSession(keys[side].priv),
    nats: nc,
    subjectPrefix: prefix,
    handshakeTimeoutMs: 2000,
    // Our authenticate ack comes from the channel service, over NATS.
    ackFor: async (peer) =>
      BigInt(
        (
          await nc.request(peerSubjects(prefix, peer.toString("hex")).ack, new Uint8Array(), {
            timeout: 2000,
          })
        ).string(),
      ),
  });
}

async function makeNode(side: Side, fill: number): Promise<Node> {
  const prefix = `t${run}.${side.toLowerCase()}.peer`;
  const peerHex = keys[other(side)].pub.toString("hex");
  const signer = new TestSigner(fill);
  const store = new ChannelStore(pool, `cross_${run}_${side.toLowerCase()}`);
  await store.migrate();
  const link = new NatsPeerLink(nc, prefix, () => peerHex);
  const runner: ChannelRunner = new ChannelRunner(
    store,
    "replica-1",
    { answer: async (_id, r) => signer.answer(r) },
    link,
    async (id, o) => {
      // The wallet's part, faked: the anchor is "built" at once (no chain in this test).
      if (o.type === "build_anchor")
        setImmediate(
          () =>
            void runner.input(id, {
              type: "anchor_built",
              outpoint: { txid: txidFromHex("cd".repeat(32)), vout: 0 },
              amount: o.amount,
            }),
        );
    },
  );
  const created = createChannel({
    role: side === "A" ? "creator" : "acceptor",
    local: {
      delay: { blocks: 144 },
      minDepth: 1,
      initialFeeRate: 10_000,
      commitKey: signer.commitKey,
      finalKey: signer.finalKey,
      revocationHash: signer.revocationHash(0n),
      nextRevocationHash: signer.revocationHash(1n),
    },
    ...(side === "A" ? { fundingSat: sat(1_000_000) } : {}),
    policy: { autoCommit: true },
    chain: { height: 1000, time: 1_700_000_000 },
  });
  await store.create(CHANNEL, created); // its open_channel goes out with the first connection
  expect(await store.acquireLease(CHANNEL, "replica-1", 120_000)).toBe(true);
  attachPeer({ nc, prefix, peerNodeIdHex: peerHex, channelId: CHANNEL, runner, store });
  const node: Node = {
    side,
    prefix,
    nodeKey: keys[side],
    signer,
    store,
    runner,
    gateway: undefined as unknown as PeerGateway,
  };
  nodes[side] = node;
  node.gateway = gatewayFor(side);
  return node;
}

async function until(what: string, pred: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await pred()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}
const state = async (s: Side): Promise<ChannelState> => (await nodes[s].store.load(CHANNEL)) as ChannelState;
const input = (s: Side, i: Input): Promise<unknown> => nodes[s].runner.input(CHANNEL, i);

beforeAll(async () => {
  nc = await connect({ servers: "127.0.0.1:4222" });
  await makeNode("A", 0x10);
  await makeNode("B", 0x20);
});
afterAll(async () => {
  for (const n of Object.values(nodes)) await n.gateway.close();
  await nc?.drain();
  for (const s of ["a", "b"]) await pool.query(`DROP SCHEMA IF EXISTS "cross_${run}_${s}" CASCADE`);
  await pool.end();
});

describe("channel service <-> peer gateway <-> peer gateway <-> channel service", () => {
  it("opens, pays, and finishes a payment across a lost connection", async () => {
    const port = await nodes.B.gateway.listen(0, "127.0.0.1");
    await nodes.A.gateway.connect("127.0.0.1", port, keys.B.pub);
    await until(
      "both anchors signed",
      async () => (await state("A")).opening.anchorSigned && (await state("B")).opening.anchorSigned,
    );
    for (const s of ["A", "B"] as const)
      await input(s, { type: "chain", event: { kind: "anchor_depth", depth: 1 } });
    await until(
      "both open",
      async () => (await state("A")).phase === "normal" && (await state("B")).phase === "normal",
    );

    const pay = async (n: number, amount: number): Promise<void> => {
      await input("A", {
        type: "command",
        command: {
          kind: "add_htlc",
          amountMsat: msat(amount),
          rHash: sha256(Buffer.alloc(32, n)).toString("hex"),
          expiry: { blocks: 5000 },
        },
      });
    };
    const settle = async (n: number): Promise<void> => {
      await until(`HTLC ${n} committed at B`, async () => {
        const b = await state("B");
        return Boolean(b.localCommit?.htlcs.length && b.remoteCommit?.htlcs.length);
      });
      const id = (await state("B")).localCommit?.htlcs[0]?.id as bigint;
      await input("B", {
        type: "command",
        command: { kind: "fulfill_htlc", id, r: Buffer.alloc(32, n).toString("hex") },
      });
    };
    const bBalance = async (): Promise<bigint> => (await state("B")).localCommit?.localMsat ?? 0n;

    await pay(1, 20_000_000);
    await settle(1);
    await until(
      "first payment settled on both sides",
      async () => (await bBalance()) === 20_000_000n && (await state("A")).localCommit?.htlcs.length === 0,
    );

    // The gateway on A's side goes away; A offers an HTLC meanwhile (it is stored, not delivered).
    await nodes.A.gateway.close();
    await pay(2, 5_000_000);
    nodes.A.gateway = gatewayFor("A");
    await nodes.A.gateway.connect("127.0.0.1", port, keys.B.pub); // authenticate acks -> retransmission
    await settle(2);
    await until(
      "second payment settled",
      async () => (await bBalance()) === 25_000_000n && (await state("A")).localCommit?.htlcs.length === 0,
    );
    expect((await state("A")).phase).toBe("normal");
    expect((await state("B")).phase).toBe("normal");
    expect((await state("A")).localCommit?.remoteMsat).toBe(25_000_000n);
  }, 60_000);
});
