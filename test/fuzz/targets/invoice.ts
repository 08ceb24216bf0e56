/** BOLT #11: decodeInvoice on strings, on bech32 with a valid checksum, and on re-signed invoices. */
import { createHash } from "node:crypto";
import { msat } from "@ln/bitcoin";
import {
  assembleInvoice,
  decodeInvoice,
  InvoiceError,
  unsignedInvoice,
  type InvoiceFields,
} from "@ln/invoice";
import * as ecc from "tiny-secp256k1";
import { bech32Encode, bech32Split } from "../../../packages/invoice/test/bech32.js";
import { ACCEPTED, check, codedErrors, type TargetSpec } from "../target.js";

const key = Buffer.alloc(32, 7);
const payee = Buffer.from(ecc.pointFromScalar(key, true) as Uint8Array);
const peer = Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, 9), true) as Uint8Array);

function fields(over: Partial<InvoiceFields> = {}): InvoiceFields {
  return {
    network: "regtest",
    amountMsat: msat(123_456n),
    timestamp: 1_700_000_000,
    paymentHash: Buffer.alloc(32, 0xab),
    paymentSecret: Buffer.alloc(32, 0x5e),
    description: "two coffees",
    expirySeconds: 600,
    minFinalCltvExpiryDelta: 40,
    payee,
    routeHints: [
      [
        {
          nodeId: peer.toString("hex"),
          shortChannelId: (431n << 40n) | (2n << 16n) | 1n,
          feeBaseMsat: msat(1000n),
          feeProportionalMillionths: 250n,
          cltvExpiryDelta: 144,
        },
      ],
    ],
    ...over,
  };
}

/** No amount, a description hash instead of a description, no route hints. */
function anyAmountByHash(): InvoiceFields {
  const f: InvoiceFields = { ...fields(), descriptionHash: Buffer.alloc(32, 3), routeHints: [] };
  delete f.amountMsat;
  delete f.description;
  return f;
}

function signed(f: InvoiceFields): string {
  const s = ecc.signRecoverable(unsignedInvoice(f).signingHash, key);
  return assembleInvoice(f, Buffer.from(s.signature), s.recoveryId);
}

/** 5-bit words to bytes, the last byte zero-padded (BOLT #11's signing data). */
function wordsToBytes(words: readonly number[]): Buffer {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const w of words) {
    acc = (acc << 5) | w;
    bits += 5;
    while (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
    }
  }
  if (bits > 0) out.push((acc << (8 - bits)) & 0xff);
  return Buffer.from(out);
}

function bytesToWords(b: Buffer): number[] {
  const out: number[] = [];
  let acc = 0;
  let bits = 0;
  for (const x of b) {
    acc = ((acc << 8) | x) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out.push((acc >> bits) & 31);
    }
  }
  if (bits > 0) out.push((acc << (5 - bits)) & 31);
  return out;
}

const SIG_WORDS = 104;
/** Mode byte, hrp length, hrp, then the data words (signature excluded in mode 2), one per byte. */
function encodeInput(mode: 1 | 2, s: string): Buffer {
  const { hrp, words } = bech32Split(s);
  const data = mode === 2 ? words.slice(0, -SIG_WORDS) : words;
  return Buffer.concat([Buffer.from([mode, hrp.length]), Buffer.from(hrp, "latin1"), Buffer.from(data)]);
}

export const invoiceTarget: TargetSpec = {
  name: "bolt11",
  weight: 10,
  what: "byte 0 picks: 0 the string as it is; 1 hrp and words with a valid checksum; 2 the same, signed again by the payee",
  create() {
    const invoices = [
      signed(fields()),
      signed(anyAmountByHash()),
      signed(fields({ network: "bitcoin", amountMsat: msat(2_000_000_000n), expirySeconds: 86_400 })),
      signed(
        fields({
          network: "testnet",
          routeHints: [[...(fields().routeHints?.[0] ?? [])], [...(fields().routeHints?.[0] ?? [])]],
        }),
      ),
    ];
    const corpus = invoices.flatMap((s) => [
      Buffer.concat([Buffer.from([0]), Buffer.from(s, "latin1")]),
      encodeInput(1, s),
      encodeInput(2, s),
    ]);
    return Promise.resolve({
      name: "bolt11",
      corpus,
      typed: codedErrors(InvoiceError),
      run(input) {
        const mode = (input[0] ?? 0) % 3;
        let s: string;
        if (mode === 0) s = input.subarray(1).toString("latin1");
        else {
          const hrpLen = input[1] ?? 0;
          const hrp = input.subarray(2, 2 + hrpLen).toString("latin1");
          const words = [...input.subarray(2 + hrpLen)].map((w) => w & 31);
          if (mode === 2) {
            const hash = createHash("sha256")
              .update(Buffer.concat([Buffer.from(hrp, "utf8"), wordsToBytes(words)]))
              .digest();
            const sig = ecc.signRecoverable(hash, key);
            words.push(
              ...bytesToWords(Buffer.concat([Buffer.from(sig.signature), Buffer.from([sig.recoveryId])])),
            );
          }
          s = bech32Encode(hrp, words);
        }
        const d = decodeInvoice(s);
        check(/^[0-9a-f]{64}$/.test(d.paymentHash), "an invoice without a 32-byte payment hash");
        if (mode === 2)
          check(d.payee === payee.toString("hex"), "a re-signed invoice recovered another payee");
        return ACCEPTED;
      },
    });
  },
};
