/** The peer gateway's settings: the only place that reads the environment. */

export interface HostPort {
  host: string;
  port: number;
}

export interface PeerConfig {
  natsUrl: string;
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
}

/** The configuration is incomplete or wrong: one line per problem, each saying what to set. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`peer configuration:\n  ${problems.join("\n  ")}`);
  }
}

const SUBJECT_TOKENS = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const TLS_NAME = /^[A-Za-z0-9.-]{1,253}$/;

/** "host:port", "[v6]:port"; undefined if it is not one. */
export function parseHostPort(s: string, allowPortZero: boolean): HostPort | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowPortZero)) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): PeerConfig {
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
  const int = (name: string, dflt: number, min: number, max: number, what: string): number => {
    const v = get(name);
    if (v === undefined) return dflt;
    if (!/^[0-9]{1,9}$/.test(v) || Number(v) < min || Number(v) > max) {
      problems.push(
        `${name} must be a whole number from ${min} to ${max} (${what}), got ${JSON.stringify(v)}`,
      );
      return dflt;
    }
    return Number(v);
  };

  const natsUrl = get("NATS_URL") ?? "nats://127.0.0.1:4222";
  const lnPrefix = need(
    "LN_PREFIX",
    "the node's NATS subject prefix, e.g. ln1; the gateway uses <LN_PREFIX>.peer",
  );
  if (lnPrefix !== "" && !SUBJECT_TOKENS.test(lnPrefix))
    problems.push(
      `LN_PREFIX must be dot-separated NATS subject tokens of letters, digits, _ and -, got ${JSON.stringify(lnPrefix)}`,
    );
  const listenText = need(
    "PEER_LISTEN",
    "host:port to accept peer connections on, e.g. 0.0.0.0:9735 (port 0: any free port)",
  );
  let listen: HostPort = { host: "", port: 0 };
  if (listenText !== "") {
    const hp = parseHostPort(listenText, true);
    if (hp) listen = hp;
    else
      problems.push(
        `PEER_LISTEN must be host:port (e.g. 0.0.0.0:9735 or [::]:9735), got ${JSON.stringify(listenText)}`,
      );
  }
  const handshakeTimeoutMs = int(
    "PEER_HANDSHAKE_TIMEOUT_MS",
    10_000,
    100,
    600_000,
    "milliseconds for the BOLT #8 acts, and again for authenticate; default 10000",
  );
  const maxPendingHandshakes = int(
    "PEER_MAX_PENDING",
    256,
    1,
    100_000,
    "inbound connections mid-handshake at once; default 256",
  );
  const opsText = get("PEER_OPS_LISTEN");
  const opsListen = opsText === undefined ? undefined : parseHostPort(opsText, true);
  if (opsText !== undefined && opsListen === undefined)
    problems.push(
      `PEER_OPS_LISTEN must be host:port for the HTTP /metrics, /healthz and /readyz (e.g. 0.0.0.0:9101; port 0: any free port), got ${JSON.stringify(opsText)}`,
    );
  const address = need("SIGNER_ADDR", "host:port of the signer's gRPC server, e.g. signer:50051");
  if (address !== "" && !parseHostPort(address, false))
    problems.push(`SIGNER_ADDR must be host:port (e.g. signer:50051), got ${JSON.stringify(address)}`);
  const caFile = need(
    "SIGNER_CLIENT_CA",
    "path of the CA certificate (PEM) the signer's server certificate chains to",
  );
  const certFile = need(
    "SIGNER_CLIENT_CERT",
    "path of this gateway's client certificate (PEM) for the signer",
  );
  const keyFile = need("SIGNER_CLIENT_KEY", "path of this gateway's client private key (PEM) for the signer");
  const serverName = get("SIGNER_SERVERNAME");
  if (serverName !== undefined && !TLS_NAME.test(serverName))
    problems.push(
      `SIGNER_SERVERNAME must be a DNS name (the one in the signer's certificate), got ${JSON.stringify(serverName)}`,
    );
  if (problems.length > 0) throw new ConfigError(problems);
  return {
    natsUrl,
    prefix: `${lnPrefix}.peer`,
    listen,
    handshakeTimeoutMs,
    maxPendingHandshakes,
    opsListen,
    signer: { address, caFile, certFile, keyFile, ...(serverName === undefined ? {} : { serverName }) },
  };
}
