/*~ The log package's one setting from the environment: LOG_LEVEL (default info), validated. */

export type Level = "fatal" | "error" | "warn" | "info" | "debug" | "trace" | "silent";
export const LEVELS: readonly Level[] = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

export class LogConfigError extends Error {
  override readonly name = "LogConfigError";
}

/** The level from a LOG_LEVEL value: unset or empty means info, anything unknown is an error. */
export function parseLevel(value: string | undefined): Level {
  const v = (value ?? "").trim().toLowerCase();
  if (v === "") return "info";
  const level = LEVELS.find((l) => l === v);
  if (level === undefined)
    throw new LogConfigError(`LOG_LEVEL must be one of ${LEVELS.join(", ")}; got ${JSON.stringify(value)}`);
  return level;
}

/** LOG_LEVEL of `env` (the process's by default). */
export const levelFromEnv = (env: Readonly<Record<string, string | undefined>> = process.env): Level =>
  parseLevel(env["LOG_LEVEL"]);
