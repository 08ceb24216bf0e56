export * from "./client.js";
export {
  run,
  parseCommandLine,
  usage,
  EXIT,
  exitCodeOf,
  type ExitCode,
  COMMANDS,
  DEFAULT_EXPIRY_BLOCKS,
  type Command,
  type Parsed,
  type RunOptions,
} from "./cli.js";
export { resolveSettings, defaultConfigPath, ConfigError, type Settings, type Env } from "./config.js";
export * as format from "./format.js";
export { followEvents, SseParser, type StatusEvent, type FollowOptions } from "./events.js";
