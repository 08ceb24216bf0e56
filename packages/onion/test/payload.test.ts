/** Hop payloads (BOLT #4 "Payload Format", BOLT #1 TLV and BigSize), with bytes derived by hand. */
import { describe, expect, it } from "vitest";
import { decodeHopPayload, encodeHopPayload, OnionError, type HopPayload } from "@ln/onion";

const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ""), "hex");

function invalid(bytes: string): { type: bigint; offset: number } {
  try {
    decodeHopPayload(hex(bytes));
  } catch (e) {
    if (!(e instanceof OnionError)) throw e;
    expect(e.code).toBe("INVALID_PAYLOAD");
    expect(e.sharedSecret).toBeUndefined();
    if (e.failure?.name !== "invalid_onion_payload") throw new Error(`failure ${e.failure?.name}`);
    return { type: e.failure.type, offset: e.failure.offset };
  }
  throw new Error(`${bytes} decoded`);
}

describe("encodeHopPayload", () => {
  it("truncated integers: zero is empty, no leading zero byte, the full u64", () => {
    // len 4 | type 2 len 0 | type 4 len 0
    expect(encodeHopPayload({ amtToForwardMsat: 0n, outgoingCltvValue: 0 }).toString("hex")).toBe(
      "0402000400",
    );
    expect(
      encodeHopPayload({ amtToForwardMsat: 0xffff_ffff_ffff_ffffn, outgoingCltvValue: 0x0100_0000 }).toString(
        "hex",
      ),
    ).toBe("10" + "0208ffffffffffffffff" + "040401000000");
    expect(encodeHopPayload({ amtToForwardMsat: 0x100n, outgoingCltvValue: 0xff }).toString("hex")).toBe(
      "07" + "02020100" + "0401ff",
    );
  });

  it("short_channel_id as 8 bytes and payment_data as the secret then total_msat as a tu64, in type order", () => {
    const secret = Buffer.alloc(32, 0xab);
    const p: HopPayload = {
      amtToForwardMsat: 1n,
      outgoingCltvValue: 2,
      shortChannelId: 0x0102030405060708n,
      paymentData: { paymentSecret: secret, totalMsat: 0x1234n },
    };
    const expected = "020101" + "040102" + "06080102030405060708" + "0822" + "ab".repeat(32) + "1234";
    expect(encodeHopPayload(p).toString("hex")).toBe((expected.length / 2).toString(16) + expected);
    expect(decodeHopPayload(encodeHopPayload(p))).toEqual(p);
  });

  it("refuses values out of range with INVALID_PAYLOAD", () => {
    const bad: HopPayload[] = [
      { amtToForwardMsat: -1n, outgoingCltvValue: 0 },
      { amtToForwardMsat: 1n << 64n, outgoingCltvValue: 0 },
      { amtToForwardMsat: 0n, outgoingCltvValue: 2 ** 32 },
      { amtToForwardMsat: 0n, outgoingCltvValue: 1.5 },
      { amtToForwardMsat: 0n, outgoingCltvValue: 0, shortChannelId: 1n << 64n },
      {
        amtToForwardMsat: 0n,
        outgoingCltvValue: 0,
        paymentData: { paymentSecret: Buffer.alloc(31), totalMsat: 0n },
      },
    ];
    for (const p of bad)
      expect(() => encodeHopPayload(p)).toThrow(expect.objectContaining({ code: "INVALID_PAYLOAD" }));
  });
});

describe("decodeHopPayload", () => {
  it("skips unknown odd types", () => {
    expect(decodeHopPayload(hex("08 02012a 040105 0b00"))).toEqual({
      amtToForwardMsat: 42n,
      outgoingCltvValue: 5,
    });
    expect(decodeHopPayload(hex("0b 02012a 040105 fd0201 01ff"))).toEqual({
      amtToForwardMsat: 42n,
      outgoingCltvValue: 5,
    });
  });

  it("invalid_onion_payload names the type and the offset of its record from the length prefix", () => {
    expect(invalid("08 02012a 040105 0a00")).toEqual({ type: 10n, offset: 7 }); // unknown even type
    expect(invalid("06 040105 02012a")).toEqual({ type: 2n, offset: 4 }); // out of order
    expect(invalid("06 02012a 02012a")).toEqual({ type: 2n, offset: 4 }); // repeated
    expect(invalid("06 0202 0001 0400")).toEqual({ type: 2n, offset: 1 }); // tu64 with a leading zero
    expect(invalid("0a 02012a 0405 0100000000")).toEqual({ type: 4n, offset: 4 }); // tu32 over 4 bytes
    expect(invalid("0b 02012a 040105 0603 000001")).toEqual({ type: 6n, offset: 7 }); // scid not 8 bytes
    expect(invalid("06 02012a 040205")).toEqual({ type: 4n, offset: 4 }); // value overruns
    expect(invalid("0a 02012a 040105 fd000200")).toEqual({ type: 0n, offset: 7 }); // type not minimal BigSize
    expect(invalid(`27 02012a 040105 081f ${"ab".repeat(31)}`)).toEqual({ type: 8n, offset: 7 }); // short secret
    expect(invalid(`29 02012a 040105 0821 ${"ab".repeat(32)}00`)).toEqual({ type: 8n, offset: 7 }); // total not minimal
  });

  it("a missing amt_to_forward or outgoing_cltv_value is invalid_onion_payload of that type at offset 0", () => {
    expect(invalid("03 040105")).toEqual({ type: 2n, offset: 0 });
    expect(invalid("03 02012a")).toEqual({ type: 4n, offset: 0 });
    expect(invalid("00")).toEqual({ type: 2n, offset: 0 });
  });

  it("a length prefix that is not the rest of the bytes, or not a minimal BigSize, is type 0 at offset 0", () => {
    expect(invalid("09 02012a 040105")).toEqual({ type: 0n, offset: 0 });
    expect(invalid("05 02012a 040105")).toEqual({ type: 0n, offset: 0 });
    expect(invalid("fd0006 02012a 040105")).toEqual({ type: 0n, offset: 0 });
    expect(invalid("")).toEqual({ type: 0n, offset: 0 });
  });
});
