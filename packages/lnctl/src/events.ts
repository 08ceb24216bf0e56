import { setTimeout as wait } from "node:timers/promises";
import type { Static, StatusEventJson } from "@ln/control-api";
import { ApiClientError, ConnectionError, type LnClient } from "./client.js";

/**
 * `lnctl events`: follows GET /v1/events (server-sent events), reconnecting after a disconnect
 * and resuming after the last seq it printed (Last-Event-ID), so no event is skipped or repeated.
 */

/** One status event, as the API sends it: the `Static<>` of the API's schema (@ln/control-api). */
export type StatusEvent = Static<typeof StatusEventJson>;

export interface SseFrame {
  id: string | undefined;
  event: string | undefined;
  data: string | undefined;
}

/** Splits a server-sent event stream into frames (comments and `retry:` dropped). */
export class SseParser {
  private buffer = "";

  push(text: string): SseFrame[] {
    this.buffer += text.replace(/\r\n?/g, "\n");
    const frames: SseFrame[] = [];
    for (let at = this.buffer.indexOf("\n\n"); at >= 0; at = this.buffer.indexOf("\n\n")) {
      const block = this.buffer.slice(0, at);
      this.buffer = this.buffer.slice(at + 2);
      const f: SseFrame = { id: undefined, event: undefined, data: undefined };
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        if (colon === 0) continue;
        const field = colon < 0 ? line : line.slice(0, colon);
        const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") f.id = value;
        else if (field === "event") f.event = value;
        else if (field === "data") f.data = f.data === undefined ? value : `${f.data}\n${value}`;
      }
      if (f.id !== undefined || f.event !== undefined || f.data !== undefined) frames.push(f);
    }
    return frames;
  }
}

export interface FollowOptions {
  /** Start after this seq; undefined: from the server's head (only what happens from now on). */
  after: string | undefined;
  signal: AbortSignal;
  onEvent: (e: StatusEvent) => void;
  /** The stream is open (each connection): what happened before it is readable now. */
  onOpen?: () => void;
  /** Disconnects and reconnects, for stderr. */
  onNotice: (line: string) => void;
  /** First wait before reconnecting (doubles up to 30 s). Default 1000 ms. */
  reconnectMs?: number;
  /** Reconnect when nothing (not even a heartbeat) came for this long. Default 60 s. */
  idleMs?: number;
}

const SEQ = /^(0|[1-9][0-9]{0,18})$/;

/**
 * Follows the event stream until `signal` aborts. Throws ApiClientError for a refusal that a
 * retry cannot fix (4xx, a revoked token), and the first connection's failure; after that,
 * every disconnect is retried.
 */
export async function followEvents(client: LnClient, o: FollowOptions): Promise<void> {
  const first = o.reconnectMs ?? 1000;
  let delay = first;
  let cursor = o.after;
  let connectedOnce = false;
  while (!o.signal.aborted) {
    let why: string;
    try {
      const res = await client.openEvents(cursor, o.signal);
      connectedOnce = true;
      delay = first;
      const start = res.headers.get("x-events-after") ?? undefined;
      if (cursor === undefined && start !== undefined && SEQ.test(start)) cursor = start;
      o.onOpen?.();
      why = "the server closed the stream";
      for await (const f of frames(res, o.idleMs ?? 60_000, o.signal)) {
        if (f.event === "end") {
          const err = parseError(f.data);
          if (err.code === "TOKEN_REVOKED")
            throw new ApiClientError(401, err.code, err.message, err.requestId);
          why = `${err.code}: ${err.message}`;
          break;
        }
        if (f.data === undefined || f.id === undefined || !SEQ.test(f.id)) continue;
        const e = JSON.parse(f.data) as StatusEvent;
        // Never twice, whatever the server does: seqs only go up.
        if (cursor !== undefined && BigInt(f.id) <= BigInt(cursor)) continue;
        cursor = f.id;
        o.onEvent(e);
      }
    } catch (e) {
      if (o.signal.aborted) return;
      if (e instanceof ApiClientError && e.status < 500) throw e;
      if (!connectedOnce) throw e;
      why = e instanceof Error ? e.message : String(e);
    }
    if (o.signal.aborted) return;
    o.onNotice(`disconnected (${why}); resuming after ${cursor ?? "the head"} in ${delay} ms`);
    await sleep(delay, o.signal);
    delay = Math.min(delay * 2, 30_000);
  }
}

async function* frames(res: Response, idleMs: number, signal: AbortSignal): AsyncGenerator<SseFrame> {
  const body = res.body;
  if (!body) return;
  const reader = body.getReader();
  const decoder = new TextDecoder();
  const parser = new SseParser();
  try {
    for (;;) {
      const r = await readWithin(reader, idleMs, signal);
      if (r.done) return;
      yield* parser.push(decoder.decode(r.value, { stream: true }));
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

type ReadResult = { done: true; value?: undefined } | { done: false; value: Uint8Array };

function readWithin(
  reader: ReadableStreamDefaultReader<Uint8Array>,
  idleMs: number,
  signal: AbortSignal,
): Promise<ReadResult> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new ConnectionError("", `nothing from the server for ${idleMs} ms`));
    }, idleMs);
    const onAbort = (): void => resolve({ done: true, value: undefined });
    signal.addEventListener("abort", onAbort, { once: true });
    reader.read().then(
      (r) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        resolve(r.done ? { done: true } : { done: false, value: r.value });
      },
      (e: unknown) => {
        clearTimeout(timer);
        signal.removeEventListener("abort", onAbort);
        reject(e instanceof Error ? e : new Error(String(e)));
      },
    );
  });
}

function parseError(data: string | undefined): {
  code: string;
  message: string;
  requestId: string | undefined;
} {
  try {
    const v = JSON.parse(data ?? "") as {
      error?: { code?: unknown; message?: unknown; requestId?: unknown };
    };
    return {
      code: typeof v.error?.code === "string" ? v.error.code : "STREAM_ENDED",
      message: typeof v.error?.message === "string" ? v.error.message : "the server ended the stream",
      requestId: typeof v.error?.requestId === "string" ? v.error.requestId : undefined,
    };
  } catch {
    return { code: "STREAM_ENDED", message: "the server ended the stream", requestId: undefined };
  }
}

/** Waits `ms`, or less if `signal` aborts (the abort is the only way it rejects). */
const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  wait(ms, undefined, { signal }).catch(() => undefined);
