/** BOLT #4 "Failure Messages": u16 failure code, then the data its code defines. */
import { OnionError } from "./errors.js";
import { encodeBigSize, Reader, ReadFailure } from "./tlv.js";

export const BADONION = 0x8000;
export const PERM = 0x4000;
export const NODE = 0x2000;
export const UPDATE = 0x1000;

export const FAILURE_CODES = {
  invalid_realm: PERM | 1,
  temporary_node_failure: NODE | 2,
  permanent_node_failure: PERM | NODE | 2,
  invalid_onion_version: BADONION | PERM | 4,
  invalid_onion_hmac: BADONION | PERM | 5,
  invalid_onion_key: BADONION | PERM | 6,
  temporary_channel_failure: UPDATE | 7,
  permanent_channel_failure: PERM | 8,
  unknown_next_peer: PERM | 10,
  amount_below_minimum: UPDATE | 11,
  fee_insufficient: UPDATE | 12,
  incorrect_cltv_expiry: UPDATE | 13,
  expiry_too_soon: UPDATE | 14,
  incorrect_or_unknown_payment_details: PERM | 15,
  final_incorrect_cltv_expiry: 18,
  final_incorrect_htlc_amount: 19,
  channel_disabled: UPDATE | 20,
  expiry_too_far: 21,
  invalid_onion_payload: PERM | 22,
  mpp_timeout: 23,
} as const;

export type FailureName = keyof typeof FAILURE_CODES;

type HtlcAndUpdate = "amount_below_minimum" | "fee_insufficient";
type UpdateOnly = "expiry_too_soon" | "temporary_channel_failure" | "channel_disabled";
type BadOnion = "invalid_onion_version" | "invalid_onion_hmac" | "invalid_onion_key";
type WithData =
  | HtlcAndUpdate
  | UpdateOnly
  | BadOnion
  | "incorrect_cltv_expiry"
  | "incorrect_or_unknown_payment_details"
  | "final_incorrect_cltv_expiry"
  | "final_incorrect_htlc_amount"
  | "invalid_onion_payload";
/** The failures whose message is the code alone. */
export type NoDataFailureName = Exclude<FailureName, WithData>;

/**
 * A failure with its BOLT #4 data decoded; channel_update fields are kept as raw bytes (empty
 * when absent: we have no gossip yet). channel_disabled's disabled_flags are written as 0 and
 * ignored when read (BOLT #4 defines no flag yet).
 */
export type Failure =
  | { name: HtlcAndUpdate; htlcMsat: bigint; channelUpdate: Buffer }
  | { name: "incorrect_cltv_expiry"; cltvExpiry: number; channelUpdate: Buffer }
  | { name: UpdateOnly; channelUpdate: Buffer }
  | { name: "incorrect_or_unknown_payment_details"; htlcMsat: bigint; height: number }
  | { name: "final_incorrect_cltv_expiry"; cltvExpiry: number }
  | { name: "final_incorrect_htlc_amount"; incomingHtlcMsat: bigint }
  | { name: BadOnion; sha256OfOnion: Buffer }
  | { name: "invalid_onion_payload"; type: bigint; offset: number }
  | { name: NoDataFailureName }
  /** A code we do not know, kept raw. */
  | { name: "unknown"; code: number; data: Buffer };

const NAME_OF_CODE: ReadonlyMap<number, FailureName> = new Map(
  (Object.entries(FAILURE_CODES) as [FailureName, number][]).map(([n, c]) => [c, n]),
);

/** The u16 failure code of a failure. */
export function failureCode(f: Failure): number {
  return f.name === "unknown" ? f.code : FAILURE_CODES[f.name];
}

function bad(what: string): OnionError {
  return new OnionError("INVALID_FAILURE", `cannot encode the failure: ${what}`);
}

const u16 = (n: number, what: string): Buffer => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff) throw bad(`${what} is not a u16`);
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n);
  return b;
};
const u32 = (n: number, what: string): Buffer => {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff) throw bad(`${what} is not a u32`);
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
};
const u64 = (n: bigint, what: string): Buffer => {
  if (n < 0n || n > 0xffff_ffff_ffff_ffffn) throw bad(`${what} is not a u64`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n);
  return b;
};
const update = (u: Buffer): Buffer => Buffer.concat([u16(u.length, "the channel_update length"), u]);

function failureData(f: Failure): Buffer {
  switch (f.name) {
    case "amount_below_minimum":
    case "fee_insufficient":
      return Buffer.concat([u64(f.htlcMsat, "htlc_msat"), update(f.channelUpdate)]);
    case "incorrect_cltv_expiry":
      return Buffer.concat([u32(f.cltvExpiry, "cltv_expiry"), update(f.channelUpdate)]);
    case "expiry_too_soon":
    case "temporary_channel_failure":
      return update(f.channelUpdate);
    case "channel_disabled":
      return Buffer.concat([u16(0, "disabled_flags"), update(f.channelUpdate)]);
    case "incorrect_or_unknown_payment_details":
      return Buffer.concat([u64(f.htlcMsat, "htlc_msat"), u32(f.height, "height")]);
    case "final_incorrect_cltv_expiry":
      return u32(f.cltvExpiry, "cltv_expiry");
    case "final_incorrect_htlc_amount":
      return u64(f.incomingHtlcMsat, "incoming_htlc_amt");
    case "invalid_onion_version":
    case "invalid_onion_hmac":
    case "invalid_onion_key":
      if (f.sha256OfOnion.length !== 32) throw bad("sha256_of_onion is not 32 bytes");
      return f.sha256OfOnion;
    case "invalid_onion_payload":
      if (f.type < 0n || f.type > 0xffff_ffff_ffff_ffffn) throw bad("the TLV type is not a BigSize");
      return Buffer.concat([encodeBigSize(f.type), u16(f.offset, "offset")]);
    case "unknown":
      return f.data;
    default:
      return Buffer.alloc(0);
  }
}

/** The failure message: u16 code, then its data. */
export function encodeFailure(f: Failure): Buffer {
  return Buffer.concat([u16(failureCode(f), "the failure code"), failureData(f)]);
}

/**
 * Decodes a failure message. Bytes after the data its code defines are ignored (BOLT #4 lets
 * later versions append to a message). A message shorter than its code's data is INVALID_FAILURE.
 */
export function decodeFailure(b: Buffer): Failure {
  const r = new Reader(b);
  try {
    const code = r.u16("failure code");
    const name = NAME_OF_CODE.get(code);
    const channelUpdate = (): Buffer => Buffer.from(r.take(r.u16("channel_update length"), "channel_update"));
    switch (name) {
      case undefined:
        return { name: "unknown", code, data: Buffer.from(r.rest()) };
      case "amount_below_minimum":
      case "fee_insufficient":
        return { name, htlcMsat: r.u64("htlc_msat"), channelUpdate: channelUpdate() };
      case "incorrect_cltv_expiry":
        return { name, cltvExpiry: r.u32("cltv_expiry"), channelUpdate: channelUpdate() };
      case "expiry_too_soon":
      case "temporary_channel_failure":
        return { name, channelUpdate: channelUpdate() };
      case "channel_disabled":
        r.u16("disabled_flags");
        return { name, channelUpdate: channelUpdate() };
      case "incorrect_or_unknown_payment_details":
        return { name, htlcMsat: r.u64("htlc_msat"), height: r.u32("height") };
      case "final_incorrect_cltv_expiry":
        return { name, cltvExpiry: r.u32("cltv_expiry") };
      case "final_incorrect_htlc_amount":
        return { name, incomingHtlcMsat: r.u64("incoming_htlc_amt") };
      case "invalid_onion_version":
      case "invalid_onion_hmac":
      case "invalid_onion_key":
        return { name, sha256OfOnion: Buffer.from(r.take(32, "sha256_of_onion")) };
      case "invalid_onion_payload":
        return { name, type: r.bigSize("type"), offset: r.u16("offset") };
      default:
        return { name };
    }
  } catch (e) {
    if (e instanceof ReadFailure)
      throw new OnionError("INVALID_FAILURE", `truncated failure message: ${e.reason}`);
    throw e;
  }
}

/** ", channel_update N bytes", or nothing when the failing node sent none. */
const updateText = (b: Buffer): string => (b.length === 0 ? "" : `, channel_update ${b.length} bytes`);

/** One line for an operator, e.g. "fee_insufficient (htlc 1000 msat)". */
export function describeFailure(f: Failure): string {
  const code = `0x${failureCode(f).toString(16).padStart(4, "0")}`;
  switch (f.name) {
    case "amount_below_minimum":
    case "fee_insufficient":
      return `${f.name} (htlc ${f.htlcMsat} msat${updateText(f.channelUpdate)})`;
    case "incorrect_cltv_expiry":
      return `${f.name} (cltv_expiry ${f.cltvExpiry}${updateText(f.channelUpdate)})`;
    case "expiry_too_soon":
    case "temporary_channel_failure":
    case "channel_disabled":
      return f.channelUpdate.length === 0 ? f.name : `${f.name} (${updateText(f.channelUpdate).slice(2)})`;
    case "incorrect_or_unknown_payment_details":
      return `${f.name} (htlc ${f.htlcMsat} msat, height ${f.height})`;
    case "final_incorrect_cltv_expiry":
      return `${f.name} (cltv_expiry ${f.cltvExpiry})`;
    case "final_incorrect_htlc_amount":
      return `${f.name} (incoming htlc ${f.incomingHtlcMsat} msat)`;
    case "invalid_onion_version":
    case "invalid_onion_hmac":
    case "invalid_onion_key":
      return `${f.name} (sha256 of onion ${f.sha256OfOnion.toString("hex")})`;
    case "invalid_onion_payload":
      return `${f.name} (type ${f.type}, offset ${f.offset})`;
    case "unknown":
      return `unknown failure ${code} (${f.data.length} bytes of data)`;
    default:
      return f.name;
  }
}
