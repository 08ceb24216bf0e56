/** The signer over real gRPC with mutual TLS, on a real Postgres schema: happy paths and refusals. */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { sha256 } from "@ln/bitcoin";
import { commitmentIndex, generateFromSeed } from "@ln/shachain";
import {
  decodeSignature,
  anchorSighash,
  buildCommitment,
  signDigest,
  verifyDigest,
  type CommitmentParams,
} from "@ln/tx";
import { script, Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import { buildOnion, encodeHopPayload, peelOnion } from "@ln/onion";
import { SignerClient } from "@ln/signer-client";
import { commitmentParamsMsg } from "@ln/signer-client";
import {
  CLIENT_OPTIONS,
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

const t = useTestSigner();

const FP = grpc.status.FAILED_PRECONDITION;

/** The peer's signature over our commitment's anchor spend. */
function peerSig(peer: Peer, p: CommitmentParams): Buffer {
  const c = buildCommitment(p);
  return signDigest(peer.commit.priv, anchorSighash(c.tx, c.anchorRedeemScript));
}

interface Channel {
  ours: Ours;
  peer: Peer;
  anchor: AnchorFixture;
  hash0: Buffer;
  hash1: Buffer;
}

async function openChannel(peer = makePeer(`peer ${randomBytes(4).toString("hex")}`)): Promise<Channel> {
  const r = await t.client.call("NewChannel", {});
  return {
    ours: { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey },
    peer,
    anchor: randomAnchor(),
    hash0: r.revocation_hash_0,
    hash1: r.revocation_hash_1,
  };
}

async function ourHash(c: Channel, n: bigint): Promise<Buffer> {
  return (await t.client.call("RevocationHash", { channel: c.ours.channel, number: n })).revocation_hash;
}

async function signRemote(
  c: Channel,
  n: bigint,
  p = remoteParams(c.ours, c.peer, c.anchor, n),
): Promise<Buffer> {
  return (
    await t.client.call("SignRemoteCommitment", {
      channel: c.ours.channel,
      number: n,
      params: commitmentParamsMsg(p),
    })
  ).signature;
}

async function reveal(c: Channel, revoke: bigint, p: CommitmentParams, sig: Buffer, number = revoke + 1n) {
  return t.client.call("RevealRevocation", {
    channel: c.ours.channel,
    revoke,
    next: revoke + 2n,
    signed_commitment: { number, params: commitmentParamsMsg(p), their_sig: sig },
  });
}

async function signLocal(c: Channel, n: bigint, p: CommitmentParams, sig: Buffer) {
  return t.client.call("SignLocalCommitment", {
    channel: c.ours.channel,
    number: n,
    params: commitmentParamsMsg(p),
    their_sig: sig,
  });
}

/** Our commitment n, and the peer's valid signature on it. */
async function ourSigned(c: Channel, n: bigint): Promise<{ p: CommitmentParams; sig: Buffer }> {
  const p = localParams(c.ours, c.peer, c.anchor, await ourHash(c, n));
  return { p, sig: peerSig(c.peer, p) };
}

describe("mutual TLS", () => {
  it("a client with a certificate from the CA is served", async () => {
    const r = await t.client.call("NodeInfo", {});
    expect(r.node_pubkey.equals(t.keys.nodePub)).toBe(true);
  });

  it("a client WITHOUT a certificate is refused", async () => {
    const c = new SignerClient(t.address, { ca: t.pems.ca }, CLIENT_OPTIONS);
    const err = (await c.call("NodeInfo", {}, 5000).catch((e: unknown) => e)) as grpc.ServiceError;
    c.close();
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });

  it("a client with a certificate from another CA is refused", async () => {
    const c = new SignerClient(
      t.address,
      { ca: t.pems.ca, cert: t.pems.strangerCert, key: t.pems.strangerKey },
      CLIENT_OPTIONS,
    );
    const err = (await c.call("NodeInfo", {}, 5000).catch((e: unknown) => e)) as grpc.ServiceError;
    c.close();
    expect(err).toBeInstanceOf(Error);
    expect(err.code).toBe(grpc.status.UNAVAILABLE);
  });
});

describe("node key", () => {
  it("ECDH is BOLT #8's: SHA256 of the compressed shared point, the same from the other side", async () => {
    const peer = makePeer("ecdh peer");
    const r = await t.gateway.call("Ecdh", { point: peer.commit.pub });
    const theirs = sha256(ecc.pointMultiply(t.keys.nodePub, peer.commit.priv, true)!);
    expect(r.shared_secret.equals(theirs)).toBe(true);
    const bad = await refusal(t.gateway.call("Ecdh", { point: Buffer.alloc(33, 5) }));
    expect(bad).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });
  });

  it("OnionEcdh (channel service) is the same ECDH, and peels an onion built to the node id", async () => {
    const peer = makePeer("onion ecdh peer");
    const r = await t.client.call("OnionEcdh", { point: peer.commit.pub });
    const theirs = sha256(ecc.pointMultiply(t.keys.nodePub, peer.commit.priv, true)!);
    expect(r.shared_secret.equals(theirs)).toBe(true);
    const bad = await refusal(t.client.call("OnionEcdh", { point: Buffer.alloc(33, 5) }));
    expect(bad).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });

    const payload = { amtToForwardMsat: 1000n, outgoingCltvValue: 500 };
    const associatedData = randomBytes(32);
    const { packet, sharedSecrets } = buildOnion({
      sessionKey: peer.final.priv,
      hops: [{ nodeId: t.keys.nodePub, payload: encodeHopPayload(payload) }],
      associatedData,
    });
    const ecdh = async (point: Buffer): Promise<Buffer> =>
      (await t.client.call("OnionEcdh", { point })).shared_secret;
    const peeled = await peelOnion(packet, associatedData, ecdh);
    expect(peeled).toEqual({ kind: "final", payload, sharedSecret: sharedSecrets[0] });
  });

  it("SignSession signs SHA256(SHA256(h)) of the handshake hash it is given, never h itself: 64-byte compact, low-S, by the node key", async () => {
    const h = randomBytes(32);
    const { signature } = await t.gateway.call("SignSession", { handshake_hash: h });
    expect(signature.length).toBe(64);
    expect(verifyDigest(t.keys.nodePub, sha256(sha256(h)), signature)).toBe(true); // strict: low-S only
    // A digest the gateway chose (a gossip message's, say) is not what gets signed.
    expect(verifyDigest(t.keys.nodePub, h, signature)).toBe(false);
    const bad = await refusal(t.gateway.call("SignSession", { handshake_hash: Buffer.alloc(31) }));
    expect(bad.code).toBe("INVALID_REQUEST");
  });
});

describe("commitments and revocation", () => {
  it("happy path: NewChannel, SignRemoteCommitment, RevealRevocation after a valid signature on the next", async () => {
    const c = await openChannel();
    expect(c.hash0.equals(sha256(t.keys.revocationPreimage(c.ours.channel, 0n)))).toBe(true);
    expect(c.hash1.equals(await ourHash(c, 1n))).toBe(true);
    const remote0 = remoteParams(c.ours, c.peer, c.anchor, 0n);
    const sig = await signRemote(c, 0n, remote0);
    const built = buildCommitment(remote0);
    expect(verifyDigest(c.ours.commitPub, anchorSighash(built.tx, built.anchorRedeemScript), sig)).toBe(true);

    const { p, sig: theirs } = await ourSigned(c, 1n);
    const r = await reveal(c, 0n, p, theirs);
    expect(sha256(r.preimage).equals(c.hash0)).toBe(true);
    expect(r.next_hash.equals(await ourHash(c, 2n))).toBe(true);
    // 64-bit numbers survive the round trip: the hash of the preimage at that very index.
    const top = 0xffff_ffff_ffff_fffen;
    const seed = t.keys.channel(c.ours.channel).shachainSeed;
    expect((await ourHash(c, top)).equals(sha256(generateFromSeed(seed, commitmentIndex(top))))).toBe(true);
  });

  it("SignLocalCommitment gives a transaction whose anchor scriptSig holds both valid signatures", async () => {
    const c = await openChannel();
    await signRemote(c, 0n);
    const { p, sig: theirs } = await ourSigned(c, 0n);
    const r = await signLocal(c, 0n, p, theirs);
    const tx = Transaction.fromHex(r.tx_hex);
    expect(tx.getId()).toBe(r.txid);
    const built = buildCommitment(p);
    const digest = anchorSighash(built.tx, built.anchorRedeemScript);
    const chunks = script.decompile(tx.ins[0]!.script)!;
    expect(chunks.length).toBe(4);
    expect(chunks[0]).toBe(0); // OP_0 for CHECKMULTISIG's extra pop
    expect(Buffer.from(chunks[3] as Uint8Array).equals(built.anchorRedeemScript)).toBe(true);
    const keys = [c.ours.commitPub, c.peer.commit.pub].sort(Buffer.compare);
    for (const [i, key] of keys.entries())
      expect(verifyDigest(key, digest, decodeSignature(chunks[1 + i] as Uint8Array))).toBe(true);
    // The signed transaction is the commitment built from the params (same outputs).
    expect(tx.outs.map((o) => o.value)).toEqual(built.tx.outs.map((o) => o.value));
  });

  it("never reveals preimage N without a valid counterparty signature on N+1 of this channel", async () => {
    const c = await openChannel();
    const other = await openChannel(c.peer); // same peer, another channel
    await signRemote(c, 0n);
    await signRemote(other, 0n);
    const { p, sig } = await ourSigned(c, 1n);

    // A signature by another key.
    const forged = signDigest(
      sha256(Buffer.from("mallory")),
      anchorSighash(buildCommitment(p).tx, buildCommitment(p).anchorRedeemScript),
    );
    expect(await refusal(reveal(c, 0n, p, forged))).toMatchObject({
      grpcCode: FP,
      code: "BAD_COUNTERPARTY_SIG",
    });
    // A valid signature, but over other params than the ones shown.
    const changed = { ...p, feeRate: 2000 };
    expect((await refusal(reveal(c, 0n, changed, sig))).code).toBe("BAD_COUNTERPARTY_SIG");
    // The signed commitment is not N+1.
    expect((await refusal(reveal(c, 0n, p, sig, 2n))).code).toBe("NOT_NEXT_COMMITMENT");
    // The peer's valid signature on a commitment of ANOTHER anchor.
    const elsewhere = localParams(c.ours, c.peer, randomAnchor(), await ourHash(c, 1n));
    expect((await refusal(reveal(c, 0n, elsewhere, peerSig(c.peer, elsewhere)))).code).toBe("WRONG_ANCHOR");
    // The other channel's commitment 1 (its keys): our keys are not this channel's.
    const { p: otherP, sig: otherSig } = await ourSigned(other, 1n);
    expect((await refusal(reveal(c, 0n, otherP, otherSig))).code).toBe("WRONG_COMMIT_KEY");
    // Our final key of another channel.
    const wrongFinal = { ...p, ownerFinal: other.ours.finalPub };
    expect((await refusal(reveal(c, 0n, wrongFinal, peerSig(c.peer, wrongFinal)))).code).toBe(
      "WRONG_FINAL_KEY",
    );
    // Not our revocation hash for N+1.
    const wrongHash = { ...p, revocationHash: await ourHash(c, 5n) };
    expect((await refusal(reveal(c, 0n, wrongHash, peerSig(c.peer, wrongHash)))).code).toBe(
      "WRONG_REVOCATION_HASH",
    );
    // Nothing was revealed: commitment 0 still signs for broadcast.
    const zero = await ourSigned(c, 0n);
    await signLocal(c, 0n, zero.p, zero.sig);
  });

  it("never signs for broadcast a revoked commitment of ours", async () => {
    const c = await openChannel();
    await signRemote(c, 0n);
    const zero = await ourSigned(c, 0n);
    const one = await ourSigned(c, 1n);
    await reveal(c, 0n, one.p, one.sig);
    expect(await refusal(signLocal(c, 0n, zero.p, zero.sig))).toMatchObject({
      grpcCode: FP,
      code: "COMMITMENT_REVOKED",
    });
    const r = await signLocal(c, 1n, one.p, one.sig);
    expect(r.tx_hex.length).toBeGreaterThan(0);
    // And having signed 1 for broadcast, never reveals 1.
    const two = await ourSigned(c, 2n);
    expect((await refusal(reveal(c, 1n, two.p, two.sig))).code).toBe("REVOKE_AFTER_BROADCAST");
  });

  it("refuses to reveal N when N+1 is itself already revoked", async () => {
    const c = await openChannel();
    await signRemote(c, 0n);
    const one = await ourSigned(c, 1n);
    const two = await ourSigned(c, 2n);
    await reveal(c, 1n, two.p, two.sig);
    expect((await refusal(reveal(c, 0n, one.p, one.sig))).code).toBe("NEXT_COMMITMENT_REVOKED");
    // The same reveal again is answered (idempotent retry after a lost reply).
    const again = await reveal(c, 1n, two.p, two.sig);
    expect(sha256(again.preimage).equals(await ourHash(c, 1n))).toBe(true);
  });

  it("concurrent broadcast and reveal of the same commitment: exactly one passes (row lock)", async () => {
    for (let i = 0; i < 5; i++) {
      const c = await openChannel();
      await signRemote(c, 0n);
      const one = await ourSigned(c, 1n);
      const two = await ourSigned(c, 2n);
      const results = await Promise.allSettled([
        signLocal(c, 1n, one.p, one.sig),
        reveal(c, 1n, two.p, two.sig),
      ]);
      expect(results.filter((r) => r.status === "fulfilled").length).toBe(1);
    }
  });

  it("a commitment must spend the recorded anchor and pay this channel's keys", async () => {
    const c = await openChannel();
    const other = await openChannel();
    await signRemote(c, 0n);
    const p1 = remoteParams(c.ours, c.peer, c.anchor, 1n);
    const unknown = await refusal(
      t.client.call("SignRemoteCommitment", {
        channel: 999_999,
        number: 1n,
        params: commitmentParamsMsg(p1),
      }),
    );
    expect(unknown).toMatchObject({ grpcCode: FP, code: "UNKNOWN_CHANNEL" });
    expect(
      (
        await refusal(
          signRemote(c, 1n, {
            ...p1,
            anchor: { ...p1.anchor, outpoint: { ...p1.anchor.outpoint, vout: 7 } },
          }),
        )
      ).code,
    ).toBe("WRONG_ANCHOR");
    expect(
      (
        await refusal(
          signRemote(c, 1n, {
            ...p1,
            anchor: { ...p1.anchor, amount: p1.anchor.amount + 1n } as typeof p1.anchor,
          }),
        )
      ).code,
    ).toBe("WRONG_ANCHOR");
    // Another channel's commit key in place of ours, a changed peer commit key.
    expect(
      (
        await refusal(
          signRemote(c, 1n, {
            ...p1,
            anchor: { ...p1.anchor, commitKeys: [other.ours.commitPub, c.peer.commit.pub] },
          }),
        )
      ).code,
    ).toBe("WRONG_COMMIT_KEY");
    expect(
      (
        await refusal(
          signRemote(c, 1n, {
            ...p1,
            anchor: { ...p1.anchor, commitKeys: [c.ours.commitPub, other.ours.commitPub] },
          }),
        )
      ).code,
    ).toBe("WRONG_COMMIT_KEY");
    // The to-other output must pay our final key of THIS channel; the peer's final key may not change.
    expect((await refusal(signRemote(c, 1n, { ...p1, otherFinal: other.ours.finalPub }))).code).toBe(
      "WRONG_FINAL_KEY",
    );
    expect(
      (await refusal(signRemote(c, 1n, { ...p1, ownerFinal: makePeer("mallory").final.pub }))).code,
    ).toBe("WRONG_FINAL_KEY");
    // The same number with another revocation hash.
    expect(
      (
        await refusal(
          signRemote(c, 0n, {
            ...remoteParams(c.ours, c.peer, c.anchor, 0n),
            revocationHash: randomBytes(32),
          }),
        )
      ).code,
    ).toBe("WRONG_REVOCATION_HASH");
    // Malformed: a key that is not a point.
    const malformed = await refusal(signRemote(c, 1n, { ...p1, ownerFinal: Buffer.alloc(33, 5) }));
    expect(malformed).toMatchObject({ grpcCode: grpc.status.INVALID_ARGUMENT, code: "INVALID_REQUEST" });
    expect(t.logs.join("\n")).not.toContain(t.keys.channel(c.ours.channel).commit.priv.toString("hex"));
  });
});
