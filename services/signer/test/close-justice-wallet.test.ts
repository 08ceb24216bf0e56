/** SignClose, RecordPeerRevocation + SignJustice, SignWalletSpend over real gRPC/mTLS and Postgres. */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { msat, sat, sha256, txidFromHex, txidFromInternal } from "@ln/bitcoin";
import { anchorScript, p2shOutput } from "@ln/scripts";
import {
  anchorSighash,
  buildClose,
  buildCommitment,
  buildJustice,
  buildWalletSpend,
  finalizeAnchorSpend,
  finalizeSpend,
  p2shSighash,
  p2wpkhOutput,
  p2wpkhSighash,
  signDigest,
  verifyDigest,
  type CloseParams,
  type CommitmentParams,
  type SpendInput,
} from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { closeParamsMsg, commitmentParamsMsg } from "@ln/signer-client";
import {
  makePeer,
  randomAnchor,
  refusal,
  remoteParams,
  useTestSigner,
  type AnchorFixture,
  type Ours,
  type Peer,
  type StateFixture,
} from "./helpers.js";
import { DEFAULT_MAX_JUSTICE_FEE_RATE } from "../src/justice-fee.js";
import { walletCoin } from "./coins.js";

const MAX_FEE = 5000n;
const t = useTestSigner(MAX_FEE);

const FP = grpc.status.FAILED_PRECONDITION;

interface Channel {
  ours: Ours;
  peer: Peer;
  anchor: AnchorFixture;
}

async function openChannel(): Promise<Channel> {
  const r = await t.client.call("NewChannel", {});
  return {
    ours: { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey },
    peer: makePeer(`peer ${randomBytes(4).toString("hex")}`),
    anchor: randomAnchor(),
  };
}

async function signRemote(c: Channel, n: bigint, p: CommitmentParams): Promise<Buffer> {
  return (
    await t.client.call("SignRemoteCommitment", {
      channel: c.ours.channel,
      number: n,
      params: commitmentParamsMsg(p),
    })
  ).signature;
}

function closeOf(c: Channel, closeFee: bigint, peerFinal = c.peer.final.pub): CloseParams {
  return {
    anchor: {
      outpoint: { txid: c.anchor.txid, vout: c.anchor.vout },
      amount: sat(c.anchor.amount),
      commitKeys: [c.peer.commit.pub, c.ours.commitPub],
    },
    a: { finalKey: c.ours.finalPub, msat: msat(600_000_000n) },
    b: { finalKey: peerFinal, msat: msat(400_000_000n) },
    closeFee: sat(closeFee),
  };
}

const signClose = (c: Channel, p: CloseParams) =>
  t.client.call("SignClose", { channel: c.ours.channel, params: closeParamsMsg(p) });

describe("SignClose", () => {
  it("pays only the channel's final keys, with a fee at most the latest commitment fee", async () => {
    const c = await openChannel();
    expect((await refusal(signClose(c, closeOf(c, 100n)))).code).toBe("WRONG_ANCHOR"); // nothing signed yet
    await signRemote(c, 0n, remoteParams(c.ours, c.peer, c.anchor, 0n, { feeRate: 1112 }));
    // Draft 3.6: floor(338 * 1112 / 2000) * 2 = 374 satoshi.
    const ok = closeOf(c, 374n);
    const { signature } = await signClose(c, ok);
    const close = buildClose(ok);
    expect(verifyDigest(c.ours.commitPub, anchorSighash(close.tx, close.anchorRedeemScript), signature)).toBe(
      true,
    );
    expect(await refusal(signClose(c, closeOf(c, 376n)))).toMatchObject({
      grpcCode: FP,
      code: "FEE_TOO_HIGH",
    });
    expect((await refusal(signClose(c, closeOf(c, 100n, makePeer("mallory").final.pub)))).code).toBe(
      "WRONG_FINAL_KEY",
    );
    const wrongAnchor = closeOf(c, 100n);
    expect(
      (
        await refusal(
          signClose(c, {
            ...wrongAnchor,
            anchor: { ...wrongAnchor.anchor, outpoint: { txid: randomAnchor().txid, vout: 1 } },
          }),
        )
      ).code,
    ).toBe("WRONG_ANCHOR");
    const other = await openChannel();
    expect((await refusal(signClose(c, { ...ok, a: { ...ok.a, finalKey: other.ours.finalPub } }))).code).toBe(
      "WRONG_FINAL_KEY",
    );
  });

  it("and at most the configured maximum, as a commitment's fee", async () => {
    const c = await openChannel();
    // At 40000 per 1000 bytes the commitment fee is 13520 > the 5000 maximum: not signed either.
    const dear = remoteParams(c.ours, c.peer, c.anchor, 0n, { feeRate: 40000 });
    expect((await refusal(signRemote(c, 0n, dear))).code).toBe("FEE_TOO_HIGH");
    // At 14793: floor(338 * 14793 / 2000) * 2 = 5000 satoshi, the maximum itself.
    await signRemote(c, 0n, remoteParams(c.ours, c.peer, c.anchor, 0n, { feeRate: 14793 }));
    expect((await refusal(signClose(c, closeOf(c, MAX_FEE + 2n)))).code).toBe("FEE_TOO_HIGH");
    await signClose(c, closeOf(c, MAX_FEE));
  });
});

describe("peer revocations and justice", () => {
  const r = Buffer.alloc(32, 0x42);
  const state: StateFixture = {
    ownerMsat: 350_000_000n,
    otherMsat: 600_000_000n,
    htlcs: [
      {
        id: 0n,
        offeredByOwner: true,
        amountMsat: msat(50_000_000n),
        rHash: sha256(r),
        expiry: { blocks: 500 },
      },
    ],
  };

  async function breach() {
    const c = await openChannel();
    const p0 = remoteParams(c.ours, c.peer, c.anchor, 0n, state);
    const ourSig0 = await signRemote(c, 0n, p0);
    await signRemote(c, 1n, remoteParams(c.ours, c.peer, c.anchor, 1n, state));
    // The peer broadcasts its revoked commitment 0, with its own (re-signable) half.
    const built = buildCommitment(p0);
    const digest = anchorSighash(built.tx, built.anchorRedeemScript);
    const onChain = finalizeAnchorSpend(built.tx, built.anchorRedeemScript, [
      { pubkey: c.ours.commitPub, compact: ourSig0 },
      { pubkey: c.peer.commit.pub, compact: signDigest(c.peer.commit.priv, digest) },
    ]);
    const wallet = (await t.client.call("WalletKey", { index: 3 })).pubkey;
    const inputs: SpendInput[] = built.outputs.map((o) => ({
      coin: {
        outpoint: { txid: txidFromHex(onChain.getId()), vout: o.vout },
        amount: o.amount,
        redeemScript: o.redeemScript,
        pubkey: c.ours.finalPub,
      },
      path: o.kind === "to_other" ? { kind: "key" } : { kind: "revocation", preimage: c.peer.preimage(0n) },
    }));
    return { c, p0, built, onChain, wallet, inputs, ourSig0 };
  }

  const record = (c: Channel, number: bigint, preimage: Buffer) =>
    t.client.call("RecordPeerRevocation", { channel: c.ours.channel, number, preimage });

  const justice = (c: Channel, n: bigint, p: CommitmentParams, commitmentTx: Transaction, tx: Transaction) =>
    t.tower.call("SignJustice", {
      channel: c.ours.channel,
      revoked_number: n,
      params: commitmentParamsMsg(p),
      commitment_tx_hex: commitmentTx.toHex(),
      justice_tx_hex: tx.toHex(),
      wallet_key_indexes: [3],
    });

  it("records a revocation only for a superseded commitment with the matching preimage", async () => {
    const { c } = await breach();
    expect(await refusal(record(c, 0n, randomBytes(32)))).toMatchObject({
      grpcCode: FP,
      code: "PREIMAGE_MISMATCH",
    });
    expect((await refusal(record(c, 1n, c.peer.preimage(1n)))).code).toBe("NOT_SUPERSEDED"); // 2 not signed
    expect((await refusal(record(c, 5n, c.peer.preimage(5n)))).code).toBe("NOT_SUPERSEDED");
    await record(c, 0n, c.peer.preimage(0n));
    await record(c, 0n, c.peer.preimage(0n)); // idempotent
    // The peer revoked 0: the signer no longer signs it.
    expect((await refusal(signRemote(c, 0n, remoteParams(c.ours, c.peer, c.anchor, 0n, state)))).code).toBe(
      "REMOTE_REVOKED",
    );
  });

  it("signs justice for a recorded revoked commitment, paying only our keys", async () => {
    const { c, p0, onChain, wallet, inputs } = await breach();
    const [spend] = buildJustice(inputs, p2wpkhOutput(wallet), 2000);
    expect(await refusal(justice(c, 0n, p0, onChain, spend!.tx))).toMatchObject({
      grpcCode: FP,
      code: "NOT_REVOKED",
    });
    await record(c, 0n, c.peer.preimage(0n));
    const reply = await justice(c, 0n, p0, onChain, spend!.tx);
    expect(reply.signatures.length).toBe(inputs.length);
    for (const s of reply.signatures) {
      expect(s.pubkey.equals(c.ours.finalPub)).toBe(true);
      const digest = p2shSighash(spend!.tx, s.input_index, inputs[s.input_index]!.coin.redeemScript);
      expect(verifyDigest(c.ours.finalPub, digest, s.signature)).toBe(true);
    }
    const signed = finalizeSpend(
      spend!,
      reply.signatures.map((s) => s.signature),
    );
    expect(signed.ins.every((i) => i.script.length > 0)).toBe(true);
  });

  it("refuses justice paying another key, for another transaction, or spending something else", async () => {
    const { c, p0, built, onChain, inputs, ourSig0 } = await breach();
    await record(c, 0n, c.peer.preimage(0n));
    const [foreign] = buildJustice(inputs, p2wpkhOutput(c.peer.final.pub), 2000);
    expect((await refusal(justice(c, 0n, p0, onChain, foreign!.tx))).code).toBe("FOREIGN_OUTPUT");
    const wallet = (await t.client.call("WalletKey", { index: 3 })).pubkey;
    const [good] = buildJustice(inputs, p2wpkhOutput(wallet), 2000);
    // The commitment shown is not the one the params build.
    const p1 = remoteParams(c.ours, c.peer, c.anchor, 1n, state);
    expect((await refusal(justice(c, 0n, p0, buildCommitment(p1).tx, good!.tx))).code).toBe(
      "JUSTICE_MISMATCH",
    );
    // The params of commitment 1 under the revoked number 0.
    expect((await refusal(justice(c, 0n, p1, buildCommitment(p1).tx, good!.tx))).code).toBe(
      "JUSTICE_MISMATCH",
    );
    // A justice input spending a coin of another transaction.
    const stray: SpendInput = {
      ...inputs[0]!,
      coin: { ...inputs[0]!.coin, outpoint: { txid: txidFromInternal(randomBytes(32)), vout: 0 } },
    };
    const [strayTx] = buildJustice([...inputs, stray], p2wpkhOutput(wallet), 2000);
    expect((await refusal(justice(c, 0n, p0, onChain, strayTx!.tx))).code).toBe("JUSTICE_MISMATCH");
    // The on-chain transaction may be malleated (the peer re-signs its half with another nonce): still accepted.
    const digest = anchorSighash(built.tx, built.anchorRedeemScript);
    const resigned = Buffer.from(ecc.sign(digest, c.peer.commit.priv, Buffer.alloc(32, 9)));
    expect(verifyDigest(c.peer.commit.pub, digest, resigned)).toBe(true);
    const malleated = finalizeAnchorSpend(built.tx, built.anchorRedeemScript, [
      { pubkey: c.ours.commitPub, compact: ourSig0 },
      { pubkey: c.peer.commit.pub, compact: resigned },
    ]);
    expect(malleated.getId()).not.toBe(onChain.getId());
    const reInputs = inputs.map((i) => ({
      ...i,
      coin: { ...i.coin, outpoint: { ...i.coin.outpoint, txid: txidFromHex(malleated.getId()) } },
    }));
    const [re] = buildJustice(reInputs, p2wpkhOutput(wallet), 2000);
    expect((await justice(c, 0n, p0, malleated, re!.tx)).signatures.length).toBe(inputs.length);
  });
  /** Justice of the breach's outputs of `kinds` at `feeRate`, and the value it takes. */
  function justiceOf(b: Awaited<ReturnType<typeof breach>>, kinds: readonly string[], feeRate: number) {
    const inputs = b.inputs.filter((_, i) => kinds.includes(b.built.outputs[i]!.kind));
    const [spend] = buildJustice(inputs, p2wpkhOutput(b.wallet), feeRate);
    const taken = inputs.reduce<bigint>((a, i) => a + i.coin.amount, 0n);
    return { tx: spend!.tx, fee: spend!.fee, taken };
  }

  it("bounds the justice fee rate (SIGNER_MAX_JUSTICE_FEE_RATE): up to it as buildJustice pays, not above", async () => {
    const b = await breach();
    await record(b.c, 0n, b.c.peer.preimage(0n));
    // The peer's output and ours: about 950,000 sat, so the share bound (50 %) is far.
    const at = justiceOf(b, ["to_owner", "to_other"], DEFAULT_MAX_JUSTICE_FEE_RATE);
    expect(at.fee * 100n).toBeLessThan(at.taken * 50n);
    expect((await justice(b.c, 0n, b.p0, b.onChain, at.tx)).signatures).toHaveLength(2);
    const above = justiceOf(b, ["to_owner", "to_other"], DEFAULT_MAX_JUSTICE_FEE_RATE + 10_000);
    expect(above.fee * 100n).toBeLessThan(above.taken * 50n);
    expect(await refusal(justice(b.c, 0n, b.p0, b.onChain, above.tx))).toMatchObject({
      grpcCode: FP,
      code: "JUSTICE_FEE_TOO_HIGH",
    });
  });

  it("bounds the justice fee to half the value taken (SIGNER_MAX_JUSTICE_FEE_PERCENT), at any rate", async () => {
    const b = await breach();
    await record(b.c, 0n, b.c.peer.preimage(0n));
    // The 50,000 sat HTLC alone at 100,000 per 1000 bytes: a fee above 25,000 sat.
    const pricey = justiceOf(b, ["htlc_offered"], 100_000);
    expect(pricey.taken).toBe(50_000n);
    expect(pricey.fee * 100n).toBeGreaterThan(pricey.taken * 50n);
    expect(await refusal(justice(b.c, 0n, b.p0, b.onChain, pricey.tx))).toMatchObject({
      grpcCode: FP,
      code: "JUSTICE_FEE_TOO_HIGH",
    });
    const fine = justiceOf(b, ["htlc_offered"], 20_000);
    expect(fine.fee * 100n).toBeLessThanOrEqual(fine.taken * 50n);
    expect((await justice(b.c, 0n, b.p0, b.onChain, fine.tx)).signatures).toHaveLength(1);
  });
});

describe("SignWalletSpend", () => {
  const coin = walletCoin;
  const input = (k: number, c: ReturnType<typeof walletCoin>) => ({
    key_index: k,
    amount_sat: c.amount,
    prev_tx_hex: c.prevTx.toHex(),
  });

  it("signs a spend to a channel's anchor with change to our wallet key", async () => {
    const c = await openChannel();
    const w0 = (await t.client.call("WalletKey", { index: 0 })).pubkey;
    const w1 = (await t.client.call("WalletKey", { index: 1 })).pubkey;
    const anchorOut = p2shOutput(anchorScript(c.ours.commitPub, c.peer.commit.pub));
    const c0 = coin(w0, 2_000_000n);
    const spend = buildWalletSpend(
      [c0],
      [{ script: anchorOut, amount: sat(1_000_000n) }],
      p2wpkhOutput(w1),
      2000,
    );
    expect(spend.changeVout).toBe(1);
    const reply = await t.client.call("SignWalletSpend", {
      tx_hex: spend.tx.toHex(),
      inputs: [input(0, c0)],
      outputs: [
        { anchor: { channel: c.ours.channel, peer_commit_key: c.peer.commit.pub } },
        { wallet_key_index: 1 },
      ],
    });
    const s = reply.signatures[0]!;
    expect(verifyDigest(w0, p2wpkhSighash(spend.tx, 0, w0, 2_000_000n), s.signature)).toBe(true);
    // The anchor's peer commit key is now recorded: a commitment with another one is refused.
    const other = makePeer("other peer");
    const p = remoteParams(c.ours, { ...c.peer, commit: other.commit }, c.anchor, 0n);
    expect((await refusal(signRemote(c, 0n, p))).code).toBe("WRONG_COMMIT_KEY");
  });

  it("refuses outputs to foreign keys, another peer commit key, and a fee above the maximum", async () => {
    const c = await openChannel();
    await signRemote(c, 0n, remoteParams(c.ours, c.peer, c.anchor, 0n));
    const w0 = (await t.client.call("WalletKey", { index: 0 })).pubkey;
    const theirs = p2wpkhOutput(c.peer.final.pub);
    const c0 = coin(w0, 2_000_000n);
    const pay = buildWalletSpend([c0], [{ script: theirs, amount: sat(1_000_000n) }], p2wpkhOutput(w0), 2000);
    const foreign = await refusal(
      t.client.call("SignWalletSpend", {
        tx_hex: pay.tx.toHex(),
        inputs: [input(0, c0)],
        outputs: [{ wallet_key_index: 0 }, { wallet_key_index: 0 }],
      }),
    );
    expect(foreign).toMatchObject({ grpcCode: FP, code: "FOREIGN_OUTPUT" });
    const mallory = makePeer("mallory").commit.pub;
    const toMallory = p2shOutput(anchorScript(c.ours.commitPub, mallory));
    const anchorSpend = buildWalletSpend(
      [c0],
      [{ script: toMallory, amount: sat(1_000_000n) }],
      p2wpkhOutput(w0),
      2000,
    );
    const wrongKey = await refusal(
      t.client.call("SignWalletSpend", {
        tx_hex: anchorSpend.tx.toHex(),
        inputs: [input(0, c0)],
        outputs: [{ anchor: { channel: c.ours.channel, peer_commit_key: mallory } }, { wallet_key_index: 0 }],
      }),
    );
    expect(wrongKey.code).toBe("WRONG_COMMIT_KEY");
    const pricey = buildWalletSpend([c0], [], p2wpkhOutput(w0), 100_000);
    expect(pricey.fee).toBeGreaterThan(MAX_FEE);
    const fee = await refusal(
      t.client.call("SignWalletSpend", {
        tx_hex: pricey.tx.toHex(),
        inputs: [input(0, c0)],
        outputs: [{ wallet_key_index: 0 }],
      }),
    );
    expect(fee.code).toBe("FEE_TOO_HIGH");
  });
});
