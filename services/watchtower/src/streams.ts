import type { JetStreamManager, StreamConfig, StreamInfo } from "nats";
import type { ChainEvent } from "@ln/proto";

/** Every chain_event kind (events.proto): each is published on `<prefix>.<kind>`. */
export const CHAIN_EVENT_KINDS: readonly ChainEvent["kind"][] = [
  "block_connected",
  "block_disconnected",
  "anchor_depth",
  "anchor_spent",
  "wallet_output",
];

/**
 * Exactly the subjects the chain watcher publishes events on. Requests (`<prefix>.watch`,
 * `.watch_script`, `.broadcast`, `.tip`) are core NATS request/reply and must never be captured by
 * the stream: JetStream would answer them with its own publish acknowledgement.
 */
export const chainEventSubjects = (prefix: string): string[] =>
  CHAIN_EVENT_KINDS.map((k) => `${prefix}.${k}`);

/**
 * How long JetStream remembers message ids. Event ids derive from the block (hash and position),
 * so a block re-delivered after a crash must land within this window to be dropped as a duplicate:
 * a day covers any restart an operator would do without resyncing.
 */
export const CHAIN_DUPLICATE_WINDOW_NS = 24 * 60 * 60 * 1_000_000_000;

/**
 * Creates the chain event stream, or brings an existing one to these subjects and duplicate
 * window (other settings an operator changed are kept). Idempotent.
 */
export async function ensureChainStream(
  jsm: JetStreamManager,
  streamName: string,
  prefix: string,
): Promise<StreamInfo> {
  return ensureStream(jsm, streamName, chainEventSubjects(prefix));
}

/**
 * Creates the revocation records' stream (DESIGN.md 7: records are published with the locator as
 * message id, and re-published after a crash until acknowledged, so the same duplicate window of
 * a day drops the repeats), or brings an existing one to this subject. Idempotent.
 */
export function ensureRecordsStream(
  jsm: JetStreamManager,
  streamName: string,
  subject: string,
): Promise<StreamInfo> {
  return ensureStream(jsm, streamName, [subject]);
}

async function ensureStream(
  jsm: JetStreamManager,
  streamName: string,
  subjects: string[],
): Promise<StreamInfo> {
  const wanted: Partial<StreamConfig> = { subjects, duplicate_window: CHAIN_DUPLICATE_WINDOW_NS };
  let info: StreamInfo | undefined;
  try {
    info = await jsm.streams.info(streamName);
  } catch (e) {
    if (!isStreamNotFound(e)) throw e;
  }
  if (info === undefined) {
    try {
      return await jsm.streams.add({ name: streamName, ...wanted });
    } catch (e) {
      // Another replica created it meanwhile: fall through to the update.
      info = await jsm.streams.info(streamName).catch(() => {
        throw e;
      });
    }
  }
  const c = info.config;
  if (
    c.duplicate_window === CHAIN_DUPLICATE_WINDOW_NS &&
    c.subjects.length === subjects.length &&
    subjects.every((s) => c.subjects.includes(s))
  )
    return info;
  return jsm.streams.update(streamName, { ...c, ...wanted });
}

function isStreamNotFound(e: unknown): boolean {
  if (!(e instanceof Error)) return false;
  const api = (e as { api_error?: { err_code?: number } }).api_error;
  return api?.err_code === 10059 || /stream not found/i.test(e.message);
}
