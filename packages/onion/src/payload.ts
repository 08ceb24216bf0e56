/** BOLT #4 hop payloads: a BigSize length, then a TLV stream. */
import { OnionError } from "./errors.js";
import { decodeTruncated, encodeBigSize, encodeTruncated, Reader, ReadFailure } from "./tlv.js";

export interface PaymentData {
  paymentSecret: Buffer;
  totalMsat: bigint;
}

export interface HopPayload {
  /** TLV 2, tu64. */
  amtToForwardMsat: bigint;
  /** TLV 4, tu32: a block height. */
  outgoingCltvValue: number;
  /** TLV 6, 8 bytes; absent for the final hop. */
  shortChannelId?: bigint;
  /** TLV 8: the 32-byte payment secret and the tu64 total_msat (final hop). */
  paymentData?: PaymentData;
}

const AMT_TO_FORWARD = 2n;
const OUTGOING_CLTV_VALUE = 4n;
const SHORT_CHANNEL_ID = 6n;
const PAYMENT_DATA = 8n;

const U64_MAX = 0xffff_ffff_ffff_ffffn;

function record(type: bigint, value: Buffer): Buffer {
  return Buffer.concat([encodeBigSize(type), encodeBigSize(BigInt(value.length)), value]);
}

function badInput(what: string): OnionError {
  return new OnionError("INVALID_PAYLOAD", `cannot encode the hop payload: ${what}`);
}

/** The BigSize length prefix and the TLV stream (types in increasing order). */
export function encodeHopPayload(p: HopPayload): Buffer {
  if (p.amtToForwardMsat < 0n || p.amtToForwardMsat > U64_MAX) throw badInput("amt_to_forward is not a u64");
  if (!Number.isInteger(p.outgoingCltvValue) || p.outgoingCltvValue < 0 || p.outgoingCltvValue > 0xffff_ffff)
    throw badInput("outgoing_cltv_value is not a u32");
  const records = [
    record(AMT_TO_FORWARD, encodeTruncated(p.amtToForwardMsat, 8)),
    record(OUTGOING_CLTV_VALUE, encodeTruncated(BigInt(p.outgoingCltvValue), 4)),
  ];
  if (p.shortChannelId !== undefined) {
    if (p.shortChannelId < 0n || p.shortChannelId > U64_MAX) throw badInput("short_channel_id is not a u64");
    const scid = Buffer.alloc(8);
    scid.writeBigUInt64BE(p.shortChannelId);
    records.push(record(SHORT_CHANNEL_ID, scid));
  }
  if (p.paymentData !== undefined) {
    const { paymentSecret, totalMsat } = p.paymentData;
    if (paymentSecret.length !== 32) throw badInput("payment_secret is not 32 bytes");
    if (totalMsat < 0n || totalMsat > U64_MAX) throw badInput("total_msat is not a u64");
    records.push(record(PAYMENT_DATA, Buffer.concat([paymentSecret, encodeTruncated(totalMsat, 8)])));
  }
  const stream = Buffer.concat(records);
  return Buffer.concat([encodeBigSize(BigInt(stream.length)), stream]);
}

/** An invalid_onion_payload error naming the TLV type and its byte offset in the payload. */
export function invalidPayload(type: bigint, offset: number, why: string, sharedSecret?: Buffer): OnionError {
  return new OnionError("INVALID_PAYLOAD", `invalid hop payload (type ${type}, offset ${offset}): ${why}`, {
    failure: { name: "invalid_onion_payload", type, offset: Math.min(offset, 0xffff) },
    ...(sharedSecret === undefined ? {} : { sharedSecret }),
  });
}

/**
 * Decodes a hop payload given with its length prefix and nothing after it. Unknown odd types are
 * skipped; an unknown even type, types out of order, a bad value or a missing TLV 2 or 4 is
 * OnionError INVALID_PAYLOAD carrying invalid_onion_payload(type, offset), offset counted from
 * the first byte of `b` (the length prefix).
 */
export function decodeHopPayload(b: Buffer): HopPayload {
  const r = new Reader(b);
  let type = 0n;
  let offset = 0;
  try {
    const length = r.bigSize("payload length");
    if (length !== BigInt(r.remaining))
      throw new ReadFailure(0, `the length prefix says ${length} bytes, ${r.remaining} follow`);
    let last = -1n;
    let amt: bigint | undefined;
    let cltv: number | undefined;
    let scid: bigint | undefined;
    let paymentData: PaymentData | undefined;
    while (r.remaining > 0) {
      offset = r.pos;
      type = 0n;
      type = r.bigSize("TLV type");
      if (type <= last) throw new ReadFailure(offset, "TLV types not in strictly increasing order");
      last = type;
      const len = r.bigSize("TLV length");
      if (len > BigInt(r.remaining))
        throw new ReadFailure(offset, `TLV value of ${len} bytes overruns the payload`);
      const value = r.take(Number(len), "TLV value");
      const tu = (max: number): bigint => {
        const v = decodeTruncated(value, max);
        if (typeof v === "string") throw new ReadFailure(offset, `tu${8 * max} ${v}`);
        return v;
      };
      if (type === AMT_TO_FORWARD) amt = tu(8);
      else if (type === OUTGOING_CLTV_VALUE) cltv = Number(tu(4));
      else if (type === SHORT_CHANNEL_ID) {
        if (value.length !== 8) throw new ReadFailure(offset, "short_channel_id is not 8 bytes");
        scid = value.readBigUInt64BE(0);
      } else if (type === PAYMENT_DATA) {
        if (value.length < 32) throw new ReadFailure(offset, "payment_data shorter than its 32-byte secret");
        const total = decodeTruncated(value.subarray(32), 8);
        if (typeof total === "string") throw new ReadFailure(offset, `total_msat ${total}`);
        paymentData = { paymentSecret: Buffer.from(value.subarray(0, 32)), totalMsat: total };
      } else if (type % 2n === 0n) throw new ReadFailure(offset, "unknown even TLV type");
    }
    offset = 0;
    if (amt === undefined) {
      type = AMT_TO_FORWARD;
      throw new ReadFailure(0, "amt_to_forward missing");
    }
    if (cltv === undefined) {
      type = OUTGOING_CLTV_VALUE;
      throw new ReadFailure(0, "outgoing_cltv_value missing");
    }
    return {
      amtToForwardMsat: amt,
      outgoingCltvValue: cltv,
      ...(scid === undefined ? {} : { shortChannelId: scid }),
      ...(paymentData === undefined ? {} : { paymentData }),
    };
  } catch (e) {
    if (e instanceof ReadFailure) throw invalidPayload(type, offset, e.reason);
    throw e;
  }
}
