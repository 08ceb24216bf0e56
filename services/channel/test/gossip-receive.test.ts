/**
 * The gossip shell (gossip/gossip.ts) over real Postgres, with the chain watcher and the gateway
 * stood in: a channel_announcement is taken only with a matching unspent anchor (its capacity the
 * output's value); updates and node announcements of unknown channels and nodes are dropped;
 * what is stored is relayed once to every other connected peer; the ChannelUpdateSink takes only
 * a valid, newer update. Signatures are made here with tiny-secp256k1 over @ln/gossip's digests.
 */
import { createHash, randomBytes } from "node:crypto";
import { msat } from "@ln/bitcoin";
import {
  channelAnnouncementDigest,
  channelUpdateDigest,
  encodeChannelUpdate,
  nodeAnnouncementDigest,
} from "@ln/gossip";
import { decodePkt, type Pkt, type PktOf } from "@ln/proto";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelRegistry } from "../src/channels/registry.js";
import { ChannelStore } from "../src/channels/store.js";
import { defaultForwardingPolicy, ForwardingPolicies } from "../src/forwarding/policy.js";
import { DEFAULT_GOSSIP_SETTINGS, Gossip, type AnchorLookup } from "../src/gossip/gossip.js";
import { migrateChannelService } from "../src/migrations.js";
import { ChainTip } from "../src/onchain/tip.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `gossip_test_${randomBytes(6).toString("hex")}`;

function keyPair(): { priv: Buffer; pub: Buffer } {
  let priv: Buffer;
  do priv = randomBytes(32);
  while (!ecc.isPrivate(priv));
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
}
/** The P2SH scriptPubKey of the 2-of-2 of two keys (sorted), by hand: a9 14 HASH160(script) 87. */
function anchorOutput(a: Buffer, b: Buffer): Buffer {
  const [k1, k2] = [a, b].sort(Buffer.compare);
  const redeem = Buffer.concat([
    Buffer.from([0x52, 33]),
    k1 as Buffer,
    Buffer.from([33]),
    k2 as Buffer,
    Buffer.from([0x52, 0xae]),
  ]);
  const h = createHash("ripemd160").update(createHash("sha256").update(redeem).digest()).digest();
  return Buffer.concat([Buffer.from([0xa9, 0x14]), h, Buffer.from([0x87])]);
}
const sign = (digest: Buffer, k: { priv: Buffer }): Buffer => Buffer.from(ecc.sign(digest, k.priv));

const [x, y] = [keyPair(), keyPair()];
const [n1, n2] = Buffer.compare(x.pub, y.pub) < 0 ? [x, y] : [y, x];
const [c1, c2] = [keyPair(), keyPair()];
// Height 300, tx 2, output 1.
const SCID = (300n << 40n) | (2n << 16n) | 1n;
const ANCHOR_SAT = 1_500_000n;

const outputs = new Map<bigint, Awaited<ReturnType<AnchorLookup>>>();
const anchors: AnchorLookup = (p) =>
  Promise.resolve(
    outputs.get((BigInt(p.height) << 40n) | (BigInt(p.txIndex) << 16n) | BigInt(p.outputIndex)) ?? {
      found: false,
      txid: "",
      script: Buffer.alloc(0),
      valueSat: 0n,
      unspent: false,
    },
  );

const sent: { peer: string; pkt: Pkt }[] = [];
const dropped: string[] = [];
const PEER_1 = "02" + "01".repeat(32);
const PEER_2 = "02" + "02".repeat(32);
let gossip: Gossip;

function announcement(scid = SCID): PktOf<"channel_announcement"> {
  const fields = {
    shortChannelId: scid,
    nodeId1: n1.pub,
    nodeId2: n2.pub,
    commitKey1: c1.pub,
    commitKey2: c2.pub,
  };
  const d = channelAnnouncementDigest(fields);
  return {
    kind: "channel_announcement",
    ...fields,
    nodeSig1: sign(d, n1),
    nodeSig2: sign(d, n2),
    commitSig1: sign(d, c1),
    commitSig2: sign(d, c2),
  };
}

function update(timestamp: number, signer = n1): PktOf<"channel_update"> {
  const fields = {
    shortChannelId: SCID,
    direction: 0 as const,
    timestamp,
    disabled: false,
    cltvExpiryDelta: 40,
    htlcMinimumMsat: msat(1000n),
    htlcMaximumMsat: msat(1_000_000_000n),
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 10n,
  };
  return { kind: "channel_update", ...fields, sig: sign(channelUpdateDigest(fields), signer) };
}

// A still clock (the rate limiter never refills) at the real time (timestamps are checked against it).
const NOW_MS = Date.now();
const now = Math.floor(NOW_MS / 1000);
const me = keyPair();

beforeAll(async () => {
  await migrateChannelService(pool, schema);
  gossip = new Gossip({
    pool,
    schema,
    store: new ChannelStore(pool, schema),
    registry: new ChannelRegistry(),
    policies: new ForwardingPolicies(pool, schema, defaultForwardingPolicy(144)),
    tip: new ChainTip(),
    nodeId: me.pub,
    signer: {
      signChannelAnnouncement: () => Promise.reject(new Error("not ours")),
      signChannelUpdate: () => Promise.reject(new Error("not ours")),
      signNodeAnnouncement: (n) =>
        Promise.resolve(sign(nodeAnnouncementDigest({ ...n, nodeId: me.pub }), me)),
    },
    anchors,
    send: (peer, bytes) => sent.push({ peer, pkt: decodePkt(bytes) }),
    peers: {
      connect: () => Promise.resolve(),
      list: () => Promise.resolve([]),
      resync: () => undefined,
    },
    settings: { ...DEFAULT_GOSSIP_SETTINGS, rateBurst: 3, ratePerSecond: 1 },
    counters: { dropped: (r) => dropped.push(r), accepted: () => undefined },
    log: { info: () => undefined, warn: () => undefined, error: () => undefined, alert: () => undefined },
    report: (what, e) => {
      throw new Error(`${what}: ${String(e)}`);
    },
    now: () => NOW_MS,
  });
  gossip.onConnected(PEER_1);
  gossip.onConnected(PEER_2);
});
afterAll(async () => {
  await gossip.stop();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("Gossip receiving", () => {
  it("drops an announcement without its anchor, or with an anchor spent or of other keys", async () => {
    await gossip.receive(PEER_1, announcement());
    const script = anchorOutput(c1.pub, c2.pub);
    outputs.set(SCID, { found: true, txid: "aa".repeat(32), script, valueSat: ANCHOR_SAT, unspent: false });
    await gossip.receive(PEER_1, announcement());
    outputs.set(SCID, {
      found: true,
      txid: "aa".repeat(32),
      script: anchorOutput(c1.pub, keyPair().pub),
      valueSat: ANCHOR_SAT,
      unspent: true,
    });
    await gossip.receive(PEER_1, announcement());
    expect(dropped.splice(0)).toEqual(["ANCHOR_NOT_FOUND", "ANCHOR_SPENT", "ANCHOR_MISMATCH"]);
    expect(await gossip.graph.channel(SCID)).toBeUndefined();
  });

  it("drops an update of a channel not in the graph", async () => {
    await gossip.receive(PEER_1, update(now));
    expect(dropped.splice(0)).toEqual(["UNKNOWN_CHANNEL"]);
  });

  it("takes an announcement with its anchor: capacity from the output, relayed to the other peer only", async () => {
    const script = anchorOutput(c1.pub, c2.pub);
    outputs.set(SCID, { found: true, txid: "aa".repeat(32), script, valueSat: ANCHOR_SAT, unspent: true });
    sent.splice(0);
    await gossip.receive(PEER_1, announcement());
    expect(await gossip.graph.channel(SCID)).toMatchObject({ capacitySat: ANCHOR_SAT, anchorVout: 1 });
    expect(sent.map((s) => [s.peer, s.pkt.kind])).toEqual([[PEER_2, "channel_announcement"]]);
    await gossip.receive(PEER_2, announcement());
    expect(dropped.splice(0)).toEqual(["DUPLICATE"]);
  });

  it("an update: a bad signature dropped, a good one stored and relayed, the same again stale", async () => {
    sent.splice(0);
    await gossip.receive(PEER_2, update(now, n2)); // signed by the wrong node for direction 0
    await gossip.receive(PEER_2, update(now));
    await gossip.receive(PEER_1, update(now));
    expect(dropped.splice(0)).toEqual(["BAD_SIGNATURE", "STALE_TIMESTAMP"]);
    expect(sent.map((s) => [s.peer, s.pkt.kind])).toEqual([[PEER_1, "channel_update"]]);
  });

  it("a node announcement: taken for a node of a channel, dropped for another", async () => {
    const n = (k: { priv: Buffer; pub: Buffer }): PktOf<"node_announcement"> => {
      const fields = { nodeId: k.pub, timestamp: now, alias: "alice", addresses: ["127.0.0.1:9735"] };
      return { kind: "node_announcement", ...fields, sig: sign(nodeAnnouncementDigest(fields), k) };
    };
    await gossip.receive(PEER_1, n(keyPair()));
    await gossip.receive(PEER_1, n(n2));
    expect(dropped.splice(0)).toEqual(["UNKNOWN_NODE"]);
    expect(await gossip.graph.nodeTimestamp(n2.pub.toString("hex"))).toBe(now);
  });

  it("rate-limits each peer on its own (burst 3, no refill with the clock still)", () => {
    const third = "02" + "03".repeat(32);
    expect([1, 2, 3, 4].map(() => gossip.admit(third))).toEqual([true, true, true, false]);
    expect(dropped.splice(0)).toEqual(["RATE_LIMITED"]);
    expect(gossip.admit("02" + "04".repeat(32))).toBe(true);
  });
});

describe("the ChannelUpdateSink", () => {
  it("applies a valid newer update (the bare message), and refuses stale, forged or garbled ones", async () => {
    const { kind: _k, ...newer } = update(now + 5);
    expect(await gossip.apply(encodeChannelUpdate(newer))).toBe(true);
    expect((await gossip.graph.policy(SCID, 0))?.timestamp).toBe(now + 5);
    expect(await gossip.apply(encodeChannelUpdate(newer))).toBe(false);
    const { kind: _k2, ...forged } = update(now + 6, keyPair());
    expect(await gossip.apply(encodeChannelUpdate(forged))).toBe(false);
    expect(await gossip.apply(Buffer.from("ff", "hex"))).toBe(false);
    expect(dropped.splice(0)).toEqual(["STALE_TIMESTAMP", "BAD_SIGNATURE", "MALFORMED"]);
  });
});

describe("a new tip", () => {
  it("rechecks the graph's anchors: a channel whose anchor is spent leaves the graph with its policies", async () => {
    await gossip.onTip();
    expect(await gossip.graph.channel(SCID)).toBeDefined();
    const found = outputs.get(SCID);
    if (!found) throw new Error("no output");
    outputs.set(SCID, { ...found, unspent: false });
    await gossip.onTip();
    expect(await gossip.graph.channel(SCID)).toBeUndefined();
    expect(await gossip.graph.policy(SCID, 0)).toBeUndefined();
  });
});
