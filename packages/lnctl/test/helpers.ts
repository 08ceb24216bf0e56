import { run, type RunOptions } from "../src/cli.js";
import type { Env } from "../src/config.js";

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs lnctl with captured output; by default no config file exists. */
export async function lnctl(
  argv: readonly string[],
  env: Env = {},
  extra: Partial<Omit<RunOptions, "env" | "stdout" | "stderr">> = {},
): Promise<Ran> {
  let stdout = "";
  let stderr = "";
  const code = await run(argv, {
    env,
    stdout: { write: (s: string) => (stdout += s) },
    stderr: { write: (s: string) => (stderr += s) },
    readFile: () => undefined,
    ...extra,
  });
  return { code, stdout, stderr };
}

export const NODE = `02${"ab".repeat(32)}`;
export const HASH = "cd".repeat(32);

/** A fetch that answers every request with `status` and `body`, recording what was asked. */
export function fakeFetch(
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): {
  fetch: (input: string, init: RequestInit) => Promise<Response>;
  calls: Array<{ url: string; init: RequestInit }>;
} {
  const calls: Array<{ url: string; init: RequestInit }> = [];
  return {
    calls,
    fetch: async (url, init) => {
      calls.push({ url, init });
      return new Response(typeof body === "string" ? body : JSON.stringify(body), {
        status,
        headers: { "content-type": "application/json", ...headers },
      });
    },
  };
}
