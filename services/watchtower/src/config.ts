/** The watchtower process's settings: the only place that reads the environment. */
import { EnvReader, formatProblems, type HostPort } from "@ln/env";

export interface WatchtowerConfig {
  databaseUrl: string;
  /** Postgres schema for its tables (default "watchtower"). */
  databaseSchema: string;
  rpc: { url: string; user?: string; password?: string };
  natsUrl: string;
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
}

export class WatchtowerConfigError extends Error {
  override readonly name = "WatchtowerConfigError";
}

const STREAM_NAME = /^[A-Za-z0-9_-]{1,255}$/;

/** The default stream of a prefix: "lab.a" -> "LAB_A_CHAIN". */
export const defaultStreamName = (lnPrefix: string): string =>
  `${lnPrefix.toUpperCase().replace(/[^A-Z0-9_]/g, "_")}_CHAIN`;

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
  const natsUrl = r.get("NATS_URL") ?? "nats://127.0.0.1:4222";
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
  if (r.problems.length > 0)
    throw new WatchtowerConfigError(formatProblems("watchtower configuration", r.problems));
  const user = r.get("BITCOIN_RPC_USER");
  const password = env["BITCOIN_RPC_PASSWORD"];
  return {
    databaseUrl,
    databaseSchema,
    rpc: {
      url: rpcUrl,
      ...(user !== undefined ? { user } : {}),
      ...(password !== undefined && password !== "" ? { password } : {}),
    },
    natsUrl,
    lnPrefix,
    chainPrefix: `${lnPrefix}.chain`,
    stream,
    pollMs,
    startHeight,
    opsListen,
  };
}
