/**
 * Across services: two nodes, each a signer service (gRPC over mutual TLS, its own Postgres
 * schema), a channel service (store + runner on Postgres) and a peer gateway (TCP, BOLT #8,
 * authenticate, with the handshake ECDH and session signature done by the signer), over real
 * NATS, and a chain watcher each on a regtest node. A channel opens on a real anchor, pays, loses its connection mid-payment and finishes after the reconnect
 * retransmits from the outbox. Every signature and preimage comes from the signers' policy.
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { msat, sat, sha256, txidFromHex } from "@ln/bitcoin";
import { createChannel, type ChannelState, type Input } from "@ln/channel-core";
import {
  attachChain,
  attachPeer,
  ChannelRunner,
  ChannelStore,
  grpcCoreSigner,
  NatsPeerLink,
  requestWatch,
  recordPeerRevocation,
  signedBroadcast,
} from "@ln/channel-service";
import { startRegtest, type Regtest } from "@ln/regtest";
import { anchorScript, p2shOutput, toOtherScript } from "@ln/scripts";
import { ChainWatcher, serveWatchRequests } from "@ln/watchtower-service";
import { networks, payments } from "bitcoinjs-lib";
import { PeerGateway } from "@ln/peer-service";
import { peerSubjects } from "@ln/proto";
import { SignerClient } from "@ln/signer-client";
import {
  KeyRing,
  SignerService,
  SignerStore,
  startServer,
  type RunningServer,
} from "@ln/signer-service/embedded";
import { connect, type NatsConnection } from "nats";
import pg from "pg";
// The signer's own test certificates (a CA, a server and a client certificate, by openssl).
import { CLIENT_OPTIONS, makePems } from "../../services/signer/test/helpers.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const run = randomBytes(4).toString("hex");
const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test", max: 8 });
let nc: NatsConnection;
const CHANNEL = "chan-1";

type Side = "A" | "B";
interface Node {
  side: Side;
  prefix: string;
  nodeId: Buffer;
  signer: SignerClient;
  signerServer: RunningServer;
  store: ChannelStore;
  runner: ChannelRunner;
  gateway: PeerGateway;
  finalKey: Buffer;
}

const pems = makePems();
const ids = {} as Record<Side, Buffer>;
const other = (s: Side): Side => (s === "A" ? "B" : "A");
const nodes = {} as Record<Side, Node>;

function gatewayFor(side: Side, signer: SignerClient): PeerGateway {
  const prefix = `t${run}.${side.toLowerCase()}.peer`;
  return new PeerGateway({
    nodeId: ids[side],
    // The node key stays in the signer.
    staticEcdh: async (point) => (await signer.call("Ecdh", { point })).shared_secret,
    signSession: async (digest) => (await signer.call("SignSession", { digest })).signature,
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

async function startSigner(
  side: Side,
  fill: number,
): Promise<{ signer: SignerClient; signerServer: RunningServer }> {
  const store = new SignerStore(pool, `cross_${run}_signer_${side.toLowerCase()}`);
  await store.migrate();
  const signerServer = await startServer({
    service: new SignerService(new KeyRing(Buffer.alloc(32, fill)), store, { maxFeeSat: 100_000n }),
    listen: "127.0.0.1:0",
    tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
    log: () => undefined,
  });
  const signer = new SignerClient(
    `127.0.0.1:${signerServer.port}`,
    { ca: pems.ca, cert: pems.clientCert, key: pems.clientKey },
    CLIENT_OPTIONS,
  );
  ids[side] = (await signer.call("NodeInfo", {})).node_pubkey;
  return { signer, signerServer };
}

async function makeNode(side: Side, signer: SignerClient, signerServer: RunningServer): Promise<Node> {
  const prefix = `t${run}.${side.toLowerCase()}.peer`;
  // This node's chain watcher: its own schema, its own subjects and JetStream stream.
  const chainPrefix = `t${run}.${side.toLowerCase()}.chain`;
  const jsm = await nc.jetstreamManager();
  await jsm.streams.add({ name: `CROSS_${run}_${side}`, subjects: [`${chainPrefix}.>`] });
  streams.push(`CROSS_${run}_${side}`);
  const watcher = new ChainWatcher({
    pool,
    schema: `cross_${run}_tower_${side.toLowerCase()}`,
    rpc: rt.rpc,
    js: nc.jetstream(),
    subjectPrefix: chainPrefix,
    startHeight: rt.height() + 1,
  });
  await watcher.migrate();
  watchers.push(watcher);
  serveWatchRequests(nc, chainPrefix, watcher);
  const peerHex = ids[other(side)].toString("hex");
  const keys = await signer.call("NewChannel", {});
  const hex = (b: Buffer): string => b.toString("hex");
  const store = new ChannelStore(pool, `cross_${run}_${side.toLowerCase()}`);
  await store.migrate();
  const link = new NatsPeerLink(nc, prefix, () => peerHex);
  const runner: ChannelRunner = new ChannelRunner(
    store,
    "replica-1",
    grpcCoreSigner(signer, () => keys.channel),
    link,
    async (id, o) => {
      // The wallet's part, stood in for by the regtest node's wallet: it pays the 2-of-2 anchor
      // script (left unconfirmed until both watches are in place).
      if (o.type === "build_anchor") {
        const redeem = anchorScript(Buffer.from(o.commitKeys[0], "hex"), Buffer.from(o.commitKeys[1], "hex"));
        const address = payments.p2sh({ redeem: { output: redeem }, network: networks.regtest })
          .address as string;
        const funded = await rt.fund(address, o.amount, { confirm: false });
        setImmediate(
          () =>
            void runner.input(id, {
              type: "anchor_built",
              outpoint: { txid: txidFromHex(funded.txid), vout: funded.vout },
              amount: o.amount,
            }),
        );
      }
      if (o.type === "watch_anchor") requestWatch(nc, chainPrefix, id, o);
      if (o.type === "revoked") {
        await recordPeerRevocation(signer, keys.channel, o);
        revocationsRecorded[side]++;
      }
      if (o.type === "closed" || o.type === "broadcast") {
        const hex = await signedBroadcast(signer, keys.channel, o.broadcast);
        if (hex !== undefined) broadcasts.push(await rt.rpc.sendRawTransaction(hex));
      }
    },
  );
  const created = createChannel({
    role: side === "A" ? "creator" : "acceptor",
    local: {
      delay: { blocks: 144 },
      minDepth: 1,
      initialFeeRate: 10_000,
      commitKey: hex(keys.commit_pubkey),
      finalKey: hex(keys.final_pubkey),
      revocationHash: hex(keys.revocation_hash_0),
      nextRevocationHash: hex(keys.revocation_hash_1),
    },
    ...(side === "A" ? { fundingSat: sat(1_000_000) } : {}),
    policy: { autoCommit: true },
    chain: { height: 1000, time: 1_700_000_000 },
  });
  await store.create(CHANNEL, created); // its open_channel goes out with the first connection
  expect(await store.acquireLease(CHANNEL, "replica-1", 120_000)).toBe(true);
  attachPeer({
    nc,
    prefix,
    peerNodeIdHex: peerHex,
    channelId: CHANNEL,
    runner,
    store,
    onError: (e) => errors.push(e.message),
  });
  attachChain({
    nc,
    prefix: chainPrefix,
    runner,
    channels: () => [CHANNEL],
    onError: (e) => errors.push(e.message),
  });
  const node: Node = {
    side,
    prefix,
    nodeId: ids[side],
    signer,
    signerServer,
    store,
    runner,
    gateway: gatewayFor(side, signer),
    finalKey: keys.final_pubkey,
  };
  nodes[side] = node;
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

let rt: Regtest;
const watchers: ChainWatcher[] = [];
const streams: string[] = [];
/** Anything the NATS adapters could not deliver: must stay empty. */
const errors: string[] = [];
/** Txids the channel services broadcast. */
const broadcasts: string[] = [];
/** Peer revocations each node's signer accepted. */
const revocationsRecorded: Record<Side, number> = { A: 0, B: 0 };

beforeAll(async () => {
  rt = await startRegtest();
  nc = await connect({ servers: "127.0.0.1:4222" });
  const a = await startSigner("A", 0x10);
  const b = await startSigner("B", 0x20);
  await makeNode("A", a.signer, a.signerServer);
  await makeNode("B", b.signer, b.signerServer);
}, 60_000);
afterAll(async () => {
  for (const n of Object.values(nodes)) {
    await n.gateway.close();
    n.signer.close();
    await n.signerServer.shutdown(1000);
  }
  const jsm = await nc.jetstreamManager();
  for (const name of streams) await jsm.streams.delete(name).catch(() => undefined);
  await nc?.drain();
  await rt?.stop();
  for (const s of ["a", "b", "signer_a", "signer_b", "tower_a", "tower_b"])
    await pool.query(`DROP SCHEMA IF EXISTS "cross_${run}_${s}" CASCADE`);
  rmSync(pems.dir, { recursive: true, force: true });
  await pool.end();
});

describe("signer + channel service + peer gateway, twice, over NATS", () => {
  it("opens on a real anchor, pays, finishes a payment across a lost connection, and closes on chain", async () => {
    const port = await nodes.B.gateway.listen(0, "127.0.0.1");
    await nodes.A.gateway.connect("127.0.0.1", port, ids.B);
    await until(
      "both anchors signed",
      async () => (await state("A")).opening.anchorSigned && (await state("B")).opening.anchorSigned,
    );
    // Both chain watchers follow the anchor; a block confirms it, the watchers report the depth,
    // each channel sends open_complete.
    await until("both watches registered", async () => {
      const counts = await Promise.all(
        ["a", "b"].map(
          async (x) => (await pool.query(`SELECT 1 FROM "cross_${run}_tower_${x}".anchor_watches`)).rowCount,
        ),
      );
      return counts.every((c) => c === 1);
    });
    await rt.mine(1);
    await until("both open", async () => {
      for (const w of watchers) await w.syncOnce();
      return (await state("A")).phase === "normal" && (await state("B")).phase === "normal";
    });

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
    nodes.A.gateway = gatewayFor("A", nodes.A.signer);
    await nodes.A.gateway.connect("127.0.0.1", port, ids.B); // authenticate acks -> retransmission
    await settle(2);
    await until(
      "second payment settled",
      async () => (await bBalance()) === 25_000_000n && (await state("A")).localCommit?.htlcs.length === 0,
    );
    expect((await state("A")).phase).toBe("normal");
    expect((await state("B")).phase).toBe("normal");
    expect((await state("A")).localCommit?.remoteMsat).toBe(25_000_000n);

    // Cooperative close (draft 4): clearing, fee negotiation by close_signature, the signer signs,
    // both broadcast the same close transaction; the node mines it.
    await input("A", { type: "command", command: { kind: "close" } });
    await until(
      "both closed",
      async () => (await state("A")).phase === "closed" && (await state("B")).phase === "closed",
    );
    // Effects run after the state is stored: wait for both broadcasts themselves.
    await until("both broadcast the close", () => Promise.resolve(broadcasts.length === 2));
    const closeFee = (await state("A")).close.ourLastFee as bigint;
    expect(closeFee % 2n).toBe(0n);
    expect(new Set(broadcasts).size).toBe(1);
    await rt.mine(1);
    const closeTx = await rt.rpc.getRawTransaction(broadcasts[0] as string, true);
    expect(typeof closeTx === "object" && (closeTx.confirmations ?? 0) >= 1).toBe(true);
    const paid = (finalKey: Buffer): bigint => {
      const script = p2shOutput(toOtherScript(finalKey)).toString("hex");
      const out =
        typeof closeTx === "object" ? closeTx.vout.find((v) => v.scriptPubKey.hex === script) : undefined;
      return BigInt(Math.round((out?.value ?? 0) * 1e8));
    };
    // Each side's balance less half the close fee (draft 3.6's split), to its final key.
    expect(paid(nodes.A.finalKey)).toBe(975_000n - closeFee / 2n);
    expect(paid(nodes.B.finalKey)).toBe(25_000n - closeFee / 2n);
    // Every commitment the peer revoked was recorded by our signer (its policy checked each).
    expect(revocationsRecorded.A).toBeGreaterThan(0);
    expect(revocationsRecorded.B).toBeGreaterThan(0);
    expect(errors).toEqual([]);
  }, 60_000);
});
