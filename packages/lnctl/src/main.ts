#!/usr/bin/env node
import { run } from "./cli.js";
import { processEnv } from "./config.js";

process.exitCode = await run(process.argv.slice(2), {
  env: processEnv(),
  stdout: process.stdout,
  stderr: process.stderr,
});
