import { describe, expect, it } from "vitest";
import { deserializeState, serializeState } from "../src/serialize.js";
import type { ChannelState } from "../src/types.js";

describe("serializeState", () => {
  it("keeps the Buffers of deferred peer packets (received while a signer reply was awaited)", () => {
    const s = {
      sentCount: 3n,
      deferred: [
        {
          type: "peer",
          pkt: {
            kind: "update_revocation",
            revocationPreimage: Buffer.alloc(32, 7),
            nextRevocationHash: new Uint8Array(32).fill(9),
          },
        },
      ],
    } as unknown as ChannelState;
    const back = deserializeState(serializeState(s)) as unknown as {
      sentCount: bigint;
      deferred: { pkt: { revocationPreimage: Buffer; nextRevocationHash: Buffer } }[];
    };
    expect(back.sentCount).toBe(3n);
    const pkt = back.deferred[0]?.pkt;
    expect(Buffer.isBuffer(pkt?.revocationPreimage)).toBe(true);
    expect(pkt?.revocationPreimage.equals(Buffer.alloc(32, 7))).toBe(true);
    expect(pkt?.nextRevocationHash.equals(Buffer.alloc(32, 9))).toBe(true);
  });
});
