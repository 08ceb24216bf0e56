/** The node's own error, and how its parts report a failure they carry on after. */
import type { RejectionCode } from "@ln/channel-core";
import type { Log } from "@ln/log";

/** A failure the control API can name (see api/backend.ts BackendError). */
export class NodeError extends Error {
  override readonly name = "NodeError";
  constructor(
    /** A RejectionCode when the channel core refused the command (nothing changed). */
    readonly code: "NOT_FOUND" | "CONFLICT" | "INVALID" | "UNAVAILABLE" | RejectionCode,
    message: string,
  ) {
    super(message);
  }
}

/** An error's text, every inner one of an AggregateError included (the runner's failed effects). */
export const errorMessage = (e: unknown): string =>
  e instanceof AggregateError
    ? `${e.message}: ${e.errors.map(errorMessage).join("; ")}`
    : e instanceof Error
      ? e.message
      : String(e);

/** Logs a failure the caller recovers from (a later round retries it): "what: why". */
export type Report = (what: string, e: unknown) => void;

export const reporter =
  (log: Log): Report =>
  (what, e) =>
    log.warn(`${what}: ${errorMessage(e)}`);
