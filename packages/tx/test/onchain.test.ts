/**
 * Every spend path proven by a real node's consensus and mempool code (bcoin in regtest,
 * DESIGN.md 8): accepted into the mempool and mined, or rejected with the node's own reason.
 */
import { sha256, sat, txidFromHex, type Locktime, type Sat } from "@ln/bitcoin";
import { RpcError } from "@ln/chain-client";
import { startRegtest, type Regtest } from "@ln/regtest";
import {
  anchorSighash,
  buildClose,
  buildCommitment,
  buildJustice,
  buildSpend,
  finalizeAnchorSpend,
  finalizeSpend,
  MAX_STANDARD_TX_BYTES,
  normalizedTxid,
  p2wpkhOutput,
  signDigest,
  type Commitment,
  type CommitmentHtlc,
  type CommitmentOutput,
  type P2shCoin,
  type SpendPath,
} from "@ln/tx";
import { segwitAnchor } from "@ln/tx/testing";
import { msat } from "@ln/bitcoin";
import { script, Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

interface Key {
  priv: Buffer;
  pub: Buffer;
}
const key = (fill: number): Key => {
  const priv = Buffer.alloc(32, fill);
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
};
const alice = { commit: key(0x11), final: key(0x12), wallet: key(0x13) };
const bob = { commit: key(0x21), final: key(0x22), wallet: key(0x23) };
const FEE_RATE = 2000; // satoshi per 1000 bytes: above the node's relay minimum
const DELAY = 5;

let rt: Regtest;
beforeAll(async () => {
  rt = await startRegtest();
  await mineTo(1400); // CLTV (BIP65) is active from height 1351 on bcoin's regtest
}, 120_000);
afterAll(async () => {
  await rt?.stop();
});

const height = async (): Promise<number> => (await rt.rpc.getBlockchainInfo()).blocks;
async function mineTo(target: number): Promise<void> {
  const h = await height();
  if (target > h) await rt.mine(target - h);
}

async function accepted(tx: Transaction): Promise<void> {
  expect(await rt.rpc.sendRawTransaction(tx.toHex())).toBe(tx.getId());
}
async function rejected(tx: Transaction, reason: RegExp): Promise<void> {
  const e = await rt.rpc.sendRawTransaction(tx.toHex()).then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(RpcError);
  expect((e as RpcError).rpcMessage).toMatch(reason);
}
async function mined(tx: Transaction): Promise<void> {
  await rt.mine(1);
  const info = await rt.rpc.getRawTransaction(tx.getId(), true);
  expect(typeof info === "object" && (info.confirmations ?? 0) >= 1).toBe(true);
}

/** Funds a P2WPKH coin of Alice's wallet, builds the anchor from it, confirms it. */
async function openAnchor(amount: Sat) {
  const { tx, anchor } = await segwitAnchor({
    fund: (address, value) => rt.fund(address, value),
    funder: alice.wallet,
    commitKeys: [alice.commit.pub, bob.commit.pub],
    amount,
    feeRate: FEE_RATE,
  });
  await accepted(tx);
  await mined(tx);
  return anchor;
}

/** Both commit keys sign the anchor spend. */
function signedByBoth(tx: Transaction, redeem: Buffer, nonce?: Buffer): Transaction {
  const digest = anchorSighash(tx, redeem);
  const sign = (k: Key): Buffer =>
    Buffer.from(nonce ? ecc.sign(digest, k.priv, nonce) : ecc.sign(digest, k.priv));
  return finalizeAnchorSpend(tx, redeem, [
    { pubkey: alice.commit.pub, compact: sign(alice.commit) },
    { pubkey: bob.commit.pub, compact: sign(bob.commit) },
  ]);
}

const coinOf = (commitTx: Transaction, o: CommitmentOutput, signer: Key): P2shCoin => ({
  outpoint: { txid: txidFromHex(commitTx.getId()), vout: o.vout },
  amount: o.amount,
  redeemScript: o.redeemScript,
  pubkey: signer.pub,
});

/** A one-input spend of `coin` by `path`, signed with `signer`, to `signer`'s own wallet. */
function spend(coin: P2shCoin, path: SpendPath, signer: Key): Transaction {
  const s = buildSpend([{ coin, path }], p2wpkhOutput(signer.pub), FEE_RATE);
  return finalizeSpend(
    s,
    s.requests.map((r) => signDigest(signer.priv, r.digest)),
  );
}

/** Replaces the preimage push of a signed one-input spend: for negative cases our builder refuses. */
function withPreimage(signed: Transaction, preimage: Buffer): Transaction {
  const chunks = script.decompile(signed.ins[0]!.script);
  if (!chunks || chunks.length !== 3) throw new Error("expected <sig> <preimage> <redeem>");
  const bad = signed.clone();
  bad.setInputScript(0, script.compile([chunks[0]!, preimage, chunks[2]!]));
  return bad;
}

const R = (n: number): Buffer => Buffer.alloc(32, n);
const htlcFor = (id: number, offeredByOwner: boolean, amount: number, expiry: Locktime): CommitmentHtlc => ({
  id: BigInt(id),
  offeredByOwner,
  amountMsat: msat(amount * 1000),
  rHash: sha256(R(id)),
  expiry,
});

function aliceCommitment(
  anchor: Awaited<ReturnType<typeof openAnchor>>,
  htlcs: CommitmentHtlc[],
  revocationPreimage: Buffer,
): Commitment {
  const htlcTotal = htlcs.reduce((a, h) => a + Number(h.amountMsat), 0);
  const rest = Number(anchor.amount) * 1000 - htlcTotal;
  return buildCommitment({
    anchor,
    ownerFinal: alice.final.pub,
    otherFinal: bob.final.pub,
    revocationHash: sha256(revocationPreimage),
    delay: { blocks: DELAY },
    ownerMsat: msat(Math.floor(rest * 0.6)),
    otherMsat: msat(rest - Math.floor(rest * 0.6)),
    htlcs,
    feeRate: FEE_RATE,
  });
}
const output = (c: Commitment, pred: (o: CommitmentOutput) => boolean): CommitmentOutput => {
  const o = c.outputs.find(pred);
  if (!o) throw new Error("no such output");
  return o;
};
const htlcOut = (c: Commitment, id: number): CommitmentOutput =>
  output(c, (o) => (o.kind === "htlc_offered" || o.kind === "htlc_received") && o.htlc.id === BigInt(id));

describe("on a real regtest node", () => {
  it("cooperative close: accepted and mined", async () => {
    const anchor = await openAnchor(sat(1_000_000));
    const close = buildClose({
      anchor,
      a: { finalKey: alice.final.pub, msat: msat(600_000_000) },
      b: { finalKey: bob.final.pub, msat: msat(400_000_000) },
      closeFee: sat(2000),
    });
    const tx = signedByBoth(close.tx, close.anchorRedeemScript);
    await accepted(tx);
    await mined(tx);
  });

  it("a commitment: every path of the owner and of the other side, each before and after its lock", async () => {
    const anchor = await openAnchor(sat(2_000_000));
    const h0 = await height();
    const expiry = { blocks: h0 + 10 };
    const htlcs = [
      htlcFor(1, true, 50_000, expiry), // Alice offered: Bob takes it with R
      htlcFor(2, true, 50_000, expiry), // Alice offered: Alice takes it back after expiry + delay
      htlcFor(3, false, 50_000, expiry), // offered to Alice: Alice takes it with R after her delay
      htlcFor(4, false, 50_000, expiry), // offered to Alice: Bob takes it back after expiry
    ];
    const c = aliceCommitment(anchor, htlcs, R(99));
    const commitTx = signedByBoth(c.tx, c.anchorRedeemScript);
    await accepted(commitTx);
    await mined(commitTx);

    // Bob, on Alice's commitment: R at once; negative cases first.
    const h1 = coinOf(commitTx, htlcOut(c, 1), bob.final);
    const good = spend(h1, { kind: "htlc_redeem", preimage: R(1) }, bob.final);
    await rejected(
      spend(h1, { kind: "htlc_redeem", preimage: R(7) }, bob.final),
      /mandatory-script-verify-flag/,
    );
    await rejected(
      spend({ ...h1, pubkey: alice.final.pub }, { kind: "htlc_redeem", preimage: R(1) }, alice.final),
      /mandatory-script-verify-flag/,
    );
    await rejected(withPreimage(good, R(1).subarray(0, 31)), /mandatory-script-verify-flag/);
    await accepted(good);
    await accepted(
      spend(
        coinOf(
          commitTx,
          output(c, (o) => o.kind === "to_other"),
          bob.final,
        ),
        { kind: "key" },
        bob.final,
      ),
    );

    // Alice's own paths wait for her delay (CSV) and, for her timeout, the expiry (CLTV).
    const delayed = spend(
      coinOf(
        commitTx,
        output(c, (o) => o.kind === "to_owner"),
        alice.final,
      ),
      { kind: "delayed", delay: { blocks: DELAY } },
      alice.final,
    );
    const redeem3 = spend(
      coinOf(commitTx, htlcOut(c, 3), alice.final),
      { kind: "htlc_redeem", preimage: R(3), delay: { blocks: DELAY } },
      alice.final,
    );
    const timeout2 = spend(
      coinOf(commitTx, htlcOut(c, 2), alice.final),
      { kind: "htlc_timeout", expiry, delay: { blocks: DELAY } },
      alice.final,
    );
    const timeout4 = spend(
      coinOf(commitTx, htlcOut(c, 4), bob.final),
      { kind: "htlc_timeout", expiry },
      bob.final,
    );
    await rejected(delayed, /non-BIP68-final/);
    await rejected(redeem3, /non-BIP68-final/);
    await rejected(timeout2, /non-final/);
    await rejected(timeout4, /non-final/);

    await rt.mine(DELAY - 1); // the commitment now has DELAY confirmations
    await accepted(delayed);
    await accepted(redeem3);
    await rejected(timeout2, /non-final/);
    await mineTo(expiry.blocks); // the next block's height is past the expiry
    await accepted(timeout2);
    await accepted(timeout4);
    await mined(timeout4);
    await mined(delayed);
  });

  it("a revoked commitment: the revocation path of every output type, and not with a wrong preimage", async () => {
    const anchor = await openAnchor(sat(1_000_000));
    const expiry = { blocks: (await height()) + 100 };
    const preimage = R(42);
    const c = aliceCommitment(
      anchor,
      [htlcFor(5, true, 40_000, expiry), htlcFor(6, false, 40_000, expiry)],
      preimage,
    );
    const commitTx = signedByBoth(c.tx, c.anchorRedeemScript);
    await accepted(commitTx);
    await mined(commitTx);
    const revocable = c.outputs.filter((o) => o.kind !== "to_other");
    expect(revocable.map((o) => o.kind).sort()).toEqual(["htlc_offered", "htlc_received", "to_owner"]);
    const toOwner = coinOf(
      commitTx,
      output(c, (o) => o.kind === "to_owner"),
      bob.final,
    );
    await rejected(
      spend(toOwner, { kind: "revocation", preimage: R(43) }, bob.final),
      /mandatory-script-verify-flag/,
    );
    const [justice, ...more] = buildJustice(
      revocable.map((o) => ({
        coin: coinOf(commitTx, o, bob.final),
        path: { kind: "revocation", preimage },
      })),
      p2wpkhOutput(bob.wallet.pub),
      FEE_RATE,
    );
    expect(more).toHaveLength(0);
    const tx = finalizeSpend(
      justice!,
      justice!.requests.map((r) => signDigest(bob.final.priv, r.digest)),
    );
    await accepted(tx);
    await mined(tx);
  });

  it("1500 HTLCs on one side: the fee, the size, and justice in chunks below 100,000 bytes", async () => {
    const anchor = await openAnchor(sat(2_000_000));
    const expiry = { blocks: (await height()) + 100 };
    const htlcs = Array.from({ length: 1500 }, (_, i) => htlcFor(1000 + i, true, 1000, expiry));
    const preimage = R(77);
    const c = aliceCommitment(anchor, htlcs, preimage);
    expect(c.bytecount).toBe(48338);
    expect(c.fee).toBe(96_676n); // 48338 bytes at 2000 sat per 1000 bytes, already even
    const commitTx = signedByBoth(c.tx, c.anchorRedeemScript);
    expect(commitTx.byteLength()).toBeLessThanOrEqual(48338); // draft 3.6's bytecount is a worst case
    await accepted(commitTx);
    await mined(commitTx);
    const justice = buildJustice(
      c.outputs
        .filter((o) => o.kind !== "to_other")
        .map((o) => ({ coin: coinOf(commitTx, o, bob.final), path: { kind: "revocation", preimage } })),
      p2wpkhOutput(bob.wallet.pub),
      FEE_RATE,
    );
    expect(justice.length).toBeGreaterThan(1);
    for (const j of justice) {
      const tx = finalizeSpend(
        j,
        j.requests.map((r) => signDigest(bob.final.priv, r.digest)),
      );
      expect(tx.byteLength()).toBeLessThan(MAX_STANDARD_TX_BYTES);
      await accepted(tx);
    }
    await rt.mine(1);
    expect(await rt.rpc.getRawMempool()).toEqual([]);
  }, 120_000);

  it("normalized txid: re-signing with another nonce changes the txid, not the normalized txid", async () => {
    const anchor = {
      outpoint: { txid: txidFromHex("ab".repeat(32)), vout: 1 },
      amount: sat(1_000_000),
      commitKeys: [alice.commit.pub, bob.commit.pub] as const,
    };
    const c = aliceCommitment(anchor, [], R(1));
    const one = signedByBoth(c.tx, c.anchorRedeemScript);
    const two = signedByBoth(c.tx, c.anchorRedeemScript, Buffer.alloc(32, 0x5a));
    expect(two.getId()).not.toBe(one.getId());
    expect(normalizedTxid(two)).toBe(normalizedTxid(one));
    expect(normalizedTxid(one)).toBe(normalizedTxid(c.tx));
  });
});
