import { errorMessage } from "./errors.js";
import type { LogLine } from "./ports.js";

const RETRY_MIN_MS = 1000;
const RETRY_MAX_MS = 60_000;

/**
 * Channels whose last input failed (the signer down, an effect failed), each retried with a
 * `resume` after a backoff doubling up to a minute, with an alert at every failure.
 */
export class Retries {
  private readonly retries = new Map<string, { attempt: number; at: number; since: number }>();

  constructor(private readonly log: LogLine) {}

  noteFailure(id: string, e: unknown): void {
    const now = Date.now();
    const prev = this.retries.get(id);
    const attempt = (prev?.attempt ?? 0) + 1;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** (attempt - 1));
    this.retries.set(id, { attempt, at: now + delay, since: prev?.since ?? now });
    const down = Math.round((now - (prev?.since ?? now)) / 1000);
    this.log.alert(
      `ALERT channel ${id}: ${errorMessage(e)} (attempt ${attempt}, failing for ${down} s); retrying in ${delay / 1000} s`,
      { channelId: id },
    );
  }

  /** The channel's request was answered (or it is not run here any more): no retry. */
  clear(id: string): void {
    this.retries.delete(id);
  }

  /**
   * The channels due for a retry at `now` that `holds` accepts, each marked in progress (no
   * other round takes it) until its attempt ends with a success or a new failure. Lazy: each is
   * checked when the previous attempt is over.
   */
  *due(now: number, holds: (id: string) => boolean): Generator<string> {
    for (const [id, r] of this.retries) {
      if (r.at > now || !holds(id)) continue;
      r.at = Number.POSITIVE_INFINITY; // until this attempt ends
      yield id;
    }
  }
}
