import { describe, expect, it } from "vitest";
import { deserializeState, serializeState } from "../src/serialize.js";
import type { ChannelState } from "../src/types.js";
import { fundedPair } from "./conformance-helpers.js";

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

  it("gives back a state in normal operation as it was: bigints, nested arrays, untagged objects", () => {
    const p = fundedPair();
    for (const s of [p.a.state, p.b.state]) {
      const back = deserializeState(serializeState(s));
      expect(back).toEqual(s);
      expect(typeof back.localCommit?.number).toBe("bigint");
    }
  });

  it("an object whose $bigint or $bytes is not a string stays an object (its insides revived)", () => {
    const json = JSON.stringify({
      a: { $bigint: 5, inner: { $bigint: "7" } },
      b: [{ $bytes: "0a0b" }, { $bytes: null }],
      ["__proto__"]: { $bigint: "1" },
    });
    const back = deserializeState(json) as unknown as Record<string, unknown>;
    expect(back["a"]).toEqual({ $bigint: 5, inner: 7n });
    expect(back["b"]).toEqual([Buffer.from([10, 11]), { $bytes: null }]);
    // An own "__proto__" key stays a property; the prototype is untouched.
    expect(Object.getOwnPropertyDescriptor(back, "__proto__")?.value).toBe(1n);
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
  });
});
