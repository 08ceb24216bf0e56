// TEMPORARY: @ln/onion's API as announced, until the onion branch lands on main. Delete then.
export const FAILURE_CODES = {
  invalid_realm: 0x4000 | 1,
  temporary_node_failure: 0x2000 | 2,
  permanent_node_failure: 0x4000 | 0x2000 | 2,
  invalid_onion_version: 0x8000 | 0x4000 | 4,
  invalid_onion_hmac: 0x8000 | 0x4000 | 5,
  invalid_onion_key: 0x8000 | 0x4000 | 6,
  temporary_channel_failure: 0x1000 | 7,
  permanent_channel_failure: 0x4000 | 8,
  unknown_next_peer: 0x4000 | 10,
  amount_below_minimum: 0x1000 | 11,
  fee_insufficient: 0x1000 | 12,
  incorrect_cltv_expiry: 0x1000 | 13,
  expiry_too_soon: 0x1000 | 14,
  incorrect_or_unknown_payment_details: 0x4000 | 15,
  final_incorrect_cltv_expiry: 18,
  final_incorrect_htlc_amount: 19,
  channel_disabled: 0x1000 | 20,
  expiry_too_far: 21,
  invalid_onion_payload: 0x4000 | 22,
  mpp_timeout: 23,
} as const;
export type FailureName = keyof typeof FAILURE_CODES;
export type Failure =
  | { name: "fee_insufficient" | "amount_below_minimum"; htlcMsat: bigint; channelUpdate: Buffer }
  | { name: "incorrect_or_unknown_payment_details"; htlcMsat: bigint; height: number }
  | {
      name: Exclude<
        FailureName,
        "fee_insufficient" | "amount_below_minimum" | "incorrect_or_unknown_payment_details"
      >;
    }
  | { name: "unknown"; code: number; data: Buffer };

export class OnionError extends Error {
  readonly hop?: number;
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const missing = (): never => {
  throw new OnionError("UNAVAILABLE", "@ln/onion is not on main yet");
};

export const buildOnion = (_p: {
  sessionKey: Buffer;
  hops: { nodeId: Buffer; payload: Buffer }[];
  associatedData: Buffer;
}): { packet: Buffer; sharedSecrets: Buffer[] } => missing();
export const encodeHopPayload = (_p: {
  amtToForwardMsat: bigint;
  outgoingCltvValue: number;
  shortChannelId?: bigint;
  paymentData?: { paymentSecret: Buffer; totalMsat: bigint };
}): Buffer => missing();
export const decodeFailReason = (
  _b: Buffer,
): { kind: "packet"; packet: Buffer } | { kind: "malformed"; failure: Failure } => missing();
export const decodeErrorPacket = (_s: Buffer[], _p: Buffer): { hop: number; failure: Failure } => missing();
export const describeFailure = (f: Failure): string => f.name;
