/**
 * The gossip messages on the wire (DESIGN.md 10): pkt fields 61, 63, 65, the bare channel_update
 * of BOLT #4 failures, and the codec's rules on their fields. Expected bytes are hand-derived
 * (fixtures.ts) or built with protobufjs's own encoder, never with the codec under test.
 */
import {
  decodeChannelUpdateMessage,
  decodePkt,
  encodeChannelUpdateMessage,
  encodePkt,
  isGossipPkt,
  WireError,
  type Pkt,
  type WireErrorCode,
} from "@ln/proto";
import { readFileSync } from "node:fs";
import fc from "fast-check";
import protobuf from "protobufjs";
import { describe, expect, it } from "vitest";
import { cases, G, S } from "./fixtures.js";

const byKind = (kind: Pkt["kind"]): [string, Pkt, string] => cases.find(([, p]) => p.kind === kind)!;
const [, UPDATE, UPDATE_HEX] = byKind("channel_update");
// The bare message: the pkt's bytes without the pkt tag (fa03) and length (6d).
const UPDATE_BODY = UPDATE_HEX.slice(6);

function code(f: () => unknown): WireErrorCode | undefined {
  try {
    f();
  } catch (e) {
    if (e instanceof WireError) return e.code;
    throw e;
  }
  return undefined;
}

describe("gossip pkts", () => {
  it("are gossip, and the draft's kinds are not", () => {
    for (const [, p] of cases)
      expect(isGossipPkt(p)).toBe(
        ["channel_announcement", "channel_update", "node_announcement"].includes(p.kind),
      );
  });

  it("the bare channel_update is the pkt member's body, both ways", () => {
    const { kind: _kind, ...fields } = UPDATE as Extract<Pkt, { kind: "channel_update" }>;
    expect(encodeChannelUpdateMessage(fields).toString("hex")).toBe(UPDATE_BODY);
    expect(decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY, "hex"))).toEqual(fields);
  });

  it("a node that does not know gossip (the draft's schema, by protobufjs) skips fields 61, 63, 65", () => {
    const text = readFileSync(new URL("../lightning.proto", import.meta.url), "utf8");
    const draft = text
      .split("\n")
      .filter((l) => !/ = 6[135];/.test(l))
      .join("\n");
    expect(draft.length).toBeLessThan(text.length);
    const pktType = protobuf.parse(draft, { keepCase: true }).root.lookupType("lightning.pkt");
    for (const [, p, hex] of cases.filter(([, q]) => isGossipPkt(q))) {
      const decoded = pktType.toObject(pktType.decode(Buffer.from(hex, "hex")), { oneofs: true });
      expect(decoded, p.kind).toEqual({}); // nothing read, nothing thrown
    }
  });

  it("ignores an unknown odd field inside each gossip message, refuses an unknown even one", () => {
    const odd = "5801"; // field 11, varint
    const even = "6001"; // field 12, varint
    expect(decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY + odd, "hex"))).toEqual(
      decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY, "hex")),
    );
    expect(code(() => decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY + even, "hex")))).toBe(
      "UNKNOWN_EVEN_FIELD",
    );
  });

  it("refuses a direction other than 0 or 1, a bool other than 0 or 1, a missing required field", () => {
    expect(
      code(() => decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY.replace("1001", "1002"), "hex"))),
    ).toBe("FIELD_RANGE");
    expect(
      code(() => decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY.replace("2000", "2002"), "hex"))),
    ).toBe("FIELD_RANGE");
    expect(code(() => decodeChannelUpdateMessage(Buffer.from(UPDATE_BODY.replace("2000", ""), "hex")))).toBe(
      "MISSING_FIELD",
    );
    // 32-bit fields hold 32 bits.
    const fields = { ...(UPDATE as Extract<Pkt, { kind: "channel_update" }>) };
    expect(code(() => encodePkt({ ...fields, feeProportionalMillionths: 2n ** 32n }))).toBe("FIELD_RANGE");
    expect(code(() => encodePkt({ ...fields, direction: 2 as 0 }))).toBe("FIELD_RANGE");
  });

  it("refuses a node_announcement whose node_id is not a point, whatever its other fields", () => {
    const [, , hex] = byKind("node_announcement");
    const notAPoint = `02${"00".repeat(32)}`;
    expect(code(() => decodePkt(Buffer.from(hex.replace(G, notAPoint), "hex")))).toBe("BAD_PUBKEY");
  });

  it("a node_announcement without addresses decodes with an empty list", () => {
    const p: Pkt = {
      kind: "node_announcement",
      nodeId: Buffer.from(G, "hex"),
      timestamp: 1,
      alias: "",
      addresses: [],
      sig: S,
    };
    expect(decodePkt(encodePkt(p))).toEqual(p);
  });
});

describe("fuzzing the gossip decoders", () => {
  const seeds = cases.filter(([, p]) => isGossipPkt(p)).map(([, , hex]) => Buffer.from(hex, "hex"));

  it("mutated gossip pkts: a pkt or a WireError, and what decodes re-encodes to itself", () => {
    const mutation = fc.tuple(
      fc.nat({ max: seeds.length - 1 }),
      fc.array(
        fc.tuple(fc.constantFrom("flip", "insert", "delete"), fc.nat(), fc.integer({ min: 0, max: 255 })),
        {
          minLength: 1,
          maxLength: 4,
        },
      ),
    );
    fc.assert(
      fc.property(mutation, ([which, edits]) => {
        let b = Buffer.from(seeds[which]!);
        for (const [op, at, v] of edits) {
          const i = at % (b.length + 1);
          if (op === "flip" && b.length > 0) b[i % b.length] = b[i % b.length]! ^ (v | 1);
          else if (op === "insert") b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
          else if (op === "delete") b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
        }
        let p: Pkt;
        try {
          p = decodePkt(b);
        } catch (e) {
          if (e instanceof WireError) return;
          throw e;
        }
        expect(decodePkt(encodePkt(p))).toEqual(p);
      }),
      { numRuns: 20000 },
    );
  });

  it("random bytes as a bare channel_update: an update or a WireError", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => {
        try {
          decodeChannelUpdateMessage(b);
        } catch (e) {
          if (!(e instanceof WireError)) throw e;
        }
      }),
      { numRuns: 20000 },
    );
  });
});
