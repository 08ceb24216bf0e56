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
const b = (s: string): Buffer => Buffer.from(s, "utf8");

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
    expect(encodePeerConnectRequest(req).toString()).toBe(
      `{"host":"127.0.0.1","port":9735,"nodeId":"${NODE}"}`,
    );
    expect(decodePeerConnectRequest(encodePeerConnectRequest(req))).toEqual(req);
    expect(decodePeerResyncRequest(encodePeerResyncRequest({ nodeId: NODE3 }))).toEqual({ nodeId: NODE3 });
    expect(() => decodePeerResyncRequest(b('{"nodeId":"02"}'))).toThrow(/resync request: nodeId/);
    expect(decodePeerConnectRequest(b(`{"host":"::1","port":1,"nodeId":"${NODE3}","extra":1}`))).toEqual({
      host: "::1",
      port: 1,
      nodeId: NODE3,
    });
    const replies: PeerConnectReply[] = [
      { ok: true, nodeId: NODE },
      { ok: false, code: "UNREACHABLE", message: "cannot reach x:1 (ECONNREFUSED)" },
      { ok: false, code: "BAD_REQUEST", message: "" },
    ];
    for (const r of replies) expect(decodePeerConnectReply(encodePeerConnectReply(r))).toEqual(r);
    expect(encodePeerConnectReply({ ok: true, nodeId: NODE }).toString()).toBe(
      `{"ok":true,"nodeId":"${NODE}"}`,
    );
    const peers: PeersReply = {
      peers: [
        { nodeId: NODE, host: "10.0.0.1", port: 9735, direction: "outbound" },
        { nodeId: NODE3, host: "::ffff:127.0.0.1", port: 0, direction: "inbound" },
      ],
    };
    expect(decodePeersReply(encodePeersReply(peers))).toEqual(peers);
    expect(decodePeersReply(b('{"peers":[]}'))).toEqual({ peers: [] });
  });

  it("rejects bad requests with a message naming the field", () => {
    const cases: [string, RegExp][] = [
      ["", /not JSON/],
      ["[]", /not a JSON object/],
      ["null", /not a JSON object/],
      [`{"port":1,"nodeId":"${NODE}"}`, /host/],
      [`{"host":"a b","port":1,"nodeId":"${NODE}"}`, /host/],
      [`{"host":"","port":1,"nodeId":"${NODE}"}`, /host/],
      [`{"host":"h","port":0,"nodeId":"${NODE}"}`, /port/],
      [`{"host":"h","port":65536,"nodeId":"${NODE}"}`, /port/],
      [`{"host":"h","port":1.5,"nodeId":"${NODE}"}`, /port/],
      [`{"host":"h","port":"1","nodeId":"${NODE}"}`, /port/],
      [`{"host":"h","port":1,"nodeId":"${NODE.toUpperCase()}"}`, /nodeId/],
      [`{"host":"h","port":1,"nodeId":"04${"ab".repeat(32)}"}`, /nodeId/],
      [`{"host":"h","port":1,"nodeId":"02ab"}`, /nodeId/],
    ];
    for (const [text, msg] of cases) {
      expect(() => decodePeerConnectRequest(b(text))).toThrow(PeerControlDecodeError);
      expect(() => decodePeerConnectRequest(b(text))).toThrow(msg);
    }
  });

  it("rejects bad replies", () => {
    for (const bad of [
      "{}",
      '{"ok":true}',
      '{"ok":"true","nodeId":"x"}',
      '{"ok":false,"code":"NOPE","message":"m"}',
      '{"ok":false,"code":"UNREACHABLE"}',
      `{"ok":false,"code":"UNREACHABLE","message":"${"x".repeat(1001)}"}`,
    ])
      expect(() => decodePeerConnectReply(b(bad))).toThrow(PeerControlDecodeError);
    for (const bad of [
      "{}",
      '{"peers":{}}',
      '{"peers":[null]}',
      `{"peers":[{"nodeId":"${NODE}","host":"h","port":1,"direction":"sideways"}]}`,
      `{"peers":[{"nodeId":"${NODE}","host":"h","port":-1,"direction":"inbound"}]}`,
      `{"peers":[{"nodeId":"${NODE}","port":1,"direction":"inbound"}]}`,
    ])
      expect(() => decodePeersReply(b(bad))).toThrow(PeerControlDecodeError);
  });

  it("fuzz: the decoders throw only PeerControlDecodeError, on bytes and on JSON values", () => {
    const decoders = [
      decodePeerConnectRequest,
      decodePeerConnectReply,
      decodePeersReply,
      decodePeerResyncRequest,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        for (const d of decoders) onlyDecodeErrors(() => d(bytes));
      }),
      { numRuns: 500 },
    );
    // JSON objects shaped like the real ones, with fields of any type.
    const field = fc.oneof(
      fc.jsonValue(),
      fc.constantFrom(NODE, "inbound", "outbound", "UNREACHABLE", 1, 0, true, false),
    );
    const obj = fc.record(
      {
        host: field,
        port: field,
        nodeId: field,
        ok: field,
        code: field,
        message: field,
        peers: fc.oneof(
          field,
          fc.array(fc.record({ nodeId: field, host: field, port: field, direction: field })),
        ),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(obj, (o) => {
        const bytes = b(JSON.stringify(o));
        for (const d of decoders) onlyDecodeErrors(() => d(bytes));
      }),
      { numRuns: 1000 },
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
