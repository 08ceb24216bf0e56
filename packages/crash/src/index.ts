/*~ Crash points for tests: `crashPoint("channel.transition.committed")` at a durable step does
 * nothing unless the process was armed (LN_CRASH_AT=<point>[:<nth>], read by the service's
 * config.ts and handed to armCrashPoints in main.ts) with that point, and then, the nth time it is
 * reached, ends the process at once with SIGKILL: no flush, no cleanup, as a power cut would.
 * LN_CRASH_TRACE=<file> appends `<point> <pid>` for every point reached, so a test can prove each
 * one was. A process that never calls armCrashPoints (every in-process test) is never killed. */
import { appendFileSync } from "node:fs";
import { CRASH_POINT_NAMES, isCrashPoint, serviceOf, type CrashPoint, type CrashService } from "./points.js";

export { CRASH_POINTS, CRASH_POINT_NAMES, isCrashPoint, serviceOf } from "./points.js";
export type { CrashPoint, CrashService } from "./points.js";

export type CrashErrorCode =
  /** LN_CRASH_AT names no crash point. */
  | "UNKNOWN_POINT"
  /** LN_CRASH_AT names a point of another service: this process would never reach it. */
  | "OTHER_SERVICE"
  /** The `:nth` part is not a whole number from 1. */
  | "BAD_COUNT";

export class CrashError extends Error {
  override readonly name = "CrashError";
  constructor(
    readonly code: CrashErrorCode,
    message: string,
  ) {
    super(message);
  }
}

/** Where to die: the nth time (1 = the first) `point` is reached. */
export interface CrashAt {
  readonly point: CrashPoint;
  readonly nth: number;
}

export interface CrashSettings {
  /** LN_CRASH_AT; undefined: never die. */
  readonly at: CrashAt | undefined;
  /** LN_CRASH_TRACE: the file every reached point is appended to; undefined: none. */
  readonly traceFile: string | undefined;
}

export const CRASH_AT_VAR = "LN_CRASH_AT";
export const CRASH_TRACE_VAR = "LN_CRASH_TRACE";

/**
 * An LN_CRASH_AT value: `<point>` or `<point>:<nth>`; unset or empty is none. With `service`, the
 * point must be one of that service's. Throws CrashError naming what is wrong, so that a typo
 * fails the start instead of leaving a test's process unarmed.
 */
export function parseCrashAt(value: string | undefined, service?: CrashService): CrashAt | undefined {
  const v = (value ?? "").trim();
  if (v === "") return undefined;
  const colon = v.lastIndexOf(":");
  const name = colon < 0 ? v : v.slice(0, colon);
  const count = colon < 0 ? "1" : v.slice(colon + 1);
  if (!isCrashPoint(name)) {
    const known = CRASH_POINT_NAMES.filter((p) => service === undefined || serviceOf(p) === service);
    throw new CrashError(
      "UNKNOWN_POINT",
      `${CRASH_AT_VAR} names no crash point: ${JSON.stringify(name)}; known${service ? ` for ${service}` : ""}: ${known.join(", ")}`,
    );
  }
  if (service !== undefined && serviceOf(name) !== service)
    throw new CrashError(
      "OTHER_SERVICE",
      `${CRASH_AT_VAR}=${v}: ${name} is a crash point of the ${serviceOf(name)} service, this is the ${service} service`,
    );
  if (!/^[1-9][0-9]{0,8}$/.test(count))
    throw new CrashError(
      "BAD_COUNT",
      `${CRASH_AT_VAR}=${v}: after the colon comes which time the point is reached, a whole number from 1`,
    );
  return { point: name, nth: Number(count) };
}

/**
 * The crash settings of `service` from its environment, for its config.ts: `get` reads a
 * variable, `problem` reports one line (an EnvReader's get and problem).
 */
export function readCrashSettings(
  get: (name: string) => string | undefined,
  problem: (line: string) => void,
  service: CrashService,
): CrashSettings {
  let at: CrashAt | undefined;
  try {
    at = parseCrashAt(get(CRASH_AT_VAR), service);
  } catch (e) {
    if (!(e instanceof CrashError)) throw e;
    problem(e.message);
  }
  const trace = get(CRASH_TRACE_VAR)?.trim();
  return { at, traceFile: trace === undefined || trace === "" ? undefined : trace };
}

/** The start-up line of an armed process, undefined when it is not armed. */
export function describeCrashSettings(s: CrashSettings): string | undefined {
  if (s.at === undefined) return undefined;
  return `crash point armed (${CRASH_AT_VAR}, for tests): this process kills itself with SIGKILL the ${ordinal(s.at.nth)} time it reaches ${s.at.point}`;
}

const ordinal = (n: number): string =>
  `${n}${n % 100 >= 11 && n % 100 <= 13 ? "th" : (["th", "st", "nd", "rd"][n % 10] ?? "th")}`;

interface Armed {
  readonly at: CrashAt | undefined;
  readonly traceFile: string | undefined;
  readonly kill: () => void;
  reached: number;
}

/** This process's arming; undefined: crashPoint does nothing. */
let armed: Armed | undefined;

const sigkill = (): void => {
  process.kill(process.pid, "SIGKILL");
};

/**
 * Arms this process (a service's main.ts, once, right after its configuration is read). `kill`
 * replaces the SIGKILL, for the package's own tests.
 */
export function armCrashPoints(s: CrashSettings, opts: { kill?: () => void } = {}): void {
  armed =
    s.at === undefined && s.traceFile === undefined
      ? undefined
      : { at: s.at, traceFile: s.traceFile, kill: opts.kill ?? sigkill, reached: 0 };
}

/**
 * A durable step of a service was reached. Unarmed: nothing. Traced: `<point> <pid>` is appended
 * to the trace file first (synchronously: the line is there even if the process dies next). Armed
 * with this point: the nth reach ends the process at once.
 */
export function crashPoint(point: CrashPoint): void {
  const a = armed;
  if (a === undefined) return;
  if (a.traceFile !== undefined) appendFileSync(a.traceFile, `${point} ${process.pid}\n`);
  if (a.at?.point === point && ++a.reached === a.at.nth) a.kill();
}
