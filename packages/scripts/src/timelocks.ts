import type { Locktime } from "@ln/bitcoin";

export class TimelockError extends Error {
  override readonly name = "TimelockError";
}

/** BIP68: bit 22 marks time-based delays, in units of 512 seconds; 16 bits of value. */
const SEQUENCE_TYPE_FLAG = 1 << 22;
const SEQUENCE_GRANULARITY_SECONDS = 512;
const SEQUENCE_MAX_VALUE = 0xffff;
/** nLockTime below this is a height, at or above it a unix time. */
export const LOCKTIME_THRESHOLD = 500_000_000;

/**
 * A relative delay as the value for OP_CHECKSEQUENCEVERIFY and the spending input's nSequence.
 * Seconds round up to whole 512-second units: never shorter than what was asked.
 */
export function relativeDelay(delay: Locktime): number {
  if ("blocks" in delay) {
    if (!Number.isInteger(delay.blocks) || delay.blocks < 0 || delay.blocks > SEQUENCE_MAX_VALUE)
      throw new TimelockError(`a relative delay is 0..${SEQUENCE_MAX_VALUE} blocks, got ${delay.blocks}`);
    return delay.blocks;
  }
  const units = Math.ceil(delay.seconds / SEQUENCE_GRANULARITY_SECONDS);
  if (!Number.isInteger(units) || units < 0 || units > SEQUENCE_MAX_VALUE)
    throw new TimelockError(
      `a relative delay is at most ${SEQUENCE_MAX_VALUE * SEQUENCE_GRANULARITY_SECONDS} seconds, got ${delay.seconds}`,
    );
  return SEQUENCE_TYPE_FLAG | units;
}

/** An absolute expiry as the value for OP_CHECKLOCKTIMEVERIFY and the spending tx's nLockTime. */
export function absoluteExpiry(expiry: Locktime): number {
  if ("blocks" in expiry) {
    if (!Number.isInteger(expiry.blocks) || expiry.blocks < 0 || expiry.blocks >= LOCKTIME_THRESHOLD)
      throw new TimelockError(`an expiry height is below ${LOCKTIME_THRESHOLD}, got ${expiry.blocks}`);
    return expiry.blocks;
  }
  if (
    !Number.isInteger(expiry.seconds) ||
    expiry.seconds < LOCKTIME_THRESHOLD ||
    expiry.seconds > 0xffff_ffff
  )
    throw new TimelockError(
      `an expiry time is a unix time from ${LOCKTIME_THRESHOLD}, got ${expiry.seconds}`,
    );
  return expiry.seconds;
}
