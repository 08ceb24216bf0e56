#!/usr/bin/env node
import { parseCommandLine, run } from "./cli.js";
import { processEnv } from "./config.js";

// `lnctl events` follows until Ctrl-C (or SIGTERM), then exits 0; other commands keep the default.
const stop = new AbortController();
const parsed = parseCommandLine(process.argv.slice(2));
if (parsed.ok && parsed.command.name === "events")
  for (const s of ["SIGINT", "SIGTERM"] as const) process.once(s, () => stop.abort());
process.exitCode = await run(process.argv.slice(2), {
  env: processEnv(),
  stdout: process.stdout,
  stderr: process.stderr,
  signal: stop.signal,
});
