// short_channel_id text and packing (BOLT #7), as @ln/bitcoin will export them (branch scid): switch the
// imports to @ln/bitcoin and delete this file once that is on main.
export interface ShortChannelId {
  readonly height: number;
  readonly txIndex: number;
  readonly outputIndex: number;
}
const TEXT = /^(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,4})$/;
export function parseShortChannelId(text: string): ShortChannelId {
  const m = TEXT.exec(text);
  const s = m && { height: Number(m[1]), txIndex: Number(m[2]), outputIndex: Number(m[3]) };
  if (!s || s.height > 0xffffff || s.txIndex > 0xffffff || s.outputIndex > 0xffff)
    throw new Error(`short_channel_id ${JSON.stringify(text)} is not HEIGHTxINDEXxOUTPUT`);
  return s;
}
export const shortChannelIdToBigint = (s: ShortChannelId): bigint =>
  (BigInt(s.height) << 40n) | (BigInt(s.txIndex) << 16n) | BigInt(s.outputIndex);
export const shortChannelIdFromBigint = (b: bigint): ShortChannelId => ({
  height: Number(b >> 40n),
  txIndex: Number((b >> 16n) & 0xffffffn),
  outputIndex: Number(b & 0xffffn),
});
export const formatShortChannelId = (s: ShortChannelId): string =>
  `${s.height}x${s.txIndex}x${s.outputIndex}`;
