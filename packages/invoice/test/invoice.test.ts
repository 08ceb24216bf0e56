import { createHash } from "node:crypto";
import bolt11 from "bolt11";
import { decode as lightDecode } from "light-bolt11-decoder";
import { pointFromScalar, recover, signRecoverable } from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { msat } from "@ln/bitcoin";
import { bech32Encode, bech32Split } from "./bech32.js";
import { fields, key, node, peer, sign } from "./helpers.js";
import {
  assembleInvoice,
  decodeInvoice,
  InvoiceError,
  unsignedInvoice,
  type InvoiceFields,
} from "../src/index.js";
import { CHARSET } from "./bech32.js";

// BOLT #11's example key and its "$30 for coffee beans ... features 8, 14 and 99" vector.
const SPEC_KEY = Buffer.from("e126f68f7eafcc8b74f54d269fe206be715000f94dac067d1c04a8ca3b2db734", "hex");
const SPEC_NODE = "03e7156ae33b0a208d0744199163177e909e80176e55d97a2f221ede0f934dd9ad";
const SPEC_COFFEE =
  "lnbc25m1pvjluezpp5qqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqqqsyqcyq5rqwzqfqypqdq5vdhkven9v5sxyetpdeessp5zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zyg3zygs9q5sqqqqqqqqqqqqqqqqsgq2a25dxl5hrntdtn6zvydt7d66hyzsyhqs4wdynavys42xgl6sgx9c4g7me86a27t07mdtfry458rtjr0v92cnmswpsjscgt2vcse3sgpz3uapa";
const SPEC_HASH = "0001020304050607080900010203040506070809000102030405060708090102";

/** The invoice string with any signature (bits only), to forge a bad one. */
function assembleInvoiceUnchecked(f: InvoiceFields, sig: Buffer, recid: number): string {
  const { hrp, words } = bech32Split(sign(f));
  const sigWords: number[] = [];
  const bits = [...Buffer.concat([sig, Buffer.from([recid])])]
    .map((b) => b.toString(2).padStart(8, "0"))
    .join("");
  for (let i = 0; i < bits.length; i += 5) sigWords.push(parseInt(bits.slice(i, i + 5).padEnd(5, "0"), 2));
  return bech32Encode(hrp, [...words.slice(0, -104), ...sigWords]);
}
/** Independent of the code under test: BOLT #11's signing rule written out again. */
function recoverPayee(invoice: string): string {
  const sep = invoice.lastIndexOf("1");
  const hrp = invoice.slice(0, sep);
  const words = [...invoice.slice(sep + 1, -6)].map((c) => CHARSET.indexOf(c));
  const data = words.slice(0, -104);
  const sigWords = words.slice(-104);
  const toBytes = (ws: number[]): number[] => {
    const bits = ws.map((w) => w.toString(2).padStart(5, "0")).join("");
    const padded = bits.padEnd(Math.ceil(bits.length / 8) * 8, "0");
    return (padded.match(/.{8}/g) ?? []).map((b) => parseInt(b, 2));
  };
  const sig = Buffer.from(toBytes(sigWords).slice(0, 65));
  const hash = createHash("sha256")
    .update(Buffer.concat([Buffer.from(hrp, "utf8"), Buffer.from(toBytes(data))]))
    .digest();
  const sigByte = sig[64];
  if (sigByte === undefined) throw new Error("short signature");
  const pub = recover(hash, sig.subarray(0, 64), sigByte as 0 | 1 | 2 | 3, true);
  return Buffer.from(pub ?? []).toString("hex");
}

describe("decodeInvoice", () => {
  it("decodes BOLT #11's coffee-beans vector", () => {
    const d = decodeInvoice(SPEC_COFFEE);
    expect(d).toEqual({
      network: "bitcoin",
      paymentHash: SPEC_HASH,
      paymentSecret: Buffer.alloc(32, 0x11),
      amountMsat: 2_500_000_000n, // 25 mBTC
      description: "coffee beans",
      payee: SPEC_NODE,
      createdAt: 1496314658,
      expiresAt: 1496314658 + 3600, // no x: BOLT #11's default
      minFinalCltvExpiryDelta: 18, // no c: BOLT #11's default
      routeHints: [],
    });
    expect(decodeInvoice(SPEC_COFFEE.toUpperCase()).paymentHash).toBe(SPEC_HASH);
    expect(Buffer.from(pointFromScalar(SPEC_KEY, true) ?? []).toString("hex")).toBe(SPEC_NODE);
  });

  it("refuses a changed character (checksum), another network, no signature, a bad signature", () => {
    const flip = (s: string, i: number): string =>
      s.slice(0, i) + (s[i] === "q" ? "p" : "q") + s.slice(i + 1);
    expect(() => decodeInvoice(flip(SPEC_COFFEE, 40))).toThrow(InvoiceError);
    const code = (s: string): string => {
      try {
        decodeInvoice(s);
        return "decoded";
      } catch (e) {
        return e instanceof InvoiceError ? e.code : "other";
      }
    };
    expect(code(flip(SPEC_COFFEE, 40))).toBe("MALFORMED");
    expect(code("lnsb1" + SPEC_COFFEE.slice(7))).toBe("MALFORMED"); // checksum breaks too
    expect(code("hello")).toBe("MALFORMED");
    // Another key's signature, re-checksummed so that only the signature is wrong.
    const f = fields();
    const other = signRecoverable(unsignedInvoice(f).signingHash, Buffer.alloc(32, 8));
    expect(() => assembleInvoice(f, Buffer.from(other.signature), other.recoveryId)).toThrow(
      expect.objectContaining({ code: "BAD_SIGNATURE" }),
    );
    const { hrp, words } = bech32Split(sign(f));
    const otherSig = bech32Split(
      assembleInvoiceUnchecked(f, Buffer.from(other.signature), other.recoveryId),
    ).words;
    const forged = bech32Encode(hrp, [...words.slice(0, -104), ...otherSig.slice(-104)]);
    expect(code(forged)).toBe("BAD_SIGNATURE");
    // No signature at all.
    expect(code(bech32Encode(hrp, words.slice(0, -104)))).not.toBe("decoded");
  });

  it("refuses simnet (a network bolt11 knows and we do not)", () => {
    const f = fields();
    const raw = bolt11.encode(
      {
        network: { bech32: "sb", pubKeyHash: 0x3f, scriptHash: 0x7b, validWitnessVersions: [0] },
        timestamp: f.timestamp,
        tags: [
          { tagName: "payment_hash", data: f.paymentHash.toString("hex") },
          { tagName: "payment_secret", data: f.paymentSecret.toString("hex") },
          { tagName: "description", data: "x" },
        ],
      },
      true,
    );
    const signed = bolt11.sign(raw, key).paymentRequest ?? "";
    expect(signed.startsWith("lnsb")).toBe(true);
    expect(() => decodeInvoice(signed)).toThrow(expect.objectContaining({ code: "UNKNOWN_NETWORK" }));
  });

  it("refuses an invoice without a payment secret", () => {
    const raw = bolt11.encode(
      {
        network: { bech32: "bcrt", pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0] },
        timestamp: 1_700_000_000,
        tags: [
          { tagName: "payment_hash", data: "ab".repeat(32) },
          { tagName: "description", data: "x" },
        ],
      },
      true,
    );
    const signed = bolt11.sign(raw, key).paymentRequest ?? "";
    expect(() => decodeInvoice(signed)).toThrow(expect.objectContaining({ code: "MISSING_PAYMENT_SECRET" }));
  });
});

describe("our invoices", () => {
  it("decode with light-bolt11-decoder and bolt11 to the fields we put in, and recover our node id", () => {
    const f = fields();
    const s = sign(f);
    expect(s.startsWith("lnbcrt1234560p1")).toBe(true); // 123456 msat = 1234560 pico-BTC

    const light = lightDecode(s);
    const section = (name: string): unknown => light.sections.find((x) => x.name === name);
    expect(section("coin_network")).toMatchObject({ letters: "bcrt" });
    expect(section("amount")).toMatchObject({ value: "123456" });
    expect(section("timestamp")).toMatchObject({ value: 1_700_000_000 });
    expect(section("payment_hash")).toMatchObject({ value: "ab".repeat(32) });
    expect(section("payment_secret")).toMatchObject({ value: "5e".repeat(32) });
    expect(section("description")).toMatchObject({ value: "two coffees" });
    expect(section("expiry")).toMatchObject({ value: 600 });
    expect(section("min_final_cltv_expiry")).toMatchObject({ value: 40 });
    expect(section("payee")).toMatchObject({ value: node.toString("hex") });
    expect(section("feature_bits")).toMatchObject({
      value: { var_onion_optin: "required", payment_secret: "required" },
    });
    expect(light.route_hints).toEqual([
      [
        {
          pubkey: peer.toString("hex"),
          short_channel_id: "0001af0000020001", // 431x2x1: 3 + 3 + 2 bytes
          fee_base_msat: 1000,
          fee_proportional_millionths: 250,
          cltv_expiry_delta: 144,
        },
      ],
    ]);
    expect(recoverPayee(s)).toBe(node.toString("hex"));

    const b = bolt11.decode(s);
    expect(b.payeeNodeKey).toBe(node.toString("hex"));
    expect(b.millisatoshis).toBe("123456");
    expect(b.tagsObject.payment_hash).toBe("ab".repeat(32));
    expect(b.tagsObject.expire_time).toBe(600);

    // bolt11's own signing path (RFC 6979 is deterministic) makes the same string.
    const unsigned = bolt11.encode(
      {
        ...(b.network ? { network: b.network } : {}),
        millisatoshis: "123456",
        timestamp: 1_700_000_000,
        tags: b.tags,
      },
      false,
    );
    const viaBolt11 = bolt11.sign(unsigned, key);
    expect(viaBolt11.paymentRequest).toBe(s);

    expect(decodeInvoice(s)).toEqual({
      network: "regtest",
      paymentHash: "ab".repeat(32),
      paymentSecret: Buffer.alloc(32, 0x5e),
      amountMsat: 123_456n,
      description: "two coffees",
      payee: node.toString("hex"),
      createdAt: 1_700_000_000,
      expiresAt: 1_700_000_600,
      minFinalCltvExpiryDelta: 40,
      routeHints: [
        [
          {
            nodeId: peer.toString("hex"),
            shortChannelId: (431n << 40n) | (2n << 16n) | 1n,
            feeBaseMsat: 1000n,
            feeProportionalMillionths: 250n,
            cltvExpiryDelta: 144,
          },
        ],
      ],
    });
  });

  it("amountless, with a description hash, on testnet and bitcoin", () => {
    const { amountMsat: _a, description: _d, ...rest } = fields();
    const dh = createHash("sha256").update("a long description").digest();
    const s = sign({ ...rest, network: "testnet", descriptionHash: dh, routeHints: [] });
    expect(s.startsWith("lntb1")).toBe(true);
    const d = decodeInvoice(s);
    expect(d.amountMsat).toBeUndefined();
    expect(d.descriptionHash).toBe(dh.toString("hex"));
    expect(d.description).toBeUndefined();
    expect(sign(fields({ network: "bitcoin" })).startsWith("lnbc1234560p1")).toBe(true);
  });

  it("refuses fields that make no invoice", () => {
    const bad = [
      fields({ paymentHash: Buffer.alloc(31) }),
      fields({ paymentSecret: Buffer.alloc(33) }),
      fields({ descriptionHash: Buffer.alloc(32) }), // both
      fields({ description: "é".repeat(320) }), // 640 bytes
      fields({ expirySeconds: 0 }),
      fields({ amountMsat: msat(0n) }),
      fields({ payee: Buffer.alloc(33, 5) }), // no such prefix
      fields({ routeHints: [[]] }),
    ];
    for (const f of bad)
      expect(() => unsignedInvoice(f)).toThrow(expect.objectContaining({ code: "INVALID_FIELD" }));
  });

  it("signs over the hrp and the data words, as BOLT #11 says", () => {
    const f = fields();
    const u = unsignedInvoice(f);
    expect(u.hrp).toBe("lnbcrt1234560p");
    const s = sign(f);
    const sep = s.lastIndexOf("1");
    const words = [...s.slice(sep + 1, -6)].map((c) => CHARSET.indexOf(c)).slice(0, -104);
    const bits = words.map((w) => w.toString(2).padStart(5, "0")).join("");
    const bytes = (bits.padEnd(Math.ceil(bits.length / 8) * 8, "0").match(/.{8}/g) ?? []).map((b) =>
      parseInt(b, 2),
    );
    expect(u.signingData).toEqual(Buffer.concat([Buffer.from("lnbcrt1234560p"), Buffer.from(bytes)]));
  });
});
