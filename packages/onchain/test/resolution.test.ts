/**
 * On-chain resolution (draft 6.2) against a real node: bcoin in regtest with CLTV active is the
 * script interpreter and the judge of every lock. We are Alice; Bob is the peer; the test holds
 * both nodes' keys.
 */
import { msat, sat, sha256, txidFromHex, type Locktime, type Sat, type Txid } from "@ln/bitcoin";
import { RpcError } from "@ln/chain-client";
import { startRegtest, type Regtest } from "@ln/regtest";
import {
  anchorSighash,
  buildClose,
  buildCommitment,
  buildSpend,
  finalizeAnchorSpend,
  finalizeSpend,
  p2wpkhOutput,
  signDigest,
  type CommitmentHtlc,
  type CommitmentParams,
  type Spend,
} from "@ln/tx";
import { segwitAnchor } from "@ln/tx/testing";
import { payments, Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  buildClaimSpend,
  claimsFor,
  classifyAnchorSpend,
  isSpendable,
  offeredHtlcOutpoints,
  OnchainError,
  preimagesRevealed,
  readyAt,
  type Claim,
  type KnownCommitments,
} from "../src/index.js";

interface Key {
  priv: Buffer;
  pub: Buffer;
}
const key = (fill: number): Key => {
  const priv = Buffer.alloc(32, fill);
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
};
const alice = { commit: key(0x31), final: key(0x32), wallet: key(0x33) };
const bob = { commit: key(0x41), final: key(0x42), wallet: key(0x43) };
const FEE_RATE = 2000;
/** Bob asked for this delay: it applies on Alice's commitment. */
const DELAY_ON_OURS = 5;
/** Alice asked for this one: it applies on Bob's commitment. */
const DELAY_ON_THEIRS = 3;

let rt: Regtest;
beforeAll(async () => {
  rt = await startRegtest();
  await rt.activateCltv();
}, 120_000);
afterAll(async () => {
  await rt?.stop();
});

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
async function mineAndConfirm(tx: Transaction): Promise<number> {
  await rt.mine(1);
  const info = await rt.rpc.getRawTransaction(tx.getId(), true);
  expect(typeof info === "object" && (info.confirmations ?? 0) >= 1).toBe(true);
  return rt.height();
}

async function openAnchor(amount: Sat) {
  const { tx, anchor } = await segwitAnchor({
    fund: (address, value) => rt.fund(address, value),
    funder: alice.wallet,
    commitKeys: [alice.commit.pub, bob.commit.pub],
    amount,
    feeRate: FEE_RATE,
  });
  await accepted(tx);
  await mineAndConfirm(tx);
  return anchor;
}
type Anchor = Awaited<ReturnType<typeof openAnchor>>;

/** Both commit keys sign; `nonce` re-signs only `resigner`'s half (the broadcaster malleating). */
function signedByBoth(params: CommitmentParams, resigner?: Key): Transaction {
  const c = buildCommitment(params);
  const digest = anchorSighash(c.tx, c.anchorRedeemScript);
  const sign = (k: Key): Buffer =>
    Buffer.from(k === resigner ? ecc.sign(digest, k.priv, Buffer.alloc(32, 0x5a)) : ecc.sign(digest, k.priv));
  return finalizeAnchorSpend(c.tx, c.anchorRedeemScript, [
    { pubkey: alice.commit.pub, compact: sign(alice.commit) },
    { pubkey: bob.commit.pub, compact: sign(bob.commit) },
  ]);
}

const R = (n: number): Buffer => Buffer.alloc(32, n);
const htlc = (id: number, offeredByOwner: boolean, amount: number, expiry: Locktime): CommitmentHtlc => ({
  id: BigInt(id),
  offeredByOwner,
  amountMsat: msat(amount * 1000),
  rHash: sha256(R(id)),
  expiry,
});

function params(
  anchor: Anchor,
  owner: "alice" | "bob",
  number: number,
  htlcs: CommitmentHtlc[],
): CommitmentParams {
  const [o, t] = owner === "alice" ? [alice, bob] : [bob, alice];
  const rest = Number(anchor.amount) * 1000 - htlcs.reduce((a, h) => a + Number(h.amountMsat), 0);
  return {
    anchor,
    ownerFinal: o.final.pub,
    otherFinal: t.final.pub,
    revocationHash: sha256(Buffer.alloc(32, (owner === "alice" ? 0x80 : 0xc0) + number)),
    delay: { blocks: owner === "alice" ? DELAY_ON_OURS : DELAY_ON_THEIRS },
    ownerMsat: msat(Math.floor(rest * 0.6)),
    otherMsat: msat(rest - Math.floor(rest * 0.6)),
    htlcs,
    feeRate: FEE_RATE,
  };
}

/** Signs a claim spend with Alice's final key, the key every one of our claims names. */
function signed(spend: Spend): Transaction {
  for (const r of spend.requests) expect(r.pubkey.equals(alice.final.pub)).toBe(true);
  return finalizeSpend(
    spend,
    spend.requests.map((r) => signDigest(alice.final.priv, r.digest)),
  );
}
const toWallet = p2wpkhOutput(alice.wallet.pub);
const claimTx = (c: Claim): Transaction => {
  const spends = buildClaimSpend([c], toWallet, FEE_RATE);
  expect(spends).toHaveLength(1);
  return signed(spends[0]!);
};

/** A claim in words, for hand-written expectations. */
const summary = (c: Claim) => ({
  what: c.what,
  htlc: c.htlc?.id,
  path: c.path.kind,
  preimage: c.path.kind === "htlc_redeem" ? c.path.preimage.toString("hex") : undefined,
  after: c.after,
});

/** The claim's coin is the output seen on chain: the txid, its value, its P2SH script. */
function isOutputOf(c: Claim, onChain: Transaction): void {
  expect(c.coin.outpoint.txid).toBe(onChain.getId());
  const out = onChain.outs[c.coin.outpoint.vout]!;
  expect(out.value).toBe(c.coin.amount);
  expect(
    Buffer.from(out.script).equals(payments.p2sh({ redeem: { output: c.coin.redeemScript } }).output!),
  ).toBe(true);
}

const byHtlc = (claims: readonly Claim[], id: number): Claim => {
  const c = claims.find((x) => x.htlc?.id === BigInt(id));
  if (!c) throw new Error(`no claim for HTLC ${id}`);
  return c;
};
const tip = () => ({ height: rt.height(), medianTime: 0 });

describe("on-chain resolution on a real regtest node", () => {
  it("our commitment (malleated by us): classified, claims as draft 6.2 says, each lock enforced, R learned", async () => {
    const anchor = await openAnchor(sat(1_000_000));
    const h0 = rt.height();
    const expiry: Locktime = { blocks: h0 + 12 };
    const ours = params(anchor, "alice", 7, [
      htlc(1, true, 50_000, expiry), // we offered: timed out after expiry + delay
      htlc(2, true, 40_000, expiry), // we offered: Bob takes it with R, and we learn R
      htlc(3, false, 30_000, expiry), // offered to us, R known: redeemed after the delay
      htlc(4, false, 20_000, expiry), // offered to us, R unknown: watched
    ]);
    const known: KnownCommitments = {
      ours: { number: 7n, params: ours },
      theirs: [
        { number: 6n, params: params(anchor, "bob", 6, []) },
        { number: 7n, params: params(anchor, "bob", 7, []) },
      ],
    };
    const plain = signedByBoth(ours);
    const malleated = signedByBoth(ours, alice.commit);
    expect(malleated.getId()).not.toBe(plain.getId());
    for (const tx of [plain, malleated]) {
      const k = classifyAnchorSpend(tx, known);
      expect(k.kind).toBe("our_commitment");
      expect(k.kind === "our_commitment" && k.number).toBe(7n);
      expect(k.kind === "our_commitment" && k.txid).toBe(tx.getId());
    }
    await accepted(malleated);
    const confirmed = await mineAndConfirm(malleated);
    const spent = classifyAnchorSpend(malleated, known);
    const preimages = new Map([[sha256(R(3)).toString("hex"), R(3)]]);
    const { claims, watched } = claimsFor(spent, malleated.getId() as Txid, preimages);

    const csv = { blocks: DELAY_ON_OURS };
    expect(claims.map(summary).sort((a, b) => Number(a.htlc ?? 0n) - Number(b.htlc ?? 0n))).toEqual([
      { what: "delayed", htlc: undefined, path: "delayed", preimage: undefined, after: { csv } },
      {
        what: "htlc_timeout",
        htlc: 1n,
        path: "htlc_timeout",
        preimage: undefined,
        after: { csv, cltv: expiry },
      },
      {
        what: "htlc_timeout",
        htlc: 2n,
        path: "htlc_timeout",
        preimage: undefined,
        after: { csv, cltv: expiry },
      },
      { what: "htlc_redeem", htlc: 3n, path: "htlc_redeem", preimage: R(3).toString("hex"), after: { csv } },
    ]);
    expect(watched.map((w) => [w.htlc.id, w.amount])).toEqual([[4n, 20_000n]]);
    for (const c of claims) isOutputOf(c, malleated);
    // The HTLC amounts as offered; the delayed output is the rest of what the commitment pays Alice.
    expect([1, 2, 3].map((id) => byHtlc(claims, id).coin.amount)).toEqual([50_000n, 40_000n, 30_000n]);
    expect(malleated.outs).toHaveLength(6); // and the to-other output, Bob's, is not ours

    const delayed = claims.find((c) => c.what === "delayed")!;
    const redeem3 = byHtlc(claims, 3);
    const timeout1 = byHtlc(claims, 1);
    expect(readyAt(delayed, { height: confirmed })).toEqual({
      height: confirmed + DELAY_ON_OURS,
      medianTime: 0,
    });
    expect(readyAt(redeem3, { height: confirmed })).toEqual({
      height: confirmed + DELAY_ON_OURS,
      medianTime: 0,
    });
    expect(readyAt(timeout1, { height: confirmed })).toEqual({ height: h0 + 13, medianTime: 0 });

    // Bob takes HTLC 2 with R at once; Alice learns R from his spend.
    const bobSpend = buildSpend(
      [
        {
          coin: { ...byHtlc(claims, 2).coin, pubkey: bob.final.pub },
          path: { kind: "htlc_redeem", preimage: R(2) },
        },
      ],
      p2wpkhOutput(bob.wallet.pub),
      FEE_RATE,
    );
    const bobTx = finalizeSpend(
      bobSpend,
      bobSpend.requests.map((r) => signDigest(bob.final.priv, r.digest)),
    );
    await accepted(bobTx);
    const learned = preimagesRevealed(bobTx, offeredHtlcOutpoints(claims));
    expect(learned.map((l) => [l.rHash.toString("hex"), l.r.toString("hex")])).toEqual([
      [sha256(R(2)).toString("hex"), R(2).toString("hex")],
    ]);
    // Nothing is learned from a spend of anything else.
    expect(preimagesRevealed(bobTx, [{ outpoint: delayed.coin.outpoint, rHash: sha256(R(2)) }])).toEqual([]);

    // Before the delay: rejected by the node, and not spendable by our reckoning.
    for (const c of [delayed, redeem3]) {
      await rejected(claimTx(c), /non-BIP68-final/);
      expect(isSpendable(c, tip(), { height: confirmed })).toBe(false);
    }
    await rt.mineTo(confirmed + DELAY_ON_OURS - 2); // the next block is one short of the delay
    for (const c of [delayed, redeem3]) {
      await rejected(claimTx(c), /non-BIP68-final/);
      expect(isSpendable(c, tip(), { height: confirmed })).toBe(false);
    }
    await rt.mine(1);
    for (const c of [delayed, redeem3]) {
      expect(isSpendable(c, tip(), { height: confirmed })).toBe(true);
      await accepted(claimTx(c));
    }
    // The timeout waits for the expiry too (here the later lock).
    await rejected(claimTx(timeout1), /non-final/);
    await rt.mineTo(expiry.blocks - 1);
    expect(isSpendable(timeout1, tip(), { height: confirmed })).toBe(false);
    await rejected(claimTx(timeout1), /non-final/);
    await rt.mine(1);
    expect(isSpendable(timeout1, tip(), { height: confirmed })).toBe(true);
    const t1 = claimTx(timeout1);
    await accepted(t1);
    await mineAndConfirm(t1);
  });

  it("their commitment (malleated by them): to-us and R at once, our HTLC after its expiry, R learned", async () => {
    const anchor = await openAnchor(sat(1_000_000));
    const h0 = rt.height();
    const expiry: Locktime = { blocks: h0 + 8 };
    const theirs = params(anchor, "bob", 9, [
      htlc(5, true, 50_000, expiry), // Bob offered, R known: ours at once
      htlc(6, true, 20_000, expiry), // Bob offered, R unknown: watched
      htlc(7, false, 40_000, expiry), // we offered: ours after its expiry (no delay on theirs)
      htlc(8, false, 30_000, expiry), // we offered: Bob takes it with R after his delay
    ]);
    const known: KnownCommitments = {
      ours: { number: 9n, params: params(anchor, "alice", 9, []) },
      theirs: [
        { number: 9n, params: theirs },
        { number: 10n, params: params(anchor, "bob", 10, []) },
      ],
    };
    const malleated = signedByBoth(theirs, bob.commit);
    expect(malleated.getId()).not.toBe(signedByBoth(theirs).getId());
    const k = classifyAnchorSpend(malleated, known);
    expect(k.kind === "their_commitment" && k.number).toBe(9n);
    // Their revoked commitment 8 is not ours to handle (the tower's), a close needs nothing.
    expect(classifyAnchorSpend(signedByBoth(params(anchor, "bob", 8, [])), known)).toEqual({
      kind: "unknown",
    });
    const close = buildClose({
      anchor,
      a: { finalKey: alice.final.pub, msat: msat(600_000_000) },
      b: { finalKey: bob.final.pub, msat: msat(400_000_000) },
      closeFee: sat(2000),
    });
    expect(classifyAnchorSpend(close.tx, known)).toEqual({ kind: "close" });

    await accepted(malleated);
    const confirmed = await mineAndConfirm(malleated);
    const preimages = new Map([
      [sha256(R(5)).toString("hex"), R(5)],
      [sha256(R(99)).toString("hex"), R(99)], // an R of no HTLC here: irrelevant
    ]);
    const { claims, watched } = claimsFor(k, malleated.getId() as Txid, preimages);
    expect(claims.map(summary).sort((a, b) => Number(a.htlc ?? 0n) - Number(b.htlc ?? 0n))).toEqual([
      { what: "to_us", htlc: undefined, path: "key", preimage: undefined, after: {} },
      { what: "htlc_redeem", htlc: 5n, path: "htlc_redeem", preimage: R(5).toString("hex"), after: {} },
      { what: "htlc_timeout", htlc: 7n, path: "htlc_timeout", preimage: undefined, after: { cltv: expiry } },
      { what: "htlc_timeout", htlc: 8n, path: "htlc_timeout", preimage: undefined, after: { cltv: expiry } },
    ]);
    expect(watched.map((w) => [w.htlc.id, w.amount])).toEqual([[6n, 20_000n]]);
    for (const c of claims) isOutputOf(c, malleated);
    expect(malleated.outs).toHaveLength(6);
    const toUs = claims.find((c) => c.what === "to_us")!;
    expect(readyAt(toUs, { height: confirmed })).toEqual({ height: confirmed, medianTime: 0 });
    expect(readyAt(byHtlc(claims, 7), { height: confirmed })).toEqual({ height: h0 + 9, medianTime: 0 });

    // The at-once claims share one transaction; the timeouts (an nLockTime) go in another.
    const now = claims.filter((c) => isSpendable(c, tip(), { height: confirmed }));
    expect(now.map((c) => c.what).sort()).toEqual(["htlc_redeem", "to_us"]);
    const grouped = buildClaimSpend(claims, toWallet, FEE_RATE);
    expect(grouped.map((s) => [s.tx.ins.length, s.tx.locktime])).toEqual([
      [2, 0],
      [2, expiry.blocks],
    ]);
    await accepted(signed(grouped[0]!));

    // Bob takes HTLC 8 with R after his delay; we learn R.
    const bobCoin = { ...byHtlc(claims, 8).coin, pubkey: bob.final.pub };
    const bobSpend = buildSpend(
      [{ coin: bobCoin, path: { kind: "htlc_redeem", preimage: R(8), delay: { blocks: DELAY_ON_THEIRS } } }],
      p2wpkhOutput(bob.wallet.pub),
      FEE_RATE,
    );
    const bobTx = finalizeSpend(
      bobSpend,
      bobSpend.requests.map((r) => signDigest(bob.final.priv, r.digest)),
    );
    await rejected(bobTx, /non-BIP68-final/);
    expect(() => classifyAnchorSpend(bobTx, known)).toThrow(OnchainError); // it spends no anchor

    const timeout7 = byHtlc(claims, 7);
    await rejected(claimTx(timeout7), /non-final/);
    await rt.mineTo(expiry.blocks - 1);
    expect(isSpendable(timeout7, tip(), { height: confirmed })).toBe(false);
    await rejected(claimTx(timeout7), /non-final/);
    await accepted(bobTx); // by now past his delay
    const learned = preimagesRevealed(bobTx, offeredHtlcOutpoints(claims));
    expect(learned.map((l) => [l.rHash.toString("hex"), l.r.toString("hex")])).toEqual([
      [sha256(R(8)).toString("hex"), R(8).toString("hex")],
    ]);
    await rt.mine(1);
    expect(isSpendable(timeout7, tip(), { height: confirmed })).toBe(true);
    const t7 = claimTx(timeout7);
    await accepted(t7);
    await mineAndConfirm(t7);
    expect(await rt.rpc.getRawMempool()).toEqual([]);
  });
});

describe("readiness by time", () => {
  const claim = (after: Claim["after"]): Claim => ({
    what: "delayed",
    coin: {
      outpoint: { txid: txidFromHex("11".repeat(32)), vout: 0 },
      amount: sat(10_000),
      redeemScript: Buffer.alloc(0),
      pubkey: alice.final.pub,
    },
    path: { kind: "delayed", delay: { blocks: 1 } },
    after,
  });

  it("a time CSV counts 512-second units from the median time before the confirming block", () => {
    // 1000 seconds round up to 2 units: 1024 seconds (BIP68).
    const c = claim({ csv: { seconds: 1000 } });
    expect(readyAt(c, { height: 100, medianTime: 1_700_000_000 })).toEqual({
      height: 100,
      medianTime: 1_700_001_024,
    });
    expect(
      isSpendable(c, { height: 105, medianTime: 1_700_001_023 }, { height: 100, medianTime: 1_700_000_000 }),
    ).toBe(false);
    expect(
      isSpendable(c, { height: 105, medianTime: 1_700_001_024 }, { height: 100, medianTime: 1_700_000_000 }),
    ).toBe(true);
    expect(() => readyAt(c, { height: 100 })).toThrow(/median time/);
  });

  it("a time expiry needs a median time past above it (BIP113)", () => {
    const c = claim({ cltv: { seconds: 1_700_000_000 } });
    expect(readyAt(c, { height: 100 })).toEqual({ height: 100, medianTime: 1_700_000_001 });
    expect(isSpendable(c, { height: 200, medianTime: 1_700_000_000 }, { height: 100 })).toBe(false);
    expect(isSpendable(c, { height: 200, medianTime: 1_700_000_001 }, { height: 100 })).toBe(true);
  });
});
