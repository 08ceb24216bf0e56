/**
 * Reading a service's settings from the environment: each service's src/config.ts reads every
 * variable through one EnvReader, which collects all problems (one line each, naming the variable)
 * so that the service can report them together.
 */
import { readFileSync } from "node:fs";
import { credsAuthenticator, type ConnectionOptions } from "nats";

export type Env = Readonly<Record<string, string | undefined>>;

export interface HostPort {
  host: string;
  port: number;
}

/** "host:port", "[v6]:port"; undefined if it is not one. */
export function parseHostPort(s: string, allowPortZero: boolean): HostPort | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):([0-9]{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port > 65535 || (port === 0 && !allowPortZero)) return undefined;
  return { host: (m[1] ?? m[2]) as string, port };
}

/** NATS subject tokens: no spaces, wildcards or empty tokens. */
export const SUBJECT_PREFIX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
/** A Postgres schema name that needs no quoting. */
export const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** `${title}:` and then one indented line per problem. */
export const formatProblems = (title: string, problems: readonly string[]): string =>
  `${title}:\n  ${problems.join("\n  ")}`;

export interface HostPortOptions {
  /** Report it when unset (with `what`); otherwise unset gives undefined. Default true. */
  required?: boolean;
  /** Accept port 0 (any free port). Default false. */
  allowPortZero?: boolean;
  /** Text after "must be host:port" in the problem, e.g. "(e.g. signer:50051)". */
  hint?: string;
}

/**
 * How a service reaches NATS: the URL, and at most one way to authenticate (a `.creds` file
 * for NATS accounts/JWT, a user and password, or a token). The secrets come from the
 * environment (Kubernetes Secrets); none is ever logged.
 */
export interface NatsSettings {
  servers: string;
  auth:
    | { kind: "none" }
    | { kind: "creds"; file: string }
    | { kind: "user"; user: string; pass: string }
    | { kind: "token"; token: string };
}

/** The options for nats.js `connect`; a creds file is read here (at start). */
export function natsConnectOptions(s: NatsSettings, name: string): ConnectionOptions {
  const base: ConnectionOptions = { servers: s.servers, name };
  switch (s.auth.kind) {
    case "none":
      return base;
    case "creds":
      return { ...base, authenticator: credsAuthenticator(readFileSync(s.auth.file)) };
    case "user":
      return { ...base, user: s.auth.user, pass: s.auth.pass };
    case "token":
      return { ...base, token: s.auth.token };
  }
}

export class EnvReader {
  /** Every problem found so far, in the order found. */
  readonly problems: string[] = [];

  constructor(private readonly env: Env) {}

  /** Record a problem of the caller's own. */
  problem(line: string): void {
    this.problems.push(line);
  }

  /** The trimmed value; undefined if unset or empty. */
  get(name: string): string | undefined {
    const v = this.env[name]?.trim();
    return v === undefined || v === "" ? undefined : v;
  }

  /** The trimmed value; if unset, reports `NAME is not set (what)` and returns "". */
  need(name: string, what: string): string {
    const v = this.get(name);
    if (v === undefined) this.problems.push(`${name} is not set (${what})`);
    return v ?? "";
  }

  /**
   * NATS_URL (default nats://127.0.0.1:4222) and its credentials: NATS_CREDS_FILE, or NATS_USER
   * with NATS_PASSWORD, or NATS_TOKEN; two at once, or a user without a password, is a problem.
   */
  nats(): NatsSettings {
    const servers = this.get("NATS_URL") ?? "nats://127.0.0.1:4222";
    const creds = this.get("NATS_CREDS_FILE");
    const user = this.get("NATS_USER");
    const pass = this.get("NATS_PASSWORD");
    const token = this.get("NATS_TOKEN");
    const given = [
      creds && "NATS_CREDS_FILE",
      (user || pass) && "NATS_USER/NATS_PASSWORD",
      token && "NATS_TOKEN",
    ].filter((x): x is string => typeof x === "string");
    if (given.length > 1) {
      this.problems.push(`NATS credentials: set only one of ${given.join(", ")}`);
      return { servers, auth: { kind: "none" } };
    }
    if (creds) return { servers, auth: { kind: "creds", file: creds } };
    if (user || pass) {
      if (!user || !pass) {
        this.problems.push("NATS_USER and NATS_PASSWORD go together: set both, or neither");
        return { servers, auth: { kind: "none" } };
      }
      return { servers, auth: { kind: "user", user, pass } };
    }
    if (token) return { servers, auth: { kind: "token", token } };
    return { servers, auth: { kind: "none" } };
  }

  /** A whole number from min to max; dflt if unset or (reported) wrong. */
  int(name: string, dflt: number, min: number, max: number, what?: string): number {
    const v = this.get(name);
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!/^[0-9]{1,9}$/.test(v) || n < min || n > max) {
      const about = what === undefined ? "" : ` (${what})`;
      this.problems.push(
        `${name} must be a whole number from ${min} to ${max}${about}, got ${JSON.stringify(v)}`,
      );
      return dflt;
    }
    return n;
  }

  /** host:port or [v6]:port; undefined if unset or (reported) wrong. */
  hostPort(name: string, what: string, options: HostPortOptions = {}): HostPort | undefined {
    const { required = true, allowPortZero = false, hint } = options;
    const v = required ? this.need(name, what) : (this.get(name) ?? "");
    if (v === "") return undefined;
    const hp = parseHostPort(v, allowPortZero);
    if (hp === undefined)
      this.problems.push(
        `${name} must be host:port${hint === undefined ? "" : ` ${hint}`}, got ${JSON.stringify(v)}`,
      );
    return hp;
  }

  /** An optional `*_OPS_LISTEN`: where to serve /metrics, /healthz and /readyz; port 0 allowed. */
  opsListen(name: string, example: string): HostPort | undefined {
    return this.hostPort(name, "", {
      required: false,
      allowPortZero: true,
      hint: `for the HTTP /metrics, /healthz and /readyz (e.g. ${example}; port 0: any free port)`,
    });
  }

  /**
   * A NATS subject prefix such as LN_PREFIX (required); a wrong one is reported as
   * `NAME must be dot-separated <tokens>, got "..."`.
   */
  subjectPrefix(name: string, what: string, tokens: string): string {
    const v = this.need(name, what);
    if (v !== "" && !SUBJECT_PREFIX.test(v))
      this.problems.push(`${name} must be dot-separated ${tokens}, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A Postgres schema name, dflt if unset; with noPgPrefix, names starting pg_ are refused too. */
  schemaName(name: string, dflt: string, options: { noPgPrefix?: boolean } = {}): string {
    const v = this.get(name) ?? dflt;
    if (options.noPgPrefix === true) {
      if (!SCHEMA_NAME.test(v) || v.startsWith("pg_"))
        this.problems.push(
          `${name} must match ${SCHEMA_NAME.source} and not start with pg_, got ${JSON.stringify(v)}`,
        );
    } else if (!SCHEMA_NAME.test(v))
      this.problems.push(`${name} must match ${SCHEMA_NAME.source}, got ${JSON.stringify(v)}`);
    return v;
  }
}
