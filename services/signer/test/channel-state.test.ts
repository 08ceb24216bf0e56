/**
 * Issue 13, F1 and "the signer never compares a commitment with the channel's": a compromised
 * caller describes commitments and closes that pay the peer what the channel owes us. Over real
 * gRPC/mTLS and Postgres (and, for settings the test signer does not set, a SignerService on the
 * same store).
 */
import { msat, sat, sha256, txidFromHex, type Locktime } from "@ln/bitcoin";
import { anchorScript, p2shOutput } from "@ln/scripts";
import { closeParamsMsg, commitmentParamsMsg } from "@ln/signer-client";
import {
  anchorSighash,
  buildCommitment,
  buildWalletSpend,
  p2wpkhOutput,
  signDigest,
  type CloseParams,
  type CommitmentHtlc,
  type CommitmentParams,
} from "@ln/tx";
import { describe, expect, it } from "vitest";
import type { ChannelPolicyConfig } from "../src/channel-policy.js";
import { SignerService } from "../src/service.js";
import { walletCoin } from "./coins.js";
import { newTestChannel, type TestChannel } from "./received.js";
import {
  localParams,
  randomAnchor,
  refusal,
  remoteParams,
  signerCode,
  useTestSigner,
  type AnchorFixture,
  type StateFixture,
} from "./helpers.js";

const MAX_FEE = 5000n;
/** The anchor: 1,000,000 sat = 1,000,000,000 msat. */
const ANCHOR_SAT = 1_000_000n;
const ALL = 1_000_000_000n;
const t = useTestSigner(MAX_FEE); // withdrawals disabled (SIGNER_MAX_WITHDRAWAL_SAT 0)

type Channel = TestChannel;
/** A new channel; its random anchor holds ANCHOR_SAT (randomAnchor's default) until fund() pays one. */
const open = (): Promise<Channel> => newTestChannel(t);

/** Our wallet pays the channel's anchor (the 2-of-2 of our commit key and the peer's). */
async function fund(c: Channel, amount = ANCHOR_SAT): Promise<AnchorFixture> {
  const w0 = (await t.client.call("WalletKey", { index: 0 })).pubkey;
  const coin = walletCoin(w0, 2_000_000n);
  const spend = buildWalletSpend(
    [coin],
    [{ script: p2shOutput(anchorScript(c.ours.commitPub, c.peer.commit.pub)), amount: sat(amount) }],
    p2wpkhOutput(w0),
    2000,
  );
  await t.client.call("SignWalletSpend", {
    tx_hex: spend.tx.toHex(),
    inputs: [{ key_index: 0, amount_sat: 2_000_000n, prev_tx_hex: coin.prevTx.toHex() }],
    outputs: [
      { anchor: { channel: c.ours.channel, peer_commit_key: c.peer.commit.pub } },
      { wallet_key_index: 0 },
    ],
  });
  c.anchor = { txid: txidFromHex(spend.tx.getId()), vout: 0, amount };
  return c.anchor;
}

/** The peer's commitment `n`: owner = peer, other = us. */
const remote = (c: Channel, n: bigint, s: StateFixture, preimages: Buffer[] = []) =>
  t.client.call("SignRemoteCommitment", {
    channel: c.ours.channel,
    number: n,
    params: commitmentParamsMsg(remoteParams(c.ours, c.peer, c.anchor, n, s)),
    preimages,
  });

/** Our commitment `n`, with the peer's signature on it. */
function signedLocal(c: Channel, n: bigint, s: StateFixture): { params: CommitmentParams; theirSig: Buffer } {
  const params = localParams(c.ours, c.peer, c.anchor, t.keys.revocationHash(c.ours.channel, n), s);
  const built = buildCommitment(params);
  return {
    params,
    theirSig: signDigest(c.peer.commit.priv, anchorSighash(built.tx, built.anchorRedeemScript)),
  };
}

/** RevealRevocation of our commitment n - 1, showing our commitment n signed by the peer. */
const reveal = (c: Channel, n: bigint, s: StateFixture, preimages: Buffer[] = []) => {
  const signed = signedLocal(c, n, s);
  return t.client.call("RevealRevocation", {
    channel: c.ours.channel,
    revoke: n - 1n,
    next: n + 1n,
    signed_commitment: { number: n, params: commitmentParamsMsg(signed.params), their_sig: signed.theirSig },
    preimages,
  });
};

function closeOf(c: Channel, ourMsat: bigint, peerMsat: bigint, closeFee: bigint): CloseParams {
  return {
    anchor: {
      outpoint: { txid: c.anchor.txid, vout: c.anchor.vout },
      amount: sat(c.anchor.amount),
      commitKeys: [c.ours.commitPub, c.peer.commit.pub],
    },
    a: { finalKey: c.ours.finalPub, msat: msat(ourMsat) },
    b: { finalKey: c.peer.final.pub, msat: msat(peerMsat) },
    closeFee: sat(closeFee),
  };
}
const signClose = (c: Channel, p: CloseParams) =>
  t.client.call("SignClose", { channel: c.ours.channel, params: closeParamsMsg(p) });

const R = (n: number): Buffer => Buffer.alloc(32, n);
/** An HTLC as the commitment's owner sees it. */
const htlc = (id: number, offeredByOwner: boolean, amountMsat: bigint, expiry: Locktime = { blocks: 700 }) =>
  ({
    id: BigInt(id),
    offeredByOwner,
    amountMsat: msat(amountMsat),
    rHash: sha256(R(id)),
    expiry,
  }) satisfies CommitmentHtlc;

/** The peer's commitment with `us` and `peer` msat (owner = peer). */
const theirs = (
  us: bigint,
  peer: bigint,
  htlcs: CommitmentHtlc[] = [],
  more: StateFixture = {},
): StateFixture => ({
  ownerMsat: peer,
  otherMsat: us,
  htlcs,
  ...more,
});
/** Our commitment with `us` and `peer` msat (owner = us). */
const mine = (us: bigint, peer: bigint, htlcs: CommitmentHtlc[] = []): StateFixture => ({
  ownerMsat: us,
  otherMsat: peer,
  htlcs,
});

/** A SignerService on the test signer's keys and store, with other channel bounds. */
const serviceWith = (policy: Partial<ChannelPolicyConfig>) =>
  new SignerService(t.keys, t.store, { maxFeeSat: MAX_FEE, channelPolicy: policy });

const codeOf = (p: Promise<unknown>): Promise<string | undefined> => signerCode(() => p);

describe("F1: a channel our wallet funded pays the peer only what the channel state allows", () => {
  it("refuses a first commitment or a close giving the peer the anchor, and an HTLC of ours paid without R", async () => {
    const c = await open();
    await fund(c);
    // The caller's own "peer" owns the whole anchor in its commitment 0, or in ours.
    expect((await refusal(remote(c, 0n, theirs(0n, ALL)))).code).toBe("BALANCE_MISMATCH");
    const stolen = signedLocal(c, 0n, mine(0n, ALL));
    const broadcast = t.client.call("SignLocalCommitment", {
      channel: c.ours.channel,
      number: 0n,
      params: commitmentParamsMsg(stolen.params),
      their_sig: stolen.theirSig,
    });
    expect((await refusal(broadcast)).code).toBe("BALANCE_MISMATCH");
    // The honest commitment 0: we hold the whole anchor.
    await remote(c, 0n, theirs(ALL, 0n));
    expect((await refusal(signClose(c, closeOf(c, 0n, ALL, 374n)))).code).toBe("BALANCE_MISMATCH");
    // Everything into an HTLC we offer (legal), then into the peer's balance without R.
    const all = htlc(0, false, 900_000_000n);
    await remote(c, 1n, theirs(ALL - all.amountMsat, 0n, [all]));
    expect((await refusal(remote(c, 2n, theirs(ALL - all.amountMsat, all.amountMsat)))).code).toBe(
      "BALANCE_MISMATCH",
    );
    expect((await refusal(remote(c, 2n, theirs(ALL - all.amountMsat, all.amountMsat), [R(9)]))).code).toBe(
      "BALANCE_MISMATCH",
    );
    expect((await refusal(remote(c, 2n, theirs(ALL, 0n), [Buffer.alloc(31)]))).code).toBe("INVALID_REQUEST");
    // Failed: the HTLC returns to us, which needs no R.
    await remote(c, 2n, theirs(ALL, 0n));
  });

  it("RevealRevocation gives no preimage for a next commitment that takes our balance", async () => {
    const c = await open();
    await fund(c);
    await remote(c, 0n, theirs(ALL, 0n));
    expect((await refusal(reveal(c, 1n, mine(0n, ALL)))).code).toBe("BALANCE_MISMATCH");
    await reveal(c, 1n, mine(ALL, 0n));
  });

  it("an anchor is funded once, before any commitment, and commitments spend that one", async () => {
    const c = await open();
    const first = await fund(c);
    expect((await refusal(fund({ ...c }))).code).toBe("WRONG_ANCHOR");
    expect(c.anchor).toEqual(first);
    // A commitment spending another outpoint than the one our wallet paid.
    const elsewhere = { ...c, anchor: randomAnchor(ANCHOR_SAT) };
    expect((await refusal(remote(elsewhere, 0n, theirs(ALL, 0n)))).code).toBe("WRONG_ANCHOR");
    // The peer funded this one (a commitment came first): our wallet may not pay into it.
    const peerFunded = await open();
    await remote(peerFunded, 0n, theirs(0n, ALL));
    expect((await refusal(fund(peerFunded))).code).toBe("WRONG_ANCHOR");
  });
});

describe("our HTLC goes to the peer only against its R, within the payments limit", () => {
  it("records R once for both sides, refuses a reused id and payments beyond the limit", async () => {
    const s = serviceWith({ maxPaymentsSat: 500_000n });
    const c = await open();
    await fund(c);
    const ch = c.ours.channel;
    const signRemote = (n: bigint, st: StateFixture, preimages: Buffer[] = []) =>
      s.signRemoteCommitment(ch, n, remoteParams(c.ours, c.peer, c.anchor, n, st), preimages);
    const revealWith = (n: bigint, st: StateFixture, preimages: Buffer[] = []) => {
      const signed = signedLocal(c, n, st);
      return s.revealRevocation(ch, {
        revoke: n - 1n,
        next: n + 1n,
        signedCommitment: { number: n, ...signed },
        preimages,
      });
    };
    const h0 = htlc(0, false, 300_000_000n); // on the peer's commitment: offered by us
    await signRemote(0n, theirs(ALL, 0n));
    await signRemote(1n, theirs(ALL - h0.amountMsat, 0n, [h0]));
    const paid0 = theirs(ALL - h0.amountMsat, h0.amountMsat);
    expect(await codeOf(signRemote(2n, paid0))).toBe("BALANCE_MISMATCH");
    await signRemote(2n, paid0, [R(0)]);
    // Our own commitments follow; the payment is recorded, R is not needed again.
    await revealWith(1n, mine(ALL - h0.amountMsat, 0n, [{ ...h0, offeredByOwner: true }]));
    await revealWith(2n, mine(ALL - h0.amountMsat, h0.amountMsat));
    // An HTLC of ours again under id 0 (paid once already) is refused.
    const again = htlc(0, false, 300_000_000n);
    expect(await codeOf(signRemote(3n, theirs(ALL - 2n * h0.amountMsat, h0.amountMsat, [again])))).toBe(
      "HTLC_ID_REUSED",
    );
    // 300,000 + 300,000 sat paid within the period: above the 500,000 sat limit.
    const h1 = htlc(1, false, 300_000_000n);
    await signRemote(3n, theirs(ALL - 2n * h0.amountMsat, h0.amountMsat, [h1]));
    expect(await codeOf(signRemote(4n, theirs(ALL - 2n * h0.amountMsat, 2n * h0.amountMsat), [R(1)]))).toBe(
      "PAYMENT_LIMIT",
    );
    // Failing it instead is fine.
    await signRemote(4n, theirs(ALL - h0.amountMsat, h0.amountMsat));
    // HTLC 2 of 1,000 sat paid on the peer's commitment; on ours, an HTLC 2 of 200,000 sat under the
    // same hash cannot pass as that payment.
    const h2 = htlc(2, false, 1_000_000n);
    await signRemote(5n, theirs(ALL - h0.amountMsat - h2.amountMsat, h0.amountMsat, [h2]));
    await signRemote(6n, theirs(ALL - h0.amountMsat - h2.amountMsat, h0.amountMsat + h2.amountMsat), [R(2)]);
    const big = { ...h2, offeredByOwner: true, amountMsat: msat(200_000_000n) };
    await revealWith(3n, mine(ALL - h0.amountMsat - big.amountMsat, h0.amountMsat, [big]));
    expect(
      await codeOf(
        revealWith(4n, mine(ALL - h0.amountMsat - big.amountMsat, h0.amountMsat + big.amountMsat)),
      ),
    ).toBe("HTLC_ID_REUSED");
  });
});

describe("a close: fee computed as anchor minus outputs, our balance paid, no HTLC left", () => {
  it("refuses burning 990,000 sat to fees under a small close_fee, and a close with an HTLC outstanding", async () => {
    const c = await open();
    await fund(c);
    // Draft 3.6 at 1112: floor(338 * 1112 / 2000) * 2 = 374 sat.
    await remote(c, 0n, theirs(ALL, 0n, [], { feeRate: 1112 }));
    // close_fee 100 sat, but 10,000 sat of outputs from a 1,000,000 sat anchor: 990,000 sat to miners.
    const burn = await refusal(signClose(c, closeOf(c, 10_000_000n, 0n, 100n)));
    expect(burn.code).toBe("FEE_TOO_HIGH");
    await signClose(c, closeOf(c, ALL, 0n, 374n));
    const h = htlc(0, false, 100_000_000n);
    await remote(c, 1n, theirs(ALL - h.amountMsat, 0n, [h], { feeRate: 1112 }));
    expect((await refusal(signClose(c, closeOf(c, ALL, 0n, 374n)))).code).toBe("HTLCS_OUTSTANDING");
  });
});

describe("a commitment's delay, fee rate, balances and HTLCs are compared with the channel's", () => {
  it("takes the delay of each side once, within bounds, and never another", async () => {
    const c = await open(); // peer-funded: no wallet spend
    for (const delay of [{ blocks: 5 }, { blocks: 2017 }, { seconds: 3599 }] as Locktime[])
      expect((await refusal(remote(c, 0n, theirs(0n, ALL, [], { delay })))).code).toBe("DELAY_OUT_OF_BOUNDS");
    await remote(c, 0n, theirs(0n, ALL, [], { delay: { blocks: 144 } }));
    for (const delay of [{ blocks: 143 }, { seconds: 144 }] as Locktime[])
      expect((await refusal(remote(c, 1n, theirs(0n, ALL, [], { delay })))).code).toBe("WRONG_DELAY");
  });

  it("bounds the fee rate", async () => {
    const s = serviceWith({ maxFeeRate: 5000 });
    const c = await open();
    // 6000 per 1000 bytes: a fee of 2028 sat, within SIGNER_MAX_FEE_SAT, but a rate above 5000.
    const p = remoteParams(c.ours, c.peer, c.anchor, 0n, theirs(0n, ALL, [], { feeRate: 6000 }));
    expect(await codeOf(s.signRemoteCommitment(c.ours.channel, 0n, p))).toBe("FEE_RATE_TOO_HIGH");
  });

  it("refuses a commitment with more than 1500 HTLCs offered by one side (draft 3.2)", async () => {
    const c = await open(); // the peer funded it
    // 1501 dust HTLCs of 1,000 msat offered by the peer, the rest of the anchor the peer's: the
    // fee stays that of no HTLC, so only the count is wrong; 1500 of them are accepted.
    const many = Array.from({ length: 1501 }, (_, i) => htlc(i, true, 1_000n));
    const at = (n: number) =>
      remoteParams(c.ours, c.peer, c.anchor, 0n, theirs(0n, ALL - BigInt(n) * 1_000n, many.slice(0, n)));
    const s = serviceWith({});
    expect(await codeOf(s.signRemoteCommitment(c.ours.channel, 0n, at(1501)))).toBe("TOO_MANY_HTLCS");
    expect(await codeOf(s.signRemoteCommitment(c.ours.channel, 0n, at(1500)))).toBeUndefined();
  });

  it("follows each HTLC and the total from the previous commitment of the same side", async () => {
    const c = await open(); // the peer funded it
    await remote(c, 0n, theirs(0n, ALL));
    const h = htlc(5, true, 100_000_000n); // offered by the peer (the owner)
    await remote(c, 1n, theirs(0n, ALL - h.amountMsat, [h]));
    expect(
      (await refusal(remote(c, 2n, theirs(0n, ALL - 50_000_000n, [{ ...h, amountMsat: msat(50_000_000n) }]))))
        .code,
    ).toBe("HTLC_MISMATCH");
    expect(
      (await refusal(remote(c, 2n, theirs(0n, ALL - h.amountMsat, [{ ...h, expiry: { blocks: 701 } }]))))
        .code,
    ).toBe("HTLC_MISMATCH");
    // 100,000 sat vanish (to fees).
    expect((await refusal(remote(c, 2n, theirs(0n, ALL - 2n * h.amountMsat, [h])))).code).toBe(
      "BALANCE_MISMATCH",
    );
    // The peer's HTLC fulfilled to us.
    await remote(c, 2n, theirs(h.amountMsat, ALL - h.amountMsat));
    // The same again is signed again; another state under the same number, or an older number, is not.
    await remote(c, 2n, theirs(h.amountMsat, ALL - h.amountMsat));
    expect(
      (await refusal(remote(c, 2n, theirs(h.amountMsat, ALL - h.amountMsat, [], { feeRate: 2000 })))).code,
    ).toBe("BALANCE_MISMATCH");
    expect((await refusal(remote(c, 1n, theirs(0n, ALL - h.amountMsat, [h])))).code).toBe("STALE_COMMITMENT");
  });
});
