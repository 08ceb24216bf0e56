import { createHash } from "node:crypto";
import bolt11 from "bolt11";
import type { PaymentRequestObject, TagData } from "bolt11";
import { isPoint } from "tiny-secp256k1";
import { decodeInvoice } from "./decode.js";
import { InvoiceError } from "./errors.js";
import { BOLT11_NETWORK } from "./network.js";
import type { InvoiceFields } from "./types.js";

/** What the node key signs for an invoice (BOLT #11): SHA256 of `signingData`. */
export interface UnsignedInvoice {
  /** The human-readable part, "lnbcrt" and the amount. */
  hrp: string;
  /** hrp as UTF-8 || the data part's words (timestamp and fields) as bytes, zero-padded. */
  signingData: Buffer;
  /** SHA256(signingData): the message of the recoverable signature. */
  signingHash: Buffer;
}

const MAX_DESCRIPTION_BYTES = 639; // a field holds at most 1023 words
const MAX_HINT_HOPS = 12; // 51 bytes per hop, 639 bytes per field
const MAX_AMOUNT_MSAT = 2_100_000_000_000_000_000n;

const bad = (what: string): InvoiceError => new InvoiceError("INVALID_FIELD", what);
const isUint = (n: number, max: number): boolean => Number.isSafeInteger(n) && n >= 0 && n <= max;

function checkFields(f: InvoiceFields): void {
  if (f.paymentHash.length !== 32) throw bad("the payment hash must be 32 bytes");
  if (f.paymentSecret.length !== 32) throw bad("the payment secret must be 32 bytes");
  if ((f.description === undefined) === (f.descriptionHash === undefined))
    throw bad("an invoice has exactly one of a description and a description hash");
  if (f.description !== undefined && Buffer.byteLength(f.description, "utf8") > MAX_DESCRIPTION_BYTES)
    throw bad(`the description is longer than ${MAX_DESCRIPTION_BYTES} bytes`);
  if (f.descriptionHash !== undefined && f.descriptionHash.length !== 32)
    throw bad("the description hash must be 32 bytes");
  if (f.amountMsat !== undefined && (f.amountMsat <= 0n || f.amountMsat > MAX_AMOUNT_MSAT))
    throw bad("the amount must be positive (leave it out for any amount)");
  if (!isUint(f.timestamp, 2 ** 35 - 1)) throw bad("the timestamp is out of range");
  if (!isUint(f.expirySeconds, 2 ** 32 - 1) || f.expirySeconds === 0) throw bad("the expiry is out of range");
  if (!isUint(f.minFinalCltvExpiryDelta, 0xffff)) throw bad("min_final_cltv_expiry_delta is out of range");
  if (f.payee.length !== 33 || !isPoint(f.payee)) throw bad("the payee is not a compressed public key");
  for (const hint of f.routeHints) {
    if (hint.length === 0 || hint.length > MAX_HINT_HOPS)
      throw bad(`a route hint has 1 to ${MAX_HINT_HOPS} hops`);
    for (const h of hint) {
      if (!/^[0-9a-f]{66}$/.test(h.nodeId) || !isPoint(Buffer.from(h.nodeId, "hex")))
        throw bad("a route hint's node id is not a compressed public key");
      if (h.shortChannelId < 0n || h.shortChannelId > 0xffffffffffffffffn)
        throw bad("a route hint's short_channel_id is out of range");
      if (h.feeBaseMsat < 0n || h.feeBaseMsat > 0xffffffffn)
        throw bad("a route hint's fee base is out of range");
      if (h.feeProportionalMillionths < 0n || h.feeProportionalMillionths > 0xffffffffn)
        throw bad("a route hint's proportional fee is out of range");
      if (!isUint(h.cltvExpiryDelta, 0xffff)) throw bad("a route hint's cltv_expiry_delta is out of range");
    }
  }
}

/** bolt11's request object for the fields, tags in one fixed order so both sides build the same bytes. */
function requestObject(f: InvoiceFields): PaymentRequestObject {
  checkFields(f);
  const tags: { tagName: string; data: TagData }[] = [
    { tagName: "payment_hash", data: f.paymentHash.toString("hex") },
    { tagName: "payment_secret", data: f.paymentSecret.toString("hex") },
    f.description !== undefined
      ? { tagName: "description", data: f.description }
      : { tagName: "purpose_commit_hash", data: (f.descriptionHash ?? Buffer.alloc(0)).toString("hex") },
    { tagName: "expire_time", data: f.expirySeconds },
    { tagName: "min_final_cltv_expiry", data: f.minFinalCltvExpiryDelta },
    { tagName: "payee_node_key", data: f.payee.toString("hex") },
    ...f.routeHints.map((hint) => ({
      tagName: "routing_info",
      data: hint.map((h) => ({
        pubkey: h.nodeId,
        short_channel_id: h.shortChannelId.toString(16).padStart(16, "0"),
        fee_base_msat: Number(h.feeBaseMsat),
        fee_proportional_millionths: Number(h.feeProportionalMillionths),
        cltv_expiry_delta: h.cltvExpiryDelta,
      })),
    })),
    // BOLT #11 / #9: var_onion_optin (8) and payment_secret (14), both required.
    {
      tagName: "feature_bits",
      data: { word_length: 3, var_onion_optin: { required: true }, payment_secret: { required: true } },
    },
  ];
  const n = BOLT11_NETWORK[f.network];
  return {
    network: {
      bech32: n.bech32,
      pubKeyHash: n.pubKeyHash,
      scriptHash: n.scriptHash,
      validWitnessVersions: [0, 1],
    },
    ...(f.amountMsat === undefined ? {} : { millisatoshis: f.amountMsat.toString() }),
    timestamp: f.timestamp,
    tags,
  };
}

const CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l";

/** The data words of a bech32 string made by bolt11 ("temp1" + words + 6-char checksum). */
function wordsOf(bech: string): number[] {
  const sep = bech.lastIndexOf("1");
  return [...bech.slice(sep + 1, -6)].map((c) => {
    const w = CHARSET.indexOf(c);
    if (w < 0) throw new Error(`not a bech32 character: ${c}`);
    return w;
  });
}

/** 5-bit words to bytes, the last byte padded with zero bits (BOLT #11's signing rule). */
function wordsToBytes(words: readonly number[]): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = ((acc << 5) | w) & 0xfff;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if (bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return Buffer.from(out);
}

/** Builds the invoice's unsigned form and what its signature signs. Throws InvoiceError(INVALID_FIELD). */
export function unsignedInvoice(f: InvoiceFields): UnsignedInvoice {
  let encoded: PaymentRequestObject;
  try {
    encoded = bolt11.encode(requestObject(f), false);
  } catch (e) {
    if (e instanceof InvoiceError) throw e;
    throw new InvoiceError("INVALID_FIELD", `bolt11 refused the fields: ${String(e)}`, { cause: e });
  }
  const hrp = encoded.prefix;
  const temp = encoded.wordsTemp;
  if (hrp === undefined || temp === undefined)
    throw new InvoiceError("INVALID_FIELD", "bolt11 made no invoice");
  const signingData = Buffer.concat([Buffer.from(hrp, "utf8"), wordsToBytes(wordsOf(temp))]);
  return { hrp, signingData, signingHash: createHash("sha256").update(signingData).digest() };
}

/**
 * The invoice string for the fields and a recoverable signature (64-byte compact r||s and the
 * recovery id) of unsignedInvoice(fields).signingHash by the payee's key. Throws
 * InvoiceError(BAD_SIGNATURE) if the signature does not recover the payee.
 */
export function assembleInvoice(f: InvoiceFields, signature: Buffer, recoveryId: number): string {
  if (signature.length !== 64 || !isUint(recoveryId, 3))
    throw new InvoiceError("BAD_SIGNATURE", "a signature is 64 bytes and a recovery id 0 to 3");
  let encoded: PaymentRequestObject;
  try {
    encoded = bolt11.encode(
      {
        ...requestObject(f),
        signature: signature.toString("hex"),
        recoveryFlag: recoveryId,
        payeeNodeKey: f.payee.toString("hex"),
      },
      false,
    );
  } catch (e) {
    if (e instanceof InvoiceError) throw e;
    throw new InvoiceError("BAD_SIGNATURE", `the signature does not make the invoice: ${String(e)}`, {
      cause: e,
    });
  }
  const s = encoded.paymentRequest;
  if (s === undefined || s === "") throw new InvoiceError("BAD_SIGNATURE", "bolt11 made no invoice");
  decodeInvoice(s); // ours must decode: any mismatch is a bug here, not a bad invoice elsewhere
  return s;
}
