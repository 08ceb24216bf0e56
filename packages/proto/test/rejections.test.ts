import { msat } from "@ln/bitcoin";
import {
  decodePkt,
  encodePkt,
  MAX_FAIL_REASON_BYTES,
  MAX_PKT_BYTES,
  MAX_ROUTE_BYTES,
  WireError,
  type Pkt,
  type WireErrorCode,
} from "@ln/proto";
import { describe, expect, it } from "vitest";
import { cases, G, H, HASH, KEY, S, SIG } from "./fixtures.js";

const bytes = (hex: string): Buffer => Buffer.from(hex, "hex");

function rejects(hex: string | Buffer, code: WireErrorCode, field?: string): WireError {
  let caught: unknown;
  try {
    decodePkt(typeof hex === "string" ? bytes(hex) : hex);
  } catch (e) {
    caught = e;
  }
  expect(caught).toBeInstanceOf(WireError);
  const err = caught as WireError;
  expect(err.code).toBe(code);
  if (field !== undefined) expect(err.field).toBe(field);
  expect(err.problem.length).toBeGreaterThan(0);
  return err;
}

// One unknown field of each wire type, numbered 9 (odd) or 10 (even): 9<<3 = 0x48, 10<<3 = 0x50.
const ODD = { varint: "4801", fixed64: "490102030405060708", bytes: "4a03616263", fixed32: "4d01020304" };
const EVEN = { varint: "5001", fixed64: "510102030405060708", bytes: "5203616263", fixed32: "5501020304" };
/** A length-delimited body: its length as a varint, then the body. */
function withLen(body: string): string {
  let n = body.length / 2;
  let len = "";
  for (; n > 0x7f; n >>>= 7) len += ((n & 0x7f) | 0x80).toString(16);
  return len + n.toString(16).padStart(2, "0") + body;
}

describe("the unknown-field rule at every nesting level", () => {
  for (const [wire, odd] of Object.entries(ODD)) {
    it(`ignores an unknown odd ${wire} field in pkt, in update_fee, in a nested sha256_hash`, () => {
      expect(decodePkt(bytes(`2a0308d808${odd}`))).toEqual({ kind: "update_fee", feeRate: 1112 });
      expect(decodePkt(bytes(`2a${withLen(`08d808${odd}`)}`))).toEqual({ kind: "update_fee", feeRate: 1112 });
      expect(decodePkt(bytes(`1a${withLen(`08ac0212${withLen(HASH + odd)}`)}`))).toEqual({
        kind: "update_fulfill_htlc",
        id: 300n,
        r: H,
      });
    });
  }
  for (const [wire, even] of Object.entries(EVEN)) {
    it(`rejects an unknown even ${wire} field in pkt, in update_fee, in a nested sha256_hash`, () => {
      rejects(`2a0308d808${even}`, "UNKNOWN_EVEN_FIELD", "pkt");
      rejects(`2a${withLen(`08d808${even}`)}`, "UNKNOWN_EVEN_FIELD", "pkt.update_fee");
      rejects(
        `1a${withLen(`08ac0212${withLen(HASH + even)}`)}`,
        "UNKNOWN_EVEN_FIELD",
        "pkt.update_fulfill_htlc.r",
      );
    });
  }
  it("rejects an unknown even field three levels down (open_channel.commit_key.key's message)", () => {
    const open =
      `0a03109001` + `1224${HASH}` + `1a25${KEY}5001` + `2223${KEY}` + `2801` + `38d808` + `4224${HASH}`;
    rejects(`a201${withLen(open)}`, "UNKNOWN_EVEN_FIELD", "pkt.open.commit_key");
  });
  it("rejects groups and undefined wire types even in odd fields", () => {
    rejects(`2a0308d8084b`, "MALFORMED"); // field 9 wire type 3 (start group)
    rejects(`2a0308d8084e01`, "MALFORMED"); // wire type 6
  });
});

describe("structure", () => {
  it("needs exactly one pkt member", () => {
    rejects("", "MISSING_FIELD", "pkt");
    rejects(ODD.varint, "MISSING_FIELD", "pkt");
    rejects(`2a0308d808f20100`, "MULTIPLE_ONEOF", "pkt");
  });
  it("needs a locktime to be exactly one of seconds and blocks", () => {
    rejects(`2a0308d808` + `2a0308d808`, "DUPLICATE_FIELD", "pkt.update_fee");
    const add = (expiry: string): string =>
      `12${withLen(`0801` + `10e807` + `1a24${HASH}` + `22${withLen(expiry)}` + `2a030a01ab`)}`;
    rejects(add(""), "MISSING_FIELD", "pkt.update_add_htlc.expiry");
    rejects(add("08011002"), "MULTIPLE_ONEOF", "pkt.update_add_htlc.expiry");
    expect(decodePkt(bytes(add("1002")))).toMatchObject({ expiry: { blocks: 2 } });
  });
  it("needs every required field, at each depth", () => {
    rejects(`2a00`, "MISSING_FIELD", "pkt.update_fee.fee_rate");
    rejects(
      `1a${withLen(`08ac0212${withLen(HASH.slice(0, 54))}`)}`,
      "MISSING_FIELD",
      "pkt.update_fulfill_htlc.r.d",
    );
    rejects(`fa0103` + `08be03`, "MISSING_FIELD", "pkt.close_signature.sig");
  });
  it("defaults min_depth to 0 when absent", () => {
    const open =
      `0a03109001` + `1224${HASH}` + `1a23${KEY}` + `2223${KEY}` + `2802` + `38d808` + `4224${HASH}`;
    expect(decodePkt(bytes(`a201${withLen(open)}`))).toMatchObject({
      minDepth: 0,
      anch: "WONT_CREATE_ANCHOR",
    });
  });
  it("rejects a field twice, a wrong wire type, a value too large for uint32, an unknown enum value", () => {
    rejects(`2a0608d80808d808`, "DUPLICATE_FIELD", "pkt.update_fee.fee_rate");
    rejects(`2a09090102030405060708`, "WRONG_WIRE_TYPE", "pkt.update_fee.fee_rate");
    rejects(`2a06088080808010`, "FIELD_RANGE", "pkt.update_fee.fee_rate"); // 2^32
    expect(decodePkt(bytes(`2a0608ffffffff0f`))).toEqual({ kind: "update_fee", feeRate: 0xffffffff });
    const open =
      `0a03109001` + `1224${HASH}` + `1a23${KEY}` + `2223${KEY}` + `2803` + `38d808` + `4224${HASH}`;
    rejects(`a201${withLen(open)}`, "FIELD_RANGE", "pkt.open.anch");
  });
  it("rejects malformed varints and text that is not UTF-8", () => {
    rejects(`2a0b08ffffffffffffffffffff01`, "MALFORMED"); // 11-byte varint
    rejects(`2a0b08ffffffffffffffffff7f`, "MALFORMED"); // 10 bytes, more than 64 bits
    rejects(`c20204` + `0a02c328`, "MALFORMED", "pkt.error.problem");
  });
  it("rejects every truncation of every valid message", () => {
    for (const [, , hex] of cases) {
      const full = bytes(hex);
      for (let n = 0; n < full.length; n++) expect(() => decodePkt(full.subarray(0, n))).toThrow(WireError);
    }
  });
  it("bounds the size at 65535 bytes, both ways", () => {
    const problem = (n: number): Pkt => ({ kind: "error", problem: "x".repeat(n) });
    // problem of n bytes: 1 (tag) + 3 (varint len) + n; pkt: 2 (tag of field 40) + 3 + that:
    // n + 9 bytes, so 65526 is exactly the limit.
    expect(encodePkt(problem(65526)).length).toBe(MAX_PKT_BYTES);
    expect(() => encodePkt(problem(65527))).toThrow(WireError);
    rejects(Buffer.alloc(MAX_PKT_BYTES + 1), "TOO_LARGE");
  });
});

describe("field invariants", () => {
  it("accepts the generator as a node_id (control)", () => {
    expect(decodePkt(bytes(`920371` + `0a23${KEY}` + `1248${SIG}` + `1802`))).toMatchObject({
      kind: "authenticate",
    });
  });
  it("rejects keys that are not 33-byte compressed curve points", () => {
    const fix = (key: string): string => {
      const body = `0a${withLen(`0a${withLen(key)}`)}` + `1248${SIG}`;
      return `9203${withLen(body)}`;
    };
    rejects(fix(G.slice(2)), "BAD_PUBKEY", "pkt.auth.node_id.key"); // 32 bytes
    rejects(fix(`04${G.slice(2)}`), "BAD_PUBKEY", "pkt.auth.node_id.key"); // wrong prefix
    rejects(fix(`02${"ff".repeat(32)}`), "BAD_PUBKEY", "pkt.auth.node_id.key"); // x >= p
    rejects(fix(`02${"00".repeat(31)}05`), "BAD_PUBKEY", "pkt.auth.node_id.key"); // x^3+7 = 132: not a square mod p
  });
  it("rejects amount_msat 0 and an anchor above 4294967 satoshi", () => {
    const add = `0801` + `1000` + `1a24${HASH}` + `22021002` + `2a030a01ab`;
    rejects(`12${withLen(add)}`, "BAD_AMOUNT", "pkt.update_add_htlc.amount_msat");
    const anchor = (amount: string): string =>
      `aa01${withLen(`0a24${HASH}` + `1001` + `18${amount}` + `2248${SIG}`)}`;
    rejects(anchor("b8928602"), "BAD_AMOUNT", "pkt.open_anchor.amount"); // 4294968
    expect(decodePkt(bytes(anchor("b7928602")))).toMatchObject({ amount: 4294967n }); // the maximum
  });
  it("rejects a route longer than the 1366-byte onion and a fail reason longer than the 292-byte error packet", () => {
    // update_add_htlc with route.info of n bytes (n < 16384: a 2-byte length varint).
    const add = (n: number): Buffer => {
      const info = "ab".repeat(n);
      const body = `0801` + `1001` + `1a24${HASH}` + `22021002` + `2a${withLen(`0a${withLen(info)}`)}`;
      return bytes(`12${withLen(body)}`);
    };
    expect(MAX_ROUTE_BYTES).toBe(1366); // BOLT #4: version 1 + point 33 + hop payloads 1300 + HMAC 32
    expect(decodePkt(add(1366))).toMatchObject({ kind: "update_add_htlc", route: Buffer.alloc(1366, 0xab) });
    rejects(add(1367), "FIELD_TOO_LONG", "pkt.update_add_htlc.route.info");
    const fail = (n: number): Buffer => {
      const body = `0801` + `12${withLen(`0a${withLen("cd".repeat(n))}`)}`;
      return bytes(`22${withLen(body)}`);
    };
    expect(MAX_FAIL_REASON_BYTES).toBe(32 + 2 + 256 + 2); // HMAC, length, padded message, pad length
    expect(decodePkt(fail(292))).toMatchObject({ kind: "update_fail_htlc", reason: Buffer.alloc(292, 0xcd) });
    rejects(fail(293), "FIELD_TOO_LONG", "pkt.update_fail_htlc.reason.info");
    // And we never send one.
    const route = Buffer.alloc(1367);
    expect(() =>
      encodePkt({
        kind: "update_add_htlc",
        id: 1n,
        amountMsat: msat(1),
        rHash: H,
        expiry: { blocks: 2 },
        route,
      }),
    ).toThrow(expect.objectContaining({ code: "FIELD_TOO_LONG" }));
    expect(() => encodePkt({ kind: "update_fail_htlc", id: 1n, reason: Buffer.alloc(293) })).toThrow(
      expect.objectContaining({ code: "FIELD_TOO_LONG" }),
    );
  });
  it("refuses to encode what it would reject", () => {
    const key = Buffer.from(G, "hex");
    expect(() => encodePkt({ kind: "authenticate", nodeId: key.subarray(1), sessionSig: S })).toThrow(
      WireError,
    );
    expect(() => encodePkt({ kind: "update_commit", sig: S.subarray(1) })).toThrow(WireError);
    expect(() => encodePkt({ kind: "update_fulfill_htlc", id: 1n, r: H.subarray(1) })).toThrow(WireError);
    expect(() => encodePkt({ kind: "update_fee", feeRate: 2 ** 32 })).toThrow(WireError);
    expect(() => encodePkt({ kind: "update_fulfill_htlc", id: 2n ** 64n, r: H })).toThrow(WireError);
  });
});
