import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeAckReply,
  decodePeerEvent,
  encodeAckReply,
  encodePeerEvent,
  peerSubjects,
  PeerEventDecodeError,
  type DisconnectReason,
  type PeerEvent,
} from "@ln/proto";

const REASONS: DisconnectReason[] = [
  "LOCAL_CLOSE",
  "PEER_CLOSED",
  "HANDSHAKE_TIMEOUT",
  "HANDSHAKE_FAILED",
  "BAD_MAC",
  "SLOW_PEER",
  "SOCKET_ERROR",
  "REPLACED",
  "BAD_PKT",
  "RESYNC",
  "SENT_ERROR",
  "GATEWAY_CLOSED",
];
const hex = (s: string): Buffer => Buffer.from(s.replace(/ /g, ""), "hex");

/** Decoding either returns a value or throws PeerEventDecodeError, nothing else. */
function onlyDecodeErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PeerEventDecodeError);
  }
}

describe("peer events (peer.proto peer_event)", () => {
  it("round-trips every kind and reason", () => {
    const all: PeerEvent[] = [
      { type: "connected", theirAck: "0" },
      { type: "connected", theirAck: "18446744073709551615" },
      ...REASONS.map((reason) => ({ type: "disconnected" as const, reason })),
    ];
    for (const e of all) expect(decodePeerEvent(encodePeerEvent(e))).toEqual(e);
  });

  it("encodes as the schema says (field numbers, varints)", () => {
    // peer_event.connected (1, length 2) { their_ack (1, varint) 5 }
    expect(encodePeerEvent({ type: "connected", theirAck: "5" })).toEqual(hex("0a 02 08 05"));
    // A their_ack of 0 is present (proto3 optional): 08 00.
    expect(encodePeerEvent({ type: "connected", theirAck: "0" })).toEqual(hex("0a 02 08 00"));
    // peer_event.disconnected (2, length 2) { reason (1) REPLACED = 8 }
    expect(encodePeerEvent({ type: "disconnected", reason: "REPLACED" })).toEqual(hex("12 02 08 08"));
  });

  it("rejects what is not an event, with a code and the field", () => {
    const cases: [string, string, string | undefined][] = [
      ["", "UNKNOWN_KIND", "event"], // no kind at all
      ["0a 00", "MISSING_FIELD", "connected.their_ack"], // connected {} : an absent ack is not 0
      ["12 00", "BAD_FIELD", "disconnected.reason"], // reason unspecified
      ["12 02 08 63", "BAD_FIELD", "disconnected.reason"], // reason 99
      ["0a 05 08 ff ff ff", "MALFORMED", undefined], // truncated
      ["ff", "MALFORMED", undefined],
    ];
    for (const [bytes, code, field] of cases) {
      const e = (() => {
        try {
          decodePeerEvent(hex(bytes));
        } catch (x) {
          return x;
        }
        return undefined;
      })();
      expect(e, bytes).toBeInstanceOf(PeerEventDecodeError);
      expect(e, bytes).toMatchObject({ code, field });
    }
  });

  it("an ack reply carries a uint64, and its absence is an error, never 0", () => {
    for (const ack of [0n, 7n, 2n ** 53n + 1n, 2n ** 64n - 1n])
      expect(decodeAckReply(encodeAckReply(ack))).toBe(ack);
    expect(() => decodeAckReply(new Uint8Array())).toThrow(PeerEventDecodeError);
    expect(() => decodeAckReply(Buffer.from("12"))).toThrow(PeerEventDecodeError); // the old decimal text
  });

  it("fuzz: the decoders throw only PeerEventDecodeError; what decodes re-encodes the same", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        onlyDecodeErrors(() => decodePeerEvent(bytes));
        onlyDecodeErrors(() => decodeAckReply(bytes));
        let e: PeerEvent;
        try {
          e = decodePeerEvent(bytes);
        } catch {
          return;
        }
        expect(decodePeerEvent(encodePeerEvent(e))).toEqual(e);
      }),
      { numRuns: 2000 },
    );
    const event: fc.Arbitrary<PeerEvent> = fc.oneof(
      fc
        .bigInt({ min: 0n, max: 2n ** 64n - 1n })
        .map((a) => ({ type: "connected" as const, theirAck: a.toString() })),
      fc.constantFrom(...REASONS).map((reason) => ({ type: "disconnected" as const, reason })),
    );
    fc.assert(
      fc.property(event, (e) => {
        expect(decodePeerEvent(encodePeerEvent(e))).toEqual(e);
      }),
    );
  });

  it("names the subjects", () => {
    expect(peerSubjects("peer", "02ab")).toEqual({
      in: "peer.02ab.in",
      out: "peer.02ab.out",
      events: "peer.02ab.events",
      ack: "peer.02ab.ack",
    });
  });
});
