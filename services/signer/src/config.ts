/** The signer's settings: the only place that reads the environment. */
import { parseListen, type HostPort } from "@ln/metrics";
import { SignerError } from "./errors.js";

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
  /** SIGNER_OPS_LISTEN: where to serve /metrics, /healthz and /readyz over HTTP; none if unset. */
  opsListen: HostPort | undefined;
}

const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const problems: string[] = [];
  const need = (name: string, what: string): string => {
    const v = env[name];
    if (v === undefined || v.trim() === "") {
      problems.push(`${name} is not set (${what})`);
      return "";
    }
    return v.trim();
  };
  const databaseUrl = need("SIGNER_DATABASE_URL", "the Postgres URL, e.g. postgres://signer@db/signer");
  const listen = need("SIGNER_LISTEN", "host:port to serve gRPC on, e.g. 0.0.0.0:50051");
  const caFile = need("SIGNER_TLS_CA", "path of the CA certificate that client certificates must chain to");
  const certFile = need("SIGNER_TLS_CERT", "path of the server certificate chain (PEM)");
  const keyFile = need("SIGNER_TLS_KEY", "path of the server private key (PEM)");
  const seedFile = need("SIGNER_SEED_FILE", "path of the encrypted seed file; created on first start");
  const seedKeyHex = need("SIGNER_SEED_KEY", "64 hex characters: the AES-256-GCM key of the seed file");
  const databaseSchema = env["SIGNER_DATABASE_SCHEMA"]?.trim() || "signer";
  if (!SCHEMA_NAME.test(databaseSchema))
    problems.push(
      `SIGNER_DATABASE_SCHEMA must match ${SCHEMA_NAME.source}, got ${JSON.stringify(databaseSchema)}`,
    );
  let seedKey = Buffer.alloc(0);
  if (seedKeyHex !== "") {
    if (!/^[0-9a-fA-F]{64}$/.test(seedKeyHex))
      problems.push("SIGNER_SEED_KEY must be 64 hex characters (32 bytes)");
    else seedKey = Buffer.from(seedKeyHex, "hex");
  }
  const satoshi = (name: string, fallback: string): bigint => {
    const text = env[name]?.trim() || fallback;
    if (/^[0-9]{1,15}$/.test(text)) return BigInt(text);
    problems.push(`${name} must be a whole number of satoshi, got ${JSON.stringify(text)}`);
    return 0n;
  };
  const maxFeeSat = satoshi("SIGNER_MAX_FEE_SAT", "100000");
  const maxWithdrawalSat = satoshi("SIGNER_MAX_WITHDRAWAL_SAT", "0");
  const opsText = env["SIGNER_OPS_LISTEN"]?.trim() || undefined;
  const opsListen = opsText === undefined ? undefined : parseListen(opsText);
  if (opsText !== undefined && opsListen === undefined)
    problems.push(
      `SIGNER_OPS_LISTEN must be host:port for the HTTP /metrics, /healthz and /readyz (e.g. 0.0.0.0:9100; port 0: any free port), got ${JSON.stringify(opsText)}`,
    );
  if (problems.length > 0)
    throw new SignerError("CONFIG", `signer configuration:\n  ${problems.join("\n  ")}`);
  return {
    databaseUrl,
    databaseSchema,
    listen,
    tls: { caFile, certFile, keyFile },
    seedFile,
    seedKey,
    maxFeeSat,
    maxWithdrawalSat,
    opsListen,
  };
}
