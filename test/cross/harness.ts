/*~ Two full nodes A and B in one process, for the cross-service tests (two-nodes.test.ts,
 * revoked-states.test.ts): each a signer service (gRPC over mutual TLS, its own Postgres schema),
 * a channel service built as main.ts builds it (buildChannelService: store, ledger with a gate,
 * node, TowerLink publishing revocation records to its own records stream, Resolver; the anchor
 * funded by the regtest node's wallet, the gateway's control in-process), a peer gateway (TCP,
 * BOLT #8, the handshake ECDH and session signature done by the signer) and a chain watcher on an
 * in-process regtest node, over real NATS and JetStream. */
import { recordingLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { msat, sat, txidFromHex } from "@ln/bitcoin";
import type { ChannelState } from "@ln/channel-core";
import {
  broadcastTx,
  buildChannelService,
  Ledger,
  requestWatch,
  towerRecordsSubject,
  type ChannelNode,
  type ChannelService,
  type ChannelStore,
  type InboundOpeningLimits,
  type Resolver,
} from "@ln/channel-service";
import { natsAckFor, PeerGateway } from "@ln/peer-service";
import { startRegtest, type Regtest } from "@ln/regtest";
import { anchorScript } from "@ln/scripts";
import { SignerClient } from "@ln/signer-client";
import {
  KeyRing,
  SignerService,
  SignerStore,
  startServer,
  type RunningServer,
} from "@ln/signer-service/embedded";
import { ChainWatcher, ensureChainStream, serveChainRequests } from "@ln/watchtower-service";
import { networks, payments } from "bitcoinjs-lib";
import { connect, type NatsConnection } from "nats";
import pg from "pg";
// The signer's own test certificates (a CA, a server and a client certificate, by openssl).
import { CLIENT_OPTIONS, makePems, TEST_CLIENTS, type Pems } from "../../services/signer/test/helpers.js";
import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";

export const DB = testDatabaseUrl();

export type Side = "A" | "B";
export interface Node {
  side: Side;
  /** The signer's seed: `new KeyRing(seed)` holds this node's keys. */
  seed: Buffer;
  /** This node's NATS subject prefix (peer, chain and tower subjects are under it). */
  prefix: string;
  peerPrefix: string;
  chainPrefix: string;
  /** The channel service's Postgres schema (store, ledger, wallet, resolution). */
  schema: string;
  /** The JetStream stream capturing this node's revocation records, and their subject. */
  recordsStream: string;
  recordsSubject: string;
  nodeId: Buffer;
  /** The signer as the channel service calls it (its client certificate, role channel). */
  signer: SignerClient;
  /** The signer as the peer gateway calls it (role gateway: the handshake only). */
  gatewaySigner: SignerClient;
  /** The signer as a watchtower calls it (role tower: SignJustice only). */
  towerSigner: SignerClient;
  signerServer: RunningServer;
  store: ChannelStore;
  ledger: GatedLedger;
  node: ChannelNode;
  resolution: Resolver;
  gateway: PeerGateway;
  watcher: ChainWatcher;
  /** The channel service as main.ts builds it (store, ledger, node, resolution are its parts). */
  service: ChannelService;
}

/** The books, with a gate on invoice lookups: closed, it holds the payee's decision back. */
export class GatedLedger extends Ledger {
  gate: Promise<void> = Promise.resolve();
  override async invoice(rHash: string): ReturnType<Ledger["invoice"]> {
    await this.gate;
    return super.invoice(rHash);
  }
  override async invoicesByHash(rHashes: readonly string[]): ReturnType<Ledger["invoicesByHash"]> {
    await this.gate;
    return super.invoicesByHash(rHashes);
  }
}

/** A new channel A-B of this many satoshi (by default), funded by A. */
export const OPEN_SAT = 500_000;

export interface Harness {
  /** This run's id: in every schema, stream and subject name. */
  run: string;
  rt: Regtest;
  /** Both nodes' services share this pool here (each has its own in production). */
  pool: pg.Pool;
  nc: NatsConnection;
  pems: Pems;
  nodes: Record<Side, Node>;
  /** JetStream streams made for this run (deleted by close()). */
  streams: string[];
  /** Every node's log lines, prefixed by its side. */
  logs: string[];
  /** Txids each node broadcast. */
  broadcasts: Record<Side, string[]>;
  other(s: Side): Side;
  lower(s: Side): string;
  /** A new peer gateway for the node (the test may replace a node's). */
  gatewayFor(n: Pick<Node, "nodeId" | "gatewaySigner" | "peerPrefix">): PeerGateway;
  /** Polls `pred` every 50 ms until true; throws with the logs after `ms`. */
  until(what: string, pred: () => Promise<boolean>, ms?: number): Promise<void>;
  /** Each side's one channel (ids are each node's own). */
  channelOf(s: Side): Promise<string>;
  state(s: Side): Promise<ChannelState>;
  /** Opens a new channel A-B (A funds `amount`) and waits until both ends are normal. */
  openChannel(amount?: number): Promise<void>;
  /** An invoice of `side`'s: its R stays in that side's signer. Returns its r_hash. */
  invoiceOf(side: Side, amountMsat: bigint): Promise<string>;
  /** Stops a node's gateway, chain consumer and channel node (its signer keeps running). */
  stopNode(side: Side): Promise<void>;
  /** Stops everything, deletes the streams, drops the schemas (and these extra ones). */
  close(extraSchemas?: string[]): Promise<void>;
}

/** Starts the regtest node, NATS, and the nodes A (signer seed 0x10...) and B (0x20...). */
export async function startHarness(
  opts: { inboundOpenings?: InboundOpeningLimits; maxPeerBacklog?: number } = {},
): Promise<Harness> {
  const run = randomBytes(4).toString("hex");
  // Room for all of both nodes' services.
  const pool = new pg.Pool({ connectionString: DB, max: 40 });
  const pems = makePems();
  const nodes = {} as Record<Side, Node>;
  const streams: string[] = [];
  const logs: string[] = [];
  const broadcasts: Record<Side, string[]> = { A: [], B: [] };
  const stopped = new Set<Side>();
  const other = (s: Side): Side => (s === "A" ? "B" : "A");
  const lower = (s: Side): string => s.toLowerCase();
  const rt = await startRegtest();
  const nc = await connect({ servers: testNatsUrl() });

  function gatewayFor(n: Pick<Node, "nodeId" | "gatewaySigner" | "peerPrefix">): PeerGateway {
    return new PeerGateway({
      nodeId: n.nodeId,
      // The node key stays in the signer.
      staticEcdh: async (point) => (await n.gatewaySigner.call("Ecdh", { point })).shared_secret,
      signSession: async (h) => (await n.gatewaySigner.call("SignSession", { handshake_hash: h })).signature,
      nats: nc,
      subjectPrefix: n.peerPrefix,
      handshakeTimeoutMs: 2000,
      // Our authenticate ack comes from the channel service, over NATS.
      ackFor: natsAckFor(nc, n.peerPrefix, 1000),
    });
  }

  async function startNode(side: Side, fill: number): Promise<Node> {
    const seed = Buffer.alloc(32, fill);
    const signerStore = new SignerStore(pool, `cross_${run}_signer_${lower(side)}`);
    await signerStore.migrate();
    const signerServer = await startServer({
      service: new SignerService(new KeyRing(seed), signerStore, { maxFeeSat: 100_000n }),
      listen: "127.0.0.1:0",
      tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
      clients: TEST_CLIENTS,
      // Refusals only (the method and the code): shown with the logs of a failing wait.
      log: recordingLog((r) => logs.push(`${side} signer: ${r.level} ${r.msg}`)),
    });
    const signer = new SignerClient(
      `127.0.0.1:${signerServer.port}`,
      { ca: pems.ca, cert: pems.clientCert, key: pems.clientKey },
      CLIENT_OPTIONS,
    );
    const gatewaySigner = new SignerClient(
      `127.0.0.1:${signerServer.port}`,
      { ca: pems.ca, cert: pems.gatewayCert, key: pems.gatewayKey },
      CLIENT_OPTIONS,
    );
    const towerSigner = new SignerClient(
      `127.0.0.1:${signerServer.port}`,
      { ca: pems.ca, cert: pems.towerCert, key: pems.towerKey },
      CLIENT_OPTIONS,
    );
    const nodeId = (await signer.call("NodeInfo", {})).node_pubkey;
    const prefix = `t${run}.${lower(side)}`;
    const [peerPrefix, chainPrefix] = [`${prefix}.peer`, `${prefix}.chain`];

    // This node's chain watcher: its own schema, subjects and JetStream stream.
    const stream = `CROSS_${run}_${side}`;
    await ensureChainStream(await nc.jetstreamManager(), stream, chainPrefix);
    streams.push(stream);
    const watcher = new ChainWatcher({
      pool,
      schema: `cross_${run}_tower_${lower(side)}`,
      rpc: rt.rpc,
      js: nc.jetstream(),
      subjectPrefix: chainPrefix,
      startHeight: rt.height() + 1,
    });
    await watcher.migrate();
    serveChainRequests(nc, chainPrefix, watcher);

    // Where the revocation records go (the watchtower's stream; here without a tower).
    const recordsStream = `CROSS_${run}_${side}_RECORDS`;
    const recordsSubject = towerRecordsSubject(prefix);
    await (await nc.jetstreamManager()).streams.add({ name: recordsStream, subjects: [recordsSubject] });
    streams.push(recordsStream);

    const schema = `cross_${run}_${lower(side)}`;
    // The wallet's part, stood in for by the regtest node's wallet: it pays the 2-of-2 anchor
    // script (left unconfirmed until both watches are in place).
    const anchors = new Map<string, string>();
    const log = recordingLog((r) => logs.push(`${side}: ${r.alert ? "ALERT " : ""}${r.level} ${r.msg}`));
    // The service as main.ts builds it; sweeps go to this node's wallet keys (the anchors above
    // are the regtest wallet's, so the Wallet does not follow chain events here).
    const service = await buildChannelService({
      pool,
      nc,
      signer,
      nodeId,
      settings: {
        databaseSchema: schema,
        prefix,
        replicaId: "replica-1",
        leaseMs: 60_000,
        network: "regtest",
        terms: { delayBlocks: 144, minDepth: 1, feeRate: 10_000 },
        walletFeeRate: 10_000,
        inboundOpenings: opts.inboundOpenings,
        maxPeerBacklog: opts.maxPeerBacklog,
        version: "test",
      },
      log,
      standIns: {
        ledger: new GatedLedger(pool, schema),
        chain: {
          broadcast: async (hex) => {
            const txid = await broadcastTx(nc, chainPrefix, hex);
            broadcasts[side].push(txid);
            return txid;
          },
          tip: () => Promise.resolve({ height: rt.height(), time: 1_700_000_000 }),
          watchAnchor: (id, o) => requestWatch(nc, chainPrefix, id, o),
        },
        anchors: {
          fundAnchor: async ({ channelId, amount, commitKeys }) => {
            const redeem = anchorScript(Buffer.from(commitKeys[0], "hex"), Buffer.from(commitKeys[1], "hex"));
            const address = payments.p2sh({ redeem: { output: redeem }, network: networks.regtest })
              .address as string;
            const funded = await rt.fund(address, amount, { confirm: false });
            anchors.set(channelId, funded.hex);
            return {
              outpoint: { txid: txidFromHex(funded.txid), vout: funded.vout },
              amount,
              txid: funded.txid,
            };
          },
          anchorTx: (channelId) => Promise.resolve(anchors.get(channelId)),
          releaseAnchor: () => Promise.resolve(false),
          watchFinalKey: () => Promise.resolve(),
        },
        // Through this node's gateway of the moment (a test may replace it on purpose).
        peers: {
          connect: async (p) =>
            void (await nodes[side].gateway.connect(p.host, p.port, Buffer.from(p.nodeId, "hex"))),
          list: () => Promise.resolve(nodes[side]?.gateway.connections ?? []),
          resync: (id) => void nodes[side].gateway.disconnect(id, "RESYNC"),
        },
        durable: `cross-${run}-${side}`,
        walletFollowsChain: false,
      },
    });
    await service.start();
    const n: Node = {
      side,
      seed,
      prefix,
      peerPrefix,
      chainPrefix,
      schema,
      recordsStream,
      recordsSubject,
      nodeId,
      signer,
      gatewaySigner,
      towerSigner,
      signerServer,
      store: service.store,
      ledger: service.ledger as GatedLedger,
      node: service.node,
      resolution: service.resolution,
      service,
      gateway: gatewayFor({ nodeId, gatewaySigner, peerPrefix }),
      watcher,
    };
    nodes[side] = n;
    return n;
  }

  async function until(what: string, pred: () => Promise<boolean>, ms = 20_000): Promise<void> {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (await pred()) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`timed out waiting for ${what}; logs:\n${logs.join("\n")}`);
  }
  const channelOf = async (s: Side): Promise<string> =>
    (await nodes[s].store.liveWith(nodes[other(s)].nodeId.toString("hex")))?.id ??
    ((await nodes[s].store.rows())[0]?.id as string);
  const state = async (s: Side): Promise<ChannelState> =>
    (await nodes[s].store.load(await channelOf(s))) as ChannelState;

  async function openChannel(amount = OPEN_SAT): Promise<void> {
    await nodes.A.node.open(nodes.B.nodeId.toString("hex"), sat(amount));
    await until("anchors signed", async () => {
      const [a, b] = [
        await nodes.A.store.liveWith(nodes.B.nodeId.toString("hex")),
        await nodes.B.store.liveWith(nodes.A.nodeId.toString("hex")),
      ];
      return Boolean(
        a && b && (await state("A")).opening.anchorSigned && (await state("B")).opening.anchorSigned,
      );
    });
    await until("open", async () => {
      await rt.mine(1);
      for (const n of Object.values(nodes)) await n.watcher.syncOnce();
      return (await state("A")).phase === "normal" && (await state("B")).phase === "normal";
    });
  }

  async function invoiceOf(side: Side, amountMsat: bigint): Promise<string> {
    const n = nodes[side];
    const inv = await n.ledger.addInvoice(
      async (index, amount) =>
        (await n.signer.call("InvoiceHash", { index, amount_msat: amount })).r_hash.toString("hex"),
      msat(amountMsat),
      "",
    );
    return inv.rHash;
  }

  async function stopNode(side: Side): Promise<void> {
    if (stopped.has(side)) return;
    stopped.add(side);
    const n = nodes[side];
    await n.gateway.close();
    await n.service.stop();
  }

  async function close(extraSchemas: string[] = []): Promise<void> {
    for (const n of Object.values(nodes)) {
      await stopNode(n.side);
      n.signer.close();
      n.gatewaySigner.close();
      n.towerSigner.close();
      await n.signerServer.shutdown(1000);
    }
    const jsm = await nc.jetstreamManager();
    for (const name of streams) await jsm.streams.delete(name).catch(() => undefined);
    await nc.drain();
    await rt.stop();
    for (const s of ["a", "b", "signer_a", "signer_b", "tower_a", "tower_b"])
      await pool.query(`DROP SCHEMA IF EXISTS "cross_${run}_${s}" CASCADE`);
    for (const s of extraSchemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
    rmSync(pems.dir, { recursive: true, force: true });
    await pool.end();
  }

  await startNode("A", 0x10);
  await startNode("B", 0x20);
  return {
    run,
    rt,
    pool,
    nc,
    pems,
    nodes,
    streams,
    logs,
    broadcasts,
    other,
    lower,
    gatewayFor,
    until,
    channelOf,
    state,
    openChannel,
    invoiceOf,
    stopNode,
    close,
  };
}
