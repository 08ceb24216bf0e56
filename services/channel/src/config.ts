/** The channel service's settings: the only place that reads the environment. */
import { hostname } from "node:os";
import { msat } from "@ln/bitcoin";
import { readCrashSettings, type CrashSettings } from "@ln/crash";
import { EnvReader, formatProblems, type HostPort, type NatsSettings } from "@ln/env";
import {
  DEFAULT_INBOUND_OPENING_LIMITS as INBOUND,
  type InboundOpeningLimits,
} from "./peers/inbound-openings.js";
import { RECONNECT_EVERY_MS } from "./peers/reconnect.js";
import { defaultForwardingPolicy, type ForwardingPolicy } from "./forwarding/policy.js";
import { DEFAULT_GOSSIP_SETTINGS as GOSSIP, type GossipSettings } from "./gossip/gossip.js";

export interface Config {
  databaseUrl: string;
  /** Postgres schema of the service's tables (default "channel"). */
  databaseSchema: string;
  /** NATS_URL and its credentials (NATS_CREDS_FILE, NATS_USER/NATS_PASSWORD or NATS_TOKEN). */
  nats: NatsSettings;
  /** This node's subject prefix: the gateway's is `<prefix>.peer`, the chain watcher's `<prefix>.chain`. */
  prefix: string;
  signer: { addr: string; caFile: string; certFile: string; keyFile: string; serverName: string | undefined };
  /** host:port of the control API. */
  apiListen: { host: string; port: number };
  /** CHANNEL_OPS_LISTEN: where to serve /metrics, /healthz and /readyz over HTTP; none if unset. */
  opsListen: HostPort | undefined;
  /** An admin token to store (hashed) at start, e.g. from a Kubernetes Secret. Never logged. */
  adminToken: string | undefined;
  replicaId: string;
  leaseMs: number;
  network: "regtest" | "testnet" | "bitcoin";
  terms: { delayBlocks: number; minDepth: number; feeRate: number };
  /** Bounds on the channels peers open to us (inbound-openings.ts). */
  inboundOpenings: InboundOpeningLimits;
  /** Satoshi per 1000 vbytes for wallet spends (the anchor, withdrawals). */
  walletFeeRate: number;
  /** How often the peers of our live channels are redialed when their connection dropped. */
  reconnectMs: number;
  /** Status events: GET /v1/events bounds, the log's safety-net poll, the NATS relay's stream. */
  events: {
    maxStreams: number;
    heartbeatMs: number;
    stallMs: number;
    tokenCheckMs: number;
    pollMs: number;
    /** The JetStream stream of `<prefix>.events.>` (the relay creates it). */
    stream: string;
  };
  /** FORWARD_*: the forwarding policy of a channel that has none of its own (forwarding/policy.ts). */
  forwarding: ForwardingPolicy;
  /** GOSSIP_*: announcing our channels and node, and taking others' gossip (gossip/gossip.ts). */
  gossip: GossipSettings;
  /** LN_CRASH_AT and LN_CRASH_TRACE: crash points, for tests only (@ln/crash); unset: inert. */
  crash: CrashSettings;
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,255}$/;

/** The default events stream of a prefix: "ln.node1" -> "LN_NODE1_EVENTS". */
export const defaultEventsStreamName = (lnPrefix: string): string =>
  `${lnPrefix.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}_EVENTS`;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const r = new EnvReader(env);

  const databaseUrl = r.need("CHANNEL_DATABASE_URL", "the Postgres URL, e.g. postgres://channel@db/node");
  const databaseSchema = r.schemaName("CHANNEL_DATABASE_SCHEMA", "channel");
  const prefix = r.subjectPrefix(
    "LN_PREFIX",
    "this node's NATS subject prefix, the same for its four services, e.g. ln.node1",
    "NATS tokens",
  );
  const signerAddr = r.need("SIGNER_ADDR", "host:port of the signer's gRPC endpoint");
  const caFile = r.need("SIGNER_CLIENT_CA", "path of the CA certificate the signer's certificate chains to");
  const certFile = r.need("SIGNER_CLIENT_CERT", "path of this service's client certificate (PEM)");
  const keyFile = r.need("SIGNER_CLIENT_KEY", "path of this service's client key (PEM)");
  const apiListen = r.hostPort("CHANNEL_API_LISTEN", "host:port for the control API, e.g. 0.0.0.0:8080", {
    allowPortZero: true,
  }) ?? { host: "", port: 0 };
  const opsListen = r.opsListen("CHANNEL_OPS_LISTEN", "0.0.0.0:9090");
  const adminToken = r.get("CHANNEL_ADMIN_TOKEN");
  if (adminToken !== undefined && !/^[\x21-\x7e]{24,512}$/.test(adminToken))
    r.problem("CHANNEL_ADMIN_TOKEN must be 24 to 512 printable characters without spaces");
  const network = r.get("CHANNEL_NETWORK") ?? "regtest";
  if (network !== "regtest" && network !== "testnet" && network !== "bitcoin")
    r.problem(`CHANNEL_NETWORK must be regtest, testnet or bitcoin, got ${JSON.stringify(network)}`);
  const eventsStream = r.get("CHANNEL_EVENTS_STREAM") ?? defaultEventsStreamName(prefix);
  if (!STREAM_NAME.test(eventsStream))
    r.problem(
      `CHANNEL_EVENTS_STREAM must be letters, digits, _ and - (a JetStream stream name), got ${JSON.stringify(eventsStream)}`,
    );
  const delayBlocks = r.int("CHANNEL_DELAY_BLOCKS", 144, 1, 2016);
  const fwd = defaultForwardingPolicy(delayBlocks);
  const config: Config = {
    databaseUrl,
    databaseSchema,
    nats: r.nats(),
    prefix,
    signer: { addr: signerAddr, caFile, certFile, keyFile, serverName: r.get("SIGNER_SERVERNAME") },
    apiListen,
    opsListen,
    adminToken,
    replicaId: r.get("CHANNEL_REPLICA_ID") ?? `${hostname()}-${process.pid}`,
    leaseMs: r.int("CHANNEL_LEASE_MS", 15_000, 1000, 600_000),
    network: network as Config["network"],
    terms: {
      delayBlocks,
      minDepth: r.int("CHANNEL_MIN_DEPTH", 1, 1, 100),
      feeRate: r.int("CHANNEL_FEE_RATE", 10_000, 1000, 1_000_000),
    },
    walletFeeRate: r.int("CHANNEL_WALLET_FEE_RATE", 2000, 1000, 1_000_000),
    reconnectMs: r.int("CHANNEL_RECONNECT_S", RECONNECT_EVERY_MS / 1000, 1, 86_400) * 1000,
    inboundOpenings: {
      maxOpening: r.int("CHANNEL_MAX_INBOUND_OPENING", INBOUND.maxOpening, 0, 100_000),
      perPeerFailures: r.int("CHANNEL_INBOUND_FAILURES_PER_PEER", INBOUND.perPeerFailures, 0, 100_000),
      totalFailures: r.int("CHANNEL_INBOUND_FAILURES_TOTAL", INBOUND.totalFailures, 0, 1_000_000),
      windowMs: r.int("CHANNEL_INBOUND_WINDOW_S", INBOUND.windowMs / 1000, 1, 30 * 86_400) * 1000,
    },
    events: {
      maxStreams: r.int("CHANNEL_EVENT_STREAMS_MAX", 100, 0, 100_000),
      heartbeatMs: r.int("CHANNEL_EVENT_HEARTBEAT_S", 15, 1, 3600) * 1000,
      stallMs: r.int("CHANNEL_EVENT_STALL_S", 60, 1, 3600) * 1000,
      tokenCheckMs: r.int("CHANNEL_EVENT_TOKEN_CHECK_S", 30, 1, 3600) * 1000,
      pollMs: r.int("CHANNEL_EVENT_POLL_MS", 5000, 100, 600_000),
      stream: eventsStream,
    },
    // The outgoing HTLC's redemption deadline must come before the incoming one's (DESIGN.md 10):
    // the delta covers the outgoing channel's delay plus a confirmation margin.
    forwarding: {
      feeBaseMsat: msat(BigInt(r.int("FORWARD_FEE_BASE_MSAT", Number(fwd.feeBaseMsat), 0, 999_999_999))),
      feeProportionalMillionths: BigInt(
        r.int("FORWARD_FEE_PROPORTIONAL_MILLIONTHS", Number(fwd.feeProportionalMillionths), 0, 999_999_999),
      ),
      cltvExpiryDelta: r.int("FORWARD_CLTV_EXPIRY_DELTA", fwd.cltvExpiryDelta, 1, 65_535),
      htlcMinimumMsat: msat(
        BigInt(r.int("FORWARD_HTLC_MINIMUM_MSAT", Number(fwd.htlcMinimumMsat), 0, 999_999_999)),
      ),
    },
    gossip: {
      announceDepth: r.int("GOSSIP_ANNOUNCE_DEPTH", GOSSIP.announceDepth, 1, 1000),
      alias: gossipAlias(r),
      addresses: gossipAddresses(r),
      refreshSeconds: r.int("GOSSIP_REFRESH_S", GOSSIP.refreshSeconds, 60, 14 * 86_400),
      rateBurst: r.int("GOSSIP_RATE_BURST", GOSSIP.rateBurst, 1, 1_000_000),
      ratePerSecond: r.int("GOSSIP_RATE_PER_S", GOSSIP.ratePerSecond, 1, 1_000_000),
      recheckPerBlock: r.int("GOSSIP_RECHECK_PER_BLOCK", GOSSIP.recheckPerBlock, 0, 100_000),
      syncMax: r.int("GOSSIP_SYNC_MAX", GOSSIP.syncMax, 0, 10_000_000),
      ...(r.get("GOSSIP_DISABLE_AFTER_S") !== undefined
        ? { disableAfterSeconds: r.int("GOSSIP_DISABLE_AFTER_S", 0, 0, 14 * 86_400) }
        : {}),
    },
    crash: readCrashSettings(
      (n) => r.get(n),
      (l) => r.problem(l),
      "channel",
    ),
  };
  if (r.problems.length > 0)
    throw new ConfigError(formatProblems("channel service configuration", r.problems));
  return config;
}

/** GOSSIP_ALIAS: at most 32 bytes of UTF-8 (node_announcement); unset: derived from the node id. */
function gossipAlias(r: EnvReader): string | undefined {
  const alias = r.get("GOSSIP_ALIAS");
  if (alias !== undefined && Buffer.byteLength(alias, "utf8") > 32)
    r.problem(`GOSSIP_ALIAS must be at most 32 bytes of UTF-8, got ${Buffer.byteLength(alias, "utf8")}`);
  return alias;
}

/** GOSSIP_ADDRESSES: our public "host:port"s, comma-separated, at most 4 (node_announcement). */
function gossipAddresses(r: EnvReader): string[] {
  const v = r.get("GOSSIP_ADDRESSES");
  if (v === undefined || v.trim() === "") return [];
  const list = v.split(",").map((x) => x.trim());
  if (list.length > 4) r.problem(`GOSSIP_ADDRESSES takes at most 4 addresses, got ${list.length}`);
  for (const a of list)
    if (!/^[^\s:,]+:\d{1,5}$/.test(a) && !/^\[[0-9a-fA-F:]+\]:\d{1,5}$/.test(a))
      r.problem(`GOSSIP_ADDRESSES: ${JSON.stringify(a)} is not host:port`);
  return list.slice(0, 4);
}
