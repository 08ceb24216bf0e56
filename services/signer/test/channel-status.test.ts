/**
 * ChannelStatus (read-only): what the signer's records say of a channel, which the channel
 * service compares with its state at start to find a restored (older) state (DESIGN.md 6).
 */
import { anchorSighash, buildCommitment, signDigest, type CommitmentParams } from "@ln/tx";
import { commitmentParamsMsg } from "@ln/signer-client";
import { describe, expect, it } from "vitest";
import { localParams, makePeer, randomAnchor, refusal, remoteParams, useTestSigner } from "./helpers.js";

const t = useTestSigner();

const peerSig = (priv: Buffer, p: CommitmentParams): Buffer => {
  const c = buildCommitment(p);
  return signDigest(priv, anchorSighash(c.tx, c.anchorRedeemScript));
};

describe("ChannelStatus", () => {
  it("reports nothing for a new channel, then the highest reveal and signatures as they happen", async () => {
    const r = await t.client.call("NewChannel", {});
    const ours = { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey };
    const peer = makePeer(`status peer ${r.channel}`);
    const anchor = randomAnchor();
    expect(await t.client.call("ChannelStatus", { channel: r.channel })).toEqual({
      has_revealed: false,
      highest_revealed: "0",
      has_local_signed: false,
      highest_local_signed: "0",
      has_remote_signed: false,
      highest_remote_signed: "0",
    });

    for (const n of [0n, 1n, 2n])
      await t.client.call("SignRemoteCommitment", {
        channel: r.channel,
        number: n,
        params: commitmentParamsMsg(remoteParams(ours, peer, anchor, n)),
      });
    const hash1 = (await t.client.call("RevocationHash", { channel: r.channel, number: 1n })).revocation_hash;
    const p1 = localParams(ours, peer, anchor, hash1);
    await t.client.call("RevealRevocation", {
      channel: r.channel,
      revoke: 0n,
      next: 2n,
      signed_commitment: {
        number: 1n,
        params: commitmentParamsMsg(p1),
        their_sig: peerSig(peer.commit.priv, p1),
      },
    });
    expect(await t.client.call("ChannelStatus", { channel: r.channel })).toEqual({
      has_revealed: true,
      highest_revealed: "0",
      has_local_signed: true,
      highest_local_signed: "1",
      has_remote_signed: true,
      highest_remote_signed: "2",
    });
  });

  it("refuses a channel it never allocated (UNKNOWN_CHANNEL)", async () => {
    expect((await refusal(t.client.call("ChannelStatus", { channel: 999_999 }))).code).toBe(
      "UNKNOWN_CHANNEL",
    );
  });
});
