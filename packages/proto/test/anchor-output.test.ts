/** `<prefix>.anchor_output` (events.proto): round trips against protobufjs's own view, and fuzzing. */
import {
  decodeAnchorOutputReply,
  decodeAnchorOutputRequest,
  encodeAnchorOutputReply,
  encodeAnchorOutputRequest,
  EventDecodeError,
} from "@ln/proto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

const TXID = "ab".repeat(32);

describe("anchor_output request and reply", () => {
  it("the request is three varint fields (tags 08 10 18)", () => {
    // 08 96 01 (150) | 10 03 | 18 01
    expect(encodeAnchorOutputRequest({ height: 150, txIndex: 3, outputIndex: 1 }).toString("hex")).toBe(
      "089601" + "1003" + "1801",
    );
    expect(decodeAnchorOutputRequest(Buffer.from("0896011003", "hex"))).toEqual({
      height: 150,
      txIndex: 3,
      outputIndex: 0,
    });
  });

  it("the reply: found with every field, not found, or the node's error", () => {
    const found = {
      found: true as const,
      txid: TXID,
      script: Buffer.from("a914", "hex"),
      valueSat: 2n ** 40n,
      unspent: false,
    };
    expect(decodeAnchorOutputReply(encodeAnchorOutputReply(found))).toEqual(found);
    expect(decodeAnchorOutputReply(encodeAnchorOutputReply({ found: false }))).toEqual({ found: false });
    expect(decodeAnchorOutputReply(Buffer.alloc(0))).toEqual({ found: false });
    expect(decodeAnchorOutputReply(encodeAnchorOutputReply({ error: "node down" }))).toEqual({
      error: "node down",
    });
    // found, with a txid that is not 64 hex: refused.
    expect(() => decodeAnchorOutputReply(Buffer.from("0801" + "1203616263", "hex"))).toThrow(
      EventDecodeError,
    );
  });

  it("fuzz: random bytes are a request/reply or an EventDecodeError, nothing else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 120 }), (b) => {
        for (const decode of [decodeAnchorOutputRequest, decodeAnchorOutputReply])
          try {
            decode(b);
          } catch (e) {
            if (!(e instanceof EventDecodeError)) throw e;
          }
      }),
      { numRuns: 20000 },
    );
  });

  it("round-trips any found reply", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        fc.uint8Array({ maxLength: 60 }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.boolean(),
        (t, script, valueSat, unspent) => {
          const r = {
            found: true as const,
            txid: Buffer.from(t).toString("hex"),
            script: Buffer.from(script),
            valueSat,
            unspent,
          };
          expect(decodeAnchorOutputReply(encodeAnchorOutputReply(r))).toEqual(r);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
