/** SignSweep over real gRPC/mTLS and Postgres: a close output to our final key, swept to our wallet. */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { sat, txidFromHex } from "@ln/bitcoin";
import { p2shOutput, toOtherScript } from "@ln/scripts";
import { buildSpend, finalizeSpend, p2wpkhOutput, type Spend } from "@ln/tx";
import { payments, script as bscript, Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { fundingTx } from "./coins.js";
import { makePeer, refusal, useTestSigner } from "./helpers.js";

const MAX_FEE = 5000n;
const FP = grpc.status.FAILED_PRECONDITION;
const t = useTestSigner(MAX_FEE);

/** A close output paying P2SH(<final> OP_CHECKSIG), swept by buildSpend to `destination`. */
function sweepOf(
  final: Buffer,
  amount: bigint,
  destination: Buffer,
  feeRate = 2000,
): Spend & { prevTx: Transaction } {
  const prevTx = fundingTx(p2shOutput(toOtherScript(final)), amount, 1);
  const spend = buildSpend(
    [
      {
        coin: {
          outpoint: { txid: txidFromHex(prevTx.getId()), vout: 1 },
          amount: sat(amount),
          redeemScript: toOtherScript(final),
          pubkey: final,
        },
        path: { kind: "key" },
      },
    ],
    destination,
    feeRate,
  );
  return { ...spend, prevTx };
}

async function newChannel(): Promise<{ channel: number; final: Buffer }> {
  const r = await t.client.call("NewChannel", {});
  return { channel: r.channel, final: r.final_pubkey };
}

const sweepRequest = (
  channel: number,
  spend: Spend & { prevTx: Transaction },
  amount: bigint,
  walletKey = 0,
) => ({
  channel,
  tx_hex: spend.tx.toHex(),
  inputs: [{ input_index: 0, amount_sat: amount, final_key: {}, prev_tx_hex: spend.prevTx.toHex() }],
  outputs: [{ wallet_key_index: walletKey }],
});

describe("SignSweep", () => {
  it("signs the final-key spend of a close output paying our wallet key", async () => {
    const c = await newChannel();
    const w3 = (await t.client.call("WalletKey", { index: 3 })).pubkey;
    const spend = sweepOf(c.final, 500_000n, p2wpkhOutput(w3));
    const reply = await t.client.call("SignSweep", sweepRequest(c.channel, spend, 500_000n, 3));
    expect(reply.signatures).toHaveLength(1);
    const s = reply.signatures[0]!;
    expect(s.input_index).toBe(0);
    expect(s.pubkey.equals(c.final)).toBe(true);
    // Checked independently: the redeem script <final> OP_CHECKSIG, its P2SH, the legacy digest.
    const redeem = Buffer.concat([Buffer.of(0x21), c.final, Buffer.of(0xac)]);
    expect(
      Buffer.from(payments.p2sh({ redeem: { output: redeem } }).output!).equals(p2shOutput(redeem)),
    ).toBe(true);
    const digest = Transaction.fromHex(spend.tx.toHex()).hashForSignature(0, redeem, Transaction.SIGHASH_ALL);
    expect(ecc.verify(digest, c.final, s.signature, true)).toBe(true);
    // The finished scriptSig: <DER sig + SIGHASH_ALL> <redeem script>.
    const signed = finalizeSpend(spend, [s.signature]);
    const chunks = bscript.decompile(signed.ins[0]!.script)!;
    expect(chunks).toHaveLength(2);
    expect(Buffer.from(chunks[1] as Uint8Array).equals(redeem)).toBe(true);
    const der = bscript.signature.decode(chunks[0] as Uint8Array);
    expect(der.hashType).toBe(Transaction.SIGHASH_ALL);
  });

  it("refuses an output that is not one of our wallet keys", async () => {
    const c = await newChannel();
    const peer = makePeer(`peer ${randomBytes(4).toString("hex")}`);
    const theirs = sweepOf(c.final, 500_000n, p2wpkhOutput(peer.final.pub));
    // Named as our wallet key 0, but paying the peer's key.
    const lied = await refusal(t.client.call("SignSweep", sweepRequest(c.channel, theirs, 500_000n)));
    expect(lied).toMatchObject({ grpcCode: FP, code: "FOREIGN_OUTPUT" });
    // Named for what it is: an external script.
    const external = await refusal(
      t.client.call("SignSweep", {
        ...sweepRequest(c.channel, theirs, 500_000n),
        outputs: [{ external: { script: p2wpkhOutput(peer.final.pub) } }],
      }),
    );
    expect(external).toMatchObject({ grpcCode: FP, code: "FOREIGN_OUTPUT" });
  });

  it("refuses a fee above the maximum, an unknown channel, and an input of no kind", async () => {
    const c = await newChannel();
    const w0 = (await t.client.call("WalletKey", { index: 0 })).pubkey;
    const pricey = sweepOf(c.final, 500_000n, p2wpkhOutput(w0), 100_000);
    expect(pricey.fee).toBeGreaterThan(MAX_FEE);
    const fee = await refusal(t.client.call("SignSweep", sweepRequest(c.channel, pricey, 500_000n)));
    expect(fee).toMatchObject({ grpcCode: FP, code: "FEE_TOO_HIGH" });
    // An amount other than the previous output's.
    const fine = sweepOf(c.final, 500_000n, p2wpkhOutput(w0));
    const under = await refusal(t.client.call("SignSweep", sweepRequest(c.channel, fine, 1000n)));
    expect(under.code).toBe("AMOUNT_MISMATCH");
    const unknown = await refusal(t.client.call("SignSweep", sweepRequest(0x7fff_0000, fine, 500_000n)));
    expect(unknown.code).toBe("UNKNOWN_CHANNEL");
    const noKind = await refusal(
      t.client.call("SignSweep", {
        ...sweepRequest(c.channel, fine, 500_000n),
        inputs: [{ input_index: 0, amount_sat: 500_000n }],
      }),
    );
    expect(noKind).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });
  });
});
