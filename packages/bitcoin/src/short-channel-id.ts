/**
 * A channel's position on chain once its anchor is confirmed (DESIGN.md 10, BOLT #7): block
 * height (3 bytes), index of the anchor transaction in its block (3 bytes), anchor output index
 * (2 bytes), as one big-endian 64-bit number; shown as "HEIGHTxINDEXxOUTPUT".
 */
export interface ShortChannelId {
  readonly height: number;
  readonly txIndex: number;
  readonly outputIndex: number;
}

export type ShortChannelIdErrorCode = "OUT_OF_RANGE" | "BAD_FORMAT";

export class ShortChannelIdError extends Error {
  override readonly name = "ShortChannelIdError";
  constructor(
    readonly code: ShortChannelIdErrorCode,
    readonly value: string,
  ) {
    super(
      code === "OUT_OF_RANGE"
        ? `short_channel_id ${value} is out of range`
        : `short_channel_id ${JSON.stringify(value)} is not HEIGHTxINDEXxOUTPUT`,
    );
  }
}

const MAX_HEIGHT = 0xffffff;
const MAX_TX_INDEX = 0xffffff;
const MAX_OUTPUT_INDEX = 0xffff;

const inRange = (n: number, max: number): boolean => Number.isSafeInteger(n) && n >= 0 && n <= max;

function checked(s: ShortChannelId, shown: string): ShortChannelId {
  if (
    !inRange(s.height, MAX_HEIGHT) ||
    !inRange(s.txIndex, MAX_TX_INDEX) ||
    !inRange(s.outputIndex, MAX_OUTPUT_INDEX)
  )
    throw new ShortChannelIdError("OUT_OF_RANGE", shown);
  return s;
}

/** Builds one, checking each part's bounds. */
export function shortChannelId(height: number, txIndex: number, outputIndex: number): ShortChannelId {
  return checked({ height, txIndex, outputIndex }, `${height}x${txIndex}x${outputIndex}`);
}

export function shortChannelIdToBigint(s: ShortChannelId): bigint {
  checked(s, formatShortChannelId(s));
  return (BigInt(s.height) << 40n) | (BigInt(s.txIndex) << 16n) | BigInt(s.outputIndex);
}

export function shortChannelIdFromBigint(b: bigint): ShortChannelId {
  if (b < 0n || b > 0xffffffffffffffffn) throw new ShortChannelIdError("OUT_OF_RANGE", b.toString());
  return {
    height: Number(b >> 40n),
    txIndex: Number((b >> 16n) & 0xffffffn),
    outputIndex: Number(b & 0xffffn),
  };
}

export const formatShortChannelId = (s: ShortChannelId): string =>
  `${s.height}x${s.txIndex}x${s.outputIndex}`;

// Decimal without leading zeros (bar "0"), so each value has exactly one text.
const TEXT = /^(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,4})$/;

export function parseShortChannelId(text: string): ShortChannelId {
  const m = TEXT.exec(text);
  if (!m) throw new ShortChannelIdError("BAD_FORMAT", text);
  return checked({ height: Number(m[1]), txIndex: Number(m[2]), outputIndex: Number(m[3]) }, text);
}
