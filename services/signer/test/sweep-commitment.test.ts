/**
 * SignSweep of commitment outputs (draft 6.2) over real gRPC/mTLS and Postgres: each path on which
 * our final key signs, on our commitment and on the peer's, and the refusals around them.
 */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { msat, sha256, txidFromHex, type Locktime } from "@ln/bitcoin";
import { commitmentParamsMsg } from "@ln/signer-client";
import {
  anchorSighash,
  buildCommitment,
  buildSpend,
  finalizeAnchorSpend,
  finalizeSpend,
  p2wpkhOutput,
  signDigest,
  type CommitmentHtlc,
  type CommitmentOutput,
  type CommitmentParams,
  type Spend,
  type SpendPath,
} from "@ln/tx";
import { payments, Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { beforeAll, describe, expect, it } from "vitest";
import {
  localParams,
  makePeer,
  randomAnchor,
  refusal,
  remoteParams,
  useTestSigner,
  type AnchorFixture,
  type Ours,
  type Peer,
} from "./helpers.js";

const MAX_FEE = 5000n;
const FP = grpc.status.FAILED_PRECONDITION;
const DELAY: Locktime = { blocks: 144 };
const EXPIRY: Locktime = { blocks: 500 };
const WALLET = 3;
const t = useTestSigner(MAX_FEE);
let wallet: Buffer;
beforeAll(async () => {
  wallet = (await t.client.call("WalletKey", { index: WALLET })).pubkey;
});

const R = (n: number): Buffer => Buffer.alloc(32, n);
const htlc = (id: number, offeredByOwner: boolean): CommitmentHtlc => ({
  id: BigInt(id),
  offeredByOwner,
  amountMsat: msat(50_000_000n),
  rHash: sha256(R(id)),
  expiry: EXPIRY,
});
// The anchor's 1,000,000 sat in full: 400,000 sat to the other side, the rest to the owner and the HTLCs.
const state = (htlcs: CommitmentHtlc[]) => ({
  ownerMsat: 600_000_000n - 50_000_000n * BigInt(htlcs.length),
  otherMsat: 400_000_000n,
  htlcs,
  delay: DELAY,
});

interface Commit {
  number: bigint;
  params: CommitmentParams;
  outputs: CommitmentOutput[];
  /** As seen on chain. */
  tx: Transaction;
}

/**
 * A channel with our commitment 0 signed for broadcast (HTLC 1 we offered, HTLC 2 offered to us)
 * and the peer's commitments 0 (revoked) and 1 (HTLC 3 it offered, HTLC 4 we offered), the
 * latter as the peer broadcast it: with its half re-signed under another nonce.
 */
async function channel() {
  const r = await t.client.call("NewChannel", {});
  const ours: Ours = { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey };
  const peer: Peer = makePeer(`peer ${randomBytes(4).toString("hex")}`);
  const anchor: AnchorFixture = randomAnchor();

  const local = localParams(ours, peer, anchor, r.revocation_hash_0, state([htlc(1, true), htlc(2, false)]));
  const builtLocal = buildCommitment(local);
  const peerSig = signDigest(peer.commit.priv, anchorSighash(builtLocal.tx, builtLocal.anchorRedeemScript));
  const signedLocal = await t.client.call("SignLocalCommitment", {
    channel: ours.channel,
    number: 0n,
    params: commitmentParamsMsg(local),
    their_sig: peerSig,
  });

  const remote = async (n: bigint, htlcs: CommitmentHtlc[]): Promise<Commit> => {
    const params = remoteParams(ours, peer, anchor, n, state(htlcs));
    const built = buildCommitment(params);
    const ourSig = (
      await t.client.call("SignRemoteCommitment", {
        channel: ours.channel,
        number: n,
        params: commitmentParamsMsg(params),
      })
    ).signature;
    const digest = anchorSighash(built.tx, built.anchorRedeemScript);
    const tx = finalizeAnchorSpend(built.tx, built.anchorRedeemScript, [
      { pubkey: ours.commitPub, compact: ourSig },
      { pubkey: peer.commit.pub, compact: Buffer.from(ecc.sign(digest, peer.commit.priv, randomBytes(32))) },
    ]);
    return { number: n, params, outputs: built.outputs, tx };
  };
  const revoked = await remote(0n, [htlc(3, true)]);
  const theirs = await remote(1n, [htlc(3, true), htlc(4, false)]);
  expect(theirs.tx.getId()).not.toBe(buildCommitment(theirs.params).tx.getId()); // malleated
  await t.client.call("RecordPeerRevocation", {
    channel: ours.channel,
    number: 0n,
    preimage: peer.preimage(0n),
  });
  const ourCommit: Commit = {
    number: 0n,
    params: local,
    outputs: builtLocal.outputs,
    tx: Transaction.fromHex(signedLocal.tx_hex),
  };
  return { ours, peer, ourCommit, revoked, theirs };
}
type Fixture = Awaited<ReturnType<typeof channel>>;

const outputOf = (c: Commit, pred: (o: CommitmentOutput) => boolean): CommitmentOutput => {
  const o = c.outputs.find(pred);
  if (!o) throw new Error("no such output");
  return o;
};
const kind = (k: CommitmentOutput["kind"]) => (o: CommitmentOutput) => o.kind === k;
const htlcId = (id: number) => (o: CommitmentOutput) => "htlc" in o && o.htlc.id === BigInt(id);

/** A one-input spend of output `o` of `c` as seen on chain, by `path`, to `to`. */
function spendOf(
  f: Fixture,
  c: Commit,
  o: CommitmentOutput,
  path: SpendPath,
  to = p2wpkhOutput(wallet),
): Spend {
  return buildSpend(
    [
      {
        coin: {
          outpoint: { txid: txidFromHex(c.tx.getId()), vout: o.vout },
          amount: o.amount,
          redeemScript: o.redeemScript,
          pubkey: f.ours.finalPub,
        },
        path,
      },
    ],
    to,
    2000,
  );
}

interface Described {
  ours: boolean;
  commit: Commit;
  vout: number;
  amount: bigint;
  preimage?: Buffer;
  commitmentTx?: Transaction;
}

const sweep = (f: Fixture, spend: Spend, d: Described) =>
  t.client.call("SignSweep", {
    channel: f.ours.channel,
    tx_hex: spend.tx.toHex(),
    inputs: [
      {
        input_index: 0,
        amount_sat: d.amount,
        commitment_output: {
          ours: d.ours,
          number: d.commit.number,
          params: commitmentParamsMsg(d.commit.params),
          vout: d.vout,
          ...(d.preimage ? { preimage: d.preimage } : {}),
          commitment_tx_hex: (d.commitmentTx ?? d.commit.tx).toHex(),
        },
      },
    ],
    outputs: [{ wallet_key_index: WALLET }],
  });

/** Signed by our final key over the output's redeem script, whose P2SH is the output seen on chain. */
async function expectSigned(f: Fixture, spend: Spend, d: Described, o: CommitmentOutput): Promise<void> {
  const reply = await sweep(f, spend, d);
  expect(reply.signatures).toHaveLength(1);
  const s = reply.signatures[0]!;
  expect(s.pubkey.equals(f.ours.finalPub)).toBe(true);
  expect(
    Buffer.from(payments.p2sh({ redeem: { output: o.redeemScript } }).output!).equals(
      d.commit.tx.outs[o.vout]!.script,
    ),
  ).toBe(true);
  const digest = spend.tx.hashForSignature(0, o.redeemScript, Transaction.SIGHASH_ALL);
  expect(ecc.verify(digest, f.ours.finalPub, s.signature, true)).toBe(true);
  expect(finalizeSpend(spend, [s.signature]).ins[0]!.script.length).toBeGreaterThan(0);
}

describe("SignSweep of commitment outputs", () => {
  let f: Fixture;
  beforeAll(async () => {
    f = await channel();
  });
  const described = (ours: boolean, commit: Commit, o: CommitmentOutput, preimage?: Buffer): Described => ({
    ours,
    commit,
    vout: o.vout,
    amount: o.amount,
    ...(preimage ? { preimage } : {}),
  });

  it("signs every path of our final key on our commitment: delayed, our HTLC's timeout, R after the delay", async () => {
    const c = f.ourCommit;
    const toOwner = outputOf(c, kind("to_owner"));
    await expectSigned(
      f,
      spendOf(f, c, toOwner, { kind: "delayed", delay: DELAY }),
      described(true, c, toOwner),
      toOwner,
    );
    const h1 = outputOf(c, htlcId(1));
    await expectSigned(
      f,
      spendOf(f, c, h1, { kind: "htlc_timeout", expiry: EXPIRY, delay: DELAY }),
      described(true, c, h1),
      h1,
    );
    const h2 = outputOf(c, htlcId(2));
    await expectSigned(
      f,
      spendOf(f, c, h2, { kind: "htlc_redeem", preimage: R(2), delay: DELAY }),
      described(true, c, h2, R(2)),
      h2,
    );
  });

  it("signs every path of our final key on their (malleated) commitment: to-us, R at once, our HTLC's timeout", async () => {
    const c = f.theirs;
    const toUs = outputOf(c, kind("to_other"));
    await expectSigned(f, spendOf(f, c, toUs, { kind: "key" }), described(false, c, toUs), toUs);
    const h3 = outputOf(c, htlcId(3));
    await expectSigned(
      f,
      spendOf(f, c, h3, { kind: "htlc_redeem", preimage: R(3) }),
      described(false, c, h3, R(3)),
      h3,
    );
    const h4 = outputOf(c, htlcId(4));
    await expectSigned(
      f,
      spendOf(f, c, h4, { kind: "htlc_timeout", expiry: EXPIRY }),
      described(false, c, h4),
      h4,
    );
  });

  it("refuses a revoked peer commitment (justice's business) and one never signed", async () => {
    const c = f.revoked;
    const toUs = outputOf(c, kind("to_other"));
    expect(
      await refusal(sweep(f, spendOf(f, c, toUs, { kind: "key" }), described(false, c, toUs))),
    ).toMatchObject({
      grpcCode: FP,
      code: "REMOTE_REVOKED",
    });
    const later = { ...f.theirs, number: 2n };
    const o = outputOf(later, kind("to_other"));
    expect(
      (await refusal(sweep(f, spendOf(f, later, o, { kind: "key" }), described(false, later, o)))).code,
    ).toBe("COMMITMENT_NOT_SIGNED");
  });

  it("refuses an output that is not ours: their to-owner, our to-other, an output the commitment lacks", async () => {
    const theirs = outputOf(f.theirs, kind("to_owner"));
    expect(
      await refusal(
        sweep(
          f,
          spendOf(f, f.theirs, theirs, { kind: "delayed", delay: DELAY }),
          described(false, f.theirs, theirs),
        ),
      ),
    ).toMatchObject({ grpcCode: FP, code: "NOT_OUR_OUTPUT" });
    const toOther = outputOf(f.ourCommit, kind("to_other"));
    expect(
      (
        await refusal(
          sweep(f, spendOf(f, f.ourCommit, toOther, { kind: "key" }), described(true, f.ourCommit, toOther)),
        )
      ).code,
    ).toBe("NOT_OUR_OUTPUT");
    // An output number the commitment does not have.
    const h1 = outputOf(f.ourCommit, htlcId(1));
    const spend = spendOf(f, f.ourCommit, h1, { kind: "htlc_timeout", expiry: EXPIRY, delay: DELAY });
    spend.tx.ins[0]!.index = 17;
    expect((await refusal(sweep(f, spend, { ...described(true, f.ourCommit, h1), vout: 17 }))).code).toBe(
      "NOT_OUR_OUTPUT",
    );
  });

  it("refuses an HTLC offered to us without its R", async () => {
    const h2 = outputOf(f.ourCommit, htlcId(2));
    const wrong = spendOf(f, f.ourCommit, h2, { kind: "htlc_redeem", preimage: R(9), delay: DELAY });
    expect(await refusal(sweep(f, wrong, described(true, f.ourCommit, h2, R(9))))).toMatchObject({
      grpcCode: FP,
      code: "HTLC_PREIMAGE_MISMATCH",
    });
    expect((await refusal(sweep(f, wrong, described(true, f.ourCommit, h2)))).code).toBe(
      "HTLC_PREIMAGE_MISMATCH",
    );
    const h3 = outputOf(f.theirs, htlcId(3));
    const wrong3 = spendOf(f, f.theirs, h3, { kind: "htlc_redeem", preimage: R(4) });
    expect((await refusal(sweep(f, wrong3, described(false, f.theirs, h3, R(4))))).code).toBe(
      "HTLC_PREIMAGE_MISMATCH",
    );
  });

  it("refuses a sequence below the delay, a locktime below the expiry, a lock left unenforced", async () => {
    const c = f.ourCommit;
    const toOwner = outputOf(c, kind("to_owner"));
    const short = spendOf(f, c, toOwner, { kind: "delayed", delay: { blocks: 143 } });
    expect(await refusal(sweep(f, short, described(true, c, toOwner)))).toMatchObject({
      grpcCode: FP,
      code: "TIMELOCK_TOO_EARLY",
    });
    const inSeconds = spendOf(f, c, toOwner, { kind: "delayed", delay: { seconds: 144 * 600 } });
    expect((await refusal(sweep(f, inSeconds, described(true, c, toOwner)))).code).toBe("TIMELOCK_TOO_EARLY");
    const h1 = outputOf(c, htlcId(1));
    const noDelay = spendOf(f, c, h1, { kind: "htlc_timeout", expiry: EXPIRY });
    expect((await refusal(sweep(f, noDelay, described(true, c, h1)))).code).toBe("TIMELOCK_TOO_EARLY");
    const h4 = outputOf(f.theirs, htlcId(4));
    const early = spendOf(f, f.theirs, h4, { kind: "htlc_timeout", expiry: { blocks: 499 } });
    expect((await refusal(sweep(f, early, described(false, f.theirs, h4)))).code).toBe("TIMELOCK_TOO_EARLY");
    const unenforced = spendOf(f, f.theirs, h4, { kind: "htlc_timeout", expiry: EXPIRY });
    unenforced.tx.ins[0]!.sequence = 0xffff_ffff;
    expect((await refusal(sweep(f, unenforced, described(false, f.theirs, h4)))).code).toBe(
      "TIMELOCK_TOO_EARLY",
    );
  });

  it("refuses a foreign output, another transaction, the rebuilt txid for the seen one, a wrong amount", async () => {
    const c = f.theirs;
    const toUs = outputOf(c, kind("to_other"));
    const foreign = spendOf(f, c, toUs, { kind: "key" }, p2wpkhOutput(f.peer.final.pub));
    expect(await refusal(sweep(f, foreign, described(false, c, toUs)))).toMatchObject({
      grpcCode: FP,
      code: "FOREIGN_OUTPUT",
    });
    const fine = spendOf(f, c, toUs, { kind: "key" });
    expect(
      (await refusal(sweep(f, fine, { ...described(false, c, toUs), commitmentTx: f.revoked.tx }))).code,
    ).toBe("SWEEP_MISMATCH");
    // Spending the txid of the commitment as rebuilt, not as seen on chain (malleated).
    const rebuilt = { ...c, tx: buildCommitment(c.params).tx };
    expect(
      (await refusal(sweep(f, spendOf(f, rebuilt, toUs, { kind: "key" }), described(false, c, toUs)))).code,
    ).toBe("SWEEP_MISMATCH");
    expect(
      (await refusal(sweep(f, fine, { ...described(false, c, toUs), amount: toUs.amount + 1000n }))).code,
    ).toBe("SWEEP_MISMATCH");
  });
  it("refuses a transaction that is the commitment but carries no signature of our commit key", async () => {
    const c = f.theirs;
    const built = buildCommitment(c.params);
    const digest = anchorSighash(built.tx, built.anchorRedeemScript);
    const stranger = randomBytes(32);
    const forged = finalizeAnchorSpend(built.tx, built.anchorRedeemScript, [
      { pubkey: f.ours.commitPub, compact: signDigest(stranger, digest) },
      { pubkey: f.peer.commit.pub, compact: signDigest(f.peer.commit.priv, digest) },
    ]);
    const forgedCommit = { ...c, tx: forged };
    const toUs = outputOf(forgedCommit, kind("to_other"));
    expect(
      await refusal(
        sweep(f, spendOf(f, forgedCommit, toUs, { kind: "key" }), described(false, forgedCommit, toUs)),
      ),
    ).toMatchObject({ grpcCode: FP, code: "COMMITMENT_NOT_SIGNED" });
  });

  it("refuses our revoked commitment, and ours never signed for broadcast", async () => {
    const r = await t.client.call("NewChannel", {});
    const ours: Ours = { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey };
    const peer = makePeer(`peer ${randomBytes(4).toString("hex")}`);
    const anchor = randomAnchor();
    const g: Fixture = { ...f, ours, peer };
    const p0 = localParams(ours, peer, anchor, r.revocation_hash_0, state([]));
    const c0: Commit = {
      number: 0n,
      params: p0,
      outputs: buildCommitment(p0).outputs,
      tx: buildCommitment(p0).tx,
    };
    const toOwner = outputOf(c0, kind("to_owner"));
    const spend = spendOf(g, c0, toOwner, { kind: "delayed", delay: DELAY });
    expect(await refusal(sweep(g, spend, described(true, c0, toOwner)))).toMatchObject({
      code: "COMMITMENT_NOT_SIGNED",
      details: expect.stringMatching(/never signed for broadcast/) as unknown,
    });
    // The peer signs our commitment 1; we revoke 0.
    const p1 = localParams(ours, peer, anchor, r.revocation_hash_1, state([]));
    const b1 = buildCommitment(p1);
    await t.client.call("RevealRevocation", {
      channel: ours.channel,
      revoke: 0n,
      next: 2n,
      signed_commitment: {
        number: 1n,
        params: commitmentParamsMsg(p1),
        their_sig: signDigest(peer.commit.priv, anchorSighash(b1.tx, b1.anchorRedeemScript)),
      },
    });
    expect(await refusal(sweep(g, spend, described(true, c0, toOwner)))).toMatchObject({
      grpcCode: FP,
      code: "COMMITMENT_REVOKED",
    });
  });
});
