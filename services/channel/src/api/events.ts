/*~ GET /v1/events: the status event log (events/event-log.ts) as server-sent events, for any
 * token. Each event is `id: <seq>`, `event: <kind>`, `data: <JSON>`; a client resumes after the
 * last id it saw (the `Last-Event-ID` header, or `?after=`) and gets exactly the events it missed.
 * Bounded: at most `maxStreams` at once, a heartbeat comment so proxies keep the connection, the
 * log read only while the socket takes what was written (a client stalled past `stallMs` is
 * dropped), the token re-checked every `tokenCheckMs`, and one audit row per stream. */
import type { FastifyPluginAsyncTypebox } from "@fastify/type-provider-typebox";
import type { FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import type { StatusEvent } from "../events/event-log.js";
import { statusEventJson } from "../events/event-json.js";
import type { EventFeed } from "../events/feed.js";
import type { ApiStore, TokenInfo } from "./api-store.js";
import { ApiError } from "./errors.js";
import * as S from "@ln/control-api";

export interface EventStreamLimits {
  /** Streams open at once in this process; one more is refused with 503 TOO_MANY_STREAMS. */
  maxStreams: number;
  /** A comment line this often, so idle connections are not cut by proxies. */
  heartbeatMs: number;
  /** A client whose socket took nothing for this long is dropped (it resumes from its last id). */
  stallMs: number;
  /** How often the stream's token is checked again: a revoked token ends the stream. */
  tokenCheckMs: number;
}

export const DEFAULT_EVENT_STREAM_LIMITS: EventStreamLimits = {
  maxStreams: 100,
  heartbeatMs: 15_000,
  stallMs: 60_000,
  tokenCheckMs: 30_000,
};

/** Why a stream ended (the audit row's outcome; also the code of the final `end` event). */
export type StreamEnd =
  "TOKEN_REVOKED" | "STALLED" | "SERVER_CLOSING" | "EVENTS_UNAVAILABLE" | "CLIENT_CLOSED";

const { SEQ } = S;
const MAX_SEQ = (1n << 63n) - 1n;

// The query and each event's JSON are part of the API's contract (@ln/control-api), shared with lnctl.
export { EventsQuery, StatusEventJson } from "@ln/control-api";

/** One event as an SSE frame: JSON never holds a raw newline, so `data` is one line. */
export const sseFrame = (e: StatusEvent): string =>
  `id: ${e.seq}\nevent: ${e.kind}\ndata: ${JSON.stringify(statusEventJson(e))}\n\n`;

interface EventRouteDeps {
  store: ApiStore;
  feed: EventFeed;
  tokens: WeakMap<FastifyRequest, TokenInfo>;
  limits: EventStreamLimits;
}

function parseSeq(v: string, what: string): bigint {
  if (!new RegExp(SEQ).test(v) || BigInt(v) > MAX_SEQ)
    throw new ApiError(
      400,
      "VALIDATION_FAILED",
      `${what} must be an event seq (a decimal integer), got ${JSON.stringify(v.slice(0, 40))}`,
    );
  return BigInt(v);
}

export const eventRoutes: FastifyPluginAsyncTypebox<EventRouteDeps> = async (app, d) => {
  const open = new Map<AbortController, (why: StreamEnd) => void>();
  // Streams never end on their own: close them, or app.close() would wait for them forever.
  app.addHook("preClose", async () => {
    for (const end of [...open.values()]) end("SERVER_CLOSING");
  });

  app.get(
    "/v1/events",
    {
      config: { access: "read" },
      schema: {
        tags: ["events"],
        summary:
          "Status changes of payments, invoices and channels as server-sent events (any scope). Resume with Last-Event-ID or ?after=<seq>; ?from=start replays all; default: from now on.",
        querystring: S.EventsQuery,
        response: S.withErrors({}),
      },
    },
    async (req, reply) => {
      const token = d.tokens.get(req);
      if (!token) throw new ApiError(401, "UNAUTHENTICATED", "missing bearer token");
      const header = req.headers["last-event-id"];
      const lastId = typeof header === "string" && header.trim() !== "" ? header.trim() : undefined;
      if (req.query.from !== undefined && (req.query.after !== undefined || lastId !== undefined))
        throw new ApiError(
          400,
          "VALIDATION_FAILED",
          "give from=start or a position to resume from, not both",
        );
      // Last-Event-ID wins: a reconnecting client keeps its first URL and sends the newer id.
      let start =
        lastId !== undefined
          ? parseSeq(lastId, "Last-Event-ID")
          : req.query.after !== undefined
            ? parseSeq(req.query.after, "after")
            : req.query.from === "start"
              ? 0n
              : undefined;
      if (open.size >= d.limits.maxStreams) {
        void reply.header("retry-after", "5");
        throw new ApiError(
          503,
          "TOO_MANY_STREAMS",
          `this node serves at most ${d.limits.maxStreams} event streams at once; retry later, or close another stream`,
        );
      }
      const ac = new AbortController();
      let ended: StreamEnd | undefined;
      const end = (why: StreamEnd): void => {
        if (ended !== undefined) return;
        ended = why;
        ac.abort();
      };
      open.set(ac, end); // before any await: the count above stays exact
      let auditId: string;
      try {
        auditId = await d.store.auditStart({
          tokenId: token.id,
          method: req.method,
          route: "/v1/events",
          params: { after: start?.toString() ?? "head" },
          body: undefined,
          requestId: req.id,
          clientRequestId: undefined,
        });
        start ??= await d.feed.head();
      } catch (e) {
        open.delete(ac);
        req.log.error({ err: e }, "event stream: audit row or log head unavailable: refused");
        throw new ApiError(503, "AUDIT_UNAVAILABLE", "the stream cannot be audited or read now; retry later");
      }

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        "content-type": "text/event-stream; charset=utf-8",
        "cache-control": "no-cache, no-transform",
        "x-accel-buffering": "no",
        // The socket goes with the stream: a kept-alive one would hold app.close() until it times out.
        connection: "close",
        "x-request-id": req.id,
        // Where this stream starts: a client that has seen no event yet resumes from here.
        "x-events-after": start.toString(),
      });
      // retry: how soon an EventSource reconnects; the comment flushes the headers at once.
      res.write(`retry: 1000\n: events after ${start}\n\n`);
      res.on("close", () => end("CLIENT_CLOSED"));
      // A write to a socket the client reset: the stream is over, never an unhandled error.
      res.on("error", () => end("CLIENT_CLOSED"));

      const heartbeat = setInterval(() => {
        // A full buffer is already waited for; a heartbeat would only add to it.
        if (!res.writableNeedDrain && !res.destroyed && !res.writableEnded) res.write(": heartbeat\n\n");
      }, d.limits.heartbeatMs);
      let checking = false;
      const tokenCheck = setInterval(() => {
        if (checking) return;
        checking = true;
        d.store
          .tokenLive(token.id)
          .then((live) => {
            if (!live) end("TOKEN_REVOKED");
          })
          // A database outage does not end the stream here: the log reads fail and end it.
          .catch((e: unknown) => req.log.warn({ err: e }, "event stream: token check failed"))
          .finally(() => {
            checking = false;
          });
      }, d.limits.tokenCheckMs);

      void pump(res, d.feed, start, ac.signal, d.limits.stallMs, end)
        .catch((e: unknown) => {
          req.log.error({ err: e }, "event stream: reading the log failed");
          end("EVENTS_UNAVAILABLE");
        })
        .finally(async () => {
          clearInterval(heartbeat);
          clearInterval(tokenCheck);
          open.delete(ac);
          const why = ended ?? "SERVER_CLOSING";
          if (why === "STALLED") res.destroy();
          else if (!res.writableEnded && !res.destroyed) {
            if (why !== "CLIENT_CLOSED")
              res.write(`event: end\ndata: ${JSON.stringify(endBody(why, req.id))}\n\n`);
            res.end();
          }
          await d.store
            .auditFinish(auditId, 200, why === "CLIENT_CLOSED" ? undefined : why)
            .catch((e: unknown) =>
              req.log.error(
                { err: e, auditId },
                "audit log: the end of this event stream could not be recorded",
              ),
            );
        });
    },
  );
};

const END_MESSAGE: Record<StreamEnd, string> = {
  TOKEN_REVOKED: "the token was revoked; use a valid token",
  STALLED: "the client read nothing for too long",
  SERVER_CLOSING: "the server is shutting down; reconnect with Last-Event-ID",
  EVENTS_UNAVAILABLE: "the event log cannot be read now; reconnect with Last-Event-ID shortly",
  CLIENT_CLOSED: "closed by the client",
};

function endBody(
  why: StreamEnd,
  requestId: string,
): { error: { code: string; message: string; requestId: string } } {
  return { error: { code: why, message: END_MESSAGE[why], requestId } };
}

/** Writes the events after `start` until `signal` aborts; waits while the socket's buffer is full. */
async function pump(
  res: ServerResponse,
  feed: EventFeed,
  start: bigint,
  signal: AbortSignal,
  stallMs: number,
  end: (why: StreamEnd) => void,
): Promise<void> {
  const follower = feed.follow(start, signal);
  for (;;) {
    const batch = await follower.next();
    if (!batch) return;
    for (const e of batch) {
      if (signal.aborted || res.destroyed) return;
      if (!res.write(sseFrame(e)) && !(await drained(res, stallMs, signal))) {
        end("STALLED");
        return;
      }
    }
  }
}

/** True once the socket drained; false if it stayed full for `stallMs`; true on abort (the loop ends). */
function drained(res: ServerResponse, stallMs: number, signal: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean): void => {
      clearTimeout(timer);
      res.off("drain", onDrain);
      signal.removeEventListener("abort", onAbort);
      resolve(ok);
    };
    const onDrain = (): void => done(true);
    const onAbort = (): void => done(true);
    const timer = setTimeout(() => done(false), stallMs);
    res.on("drain", onDrain);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}
