/**
 * Reading a service's settings from the environment: each service's src/config.ts reads every
 * variable through one EnvReader, which collects all problems (one line each, naming the variable)
 * so that the service can report them together.
 */

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
