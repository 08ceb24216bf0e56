import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodePeerConnectReply,
  decodePeerConnectRequest,
  decodePeerResyncRequest,
  encodePeerResyncRequest,
  decodePeersReply,
  encodePeerConnectReply,
  encodePeerConnectRequest,
  encodePeersReply,
  PEER_CONTROL_QUEUE,
  peerControlSubjects,
  PeerControlDecodeError,
  type PeerConnectReply,
  type PeersReply,
} from "@ln/proto";

const NODE = `02${"ab".repeat(32)}`;
const NODE3 = `03${"0f".repeat(32)}`;
/** A protobuf field by hand (lengths and values below 2^14), to build what the encoders never would. */
const tag = (n: number, wire: number): number => (n << 3) | wire;
const v = (x: number): number[] =>
  x < 0x80
    ? [x]
    : x < 0x4000
      ? [(x & 0x7f) | 0x80, x >> 7]
      : [(x & 0x7f) | 0x80, ((x >> 7) & 0x7f) | 0x80, x >> 14];
const varint = (n: number, x: number): Buffer => Buffer.from([tag(n, 0), ...v(x)]);
const bytes = (n: number, b: Uint8Array): Buffer =>
  Buffer.concat([Buffer.from([tag(n, 2), ...v(b.length)]), b]);
const str = (n: number, s: string): Buffer => bytes(n, Buffer.from(s, "utf8"));
const caught = (f: () => unknown): unknown => {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
};

/** Decoding either returns a value or throws PeerControlDecodeError, nothing else. */
function onlyDecodeErrors(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    expect(e).toBeInstanceOf(PeerControlDecodeError);
  }
}

describe("peer control requests", () => {
  it("names the subjects and the queue group", () => {
    expect(peerControlSubjects("ln1.peer")).toEqual({
      connect: "ln1.peer.ctl.connect",
      peers: "ln1.peer.ctl.peers",
      resync: "ln1.peer.ctl.resync",
    });
    expect(PEER_CONTROL_QUEUE).toBe("peer-gateway");
  });

  it("round-trips connect requests and replies, and peers replies", () => {
    const req = { host: "127.0.0.1", port: 9735, nodeId: NODE };
    // host (1) "127.0.0.1", port (2) 9735, node_id (3) 33 bytes
    expect(encodePeerConnectRequest(req)).toEqual(
      Buffer.concat([str(1, "127.0.0.1"), varint(2, 9735), bytes(3, Buffer.from(NODE, "hex"))]),
    );
    expect(decodePeerConnectRequest(encodePeerConnectRequest(req))).toEqual(req);
    expect(decodePeerResyncRequest(encodePeerResyncRequest({ nodeId: NODE3 }))).toEqual({ nodeId: NODE3 });
    // An unknown field is skipped.
    expect(
      decodePeerConnectRequest(
        Buffer.concat([encodePeerConnectRequest({ ...req, nodeId: NODE3 }), varint(9, 1)]),
      ),
    ).toEqual({ ...req, nodeId: NODE3 });
    const replies: PeerConnectReply[] = [
      { ok: true, nodeId: NODE },
      { ok: false, code: "UNREACHABLE", message: "cannot reach x:1 (ECONNREFUSED)" },
      { ok: false, code: "BAD_REQUEST", message: "" },
    ];
    for (const r of replies) expect(decodePeerConnectReply(encodePeerConnectReply(r))).toEqual(r);
    const peers: PeersReply = {
      peers: [
        { nodeId: NODE, host: "10.0.0.1", port: 9735, direction: "outbound" },
        { nodeId: NODE3, host: "::ffff:127.0.0.1", port: 0, direction: "inbound" },
      ],
    };
    expect(decodePeersReply(encodePeersReply(peers))).toEqual(peers);
    expect(decodePeersReply(new Uint8Array())).toEqual({ peers: [] });
  });

  it("rejects bad requests with a code and the field", () => {
    const key = Buffer.from(NODE, "hex");
    const cases: [Buffer, string, string | undefined, RegExp][] = [
      [Buffer.from([0xff]), "MALFORMED", undefined, /not a connect_request/],
      [Buffer.concat([varint(2, 1), bytes(3, key)]), "BAD_FIELD", "host", /host/],
      [Buffer.concat([str(1, "a b"), varint(2, 1), bytes(3, key)]), "BAD_FIELD", "host", /host/],
      [Buffer.concat([str(1, "h"), bytes(3, key)]), "BAD_FIELD", "port", /port/],
      [Buffer.concat([str(1, "h"), varint(2, 65536), bytes(3, key)]), "BAD_FIELD", "port", /port/],
      [Buffer.concat([str(1, "h"), varint(2, 1)]), "BAD_FIELD", "node_id", /nodeId/],
      [
        Buffer.concat([str(1, "h"), varint(2, 1), bytes(3, Buffer.from(`04${"ab".repeat(32)}`, "hex"))]),
        "BAD_FIELD",
        "node_id",
        /nodeId/,
      ],
      [
        Buffer.concat([str(1, "h"), varint(2, 1), bytes(3, key.subarray(0, 32))]),
        "BAD_FIELD",
        "node_id",
        /nodeId/,
      ],
    ];
    for (const [input, code, field, msg] of cases) {
      const e = caught(() => decodePeerConnectRequest(input));
      expect(e).toBeInstanceOf(PeerControlDecodeError);
      expect(e).toMatchObject({ code, field });
      expect((e as Error).message).toMatch(msg);
    }
    expect(caught(() => decodePeerResyncRequest(bytes(1, Buffer.from("02", "hex"))))).toMatchObject({
      code: "BAD_FIELD",
      field: "node_id",
    });
  });

  it("rejects bad replies", () => {
    for (const bad of [
      new Uint8Array(), // neither ok nor error
      bytes(1, new Uint8Array()), // ok without a node id
      bytes(2, Buffer.concat([varint(1, 99), str(2, "m")])), // unknown code
      bytes(2, str(2, "m")), // code unspecified
      bytes(2, Buffer.concat([varint(1, 2), str(2, "x".repeat(1001))])), // message too long
    ])
      expect(() => decodePeerConnectReply(bad)).toThrow(PeerControlDecodeError);
    const key = Buffer.from(NODE, "hex");
    for (const bad of [
      bytes(1, Buffer.concat([bytes(1, key), str(2, "h"), varint(3, 1), varint(4, 3)])), // direction 3
      bytes(1, Buffer.concat([bytes(1, key), str(2, "h"), varint(3, 1)])), // no direction
      bytes(1, Buffer.concat([str(2, "h"), varint(3, 1), varint(4, 1)])), // no node id
      bytes(1, Buffer.concat([bytes(1, key), str(2, "h"), varint(3, 70000), varint(4, 1)])), // port
    ])
      expect(() => decodePeersReply(bad)).toThrow(PeerControlDecodeError);
  });

  it("fuzz: the decoders throw only PeerControlDecodeError, on random bytes and on mutated messages", () => {
    const decoders = [
      decodePeerConnectRequest,
      decodePeerConnectReply,
      decodePeersReply,
      decodePeerResyncRequest,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (input) => {
        for (const d of decoders) onlyDecodeErrors(() => d(input));
      }),
      { numRuns: 1000 },
    );
    // Real messages with bytes flipped, cut or appended.
    const valid = [
      encodePeerConnectRequest({ host: "h.example", port: 9735, nodeId: NODE }),
      encodePeerConnectReply({ ok: true, nodeId: NODE3 }),
      encodePeerConnectReply({ ok: false, code: "HANDSHAKE_FAILED", message: "m" }),
      encodePeersReply({ peers: [{ nodeId: NODE, host: "h", port: 1, direction: "inbound" }] }),
      encodePeerResyncRequest({ nodeId: NODE }),
    ];
    fc.assert(
      fc.property(
        fc.constantFrom(...valid),
        fc.nat(),
        fc.integer({ min: 0, max: 255 }),
        fc.uint8Array({ maxLength: 8 }),
        (msg, at, byte, tail) => {
          const m = Buffer.from(msg);
          m[at % m.length] = byte;
          const mutated = Buffer.concat([m.subarray(0, m.length - (at % 3)), tail]);
          for (const d of decoders) onlyDecodeErrors(() => d(mutated));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("fuzz: whatever decodes re-encodes to something that decodes to the same", () => {
    const request = fc.record({
      host: fc.stringMatching(/^[\x21-\x7e]{1,40}$/),
      port: fc.integer({ min: 1, max: 65535 }),
      nodeId: fc
        .tuple(fc.constantFrom("02", "03"), fc.uint8Array({ minLength: 32, maxLength: 32 }))
        .map(([p, k]) => p + Buffer.from(k).toString("hex")),
    });
    fc.assert(
      fc.property(request, (r) => {
        expect(decodePeerConnectRequest(encodePeerConnectRequest(r))).toEqual(r);
      }),
    );
    fc.assert(
      fc.property(fc.string({ maxLength: 1000 }), (message) => {
        const r: PeerConnectReply = { ok: false, code: "HANDSHAKE_FAILED", message };
        expect(decodePeerConnectReply(encodePeerConnectReply(r))).toEqual(r);
      }),
    );
  });
});
