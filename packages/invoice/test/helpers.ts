import { pointFromScalar, signRecoverable } from "tiny-secp256k1";
import { msat } from "@ln/bitcoin";
import { assembleInvoice, unsignedInvoice, type InvoiceFields } from "../src/index.js";

export const key = Buffer.alloc(32, 7);
export const node = Buffer.from(pointFromScalar(key, true) ?? []);
export const peer = Buffer.from(pointFromScalar(Buffer.alloc(32, 9), true) ?? []);

export function fields(over: Partial<InvoiceFields> = {}): InvoiceFields {
  return {
    network: "regtest",
    amountMsat: msat(123_456n),
    timestamp: 1_700_000_000,
    paymentHash: Buffer.alloc(32, 0xab),
    paymentSecret: Buffer.alloc(32, 0x5e),
    description: "two coffees",
    expirySeconds: 600,
    minFinalCltvExpiryDelta: 40,
    payee: node,
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

export function sign(f: InvoiceFields, k: Buffer = key): string {
  const u = unsignedInvoice(f);
  const s = signRecoverable(u.signingHash, k);
  return assembleInvoice(f, Buffer.from(s.signature), s.recoveryId);
}
