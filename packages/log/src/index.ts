/*~ JSON logs for the services: one JSON object per line on stderr (level, time, service, msg and
 * context fields such as channelId, peer, reqId). Secrets never reach the output: known secret
 * field names are redacted by pino, and messages are scrubbed of bearer tokens, URL passwords and
 * 64-hex values that follow a secret's name. The services' parts log through `Log`
 * (`structuredLog` over a process's logger): the level, `alert` and the context fields (channelId,
 * peer, txid, code...) are set where the event happens, never read back from the text. */
import {
  pino,
  stdSerializers,
  stdTimeFunctions,
  type DestinationStream,
  type Logger as PinoLogger,
} from "pino";

import { levelFromEnv, LogConfigError, parseLevel } from "./config.js";

export { LEVELS, LogConfigError, parseLevel, levelFromEnv, type Level } from "./config.js";
export type Logger = PinoLogger;

/** Field names whose values are secrets, at the top level and one level down. */
export const SECRET_FIELDS = [
  "token",
  "authorization",
  "password",
  "seed",
  "seedKey",
  "preimage",
  "r",
  "privateKey",
] as const;
const REDACT_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  "req.headers.authorization",
  "req.headers.cookie",
  "headers.authorization",
];
const CENSOR = "[REDACTED]";

// A 64-hex value right after a secret's name (payment_preimage, seedKey, secret...); a txid after
// any other word (anchor, transaction, justice) is left alone, and 66-hex public keys too.
const NAMED_HEX =
  /\b(\w*?(?:preimage|seed|key|secret|password|token)s?)(["']?\s{0,2}[:=]?\s{0,2}["']?)[0-9a-f]{64}(?![0-9a-f])/gi;
const BEARER = /\b(Bearer\s+)[\x21-\x7e]+/gi;
const URL_PASSWORD = /\b([a-z][a-z0-9+.-]*:\/\/[^:/\s@]*:)[^@\s/]+@/gi;
// A long opaque value after "token"/"password" (e.g. `token=abc...`), not the word after it.
const NAMED_OPAQUE = /\b(token|password|passwd|secret)(\s{0,2}[:=]\s{0,2}["']?)[\x21-\x7e]{8,}/gi;

/** The text with anything that looks like a secret replaced by [REDACTED]. */
export function scrub(text: string): string {
  return text
    .replace(BEARER, `$1${CENSOR}`)
    .replace(URL_PASSWORD, `$1${CENSOR}@`)
    .replace(NAMED_HEX, `$1$2${CENSOR}`)
    .replace(NAMED_OPAQUE, `$1$2${CENSOR}`);
}

export interface LoggerOptions {
  /** A level name; default: LOG_LEVEL from the environment, else info. */
  level?: string;
  /** Where the JSON lines go; default: stderr, written synchronously (lines survive process.exit). */
  destination?: DestinationStream;
}

/** A logger for `service` writing JSON lines; throws LogConfigError on a bad level. */
export function createLogger(service: string, opts: LoggerOptions = {}): Logger {
  const level = opts.level === undefined ? levelFromEnv() : parseLevel(opts.level);
  return pino(
    {
      level,
      base: { service },
      timestamp: stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACT_PATHS, censor: CENSOR },
      serializers: {
        err: (e: Error) => {
          const s = stdSerializers.err(e);
          return { ...s, message: scrub(s.message), ...(s.stack ? { stack: scrub(s.stack) } : {}) };
        },
      },
      hooks: {
        // Messages (and string fields) are scrubbed whichever way they are logged: lines, fastify, children.
        logMethod(args, method) {
          const out: unknown[] = args.map((a) => (typeof a === "string" ? scrub(a) : scrubFields(a)));
          method.apply(this, out as Parameters<typeof method>);
        },
      },
    },
    opts.destination ?? pino.destination({ fd: 2, sync: true }),
  );
}

/** A shallow copy with string values scrubbed, or the object itself when nothing changes. */
function scrubFields(a: unknown): unknown {
  if (a === null || typeof a !== "object" || Array.isArray(a) || a instanceof Error) return a;
  const proto: unknown = Object.getPrototypeOf(a);
  if (proto !== Object.prototype && proto !== null) return a; // requests, replies: their serializers decide
  let copy: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(a)) {
    if (typeof v !== "string") continue;
    const s = scrub(v);
    if (s !== v) (copy ??= { ...(a as Record<string, unknown>) })[k] = s;
  }
  return copy ?? a;
}

/**
 * The logger for a service's process. A bad LOG_LEVEL is reported as one JSON line and the process
 * exits 1 (like any other configuration error).
 */
export function processLogger(service: string): Logger {
  try {
    return createLogger(service);
  } catch (e) {
    if (!(e instanceof LogConfigError)) throw e;
    process.stderr.write(
      `${JSON.stringify({ level: "fatal", time: new Date().toISOString(), service, msg: e.message })}\n`,
    );
    process.exit(1);
  }
}

/** Context a service attaches to a log record where the event happens (never secrets). */
export interface LogFields {
  channelId?: string;
  signerChannel?: number;
  peer?: string;
  txid?: string;
  breach?: string;
  /** The payment, invoice or request the record is about. */
  paymentId?: string;
  /** A typed error's code (StoreError, NodeError, a signer refusal...). */
  code?: string;
  err?: Error;
  [field: string]: unknown;
}

/**
 * What the services' parts log through: the level is the method, and `alert` (an operator must
 * act: the ALERT dashboards and pages select on it) is its own method, set where the event
 * happens rather than read back from the text.
 */
export interface Log {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** An operator must act: level error (or `level`), field alert: true. */
  alert(msg: string, fields?: LogFields & { level?: "warn" | "error" }): void;
}

/** A Log over a pino logger: one JSON record per call, fields as given (scrubbed). */
export function structuredLog(logger: Logger): Log {
  return {
    info: (msg, f) => logger.info(f ?? {}, msg),
    warn: (msg, f) => logger.warn(f ?? {}, msg),
    error: (msg, f) => logger.error(f ?? {}, msg),
    alert: (msg, f) => {
      const { level = "error", ...rest } = f ?? {};
      logger[level]({ ...rest, alert: true }, msg);
    },
  };
}

/** A record as `recordingLog` keeps it (tests). */
export interface LogRecord {
  level: "info" | "warn" | "error";
  alert: boolean;
  msg: string;
  fields: LogFields;
}

/** A Log that hands each record to `sink` (tests, and tools that print lines). */
export function recordingLog(sink: (r: LogRecord) => void): Log {
  const at =
    (level: LogRecord["level"]) =>
    (msg: string, fields: LogFields = {}): void =>
      sink({ level, alert: false, msg, fields });
  return {
    info: at("info"),
    warn: at("warn"),
    error: at("error"),
    alert: (msg, f) => {
      const { level = "error", ...fields } = f ?? {};
      sink({ level, alert: true, msg, fields });
    },
  };
}

/** A Log that drops everything. */
export const silentLog: Log = recordingLog(() => undefined);
