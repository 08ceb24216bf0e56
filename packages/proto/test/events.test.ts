import {
  decodeChainEvent,
  decodeWatchAnchor,
  encodeChainEvent,
  encodeWatchAnchor,
  EventDecodeError,
  type ChainEvent,
} from "@ln/proto";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

describe("NATS payloads (events.proto)", () => {
  const events: ChainEvent[] = [
    { kind: "block_connected", height: 1400, hash: "ab".repeat(32), time: 1_700_000_000 },
    { kind: "block_disconnected", height: 1400, hash: "ab".repeat(32) },
    { kind: "anchor_depth", channelId: "chan-1", depth: 3 },
    { kind: "anchor_spent", channelId: "chan-1", txid: "cd".repeat(32), height: 1401 },
  ];
  it.each(events)("round-trips $kind", (e) => {
    expect(decodeChainEvent(encodeChainEvent(e))).toEqual(e);
  });
  it("anchor_depth 2 is field 3 (tag 1a) holding channel_id (0a) and depth (10)", () => {
    expect(encodeChainEvent({ kind: "anchor_depth", channelId: "c", depth: 2 }).toString("hex")).toBe(
      "1a050a01631002",
    );
  });
  it("watch_anchor round-trips and is checked", () => {
    const w = { channelId: "chan-1", txid: "ef".repeat(32), vout: 1, depth: 6 };
    expect(decodeWatchAnchor(encodeWatchAnchor(w))).toEqual(w);
    expect(() => decodeWatchAnchor(encodeWatchAnchor({ ...w, txid: "zz" }))).toThrow(EventDecodeError);
  });
  it("random bytes decode to an event or an EventDecodeError, nothing else", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          decodeChainEvent(b);
        } catch (e) {
          expect(e).toBeInstanceOf(EventDecodeError);
        }
      }),
      { numRuns: 5000 },
    );
  });
});
