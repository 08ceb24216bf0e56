/**
 * SignInvoice (issue 16): the signer signs a BOLT #11 invoice only for the payment hash it derives
 * for the index, with our node id as payee, building the signed data itself from the fields.
 */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { decodeInvoice } from "@ln/invoice";
import type { SignerRequestOf } from "@ln/signer-client";
import bolt11 from "bolt11";
import { decode as lightDecode } from "light-bolt11-decoder";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { refusal, useTestSigner } from "./helpers.js";

const t = useTestSigner();

async function request(
  over: Partial<SignerRequestOf<"SignInvoice">> = {},
): Promise<SignerRequestOf<"SignInvoice"> & { index: number; payee: Buffer; payment_hash: Buffer }> {
  const index = 20_000 + randomBytes(3).readUIntBE(0, 3);
  const { r_hash } = await t.client.call("InvoiceHash", { index, amount_msat: 50_000n });
  const { node_pubkey } = await t.client.call("NodeInfo", {});
  return {
    index,
    network: "regtest",
    amount_msat: 50_000n,
    timestamp: 1_750_000_000n,
    payment_hash: r_hash,
    payment_secret: Buffer.alloc(32, 0x42),
    description: "a test invoice",
    expiry_seconds: 3600,
    min_final_cltv_expiry_delta: 18,
    payee: node_pubkey,
    route_hints: [
      {
        hops: [
          {
            node_id: Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, 3), true) ?? []),
            short_channel_id: (500n << 40n) | (1n << 16n),
            fee_base_msat: 1000,
            fee_proportional_millionths: 1,
            cltv_expiry_delta: 40,
          },
        ],
      },
    ],
    ...over,
  } as SignerRequestOf<"SignInvoice"> & { index: number; payee: Buffer; payment_hash: Buffer };
}

describe("SignInvoice", () => {
  it("signs an invoice that decodes (bolt11, light-bolt11-decoder, @ln/invoice) and recovers our node id", async () => {
    const req = await request();
    const { invoice } = await t.client.call("SignInvoice", req);
    const node = req.payee.toString("hex");
    expect(node).toBe(t.keys.nodePub.toString("hex"));

    const ours = decodeInvoice(invoice);
    expect(ours.payee).toBe(node);
    expect(ours.paymentHash).toBe(req.payment_hash.toString("hex"));
    expect(ours.amountMsat).toBe(50_000n);
    expect(ours.routeHints[0]?.[0]?.shortChannelId).toBe((500n << 40n) | (1n << 16n));

    // bolt11 recovers the key from the signature and checks it against the n field.
    const b = bolt11.decode(invoice);
    expect(b.payeeNodeKey).toBe(node);
    expect(b.tagsObject.payment_secret).toBe("42".repeat(32));

    const light = lightDecode(invoice);
    expect(light.sections.find((s) => s.name === "payment_hash")).toMatchObject({
      value: req.payment_hash.toString("hex"),
    });
    expect(light.sections.find((s) => s.name === "coin_network")).toMatchObject({ letters: "bcrt" });
  });

  it("refuses a payment hash that is not the index's, and a payee that is not us", async () => {
    const wrongHash = await request({ payment_hash: randomBytes(32) });
    expect(await refusal(t.client.call("SignInvoice", wrongHash))).toMatchObject({
      grpcCode: grpc.status.FAILED_PRECONDITION,
      code: "INVOICE_HASH_MISMATCH",
    });
    const other = await request({ payee: Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, 5), true) ?? []) });
    expect((await refusal(t.client.call("SignInvoice", other))).code).toBe("WRONG_PAYEE");
  });

  it("refuses another amount than the one registered for the index, and fields that make no invoice", async () => {
    const req = await request({ amount_msat: 60_000n });
    expect((await refusal(t.client.call("SignInvoice", req))).code).toBe("INVOICE_AMOUNT_MISMATCH");
    const amountless = await request({ amount_msat: 0n });
    expect((await refusal(t.client.call("SignInvoice", amountless))).code).toBe("INVOICE_AMOUNT_MISMATCH");
    const noExpiry = await request({ expiry_seconds: 0 });
    expect(await refusal(t.client.call("SignInvoice", noExpiry))).toMatchObject({
      grpcCode: grpc.status.INVALID_ARGUMENT,
      code: "INVALID_REQUEST",
    });
    const both = await request({ description_hash: randomBytes(32) });
    expect((await refusal(t.client.call("SignInvoice", both))).code).toBe("INVALID_REQUEST");
    const mainnet = await request({ network: "simnet" });
    expect((await refusal(t.client.call("SignInvoice", mainnet))).code).toBe("INVALID_REQUEST");
  });

  it("is the channel service's only: the gateway and the watchtower are refused", async () => {
    const req = await request();
    for (const c of [t.gateway, t.tower])
      expect(await refusal(c.call("SignInvoice", req))).toMatchObject({
        grpcCode: grpc.status.PERMISSION_DENIED,
        code: "NOT_PERMITTED",
      });
  });
});
