import { txidFromInternal } from "@ln/bitcoin";
import type { Pkt } from "@ln/proto";

// Every expected byte string below is written out by hand from the protobuf wire format
// (tag = field << 3 | wire type; varints 7 bits at a time, low group first; fixed64 little-endian)
// and DESIGN.md section 2's numbering, not produced by the code under test.

export const H = Buffer.from(Array.from({ length: 32 }, (_, i) => i)); // 00 01 .. 1f
export const S = Buffer.from(Array.from({ length: 64 }, (_, i) => 0x40 + i)); // 40 41 .. 7f
export const G = "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798"; // secp256k1 generator
const hx = (b: Buffer, from: number, to: number): string => b.subarray(from, to).toString("hex");

// sha256_hash: fields 1..4 fixed64 (tags 09 11 19 21), each word the next 8 bytes as they are.
export const HASH = `09${hx(H, 0, 8)}11${hx(H, 8, 16)}19${hx(H, 16, 24)}21${hx(H, 24, 32)}`; // 36 = 0x24 bytes
// signature: fields 1..8 fixed64 (tags 09 11 19 21 29 31 39 41).
export const SIG = ["09", "11", "19", "21", "29", "31", "39", "41"]
  .map((t, i) => t + hx(S, i * 8, i * 8 + 8))
  .join(""); // 72 = 0x48
// bitcoin_pubkey: field 1 bytes (tag 0a), length 0x21.
export const KEY = `0a21${G}`; // 35 = 0x23

export const cases: [string, Pkt, string][] = [
  [
    "update_add_htlc (2)",
    {
      kind: "update_add_htlc",
      id: 1n,
      amountMsat: 1000n as never,
      rHash: H,
      expiry: { seconds: 500000000 },
      route: Buffer.from("ab", "hex"),
    },
    // 08 01 | 10 e807 (1000) | 1a 24 hash | 22 06 (08 80cab5ee01: seconds 500000000) | 2a 03 (0a 01 ab)
    `1238` + `0801` + `10e807` + `1a24${HASH}` + `2206` + `0880cab5ee01` + `2a030a01ab`,
  ],
  [
    "update_fulfill_htlc (3)",
    { kind: "update_fulfill_htlc", id: 300n, r: H },
    `1a29` + `08ac02` + `1224${HASH}`,
  ],
  [
    "update_fail_htlc (4)",
    { kind: "update_fail_htlc", id: 1n, reason: Buffer.from("bad") },
    `2209` + `0801` + `1205` + `0a03626164`,
  ],
  ["update_fee (5)", { kind: "update_fee", feeRate: 1112 }, `2a03` + `08d808`],
  ["update_commit (6) with ack", { kind: "update_commit", sig: S, ack: 5n }, `324c` + `0a48${SIG}` + `1005`],
  ["update_commit (6) without ack", { kind: "update_commit", sig: S }, `324a` + `0a48${SIG}`],
  [
    "update_revocation (7)",
    { kind: "update_revocation", revocationPreimage: H, nextRevocationHash: H },
    `3a4c` + `0a24${HASH}` + `1224${HASH}`,
  ],
  [
    "open_channel (20)",
    {
      kind: "open_channel",
      delay: { blocks: 144 },
      revocationHash: H,
      nextRevocationHash: H,
      commitKey: Buffer.from(G, "hex"),
      finalKey: Buffer.from(G, "hex"),
      anch: "WILL_CREATE_ANCHOR",
      minDepth: 3,
      initialFeeRate: 1112,
    },
    // tag 20<<3|2 = 162 = a2 01; body 5+38+37+37+2+2+3+38 = 162 = a2 01; field 8 last (field order)
    `a201a201` +
      `0a03109001` +
      `1224${HASH}` +
      `1a23${KEY}` +
      `2223${KEY}` +
      `2801` +
      `3003` +
      `38d808` +
      `4224${HASH}`,
  ],
  [
    "open_anchor (21)",
    {
      kind: "open_anchor",
      txid: txidFromInternal(H),
      outputIndex: 1,
      amount: 1000000n as never,
      commitSig: S,
    },
    // the txid travels in internal byte order: H as it is
    `aa0176` + `0a24${HASH}` + `1001` + `18c0843d` + `2248${SIG}`,
  ],
  ["open_commit_sig (22)", { kind: "open_commit_sig", sig: S }, `b2014a` + `0a48${SIG}`],
  ["open_complete (23)", { kind: "open_complete" }, `ba0100`],
  ["open_complete (23) with blockid", { kind: "open_complete", blockid: H }, `ba0126` + `0a24${HASH}`],
  ["close_clearing (30)", { kind: "close_clearing" }, `f20100`],
  [
    "close_signature (31)",
    { kind: "close_signature", closeFee: 446n as never, sig: S },
    `fa014d` + `08be03` + `1248${SIG}`,
  ],
  ["error (40)", { kind: "error", problem: "bad" }, `c20205` + `0a03626164`],
  ["error (40) without problem", { kind: "error" }, `c20200`],
  [
    "authenticate (50)",
    { kind: "authenticate", nodeId: Buffer.from(G, "hex"), sessionSig: S, ack: 2n },
    `920371` + `0a23${KEY}` + `1248${SIG}` + `1802`,
  ],
  [
    "channel_announcement (61)",
    {
      kind: "channel_announcement",
      shortChannelId: 0x0102030405060708n,
      nodeId1: Buffer.from(G, "hex"),
      nodeId2: Buffer.from(G, "hex"),
      commitKey1: Buffer.from(G, "hex"),
      commitKey2: Buffer.from(G, "hex"),
      nodeSig1: S,
      nodeSig2: S,
      commitSig1: S,
      commitSig2: S,
    },
    // tag 61 << 3 | 2 = 490 = ea03; 453 = c503 bytes: 09 scid (little-endian) | 12 1a 22 2a keys |
    // 32 3a 42 4a signatures
    `ea03c503` +
      `090807060504030201` +
      `1223${KEY}1a23${KEY}2223${KEY}2a23${KEY}` +
      `3248${SIG}3a48${SIG}4248${SIG}4a48${SIG}`,
  ],
  [
    "channel_update (63)",
    {
      kind: "channel_update",
      shortChannelId: 0x0102030405060708n,
      direction: 1,
      timestamp: 1700000000,
      disabled: false,
      cltvExpiryDelta: 40,
      htlcMinimumMsat: 1000n as never,
      htlcMaximumMsat: 5000000000n as never,
      feeBaseMsat: 1000n as never,
      feeProportionalMillionths: 100n,
      sig: S,
    },
    // tag 63 << 3 | 2 = 506 = fa03; 109 = 6d bytes: 09 scid | 10 01 | 18 80e2cfaa06 (1700000000) |
    // 20 00 (false) | 28 28 (40) | 30 e807 | 38 80e497d012 (5000000000) | 40 e807 | 48 64 | 52 48 sig
    `fa036d` +
      `090807060504030201` +
      `1001` +
      `1880e2cfaa06` +
      `2000` +
      `2828` +
      `30e807` +
      `3880e497d012` +
      `40e807` +
      `4864` +
      `5248${SIG}`,
  ],
  [
    "node_announcement (65), two addresses",
    {
      kind: "node_announcement",
      nodeId: Buffer.from(G, "hex"),
      timestamp: 1700000000,
      alias: "alice",
      addresses: ["127.0.0.1:9735", "[::1]:9736"],
      sig: S,
    },
    // tag 65 << 3 | 2 = 522 = 8a04; 152 = 9801 bytes: 0a key | 10 timestamp | 1a 05 "alice" |
    // 22 0e "127.0.0.1:9735" | 22 0a "[::1]:9736" (repeated: one field each) | 2a 48 sig
    `8a049801` +
      `0a23${KEY}` +
      `1080e2cfaa06` +
      `1a05616c696365` +
      `220e3132372e302e302e313a39373335` +
      `220a5b3a3a315d3a39373336` +
      `2a48${SIG}`,
  ],
];
