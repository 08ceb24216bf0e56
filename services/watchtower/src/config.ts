/** The watchtower process's settings: the only place that reads the environment. */
import { readCrashSettings, type CrashSettings } from "@ln/crash";
import { EnvReader, formatProblems, type HostPort, type NatsSettings } from "@ln/env";
import { DEFAULT_MAX_FEE_PERCENT, DEFAULT_MAX_FEE_RATE } from "./justice-core.js";

export interface WatchtowerConfig {
  databaseUrl: string;
  /** Postgres schema for its tables (default "watchtower"). */
  databaseSchema: string;
  rpc: { url: string; user?: string; password?: string };
  /** NATS_URL and its credentials (NATS_CREDS_FILE, NATS_USER/NATS_PASSWORD or NATS_TOKEN). */
  nats: NatsSettings;
  /** The node's subject prefix (LN_PREFIX), e.g. "lab.a". */
  lnPrefix: string;
  /** `${lnPrefix}.chain`: where chain events are published and requests served. */
  chainPrefix: string;
  /** JetStream stream of the chain events. */
  stream: string;
  pollMs: number;
  /** First block to report without a stored cursor; default: the node's tip at first start. */
  startHeight: number | undefined;
  /** WATCHTOWER_OPS_LISTEN: where to serve /metrics, /healthz and /readyz over HTTP; none if unset. */
  opsListen: HostPort | undefined;
  /** The justice half (revocation records, breaches, justice); undefined unless SIGNER_ADDR is set. */
  justice: JusticeConfig | undefined;
  /** LN_CRASH_AT and LN_CRASH_TRACE: crash points, for tests only (@ln/crash); unset: inert. */
  crash: CrashSettings;
}

/** The tower proper (DESIGN.md 7): runs only when a signer is configured, since it holds no key. */
export interface JusticeConfig {
  signer: { addr: string; caFile: string; certFile: string; keyFile: string; serverName: string | undefined };
  /** Where the channel service publishes sealed records: `${lnPrefix}.tower.records`. */
  recordsSubject: string;
  /** JetStream stream capturing recordsSubject. */
  recordsStream: string;
  /** Durable consumer shared by every tower replica of this node. */
  recordsConsumer: string;
  /** A justice transaction unconfirmed this many blocks after its broadcast is replaced at a higher fee. */
  bumpBlocks: number;
  /** Blocks deep a justice transaction must be before its breach is forgotten (6 to 100). */
  buryDepth: number;
  /** estimatesmartfee target, in blocks. */
  feeTargetBlocks: number;
  /** Satoshi per 1000 bytes when the node has no estimate. */
  fallbackFeeRate: number;
  /** Satoshi per 1000 bytes never exceeded by a justice transaction or its bumps. */
  maxFeeRate: number;
  /** Percent of what a justice transaction takes that its fee never exceeds. */
  maxFeePercent: number;
  mempoolPollMs: number;
}

export class WatchtowerConfigError extends Error {
  override readonly name = "WatchtowerConfigError";
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,255}$/;

/** The default stream of a prefix: "lab.a" -> "LAB_A_CHAIN". */
export const defaultStreamName = (lnPrefix: string): string =>
  `${lnPrefix.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}_CHAIN`;

/** The default records stream of a prefix: "lab.a" -> "LAB_A_TOWER". */
export const defaultRecordsStreamName = (lnPrefix: string): string =>
  `${lnPrefix.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}_TOWER`;

/** Where the channel service publishes revocation records (services/channel tower-link.ts). */
export const recordsSubjectOf = (lnPrefix: string): string => `${lnPrefix}.tower.records`;

export function loadConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
): WatchtowerConfig {
  const r = new EnvReader(env);

  const databaseUrl = r.need("WATCHTOWER_DATABASE_URL", "the Postgres URL, e.g. postgres://watchtower@db/ln");
  const rpcUrl = r.need("BITCOIN_RPC_URL", "the node's JSON-RPC URL, e.g. http://127.0.0.1:8332");
  if (rpcUrl !== "") {
    let parsed: URL | undefined;
    try {
      parsed = new URL(rpcUrl);
    } catch {
      r.problem("BITCOIN_RPC_URL is not a URL; use e.g. http://127.0.0.1:8332");
    }
    if (parsed && parsed.protocol !== "http:" && parsed.protocol !== "https:")
      r.problem(`BITCOIN_RPC_URL must be http:// or https://, got ${parsed.protocol}//`);
  }
  const lnPrefix = r.subjectPrefix(
    "LN_PREFIX",
    "this node's NATS subject prefix, e.g. lab.a",
    "tokens of letters, digits, _ and -",
  );
  const databaseSchema = r.schemaName("WATCHTOWER_DATABASE_SCHEMA", "watchtower", { noPgPrefix: true });
  const nats = r.nats();
  const stream = r.get("WATCHTOWER_STREAM") ?? (lnPrefix !== "" ? defaultStreamName(lnPrefix) : "");
  if (stream !== "" && !STREAM_NAME.test(stream))
    r.problem(
      `WATCHTOWER_STREAM must be letters, digits, _ and - (a JetStream stream name), got ${JSON.stringify(stream)}`,
    );
  const pollText = r.get("WATCHTOWER_POLL_MS") ?? "1000";
  let pollMs = 1000;
  if (!/^[0-9]{1,7}$/.test(pollText) || Number(pollText) < 10)
    r.problem(
      `WATCHTOWER_POLL_MS must be a whole number of milliseconds from 10 to 9999999, got ${JSON.stringify(pollText)}`,
    );
  else pollMs = Number(pollText);
  const startText = r.get("WATCHTOWER_START_HEIGHT");
  let startHeight: number | undefined;
  if (startText !== undefined) {
    if (!/^[0-9]{1,9}$/.test(startText))
      r.problem(
        `WATCHTOWER_START_HEIGHT must be a block height (a whole number), got ${JSON.stringify(startText)}; or leave it unset to start at the node's tip`,
      );
    else startHeight = Number(startText);
  }
  const opsListen = r.opsListen("WATCHTOWER_OPS_LISTEN", "0.0.0.0:9102");
  const justice = r.get("SIGNER_ADDR") !== undefined ? justiceConfig(r, lnPrefix) : undefined;
  const crash = readCrashSettings(
    (n) => r.get(n),
    (l) => r.problem(l),
    "tower",
  );
  if (r.problems.length > 0)
    throw new WatchtowerConfigError(formatProblems("watchtower configuration", r.problems));
  const user = r.get("BITCOIN_RPC_USER");
  const password = env["BITCOIN_RPC_PASSWORD"];
  return {
    crash,
    databaseUrl,
    databaseSchema,
    rpc: {
      url: rpcUrl,
      ...(user !== undefined ? { user } : {}),
      ...(password !== undefined && password !== "" ? { password } : {}),
    },
    nats,
    lnPrefix,
    chainPrefix: `${lnPrefix}.chain`,
    stream,
    pollMs,
    startHeight,
    opsListen,
    justice,
  };
}

function justiceConfig(r: EnvReader, lnPrefix: string): JusticeConfig {
  const addr = r.need("SIGNER_ADDR", "host:port of the signer's gRPC endpoint");
  const caFile = r.need(
    "SIGNER_CLIENT_CA",
    "path of the CA certificate the signer's certificate chains to; needed since SIGNER_ADDR is set",
  );
  const certFile = r.need(
    "SIGNER_CLIENT_CERT",
    "path of the tower's own client certificate (PEM), the identity the signer allows justice signatures",
  );
  const keyFile = r.need("SIGNER_CLIENT_KEY", "path of the tower's client key (PEM)");
  const recordsStream =
    r.get("WATCHTOWER_RECORDS_STREAM") ?? (lnPrefix !== "" ? defaultRecordsStreamName(lnPrefix) : "");
  if (recordsStream !== "" && !STREAM_NAME.test(recordsStream))
    r.problem(
      `WATCHTOWER_RECORDS_STREAM must be letters, digits, _ and - (a JetStream stream name), got ${JSON.stringify(recordsStream)}`,
    );
  const recordsSubject = r.get("WATCHTOWER_RECORDS_SUBJECT") ?? recordsSubjectOf(lnPrefix);
  if (!/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(recordsSubject))
    r.problem(
      `WATCHTOWER_RECORDS_SUBJECT must be a NATS subject without wildcards (dot-separated tokens), got ${JSON.stringify(recordsSubject)}`,
    );
  const recordsConsumer = r.get("WATCHTOWER_RECORDS_CONSUMER") ?? "tower";
  if (!STREAM_NAME.test(recordsConsumer))
    r.problem(
      `WATCHTOWER_RECORDS_CONSUMER must be letters, digits, _ and - (a durable consumer name), got ${JSON.stringify(recordsConsumer)}`,
    );
  return {
    signer: { addr, caFile, certFile, keyFile, serverName: r.get("SIGNER_SERVERNAME") },
    recordsSubject,
    recordsStream,
    recordsConsumer,
    bumpBlocks: r.int(
      "WATCHTOWER_BUMP_BLOCKS",
      2,
      1,
      1000,
      "blocks a justice transaction may stay unconfirmed before it is replaced at a higher fee",
    ),
    buryDepth: r.int(
      "WATCHTOWER_BURY_DEPTH",
      6,
      1,
      100,
      "blocks deep a justice transaction must be before its breach is forgotten; 6 is usual",
    ),
    feeTargetBlocks: r.int(
      "WATCHTOWER_FEE_TARGET_BLOCKS",
      2,
      1,
      1008,
      "the estimatesmartfee confirmation target",
    ),
    fallbackFeeRate: r.int(
      "WATCHTOWER_FALLBACK_FEE_RATE",
      20_000,
      1000,
      100_000_000,
      "satoshi per 1000 bytes when the node has no fee estimate",
    ),
    maxFeeRate: r.int(
      "WATCHTOWER_MAX_FEE_RATE",
      DEFAULT_MAX_FEE_RATE,
      1000,
      100_000_000,
      "the highest justice fee rate, satoshi per 1000 bytes: bumps stop there; at most the signer's SIGNER_MAX_JUSTICE_FEE_RATE",
    ),
    maxFeePercent: r.int(
      "WATCHTOWER_MAX_FEE_PERCENT",
      DEFAULT_MAX_FEE_PERCENT,
      1,
      100,
      "the largest share of what a justice transaction takes that may go to its fee; at most the signer's SIGNER_MAX_JUSTICE_FEE_PERCENT",
    ),
    mempoolPollMs: r.int(
      "WATCHTOWER_MEMPOOL_POLL_MS",
      1000,
      10,
      9_999_999,
      "milliseconds between looks at the mempool",
    ),
  };
}
