/** Failure messages (BOLT #4 "Failure Messages"): each code and its data, bytes derived by hand. */
import { describe, expect, it } from "vitest";
import {
  decodeFailure,
  describeFailure,
  encodeFailure,
  FAILURE_CODES,
  OnionError,
  type Failure,
} from "@ln/onion";

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ""), "hex");
const sha = Buffer.alloc(32, 0x5a);
const update = hex("0102abcd");

// [failure, its bytes as BOLT #4 lays them out]
const CASES: [Failure, string][] = [
  [{ name: "invalid_realm" }, "4001"],
  [{ name: "temporary_node_failure" }, "2002"],
  [{ name: "permanent_node_failure" }, "6002"],
  [{ name: "invalid_onion_version", sha256OfOnion: sha }, "c004" + "5a".repeat(32)],
  [{ name: "invalid_onion_hmac", sha256OfOnion: sha }, "c005" + "5a".repeat(32)],
  [{ name: "invalid_onion_key", sha256OfOnion: sha }, "c006" + "5a".repeat(32)],
  [{ name: "temporary_channel_failure", channelUpdate: Buffer.alloc(0) }, "1007 0000"],
  [{ name: "permanent_channel_failure" }, "4008"],
  [{ name: "unknown_next_peer" }, "400a"],
  [
    { name: "amount_below_minimum", htlcMsat: 1000n, channelUpdate: update },
    "100b 00000000000003e8 0004 0102abcd",
  ],
  [
    { name: "fee_insufficient", htlcMsat: 1000n, channelUpdate: Buffer.alloc(0) },
    "100c 00000000000003e8 0000",
  ],
  [{ name: "incorrect_cltv_expiry", cltvExpiry: 500, channelUpdate: Buffer.alloc(0) }, "100d 000001f4 0000"],
  [{ name: "expiry_too_soon", channelUpdate: update }, "100e 0004 0102abcd"],
  [
    { name: "incorrect_or_unknown_payment_details", htlcMsat: 5000n, height: 800000 },
    "400f 0000000000001388 000c3500",
  ],
  [{ name: "final_incorrect_cltv_expiry", cltvExpiry: 700 }, "0012 000002bc"],
  [
    { name: "final_incorrect_htlc_amount", incomingHtlcMsat: 0xffff_ffff_ffff_ffffn },
    "0013 ffffffffffffffff",
  ],
  [{ name: "channel_disabled", channelUpdate: Buffer.alloc(0) }, "1014 0000 0000"], // disabled_flags 0
  [{ name: "expiry_too_far" }, "0015"],
  [{ name: "invalid_onion_payload", type: 6n, offset: 7 }, "4016 06 0007"],
  [{ name: "invalid_onion_payload", type: 513n, offset: 0x1234 }, "4016 fd0201 1234"],
  [{ name: "mpp_timeout" }, "0017"],
  [{ name: "unknown", code: 0x4009, data: hex("beef") }, "4009 beef"],
];

describe("failure messages", () => {
  it("every code has its BOLT #4 value", () => {
    expect(FAILURE_CODES).toEqual({
      invalid_realm: 0x4001,
      temporary_node_failure: 0x2002,
      permanent_node_failure: 0x6002,
      invalid_onion_version: 0xc004,
      invalid_onion_hmac: 0xc005,
      invalid_onion_key: 0xc006,
      temporary_channel_failure: 0x1007,
      permanent_channel_failure: 0x4008,
      unknown_next_peer: 0x400a,
      amount_below_minimum: 0x100b,
      fee_insufficient: 0x100c,
      incorrect_cltv_expiry: 0x100d,
      expiry_too_soon: 0x100e,
      incorrect_or_unknown_payment_details: 0x400f,
      final_incorrect_cltv_expiry: 18,
      final_incorrect_htlc_amount: 19,
      channel_disabled: 0x1014,
      expiry_too_far: 21,
      invalid_onion_payload: 0x4016,
      mpp_timeout: 23,
    });
  });

  it("encodes and decodes each failure as the hand-derived bytes", () => {
    for (const [f, bytes] of CASES) {
      expect(encodeFailure(f).toString("hex"), f.name).toBe(bytes.replace(/ /g, ""));
      expect(decodeFailure(hex(bytes)), f.name).toEqual(f);
    }
  });

  it("ignores bytes after a code's data (later versions may append)", () => {
    expect(decodeFailure(hex("2002 ff"))).toEqual({ name: "temporary_node_failure" });
    expect(decodeFailure(hex("100c 00000000000003e8 0000 aabb"))).toEqual({
      name: "fee_insufficient",
      htlcMsat: 1000n,
      channelUpdate: Buffer.alloc(0),
    });
  });

  it("a message shorter than its code's data is INVALID_FAILURE", () => {
    for (const bytes of [
      "",
      "20",
      "100c 00",
      "100c 00000000000003e8",
      "100c 00000000000003e8 0005 01",
      "c004 " + "00".repeat(31),
      "4016 fd02",
      "400f 0000000000001388",
    ]) {
      let err: unknown;
      try {
        decodeFailure(hex(bytes));
      } catch (e) {
        err = e;
      }
      expect(err, bytes).toBeInstanceOf(OnionError);
      expect((err as OnionError).code).toBe("INVALID_FAILURE");
    }
  });

  it("describes a failure for the operator", () => {
    expect(
      describeFailure({ name: "fee_insufficient", htlcMsat: 1000n, channelUpdate: Buffer.alloc(0) }),
    ).toBe("fee_insufficient (htlc 1000 msat)");
    expect(describeFailure({ name: "amount_below_minimum", htlcMsat: 5n, channelUpdate: update })).toBe(
      "amount_below_minimum (htlc 5 msat, channel_update 4 bytes)",
    );
    expect(describeFailure({ name: "temporary_node_failure" })).toBe("temporary_node_failure");
    expect(describeFailure({ name: "invalid_onion_payload", type: 6n, offset: 7 })).toBe(
      "invalid_onion_payload (type 6, offset 7)",
    );
    expect(describeFailure({ name: "unknown", code: 0x4009, data: hex("beef") })).toBe(
      "unknown failure 0x4009 (2 bytes of data)",
    );
  });
});
