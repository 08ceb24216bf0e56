/** The channel service's settings: the only place that reads the environment. */
import { hostname } from "node:os";

export interface Config {
  databaseUrl: string;
  /** Postgres schema of the service's tables (default "channel"). */
  databaseSchema: string;
  natsUrl: string;
  /** This node's subject prefix: the gateway's is `<prefix>.peer`, the chain watcher's `<prefix>.chain`. */
  prefix: string;
  signer: { addr: string; caFile: string; certFile: string; keyFile: string; serverName: string | undefined };
  /** host:port of the control API. */
  apiListen: { host: string; port: number };
  /** An admin token to store (hashed) at start, e.g. from a Kubernetes Secret. Never logged. */
  adminToken: string | undefined;
  replicaId: string;
  leaseMs: number;
  network: "regtest" | "testnet" | "bitcoin";
  terms: { delayBlocks: number; minDepth: number; feeRate: number };
  /** Satoshi per 1000 vbytes for wallet spends (the anchor, withdrawals). */
  walletFeeRate: number;
}

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;
const HOST_PORT = /^(.+):([0-9]{1,5})$/;

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const problems: string[] = [];
  const get = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  };
  const need = (name: string, what: string): string => {
    const v = get(name);
    if (v === undefined) problems.push(`${name} is not set (${what})`);
    return v ?? "";
  };
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const v = get(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) {
      problems.push(`${name} must be a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
      return fallback;
    }
    return n;
  };
  const hostPort = (name: string, what: string): { host: string; port: number } => {
    const v = need(name, what);
    const m = HOST_PORT.exec(v);
    if (v !== "" && (!m || Number(m[2]) > 65535))
      problems.push(`${name} must be host:port, got ${JSON.stringify(v)}`);
    return { host: m?.[1] ?? "", port: Number(m?.[2] ?? 0) };
  };

  const databaseUrl = need("CHANNEL_DATABASE_URL", "the Postgres URL, e.g. postgres://channel@db/node");
  const databaseSchema = get("CHANNEL_DATABASE_SCHEMA") ?? "channel";
  if (!SCHEMA_NAME.test(databaseSchema))
    problems.push(
      `CHANNEL_DATABASE_SCHEMA must match ${SCHEMA_NAME.source}, got ${JSON.stringify(databaseSchema)}`,
    );
  const prefix = need(
    "LN_PREFIX",
    "this node's NATS subject prefix, the same for its four services, e.g. ln.node1",
  );
  if (prefix !== "" && !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(prefix))
    problems.push(`LN_PREFIX must be dot-separated NATS tokens, got ${JSON.stringify(prefix)}`);
  const signerAddr = need("SIGNER_ADDR", "host:port of the signer's gRPC endpoint");
  const caFile = need("SIGNER_CLIENT_CA", "path of the CA certificate the signer's certificate chains to");
  const certFile = need("SIGNER_CLIENT_CERT", "path of this service's client certificate (PEM)");
  const keyFile = need("SIGNER_CLIENT_KEY", "path of this service's client key (PEM)");
  const apiListen = hostPort("CHANNEL_API_LISTEN", "host:port for the control API, e.g. 0.0.0.0:8080");
  const adminToken = get("CHANNEL_ADMIN_TOKEN");
  if (adminToken !== undefined && !/^[\x21-\x7e]{24,512}$/.test(adminToken))
    problems.push("CHANNEL_ADMIN_TOKEN must be 24 to 512 printable characters without spaces");
  const network = get("CHANNEL_NETWORK") ?? "regtest";
  if (network !== "regtest" && network !== "testnet" && network !== "bitcoin")
    problems.push(`CHANNEL_NETWORK must be regtest, testnet or bitcoin, got ${JSON.stringify(network)}`);
  const config: Config = {
    databaseUrl,
    databaseSchema,
    natsUrl: get("NATS_URL") ?? "nats://127.0.0.1:4222",
    prefix,
    signer: { addr: signerAddr, caFile, certFile, keyFile, serverName: get("SIGNER_SERVERNAME") },
    apiListen,
    adminToken,
    replicaId: get("CHANNEL_REPLICA_ID") ?? `${hostname()}-${process.pid}`,
    leaseMs: int("CHANNEL_LEASE_MS", 15_000, 1000, 600_000),
    network: network as Config["network"],
    terms: {
      delayBlocks: int("CHANNEL_DELAY_BLOCKS", 144, 1, 2016),
      minDepth: int("CHANNEL_MIN_DEPTH", 1, 1, 100),
      feeRate: int("CHANNEL_FEE_RATE", 10_000, 1000, 1_000_000),
    },
    walletFeeRate: int("CHANNEL_WALLET_FEE_RATE", 2000, 1000, 1_000_000),
  };
  if (problems.length > 0)
    throw new ConfigError(`channel service configuration:\n  ${problems.join("\n  ")}`);
  return config;
}
