import { readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

/** The environment, as lnctl sees it. Only `processEnv` reads the real one. */
export type Env = Readonly<Record<string, string | undefined>>;

/** The process environment (the one place lnctl reads it; tests pass their own). */
export function processEnv(): Env {
  return process.env;
}

/** A bad or missing setting: a usage problem (exit 2), never containing the token. */
export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export type Source = "flag" | "env" | "file";

export interface Settings {
  url: string;
  token: string;
  /** Where each came from, for messages (the token itself is never shown). */
  from: { url: Source; token: Source };
  /** The config file consulted, if any was read. */
  configPath: string | undefined;
}

export interface SettingFlags {
  url?: string | undefined;
  token?: string | undefined;
  config?: string | undefined;
}

/** Reads a file, or returns undefined when it does not exist. */
export type ReadFile = (path: string) => string | undefined;

export const readFileIfExists: ReadFile = (path) => {
  try {
    return readFileSync(path, "utf8");
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new ConfigError(`cannot read config file ${path}: ${(e as Error).message}`);
  }
};

/** ~/.config/lnctl/config.json, with $HOME taken from `env` when it is set there. */
export function defaultConfigPath(env: Env): string {
  return join(env.HOME || homedir(), ".config", "lnctl", "config.json");
}

interface FileSettings {
  url?: string;
  token?: string;
}

/** Parses a config file's text: a JSON object with optional string fields "url" and "token". */
export function parseConfigFile(text: string, path: string): FileSettings {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`config file ${path} is not valid JSON (${(e as Error).message})`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v))
    throw new ConfigError(`config file ${path} must hold a JSON object like {"url": "...", "token": "..."}`);
  const o = v as Record<string, unknown>;
  const out: FileSettings = {};
  for (const k of ["url", "token"] as const) {
    const f = o[k];
    if (f === undefined) continue;
    if (typeof f !== "string" || f === "")
      throw new ConfigError(`config file ${path}: "${k}" must be a non-empty string`);
    out[k] = f;
  }
  return out;
}

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s === "" ? undefined : s);

/**
 * URL and token, each from the first that has it: the flag (--url, --token), the environment
 * (LNCTL_URL, LNCTL_TOKEN), the config file (--config, else $LNCTL_CONFIG, else
 * ~/.config/lnctl/config.json). A config file named by --config or LNCTL_CONFIG must exist; the
 * default one is optional.
 */
export function resolveSettings(
  flags: SettingFlags,
  env: Env,
  readFile: ReadFile = readFileIfExists,
): Settings {
  let url: [string, Source] | undefined;
  let token: [string, Source] | undefined;
  const fu = nonEmpty(flags.url);
  const ft = nonEmpty(flags.token);
  if (fu !== undefined) url = [fu, "flag"];
  else if (nonEmpty(env.LNCTL_URL) !== undefined) url = [env.LNCTL_URL as string, "env"];
  if (ft !== undefined) token = [ft, "flag"];
  else if (nonEmpty(env.LNCTL_TOKEN) !== undefined) token = [env.LNCTL_TOKEN as string, "env"];

  const explicit = nonEmpty(flags.config) ?? nonEmpty(env.LNCTL_CONFIG);
  const path = explicit ?? defaultConfigPath(env);
  let configPath: string | undefined;
  if (explicit !== undefined || url === undefined || token === undefined) {
    const text = readFile(path);
    if (text === undefined) {
      if (explicit !== undefined)
        throw new ConfigError(
          `config file ${path} does not exist (named by ${nonEmpty(flags.config) !== undefined ? "--config" : "LNCTL_CONFIG"})`,
        );
    } else {
      configPath = path;
      const file = parseConfigFile(text, path);
      if (url === undefined && file.url !== undefined) url = [file.url, "file"];
      if (token === undefined && file.token !== undefined) token = [file.token, "file"];
    }
  }
  if (url === undefined)
    throw new ConfigError(
      `no API URL: pass --url, set LNCTL_URL, or put "url" in ${path} (e.g. http://127.0.0.1:8080)`,
    );
  if (token === undefined)
    throw new ConfigError(`no API token: pass --token, set LNCTL_TOKEN, or put "token" in ${path}`);
  try {
    const u = new URL(url[0]);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("protocol");
  } catch {
    throw new ConfigError(
      `the API URL from ${describe(url[1])} is not an http(s) URL: ${JSON.stringify(url[0])}`,
    );
  }
  if (!/^[\x21-\x7e]{1,512}$/.test(token[0]))
    throw new ConfigError(
      `the API token from ${describe(token[1])} is malformed (1-512 printable characters, no spaces)`,
    );
  return { url: url[0], token: token[0], from: { url: url[1], token: token[1] }, configPath };
}

function describe(s: Source): string {
  return s === "flag" ? "the command line" : s === "env" ? "the environment" : "the config file";
}
