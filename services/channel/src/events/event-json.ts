import type { StatusEvent } from "./event-log.js";

/** A status event as JSON, the same on the SSE stream and on NATS: seq as a decimal string. */
export interface StatusEventJson {
  seq: string;
  kind: StatusEvent["kind"];
  subject: string;
  status: string;
  detail: StatusEvent["detail"];
  /** ISO 8601 */
  at: string;
}

export const statusEventJson = (e: StatusEvent): StatusEventJson => ({
  seq: e.seq.toString(),
  kind: e.kind,
  subject: e.subject,
  status: e.status,
  detail: e.detail,
  at: e.at.toISOString(),
});
