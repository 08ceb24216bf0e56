import { describe, expect, it } from "vitest";
import {
  decodeRevocationRecordMsg,
  decodeSealedRecordMsg,
  encodeRevocationRecordMsg,
  encodeSealedRecordMsg,
  TowerDecodeError,
  type RevocationRecordMsg,
} from "../src/index.js";

const key = (n: number): Buffer => Buffer.concat([Buffer.of(2), Buffer.alloc(32, n)]);
const record: RevocationRecordMsg = {
  signerChannel: 9,
  revokedNumber: (1n << 63n) + 5n, // beyond a JS number's precision
  revocationPreimage: Buffer.alloc(32, 1),
  params: {
    anchor: {
      outpoint: { txid: "cd".repeat(32), vout: 2 },
      amountSat: 4_294_967n,
      commitKeys: [key(3), key(4)],
    },
    ownerFinal: key(5),
    otherFinal: key(6),
    revocationHash: Buffer.alloc(32, 7),
    delay: { seconds: 1024 },
    ownerMsat: 1_000_000_001n,
    otherMsat: 0n,
    htlcs: [
      {
        id: 0n,
        offeredByOwner: false,
        amountMsat: 546_000n,
        rHash: Buffer.alloc(32, 8),
        expiry: { blocks: 0 },
      },
    ],
    feeRate: 1112,
  },
  sweepScript: Buffer.from("a914" + "11".repeat(20) + "87", "hex"),
};

describe("tower.proto codec", () => {
  it("round-trips a revocation record, uint64 values exactly, a locktime's unit even at 0", () => {
    expect(decodeRevocationRecordMsg(encodeRevocationRecordMsg(record))).toEqual(record);
  });

  it("sealed_record: field 1 the locator, field 2 the blob, as protobuf bytes", () => {
    const bytes = encodeSealedRecordMsg({ locator: Buffer.alloc(16, 0xaa), blob: Buffer.of(1, 2) });
    expect(bytes.toString("hex")).toBe("0a10" + "aa".repeat(16) + "12020102");
    expect(decodeSealedRecordMsg(bytes)).toEqual({ locator: Buffer.alloc(16, 0xaa), blob: Buffer.of(1, 2) });
  });

  it("refuses a wrong locator length, an empty blob, a missing unit, one commit key, garbage", () => {
    const bad = [
      encodeSealedRecordMsg({ locator: Buffer.alloc(17), blob: Buffer.of(1) }),
      encodeSealedRecordMsg({ locator: Buffer.alloc(16), blob: Buffer.alloc(0) }),
    ];
    for (const b of bad) expect(() => decodeSealedRecordMsg(b)).toThrow(TowerDecodeError);
    const noUnit = encodeRevocationRecordMsg(record)
      .toString("hex")
      .replace("2a03" + "1080" + "08", "2a00");
    expect(noUnit).not.toBe(encodeRevocationRecordMsg(record).toString("hex"));
    expect(() => decodeRevocationRecordMsg(Buffer.from(noUnit, "hex"))).toThrow(TowerDecodeError);
    const oneKey = {
      ...record,
      params: {
        ...record.params,
        anchor: { ...record.params.anchor, commitKeys: [key(3)] as unknown as [Buffer, Buffer] },
      },
    };
    expect(() => decodeRevocationRecordMsg(encodeRevocationRecordMsg(oneKey))).toThrow(/commit_keys/);
    expect(() => decodeRevocationRecordMsg(Buffer.of(0xff, 0xff))).toThrow(TowerDecodeError);
  });
});
