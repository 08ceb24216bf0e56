/** The signer's settings: the only place that reads the environment. */
import { readCrashSettings, type CrashSettings } from "@ln/crash";
import { EnvReader, formatProblems, type HostPort } from "@ln/env";
import { DEFAULT_CHANNEL_POLICY as D, type ChannelPolicyConfig } from "./channel-policy.js";
import { SignerError } from "./errors.js";
import { parseClients, type Clients } from "./permissions.js";
import { DEFAULT_MAX_JUSTICE_FEE_PERCENT, DEFAULT_MAX_JUSTICE_FEE_RATE } from "./justice-fee.js";

export interface Config {
  databaseUrl: string;
  /** Postgres schema for the signer's tables (default "signer"). */
  databaseSchema: string;
  /** host:port to listen on. */
  listen: string;
  tls: { caFile: string; certFile: string; keyFile: string };
  seedFile: string;
  /** Path of the file holding the seed file's AES-256-GCM key (keys.ts readSeedKeyFile). */
  seedKeyFile: string;
  /** The clients by certificate CN and their roles (SIGNER_CLIENTS, permissions.ts). */
  clients: Clients;
  /** Upper bound for a close fee and a wallet spend fee, in satoshi. */
  maxFeeSat: bigint;
  /**
   * Upper bound of the external outputs (withdrawals) of one wallet spend, in satoshi. 0 (the
   * default): no withdrawals at all.
   */
  maxWithdrawalSat: bigint;
  /**
   * Upper bound of all withdrawals signed in any 24 hours, in satoshi (withdrawals.ts); required
   * when withdrawals are enabled, undefined when they are not.
   */
  maxWithdrawalSatPerDay: bigint | undefined;
  /** Ceiling of a justice transaction's fee rate, satoshi per 1000 bytes of its signed size. */
  maxJusticeFeeRate: number;
  /** Ceiling of a justice transaction's fee as a percentage of the value it takes. */
  maxJusticeFeePercent: number;
  /** SIGNER_OPS_LISTEN: where to serve /metrics, /healthz and /readyz over HTTP; none if unset. */
  opsListen: HostPort | undefined;
  /** The bounds of channel-policy.ts: fee rate, delays, payments per period. */
  channelPolicy: ChannelPolicyConfig;
  /** LN_CRASH_AT and LN_CRASH_TRACE: crash points, for tests only (@ln/crash); unset: inert. */
  crash: CrashSettings;
}

/** SIGNER_MAX_FEE_RATE, SIGNER_{MIN,MAX}_DELAY_{BLOCKS,SECONDS}, SIGNER_MAX_PAYMENTS_SAT per SIGNER_PAYMENTS_PERIOD_SECONDS. */
function channelPolicy(
  r: EnvReader,
  satoshi: (name: string, fallback: string) => bigint,
): ChannelPolicyConfig {
  const day = 24 * 3600;
  return {
    maxFeeRate: r.int("SIGNER_MAX_FEE_RATE", D.maxFeeRate, 1, 100_000_000),
    minDelayBlocks: r.int("SIGNER_MIN_DELAY_BLOCKS", D.minDelayBlocks, 1, 65535),
    maxDelayBlocks: r.int("SIGNER_MAX_DELAY_BLOCKS", D.maxDelayBlocks, 1, 65535),
    minDelaySeconds: r.int("SIGNER_MIN_DELAY_SECONDS", D.minDelaySeconds, 1, 65535 * 512),
    maxDelaySeconds: r.int("SIGNER_MAX_DELAY_SECONDS", D.maxDelaySeconds, 1, 65535 * 512),
    maxPaymentsSat: satoshi("SIGNER_MAX_PAYMENTS_SAT", "10000000"),
    paymentsPeriodSeconds: r.int("SIGNER_PAYMENTS_PERIOD_SECONDS", day, 60, 366 * day),
  };
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const r = new EnvReader(env);
  const databaseUrl = r.need("SIGNER_DATABASE_URL", "the Postgres URL, e.g. postgres://signer@db/signer");
  const listen = r.need("SIGNER_LISTEN", "host:port to serve gRPC on, e.g. 0.0.0.0:50051");
  const caFile = r.need("SIGNER_TLS_CA", "path of the CA certificate that client certificates must chain to");
  const certFile = r.need("SIGNER_TLS_CERT", "path of the server certificate chain (PEM)");
  const keyFile = r.need("SIGNER_TLS_KEY", "path of the server private key (PEM)");
  const seedFile = r.need("SIGNER_SEED_FILE", "path of the encrypted seed file; created on first start");
  const seedKeyFile = r.need(
    "SIGNER_SEED_KEY_FILE",
    "path of the file holding the seed file's key: 64 hex characters or 32 bytes, readable only by the signer",
  );
  // Named even when empty: an operator who still sets it must learn it is ignored.
  if (env["SIGNER_SEED_KEY"] !== undefined)
    r.problem(
      "SIGNER_SEED_KEY is no longer read (the environment leaks to child processes, crash reports and /proc): " +
        "put the key in a file readable only by the signer (a mounted Secret) and set SIGNER_SEED_KEY_FILE to its path",
    );
  const parsed = parseClients(
    r.need(
      "SIGNER_CLIENTS",
      "each client certificate's CN and its role, e.g. ln-channel=channel,ln-peer=gateway,ln-watchtower=tower",
    ),
  );
  if (r.get("SIGNER_CLIENTS") !== undefined) for (const p of parsed.problems) r.problem(p);
  const databaseSchema = r.schemaName("SIGNER_DATABASE_SCHEMA", "signer");
  const satoshi = (name: string, fallback: string): bigint => {
    const text = r.get(name) ?? fallback;
    if (/^[0-9]{1,15}$/.test(text)) return BigInt(text);
    r.problem(`${name} must be a whole number of satoshi, got ${JSON.stringify(text)}`);
    return 0n;
  };
  const maxFeeSat = satoshi("SIGNER_MAX_FEE_SAT", "100000");
  const maxWithdrawalSat = satoshi("SIGNER_MAX_WITHDRAWAL_SAT", "0");
  // Withdrawals enabled: their total over any 24 hours must be bounded too, at least by one spend's.
  const perDay = r.get("SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY");
  const maxWithdrawalSatPerDay =
    perDay === undefined ? undefined : satoshi("SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY", perDay);
  if (maxWithdrawalSat > 0n && (maxWithdrawalSatPerDay ?? 0n) < maxWithdrawalSat)
    r.problem(
      `SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY (the total of the withdrawals of any 24 hours) must be at least SIGNER_MAX_WITHDRAWAL_SAT (${maxWithdrawalSat} sat) while withdrawals are enabled`,
    );
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
  const bounds = channelPolicy(r, satoshi);
  const crash = readCrashSettings(
    (n) => r.get(n),
    (l) => r.problem(l),
    "signer",
  );
  if (r.problems.length > 0)
    throw new SignerError("CONFIG", formatProblems("signer configuration", r.problems));
  return {
    crash,
    databaseUrl,
    databaseSchema,
    listen,
    tls: { caFile, certFile, keyFile },
    seedFile,
    seedKeyFile,
    clients: parsed.clients,
    maxFeeSat,
    maxWithdrawalSat,
    maxWithdrawalSatPerDay,
    maxJusticeFeeRate,
    maxJusticeFeePercent,
    opsListen,
    channelPolicy: bounds,
  };
}
