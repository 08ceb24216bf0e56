import { describe, expect, it } from "vitest";
import {
  decodePeerEvent,
  encodePeerEvent,
  peerSubjects,
  PeerEventDecodeError,
  type PeerEvent,
} from "@ln/proto";

describe("peer events", () => {
  it("round-trips both kinds", () => {
    const all: PeerEvent[] = [
      { type: "connected", theirAck: "0" },
      { type: "connected", theirAck: "18446744073709551615" },
      { type: "disconnected", reason: "REPLACED" },
      { type: "disconnected", reason: "PEER_CLOSED" },
    ];
    for (const e of all) expect(decodePeerEvent(encodePeerEvent(e))).toEqual(e);
    expect(encodePeerEvent({ type: "connected", theirAck: "5" }).toString()).toBe(
      '{"type":"connected","theirAck":"5"}',
    );
  });

  it("rejects anything else", () => {
    for (const bad of [
      "",
      "null",
      "[]",
      '{"type":"connected"}',
      '{"type":"connected","theirAck":5}',
      '{"type":"connected","theirAck":"-1"}',
      '{"type":"connected","theirAck":"01"}',
      '{"type":"disconnected","reason":"NOPE"}',
      '{"type":"other"}',
      "\xff\xfe",
    ])
      expect(() => decodePeerEvent(Buffer.from(bad))).toThrow(PeerEventDecodeError);
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
