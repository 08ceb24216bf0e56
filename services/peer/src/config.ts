/** The peer gateway's settings: the only place that reads the environment. */
import { readCrashSettings, type CrashSettings } from "@ln/crash";
import { EnvReader, parseHostPort, type HostPort, type NatsSettings } from "@ln/env";

export { parseHostPort, type HostPort };

export interface PeerConfig {
  /** NATS_URL and its credentials (NATS_CREDS_FILE, NATS_USER/NATS_PASSWORD or NATS_TOKEN). */
  nats: NatsSettings;
  /** Subject prefix of the gateway: `${LN_PREFIX}.peer`. */
  prefix: string;
  /** Where to accept peer connections (port 0: any free port). */
  listen: HostPort;
  handshakeTimeoutMs: number;
  maxPendingHandshakes: number;
  /** PEER_OPS_LISTEN: where to serve /metrics, /healthz and /readyz over HTTP; none if unset. */
  opsListen: HostPort | undefined;
  signer: {
    /** host:port of the signer's gRPC server. */
    address: string;
    caFile: string;
    certFile: string;
    keyFile: string;
    /** TLS name to check the signer's certificate against instead of the address's host. */
    serverName?: string;
  };
  /** LN_CRASH_AT and LN_CRASH_TRACE: crash points, for tests only (@ln/crash); unset: inert. */
  crash: CrashSettings;
}

/** The configuration is incomplete or wrong: one line per problem, each saying what to set. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`peer configuration:\n  ${problems.join("\n  ")}`);
  }
}

const TLS_NAME = /^[A-Za-z0-9.-]{1,253}$/;

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): PeerConfig {
  const r = new EnvReader(env);

  const nats = r.nats();
  const lnPrefix = r.subjectPrefix(
    "LN_PREFIX",
    "the node's NATS subject prefix, e.g. ln1; the gateway uses <LN_PREFIX>.peer",
    "NATS subject tokens of letters, digits, _ and -",
  );
  const listen = r.hostPort(
    "PEER_LISTEN",
    "host:port to accept peer connections on, e.g. 0.0.0.0:9735 (port 0: any free port)",
    { allowPortZero: true, hint: "(e.g. 0.0.0.0:9735 or [::]:9735)" },
  ) ?? { host: "", port: 0 };
  const handshakeTimeoutMs = r.int(
    "PEER_HANDSHAKE_TIMEOUT_MS",
    10_000,
    100,
    600_000,
    "milliseconds for the BOLT #8 acts, and again for authenticate; default 10000",
  );
  const maxPendingHandshakes = r.int(
    "PEER_MAX_PENDING",
    256,
    1,
    100_000,
    "inbound connections mid-handshake at once; default 256",
  );
  const opsListen = r.opsListen("PEER_OPS_LISTEN", "0.0.0.0:9101");
  r.hostPort("SIGNER_ADDR", "host:port of the signer's gRPC server, e.g. signer:50051", {
    hint: "(e.g. signer:50051)",
  });
  const address = r.get("SIGNER_ADDR") ?? "";
  const caFile = r.need(
    "SIGNER_CLIENT_CA",
    "path of the CA certificate (PEM) the signer's server certificate chains to",
  );
  const certFile = r.need(
    "SIGNER_CLIENT_CERT",
    "path of this gateway's client certificate (PEM) for the signer",
  );
  const keyFile = r.need(
    "SIGNER_CLIENT_KEY",
    "path of this gateway's client private key (PEM) for the signer",
  );
  const serverName = r.get("SIGNER_SERVERNAME");
  if (serverName !== undefined && !TLS_NAME.test(serverName))
    r.problem(
      `SIGNER_SERVERNAME must be a DNS name (the one in the signer's certificate), got ${JSON.stringify(serverName)}`,
    );
  const crash = readCrashSettings(
    (n) => r.get(n),
    (l) => r.problem(l),
    "peer",
  );
  if (r.problems.length > 0) throw new ConfigError(r.problems);
  return {
    nats,
    prefix: `${lnPrefix}.peer`,
    listen,
    handshakeTimeoutMs,
    maxPendingHandshakes,
    opsListen,
    signer: { address, caFile, certFile, keyFile, ...(serverName === undefined ? {} : { serverName }) },
    crash,
  };
}
