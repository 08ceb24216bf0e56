/** A channel whose signed commitments hold an HTLC offered to us: what RevealInvoice asks for. */
import { randomBytes } from "node:crypto";
import { msat } from "@ln/bitcoin";
import {
  anchorSighash,
  buildCommitment,
  signDigest,
  type CommitmentHtlc,
  type CommitmentParams,
} from "@ln/tx";
import { commitmentParamsMsg } from "@ln/signer-client";
import {
  localParams,
  makePeer,
  randomAnchor,
  remoteParams,
  type AnchorFixture,
  type Ours,
  type Peer,
  type TestSigner,
} from "./helpers.js";

export interface TestChannel {
  ours: Ours;
  peer: Peer;
  anchor: AnchorFixture;
}

export async function newTestChannel(t: TestSigner): Promise<TestChannel> {
  const r = await t.client.call("NewChannel", {});
  return {
    ours: { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey },
    peer: makePeer(`peer ${randomBytes(4).toString("hex")}`),
    anchor: randomAnchor(),
  };
}

/** An HTLC paying `rHash`; `offeredByOwner` says whose commitment it is offered to us on. */
export const htlc = (
  rHash: Buffer,
  amountMsat: bigint,
  offeredByOwner: boolean,
  id = 0n,
): CommitmentHtlc => ({
  id,
  offeredByOwner,
  amountMsat: msat(amountMsat),
  rHash,
  expiry: { blocks: 500 },
});

/** Our commitment `n` holding `htlcs` (offered to us: offeredByOwner false), and the peer's signature on it. */
export async function ourSigned(t: TestSigner, c: TestChannel, n: bigint, htlcs: CommitmentHtlc[]) {
  const hash = (await t.client.call("RevocationHash", { channel: c.ours.channel, number: n }))
    .revocation_hash;
  const p: CommitmentParams = localParams(c.ours, c.peer, c.anchor, hash, {
    ownerMsat: 600_000_000n - htlcs.reduce<bigint>((a, h) => a + h.amountMsat, 0n),
    htlcs,
  });
  const built = buildCommitment(p);
  return { p, sig: signDigest(c.peer.commit.priv, anchorSighash(built.tx, built.anchorRedeemScript)) };
}

/** RevealRevocation of our commitment `revoke`, shown the peer-signed `revoke + 1` holding `htlcs`. */
export async function revealWith(t: TestSigner, c: TestChannel, revoke: bigint, htlcs: CommitmentHtlc[]) {
  const { p, sig } = await ourSigned(t, c, revoke + 1n, htlcs);
  return t.client.call("RevealRevocation", {
    channel: c.ours.channel,
    revoke,
    next: revoke + 2n,
    signed_commitment: { number: revoke + 1n, params: commitmentParamsMsg(p), their_sig: sig },
  });
}

/** SignRemoteCommitment of the peer's commitment `n` holding `htlcs` (offered to us: offeredByOwner true). */
export function signRemoteWith(t: TestSigner, c: TestChannel, n: bigint, htlcs: CommitmentHtlc[]) {
  const p = remoteParams(c.ours, c.peer, c.anchor, n, {
    ownerMsat: 400_000_000n - htlcs.reduce<bigint>((a, h) => a + h.amountMsat, 0n),
    htlcs,
  });
  return t.client.call("SignRemoteCommitment", {
    channel: c.ours.channel,
    number: n,
    params: commitmentParamsMsg(p),
  });
}

/** A peer-signed commitment of ours holding an HTLC of `amountMsat` paying invoice `index`: R may be revealed. */
export async function paying(t: TestSigner, index: number, amountMsat = 10_000_000n): Promise<TestChannel> {
  const { r_hash } = await t.client.call("InvoiceHash", { index });
  const c = await newTestChannel(t);
  await revealWith(t, c, 0n, [htlc(r_hash, amountMsat, false)]);
  return c;
}
