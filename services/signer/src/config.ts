/** The signer's settings: the only place that reads the environment. */
import { EnvReader, formatProblems, type HostPort } from "@ln/env";
import { SignerError } from "./errors.js";
import { DEFAULT_MAX_JUSTICE_FEE_PERCENT, DEFAULT_MAX_JUSTICE_FEE_RATE } from "./justice-fee.js";

export interface Config {
  databaseUrl: string;
  /** Postgres schema for the signer's tables (default "signer"). */
  databaseSchema: string;
  /** host:port to listen on. */
  listen: string;
  tls: { caFile: string; certFile: string; keyFile: string };
  seedFile: string;
  /** 32-byte AES-256-GCM key for the seed file. Never logged. */
  seedKey: Buffer;
  /** Upper bound for a close fee and a wallet spend fee, in satoshi. */
  maxFeeSat: bigint;
  /**
   * Upper bound of the external outputs (withdrawals) of one wallet spend, in satoshi. 0 (the
   * default): no withdrawals at all.
   */
  maxWithdrawalSat: bigint;
  /** Ceiling of a justice transaction's fee rate, satoshi per 1000 bytes of its signed size. */
  maxJusticeFeeRate: number;
  /** Ceiling of a justice transaction's fee as a percentage of the value it takes. */
  maxJusticeFeePercent: number;
  /** SIGNER_OPS_LISTEN: where to serve /metrics, /healthz and /readyz over HTTP; none if unset. */
  opsListen: HostPort | undefined;
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const r = new EnvReader(env);
  const databaseUrl = r.need("SIGNER_DATABASE_URL", "the Postgres URL, e.g. postgres://signer@db/signer");
  const listen = r.need("SIGNER_LISTEN", "host:port to serve gRPC on, e.g. 0.0.0.0:50051");
  const caFile = r.need("SIGNER_TLS_CA", "path of the CA certificate that client certificates must chain to");
  const certFile = r.need("SIGNER_TLS_CERT", "path of the server certificate chain (PEM)");
  const keyFile = r.need("SIGNER_TLS_KEY", "path of the server private key (PEM)");
  const seedFile = r.need("SIGNER_SEED_FILE", "path of the encrypted seed file; created on first start");
  const seedKeyHex = r.need("SIGNER_SEED_KEY", "64 hex characters: the AES-256-GCM key of the seed file");
  const databaseSchema = r.schemaName("SIGNER_DATABASE_SCHEMA", "signer");
  let seedKey = Buffer.alloc(0);
  if (seedKeyHex !== "") {
    if (!/^[0-9a-fA-F]{64}$/.test(seedKeyHex))
      r.problem("SIGNER_SEED_KEY must be 64 hex characters (32 bytes)");
    else seedKey = Buffer.from(seedKeyHex, "hex");
  }
  const satoshi = (name: string, fallback: string): bigint => {
    const text = r.get(name) ?? fallback;
    if (/^[0-9]{1,15}$/.test(text)) return BigInt(text);
    r.problem(`${name} must be a whole number of satoshi, got ${JSON.stringify(text)}`);
    return 0n;
  };
  const maxFeeSat = satoshi("SIGNER_MAX_FEE_SAT", "100000");
  const maxWithdrawalSat = satoshi("SIGNER_MAX_WITHDRAWAL_SAT", "0");
  const maxJusticeFeeRate = r.int(
    "SIGNER_MAX_JUSTICE_FEE_RATE",
    DEFAULT_MAX_JUSTICE_FEE_RATE,
    1000,
    100_000_000,
    "the highest justice fee rate signed, satoshi per 1000 bytes (the tower's WATCHTOWER_MAX_FEE_RATE should not exceed it)",
  );
  const maxJusticeFeePercent = r.int(
    "SIGNER_MAX_JUSTICE_FEE_PERCENT",
    DEFAULT_MAX_JUSTICE_FEE_PERCENT,
    1,
    100,
    "the largest share of the value a justice transaction takes that may go to its fee, in percent",
  );
  const opsListen = r.opsListen("SIGNER_OPS_LISTEN", "0.0.0.0:9100");
  if (r.problems.length > 0)
    throw new SignerError("CONFIG", formatProblems("signer configuration", r.problems));
  return {
    databaseUrl,
    databaseSchema,
    listen,
    tls: { caFile, certFile, keyFile },
    seedFile,
    seedKey,
    maxFeeSat,
    maxWithdrawalSat,
    maxJusticeFeeRate,
    maxJusticeFeePercent,
    opsListen,
  };
}
