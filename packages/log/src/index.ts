/*~ JSON logs for the services: one JSON object per line on stderr (level, time, service, msg and
 * context fields such as channelId, peer, reqId). Secrets never reach the output: known secret
 * field names are redacted by pino, and messages are scrubbed of bearer tokens, URL passwords and
 * 64-hex values that follow a secret's name. `lineLogger` adapts a logger to the
 * `(line: string) => void` shape the services pass around, lifting ids out of the text. */
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

export interface LineFields {
  level: "info" | "warn" | "error";
  channelId?: string;
  signerChannel?: number;
  peer?: string;
  txid?: string;
  breach?: string;
  alert?: true;
}

const UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
const CHANNEL = new RegExp(`\\bchannel[ _]?(?:id)?[ :=]*(${UUID})`, "i");
const SIGNER_CHANNEL = /\bsigner channel (\d{1,15})\b/i;
// A node id: after "peer", or a hex prefix the code shortens with an ellipsis.
const PEER = /\bpeer ([0-9a-f]{16,66})\b|\b([0-9a-f]{16,66})…/i;
const TRANSACTION = /\btransaction ([0-9a-f]{64})\b/i;
const BREACH = /\bbreach ([0-9a-f]{64})\b/i;
const ALERT = /^\s*(ALERT|SIGNER REFUSED|BREACH)\b/;
const TROUBLE =
  /\b(failed|failing|cannot|could not|error|refused|unreachable|not reachable|retrying|dropping)\b/i;

/** The level and context fields a log line's text implies. */
export function fieldsOf(line: string): LineFields {
  const f: LineFields = { level: "info" };
  const alert = ALERT.exec(line)?.[1];
  if (alert !== undefined) {
    f.alert = true;
    f.level = alert === "BREACH" ? "warn" : "error";
  } else if (TROUBLE.test(line)) f.level = "warn";
  const channel = CHANNEL.exec(line)?.[1];
  if (channel !== undefined) f.channelId = channel.toLowerCase();
  const signerChannel = SIGNER_CHANNEL.exec(line)?.[1];
  if (signerChannel !== undefined) f.signerChannel = Number(signerChannel);
  const peer = PEER.exec(line);
  const peerId = peer?.[1] ?? peer?.[2];
  if (peerId !== undefined) f.peer = peerId.toLowerCase();
  const txid = TRANSACTION.exec(line)?.[1];
  if (txid !== undefined) f.txid = txid.toLowerCase();
  const breach = BREACH.exec(line)?.[1];
  if (breach !== undefined) f.breach = breach.toLowerCase();
  return f;
}

/**
 * The `(line: string) => void` the services' parts take, over `logger`: each line becomes one
 * JSON record whose msg is the (scrubbed) text, with the ids it names lifted into fields.
 */
export function lineLogger(logger: Logger): (line: string) => void {
  return (line) => {
    const { level, ...fields } = fieldsOf(line);
    logger[level](fields, line);
  };
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
