/**
 * The gossip signatures (DESIGN.md 10) over real gRPC/mTLS and Postgres: SignChannelAnnouncement,
 * SignChannelUpdate, SignNodeAnnouncement, checked with @ln/gossip's verify functions against the
 * node id and the channel's commit key; the channel role only; updates only for a scid the signer
 * announced and a direction in which we forward.
 */
import { randomBytes } from "node:crypto";
import * as grpc from "@grpc/grpc-js";
import { msat } from "@ln/bitcoin";
import {
  channelAnnouncementDigest,
  forwardingNode,
  verifyChannelAnnouncement,
  verifyChannelUpdate,
  verifyNodeAnnouncement,
  type ChannelAnnouncement,
  type ChannelUpdate,
} from "@ln/gossip";
import { commitmentParamsMsg } from "@ln/signer-client";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import {
  makePeer,
  randomAnchor,
  refusal,
  remoteParams,
  useTestSigner,
  type Ours,
  type Peer,
} from "./helpers.js";

const t = useTestSigner();
const FP = grpc.status.FAILED_PRECONDITION;
const INVALID = grpc.status.INVALID_ARGUMENT;

interface Channel {
  ours: Ours;
  peer: Peer;
  /** The peer's node id (its node key is held here, as the peer would). */
  peerNode: ReturnType<typeof makePeer>["commit"];
}

/** A channel whose first commitment of the peer we signed: the signer knows the peer's commit key. */
async function openChannel(sign = true): Promise<Channel> {
  const r = await t.client.call("NewChannel", {});
  const label = `peer ${randomBytes(4).toString("hex")}`;
  const c: Channel = {
    ours: { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey },
    peer: makePeer(label),
    peerNode: makePeer(`${label} node`).commit,
  };
  if (sign)
    await t.client.call("SignRemoteCommitment", {
      channel: c.ours.channel,
      number: 0n,
      params: commitmentParamsMsg(remoteParams(c.ours, c.peer, randomAnchor(), 0n)),
    });
  return c;
}

// Height 110, a new tx index each time, output index 1: randomAnchor()'s vout.
let nextTxIndex = 1n;
const newScid = (): bigint => (110n << 40n) | (nextTxIndex++ << 16n) | 1n;

/** Our announcement of `c` as `scid`, completed with the peer's signatures made here. */
async function announce(c: Channel, scid: bigint): Promise<ChannelAnnouncement> {
  const ours = await t.client.call("SignChannelAnnouncement", {
    channel: c.ours.channel,
    short_channel_id: scid,
    other_node_id: c.peerNode.pub,
    other_commit_key: c.peer.commit.pub,
  });
  const node = (await t.client.call("NodeInfo", {})).node_pubkey;
  const weFirst = Buffer.compare(node, c.peerNode.pub) < 0;
  const a: ChannelAnnouncement = {
    shortChannelId: scid,
    nodeId1: weFirst ? node : c.peerNode.pub,
    nodeId2: weFirst ? c.peerNode.pub : node,
    commitKey1: weFirst ? c.ours.commitPub : c.peer.commit.pub,
    commitKey2: weFirst ? c.peer.commit.pub : c.ours.commitPub,
    nodeSig1: weFirst ? ours.node_sig : Buffer.alloc(64),
    nodeSig2: weFirst ? Buffer.alloc(64) : ours.node_sig,
    commitSig1: weFirst ? ours.commit_sig : Buffer.alloc(64),
    commitSig2: weFirst ? Buffer.alloc(64) : ours.commit_sig,
  };
  return a;
}

function updateRequest(scid: bigint, direction: 0 | 1, over: Partial<ChannelUpdate> = {}) {
  const u: Omit<ChannelUpdate, "sig"> = {
    shortChannelId: scid,
    direction,
    timestamp: 1_700_000_000,
    disabled: false,
    cltvExpiryDelta: 40,
    htlcMinimumMsat: msat(1000n),
    htlcMaximumMsat: msat(990_000_000n),
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 100n,
    ...over,
  };
  const request = {
    short_channel_id: u.shortChannelId,
    direction: u.direction,
    timestamp: u.timestamp,
    disabled: u.disabled,
    cltv_expiry_delta: u.cltvExpiryDelta,
    htlc_minimum_msat: u.htlcMinimumMsat,
    htlc_maximum_msat: u.htlcMaximumMsat,
    fee_base_msat: Number(u.feeBaseMsat),
    fee_proportional_millionths: Number(u.feeProportionalMillionths),
  };
  return { u, request };
}

describe("SignChannelAnnouncement", () => {
  it("our node key's and the channel's commit key's signatures verify on the announcement", async () => {
    const c = await openChannel();
    const a = await announce(c, newScid());
    const node = (await t.client.call("NodeInfo", {})).node_pubkey;
    const weFirst = a.nodeId1.equals(node);
    // The peer's half is missing: only ours may verify. Complete it with the peer's keys' signatures.
    const d = channelAnnouncementDigest(a);
    const peerNodeSig = Buffer.from(ecc.sign(d, c.peerNode.priv));
    const peerCommitSig = Buffer.from(ecc.sign(d, c.peer.commit.priv));
    const full: ChannelAnnouncement = weFirst
      ? { ...a, nodeSig2: peerNodeSig, commitSig2: peerCommitSig }
      : { ...a, nodeSig1: peerNodeSig, commitSig1: peerCommitSig };
    expect(verifyChannelAnnouncement(full)).toEqual({ ok: true });
    // Our two signatures are by our node id and by the channel's commit key (NewChannel's).
    expect(weFirst ? a.commitKey1 : a.commitKey2).toEqual(c.ours.commitPub);
    const withoutOurs: ChannelAnnouncement = weFirst
      ? { ...full, commitSig1: full.nodeSig1 }
      : { ...full, commitSig2: full.nodeSig2 };
    expect(verifyChannelAnnouncement(withoutOurs)).toMatchObject({ ok: false, code: "BAD_SIGNATURE" });
  });

  it("asked again for the same scid: the same signatures (deterministic), nothing refused", async () => {
    const c = await openChannel();
    const scid = newScid();
    const first = await announce(c, scid);
    expect(await announce(c, scid)).toEqual(first);
  });

  it("refuses a commit key that is not the peer's, a channel with no commitment yet, another scid, a scid not at the anchor", async () => {
    const c = await openChannel();
    const r1 = await refusal(
      t.client.call("SignChannelAnnouncement", {
        channel: c.ours.channel,
        short_channel_id: newScid(),
        other_node_id: c.peerNode.pub,
        other_commit_key: makePeer("mallory").commit.pub,
      }),
    );
    expect(r1).toMatchObject({ grpcCode: FP, code: "WRONG_COMMIT_KEY" });
    const fresh = await openChannel(false);
    expect(
      await refusal(
        t.client.call("SignChannelAnnouncement", {
          channel: fresh.ours.channel,
          short_channel_id: newScid(),
          other_node_id: fresh.peerNode.pub,
          other_commit_key: fresh.peer.commit.pub,
        }),
      ),
    ).toMatchObject({ grpcCode: FP, code: "WRONG_COMMIT_KEY" });
    // One channel, one scid; one scid, one channel; one peer.
    const scid = newScid();
    await announce(c, scid);
    expect(await refusal(announce(c, newScid()))).toMatchObject({
      grpcCode: FP,
      code: "ANNOUNCEMENT_MISMATCH",
    });
    const other = await openChannel();
    expect(await refusal(announce(other, scid))).toMatchObject({
      grpcCode: FP,
      code: "ANNOUNCEMENT_MISMATCH",
    });
    expect(
      await refusal(
        t.client.call("SignChannelAnnouncement", {
          channel: c.ours.channel,
          short_channel_id: scid,
          other_node_id: makePeer("someone").commit.pub,
          other_commit_key: c.peer.commit.pub,
        }),
      ),
    ).toMatchObject({ grpcCode: FP, code: "ANNOUNCEMENT_MISMATCH" });
    expect(
      await refusal(
        t.client.call("SignChannelAnnouncement", {
          channel: 999_999,
          short_channel_id: newScid(),
          other_node_id: c.peerNode.pub,
          other_commit_key: c.peer.commit.pub,
        }),
      ),
    ).toMatchObject({ grpcCode: FP, code: "UNKNOWN_CHANNEL" });
  });

  it("refuses our own node id as the other's, and a key that is not a point", async () => {
    const c = await openChannel();
    const node = (await t.client.call("NodeInfo", {})).node_pubkey;
    const call = (other_node_id: Buffer) =>
      t.client.call("SignChannelAnnouncement", {
        channel: c.ours.channel,
        short_channel_id: newScid(),
        other_node_id,
        other_commit_key: c.peer.commit.pub,
      });
    expect(await refusal(call(node))).toMatchObject({ grpcCode: INVALID, code: "INVALID_REQUEST" });
    expect(await refusal(call(Buffer.concat([Buffer.from([2]), Buffer.alloc(32)])))).toMatchObject({
      grpcCode: INVALID,
      code: "INVALID_REQUEST",
    });
  });
});

describe("SignChannelUpdate", () => {
  it("signs the direction in which we forward, verified against our node id; refuses the other", async () => {
    const c = await openChannel();
    const scid = newScid();
    const a = await announce(c, scid);
    const node = (await t.client.call("NodeInfo", {})).node_pubkey;
    const ourDirection: 0 | 1 = a.nodeId1.equals(node) ? 0 : 1;
    const { u, request } = updateRequest(scid, ourDirection);
    const { signature } = await t.client.call("SignChannelUpdate", request);
    const signed: ChannelUpdate = { ...u, sig: signature };
    expect(forwardingNode(a, signed)).toEqual(node);
    expect(verifyChannelUpdate(signed, node)).toEqual({ ok: true });
    expect(verifyChannelUpdate({ ...signed, feeBaseMsat: msat(1001n) }, node)).toMatchObject({
      code: "BAD_SIGNATURE",
    });
    const theirs = updateRequest(scid, ourDirection === 0 ? 1 : 0);
    expect(await refusal(t.client.call("SignChannelUpdate", theirs.request))).toMatchObject({
      grpcCode: FP,
      code: "NOT_FORWARDING_NODE",
    });
  });

  it("refuses a scid it never announced (a foreign channel's), and a malformed update", async () => {
    const foreign = updateRequest(0x00ff_ff00_0000_0001n, 0);
    expect(await refusal(t.client.call("SignChannelUpdate", foreign.request))).toMatchObject({
      grpcCode: FP,
      code: "UNKNOWN_SHORT_CHANNEL_ID",
    });
    expect(
      await refusal(t.client.call("SignChannelUpdate", { ...foreign.request, direction: 0 })),
    ).toMatchObject({
      code: "UNKNOWN_SHORT_CHANNEL_ID",
    });
    const c = await openChannel();
    const scid = newScid();
    await announce(c, scid);
    const upside = updateRequest(scid, 0, { htlcMinimumMsat: msat(10n), htlcMaximumMsat: msat(9n) });
    expect(await refusal(t.client.call("SignChannelUpdate", upside.request))).toMatchObject({
      grpcCode: INVALID,
      code: "INVALID_REQUEST",
    });
    expect(
      await refusal(t.client.call("SignChannelUpdate", { ...upside.request, direction: 2 })),
    ).toMatchObject({
      grpcCode: INVALID,
      code: "INVALID_REQUEST",
    });
  });
});

describe("SignNodeAnnouncement", () => {
  it("signs our node_announcement, verified against our node id", async () => {
    const node = (await t.client.call("NodeInfo", {})).node_pubkey;
    const n = { timestamp: 1_700_000_123, alias: "ln ⚡ node", addresses: ["127.0.0.1:9735", "[::1]:9735"] };
    const { signature } = await t.client.call("SignNodeAnnouncement", n);
    expect(verifyNodeAnnouncement({ nodeId: node, ...n, sig: signature })).toEqual({ ok: true });
    expect(verifyNodeAnnouncement({ nodeId: node, ...n, alias: "other", sig: signature })).toMatchObject({
      code: "BAD_SIGNATURE",
    });
  });

  it("refuses an alias over 32 bytes and more than four addresses", async () => {
    expect(
      await refusal(
        t.client.call("SignNodeAnnouncement", { timestamp: 1, alias: "x".repeat(33), addresses: [] }),
      ),
    ).toMatchObject({ grpcCode: INVALID, code: "INVALID_REQUEST" });
    expect(
      await refusal(
        t.client.call("SignNodeAnnouncement", {
          timestamp: 1,
          alias: "a",
          addresses: ["a:1", "b:2", "c:3", "d:4", "e:5"],
        }),
      ),
    ).toMatchObject({ grpcCode: INVALID, code: "INVALID_REQUEST" });
  });
});

describe("only the channel service may sign gossip", () => {
  it("the gateway and the watchtower are refused NOT_PERMITTED for all three", async () => {
    const c = await openChannel();
    const scid = newScid();
    await announce(c, scid);
    for (const who of [t.gateway, t.tower]) {
      expect(
        await refusal(
          who.call("SignChannelAnnouncement", {
            channel: c.ours.channel,
            short_channel_id: scid,
            other_node_id: c.peerNode.pub,
            other_commit_key: c.peer.commit.pub,
          }),
        ),
      ).toMatchObject({ grpcCode: grpc.status.PERMISSION_DENIED, code: "NOT_PERMITTED" });
      expect(await refusal(who.call("SignChannelUpdate", updateRequest(scid, 0).request))).toMatchObject({
        grpcCode: grpc.status.PERMISSION_DENIED,
        code: "NOT_PERMITTED",
      });
      expect(
        await refusal(who.call("SignNodeAnnouncement", { timestamp: 1, alias: "a", addresses: [] })),
      ).toMatchObject({ grpcCode: grpc.status.PERMISSION_DENIED, code: "NOT_PERMITTED" });
    }
  });
});
