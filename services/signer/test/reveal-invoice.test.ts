/**
 * Issue 13: RevealInvoice gives R only against a signed commitment, not revoked, holding an HTLC
 * offered to us with the invoice's hash and at least its amount; otherwise a payer could get its
 * proof of payment without paying.
 */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { sha256 } from "@ln/bitcoin";
import { commitmentParamsMsg } from "@ln/signer-client";
import type { CommitmentHtlc } from "@ln/tx";
import { describe, expect, it } from "vitest";
import { refusal, useTestSigner } from "./helpers.js";
import { htlc, newTestChannel, ourSigned, revealWith, signRemoteWith } from "./received.js";

const FP = grpc.status.FAILED_PRECONDITION;
const t = useTestSigner();

/** A fresh invoice index, its hash (and its amount registered when given). */
async function invoice(amountMsat = 0n): Promise<{ index: number; rHash: Buffer }> {
  const index = 10_000 + randomBytes(3).readUIntBE(0, 3);
  const { r_hash } = await t.client.call("InvoiceHash", { index, amount_msat: amountMsat });
  return { index, rHash: r_hash };
}

const reveal = (index: number) => t.client.call("RevealInvoice", { index });

describe("RevealInvoice", () => {
  it("refuses R for an invoice nobody pays (a payer asking for proof of payment)", async () => {
    const { index } = await invoice();
    expect(await refusal(reveal(index))).toMatchObject({ grpcCode: FP, code: "NO_MATCHING_HTLC" });
    expect(await t.store.invoiceReveal(index)).toBeUndefined(); // nothing revealed, nothing recorded
  });

  it("reveals R against our commitment signed by the peer holding the HTLC offered to us", async () => {
    const { index, rHash } = await invoice();
    const c = await newTestChannel(t);
    await revealWith(t, c, 0n, [htlc(rHash, 10_000_000n, false)]);
    const { r } = await reveal(index);
    expect(sha256(r).equals(rHash)).toBe(true);
  });

  it("refuses an HTLC with the hash that we offered, or one below the invoice's amount", async () => {
    const { index, rHash } = await invoice(20_000_000n);
    // Each HTLC in the first commitment of a channel of its own (the peer funded it: any state
    // giving us more is signed); a later commitment must follow from the updates since the last.
    const holding = async (h: CommitmentHtlc) => revealWith(t, await newTestChannel(t), 0n, [h]);
    // On our commitment, offered by its owner (us): we would be paying, not paid.
    await holding(htlc(rHash, 20_000_000n, true));
    expect((await refusal(reveal(index))).code).toBe("NO_MATCHING_HTLC");
    // Offered to us, 1 msat short of the invoice.
    await holding(htlc(rHash, 19_999_999n, false));
    expect((await refusal(reveal(index))).code).toBe("NO_MATCHING_HTLC");
    await holding(htlc(rHash, 20_000_000n, false));
    expect(sha256((await reveal(index)).r).equals(rHash)).toBe(true);
    // The amount recorded for the invoice cannot be changed afterwards.
    const again = await refusal(t.client.call("InvoiceHash", { index, amount_msat: 1n }));
    expect(again).toMatchObject({ grpcCode: FP, code: "INVOICE_AMOUNT_MISMATCH" });
  });

  it("ignores a commitment shown without the peer's valid signature", async () => {
    const { index, rHash } = await invoice();
    const c = await newTestChannel(t);
    const { p } = await ourSigned(t, c, 1n, [htlc(rHash, 10_000_000n, false)]);
    const forged = await refusal(
      t.client.call("RevealRevocation", {
        channel: c.ours.channel,
        revoke: 0n,
        next: 2n,
        signed_commitment: { number: 1n, params: commitmentParamsMsg(p), their_sig: Buffer.alloc(64, 1) },
      }),
    );
    expect(forged.code).toBe("BAD_COUNTERPARTY_SIG");
    expect((await refusal(reveal(index))).code).toBe("NO_MATCHING_HTLC");
  });

  it("refuses once the commitment holding the HTLC is revoked (the HTLC was failed)", async () => {
    const { index, rHash } = await invoice();
    const c = await newTestChannel(t);
    await revealWith(t, c, 0n, [htlc(rHash, 10_000_000n, false)]);
    await revealWith(t, c, 1n, []); // commitment 1 revoked; 2 no longer holds it
    expect((await refusal(reveal(index))).code).toBe("NO_MATCHING_HTLC");
  });

  it("reveals R for the peer's commitment we signed holding the HTLC (an on-chain claim), until it revokes it", async () => {
    const { index, rHash } = await invoice();
    const c = await newTestChannel(t);
    await signRemoteWith(t, c, 0n, [htlc(rHash, 10_000_000n, true)]);
    await signRemoteWith(t, c, 1n, []);
    await t.client.call("RecordPeerRevocation", {
      channel: c.ours.channel,
      number: 0n,
      preimage: c.peer.preimage(0n),
    });
    expect((await refusal(reveal(index))).code).toBe("NO_MATCHING_HTLC");
    // Another invoice in the peer's commitment 2, not revoked: revealed.
    const other = await invoice();
    await signRemoteWith(t, c, 2n, [htlc(other.rHash, 10_000_000n, true)]);
    expect(sha256((await reveal(other.index)).r).equals(other.rHash)).toBe(true);
  });

  it("reveals R against our commitment signed for broadcast, and again once revealed though the HTLC is gone", async () => {
    const { index, rHash } = await invoice();
    const c = await newTestChannel(t);
    const { p, sig } = await ourSigned(t, c, 0n, [htlc(rHash, 10_000_000n, false)]);
    await t.client.call("SignLocalCommitment", {
      channel: c.ours.channel,
      number: 0n,
      params: commitmentParamsMsg(p),
      their_sig: sig,
    });
    const first = await reveal(index);
    expect(sha256(first.r).equals(rHash)).toBe(true);
    // A retry after a crash, the HTLC since removed: the same R (the caller has it already).
    const { index: i2, rHash: h2 } = await invoice();
    const c2 = await newTestChannel(t);
    await revealWith(t, c2, 0n, [htlc(h2, 10_000_000n, false)]);
    const r2 = await reveal(i2);
    await revealWith(t, c2, 1n, []);
    expect((await reveal(i2)).r.equals(r2.r)).toBe(true);
    expect((await t.store.invoiceReveal(i2))?.reveals).toBe(2);
  });
});
