import bolt11 from "bolt11";
import type { TagData } from "bolt11";
import { isPoint } from "tiny-secp256k1";
import { msat, type Msat } from "@ln/bitcoin";
import { InvoiceError } from "./errors.js";
import { networkOfBech32 } from "./network.js";
import type { DecodedInvoice, RouteHintHop } from "./types.js";

/** BOLT #11 defaults when `x` or `c` is absent. */
export const DEFAULT_EXPIRY_SECONDS = 3600;
export const DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA = 18;

const HEX32 = /^[0-9a-f]{64}$/;
const HEX33 = /^[0-9a-f]{66}$/;
const HEX8 = /^[0-9a-f]{16}$/;

const isU32 = (n: number): boolean => Number.isSafeInteger(n) && n >= 0 && n <= 0xffffffff;

function classify(e: unknown): InvoiceError {
  const message = e instanceof Error ? e.message : String(e);
  if (/Unknown coin bech32 prefix/.test(message))
    return new InvoiceError("UNKNOWN_NETWORK", "the invoice is not for a network we know", { cause: e });
  // bolt11's and secp256k1's words for a missing, unparsable or non-recovering signature.
  if (/signature|recover/i.test(message))
    return new InvoiceError("BAD_SIGNATURE", `bad invoice signature: ${message}`, { cause: e });
  return new InvoiceError("MALFORMED", `malformed invoice: ${message}`, { cause: e });
}

function routeHint(data: TagData): RouteHintHop[] | undefined {
  if (!Array.isArray(data) || data.length === 0) return undefined;
  const hops: RouteHintHop[] = [];
  for (const h of data) {
    // A trailing partial hop decodes to short fields and NaN numbers.
    if (
      !HEX33.test(h.pubkey) ||
      !isPoint(Buffer.from(h.pubkey, "hex")) ||
      !HEX8.test(h.short_channel_id) ||
      !isU32(h.fee_base_msat) ||
      !isU32(h.fee_proportional_millionths) ||
      !Number.isSafeInteger(h.cltv_expiry_delta) ||
      h.cltv_expiry_delta < 0
    )
      throw new InvoiceError("MALFORMED", "a route hint (r) hop is malformed");
    hops.push({
      nodeId: h.pubkey,
      shortChannelId: BigInt(`0x${h.short_channel_id}`),
      feeBaseMsat: msat(h.fee_base_msat),
      feeProportionalMillionths: BigInt(h.fee_proportional_millionths),
      cltvExpiryDelta: h.cltv_expiry_delta,
    });
  }
  return hops;
}

/**
 * Decodes a BOLT #11 string and checks its signature (bolt11 recovers the key and compares it to
 * the `n` field if present). Throws InvoiceError and nothing else.
 */
export function decodeInvoice(s: string): DecodedInvoice {
  if (typeof s !== "string") throw new InvoiceError("MALFORMED", "an invoice is a string");
  let d: ReturnType<typeof bolt11.decode>;
  try {
    d = bolt11.decode(s.trim());
  } catch (e) {
    throw classify(e);
  }
  try {
    return fromBolt11(d);
  } catch (e) {
    if (e instanceof InvoiceError) throw e;
    throw classify(e);
  }
}

function fromBolt11(d: ReturnType<typeof bolt11.decode>): DecodedInvoice {
  const network = networkOfBech32(d.network?.bech32 ?? "");
  if (network === undefined)
    throw new InvoiceError("UNKNOWN_NETWORK", "the invoice is not for a network we know");

  let amountMsat: Msat | undefined;
  if (d.millisatoshis !== null && d.millisatoshis !== undefined) {
    if (!/^[0-9]+$/.test(d.millisatoshis)) throw new InvoiceError("MALFORMED", "the amount is not a number");
    amountMsat = msat(BigInt(d.millisatoshis));
    if (amountMsat === 0n) throw new InvoiceError("MALFORMED", "the amount is zero");
  }
  const createdAt = d.timestamp;
  if (createdAt === undefined || !Number.isSafeInteger(createdAt))
    throw new InvoiceError("MALFORMED", "the timestamp is missing");
  const payee = d.payeeNodeKey;
  if (payee === undefined || !HEX33.test(payee))
    throw new InvoiceError("BAD_SIGNATURE", "no payee recovered");

  let paymentHash: string | undefined;
  let paymentSecret: string | undefined;
  let description: string | undefined;
  let descriptionHash: string | undefined;
  let expiry: number | undefined;
  let minFinal: number | undefined;
  const routeHints: RouteHintHop[][] = [];
  for (const { tagName, data } of d.tags) {
    // BOLT #11: the first field of each kind with the right length counts; others are skipped.
    switch (tagName) {
      case "payment_hash":
        if (paymentHash === undefined && typeof data === "string" && HEX32.test(data)) paymentHash = data;
        break;
      case "payment_secret":
        if (paymentSecret === undefined && typeof data === "string" && HEX32.test(data)) paymentSecret = data;
        break;
      case "description":
        if (description === undefined && typeof data === "string") description = data;
        break;
      case "purpose_commit_hash":
        if (descriptionHash === undefined && typeof data === "string" && HEX32.test(data))
          descriptionHash = data;
        break;
      case "expire_time":
        if (expiry === undefined && typeof data === "number") {
          if (!Number.isSafeInteger(data))
            throw new InvoiceError("MALFORMED", "the expiry (x) is out of range");
          expiry = data;
        }
        break;
      case "min_final_cltv_expiry":
        if (minFinal === undefined && typeof data === "number") {
          if (!isU32(data)) throw new InvoiceError("MALFORMED", "min_final_cltv_expiry (c) is out of range");
          minFinal = data;
        }
        break;
      case "routing_info": {
        const hops = routeHint(data);
        if (hops !== undefined) routeHints.push(hops);
        break;
      }
      case "feature_bits":
        if (
          typeof data === "object" &&
          !Array.isArray(data) &&
          "word_length" in data &&
          data.extra_bits?.has_required
        )
          throw new InvoiceError("UNKNOWN_REQUIRED_FEATURE", "the invoice requires a feature we do not know");
        break;
      default:
        break;
    }
  }
  if (paymentHash === undefined)
    throw new InvoiceError("MISSING_PAYMENT_HASH", "the invoice has no payment hash (p)");
  if (paymentSecret === undefined)
    throw new InvoiceError("MISSING_PAYMENT_SECRET", "the invoice has no payment secret (s)");
  if (description === undefined && descriptionHash === undefined)
    throw new InvoiceError(
      "MISSING_DESCRIPTION",
      "the invoice has neither a description (d) nor its hash (h)",
    );
  const expiresAt = createdAt + (expiry ?? DEFAULT_EXPIRY_SECONDS);
  if (!Number.isSafeInteger(expiresAt)) throw new InvoiceError("MALFORMED", "the expiry is out of range");

  return {
    network,
    paymentHash,
    paymentSecret: Buffer.from(paymentSecret, "hex"),
    ...(amountMsat === undefined ? {} : { amountMsat }),
    ...(description === undefined ? {} : { description }),
    ...(descriptionHash === undefined ? {} : { descriptionHash }),
    payee,
    createdAt,
    expiresAt,
    minFinalCltvExpiryDelta: minFinal ?? DEFAULT_MIN_FINAL_CLTV_EXPIRY_DELTA,
    routeHints,
  };
}
