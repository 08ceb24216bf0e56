import {
  decodeBroadcastReply,
  decodeBroadcastRequest,
  decodeChainEvent,
  decodeRequestReply,
  decodeTip,
  decodeWatchAnchor,
  decodeWatchScripts,
  encodeBroadcastReply,
  encodeBroadcastRequest,
  encodeChainEvent,
  encodeRequestReply,
  encodeTip,
  encodeWatchAnchor,
  encodeWatchScripts,
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
    {
      kind: "anchor_depth",
      channelId: "chan-1",
      depth: 1,
      position: { height: 539268, txIndex: 845, outputIndex: 1 },
    },
    { kind: "anchor_spent", channelId: "chan-1#2", txid: "cd".repeat(32), height: 1401, txHex: "0200" },
    {
      kind: "wallet_output",
      txid: "ef".repeat(32),
      vout: 3,
      amountSat: 2_100_000_000_000_000n,
      scriptHex: "0014" + "11".repeat(20),
      height: 1402,
      blockHash: "01".repeat(32),
      txHex: "0200",
    },
  ];
  it.each(events)("round-trips $kind", (e) => {
    expect(decodeChainEvent(encodeChainEvent(e))).toEqual(e);
  });
  it("anchor_depth 2 is field 3 (tag 1a) holding channel_id (0a) and depth (10)", () => {
    expect(encodeChainEvent({ kind: "anchor_depth", channelId: "c", depth: 2 }).toString("hex")).toBe(
      "1a050a01631002",
    );
  });
  it("anchor_depth's position is field 3 (tag 1a) of height (08), tx_index (10), output_index (18)", () => {
    const e: ChainEvent = {
      kind: "anchor_depth",
      channelId: "c",
      depth: 1,
      position: { height: 103, txIndex: 2, outputIndex: 1 },
    };
    // chain_event.anchor_depth { channel_id "c", depth 1, position { 103, 2, 1 } }: 103 = 0x67.
    const bytes = encodeChainEvent(e);
    expect(bytes.toString("hex")).toBe("1a0d0a016310011a06086710021801");
    expect(decodeChainEvent(bytes)).toEqual(e);
    // An event of an older watcher (no position) still decodes, without one.
    expect(decodeChainEvent(Buffer.from("1a050a01631002", "hex"))).toEqual({
      kind: "anchor_depth",
      channelId: "c",
      depth: 2,
    });
    // Heights as 4-byte varints: 2^24 - 1 = ff ff ff 07 fits 3 bytes, 2^24 = 80 80 80 08 does not.
    expect(decodeChainEvent(Buffer.from("1a100a016310011a0908ffffff0710021801", "hex"))).toEqual({
      ...e,
      position: { height: 0xffffff, txIndex: 2, outputIndex: 1 },
    });
    expect(() => decodeChainEvent(Buffer.from("1a100a016310011a09088080800810021801", "hex"))).toThrow(
      EventDecodeError,
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

  it("wallet_output keeps a full uint64 amount (field 5, amount_sat field 3)", () => {
    const e: ChainEvent = {
      kind: "wallet_output",
      txid: "ab".repeat(32),
      vout: 0,
      amountSat: 2n ** 64n - 1n,
      scriptHex: "51",
      height: 1,
      blockHash: "cd".repeat(32),
      txHex: "02000000",
    };
    const bytes = encodeChainEvent(e);
    expect(bytes[0]).toBe(0x2a);
    expect(decodeChainEvent(bytes)).toEqual(e);
    expect(() => encodeChainEvent({ ...e, amountSat: -1n })).toThrow(RangeError);
    expect(() => decodeChainEvent(encodeChainEvent({ ...e, txid: "nothex" }))).toThrow(EventDecodeError);
  });

  it("watch_scripts round-trips, lowercases, and refuses what is not hex", () => {
    const scripts = ["0014" + "aa".repeat(20), "51"];
    expect(decodeWatchScripts(encodeWatchScripts(scripts))).toEqual(scripts);
    expect(decodeWatchScripts(encodeWatchScripts(["AB"]))).toEqual(["ab"]);
    expect(decodeWatchScripts(encodeWatchScripts([]))).toEqual([]);
    for (const bad of ["", "abc", "zz", "ab".repeat(10_001)])
      expect(() => decodeWatchScripts(encodeWatchScripts([bad]))).toThrow(EventDecodeError);
  });

  it("request_reply, broadcast_request, broadcast_reply and tip round-trip", () => {
    expect(decodeRequestReply(encodeRequestReply(""))).toEqual({ error: "" });
    expect(decodeRequestReply(encodeRequestReply("db down"))).toEqual({ error: "db down" });
    const tx = Buffer.from("0200000001", "hex");
    expect(decodeBroadcastRequest(new Uint8Array(encodeBroadcastRequest(tx)))).toEqual({ tx });
    expect(() => decodeBroadcastRequest(encodeBroadcastRequest(Buffer.alloc(0)))).toThrow(EventDecodeError);
    const ok = { txid: "12".repeat(32) };
    expect(decodeBroadcastReply(encodeBroadcastReply(ok))).toEqual(ok);
    const rejected = { error: "bad-txns-inputs-missingorspent", code: "REJECTED" as const };
    expect(decodeBroadcastReply(encodeBroadcastReply(rejected))).toEqual(rejected);
    const down = { error: "cannot reach node", code: "UNAVAILABLE" as const };
    expect(decodeBroadcastReply(encodeBroadcastReply(down))).toEqual(down);
    expect(() => decodeBroadcastReply(encodeBroadcastReply({ txid: "zz" }))).toThrow(EventDecodeError);
    const tip = { height: 812_345, hash: "34".repeat(32), time: 1_700_000_000 };
    expect(decodeTip(encodeTip(tip))).toEqual(tip);
    expect(decodeTip(encodeTip({ height: 0, hash: "", time: 0 }))).toEqual({ height: 0, hash: "", time: 0 });
  });

  it("random bytes decode to a request, a reply, or an EventDecodeError, nothing else", () => {
    const decoders = [
      decodeWatchScripts,
      decodeRequestReply,
      decodeBroadcastRequest,
      decodeBroadcastReply,
      decodeTip,
      decodeWatchAnchor,
    ];
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.nat({ max: decoders.length - 1 }), (b, i) => {
        try {
          (decoders[i] as (b: Uint8Array) => unknown)(b);
        } catch (e) {
          expect(e).toBeInstanceOf(EventDecodeError);
        }
      }),
      { numRuns: 10_000 },
    );
  });

  it("random wallet_output fields round-trip", () => {
    const hex = (n: number): fc.Arbitrary<string> =>
      fc.uint8Array({ minLength: n, maxLength: n }).map((b) => Buffer.from(b).toString("hex"));
    fc.assert(
      fc.property(
        hex(32),
        fc.nat({ max: 0xffff_ffff }),
        fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
        fc.uint8Array({ maxLength: 60 }).map((b) => Buffer.from(b).toString("hex")),
        fc.nat({ max: 0xffff_ffff }),
        hex(32),
        (txid, vout, amountSat, scriptHex, height, blockHash) => {
          const e: ChainEvent = {
            kind: "wallet_output",
            txid,
            vout,
            amountSat,
            scriptHex,
            height,
            blockHash,
            txHex: scriptHex,
          };
          expect(decodeChainEvent(encodeChainEvent(e))).toEqual(e);
        },
      ),
      { numRuns: 1000 },
    );
  });
});
