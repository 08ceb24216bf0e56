/**
 * Gossip over the real processes (issue 16 item 1, DESIGN.md 10): nodes A, B, C with channels A-B
 * and B-C. Once the anchors are GOSSIP_ANNOUNCE_DEPTH (6) deep, every node's graph (rows in its own
 * schema) has both channels, both directions' policies and the three node announcements; a policy
 * change on B reaches A. Then a hostile peer, its pkts put straight on B's inbound subject as the
 * gateway would (as peer-bounds.test.ts does), sends each kind of bad gossip: a bad signature, an
 * anchor position with no output, a spent anchor, a stale timestamp, a flood over the rate limit.
 * Each is dropped and counted (B's ln_gossip_dropped_total{reason}), never answered with `error`,
 * and A-B stays normal and pays.
 */
import { randomBytes } from "node:crypto";
import { sat } from "@ln/bitcoin";
import { channelAnnouncementDigest } from "@ln/gossip";
import { encodePkt, peerSubjects, decodePkt, type Pkt } from "@ln/proto";
import { anchorScript } from "@ln/scripts";
import { networks, opcodes, payments, script, Transaction } from "bitcoinjs-lib";
import { connect, type NatsConnection } from "nats";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { channelWith, startNetwork, type NetNode, type Network } from "../lab/network.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const DEPTH = 6;
const BURST = 20;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[gossip] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let C: NetNode;
let ab: { a: string; b: string; scid: bigint };
let bc: { b: string; c: string; scid: bigint };

/** BOLT #7 short_channel_id text to its number: height << 40 | index << 16 | output. */
function scidNumber(text: string): bigint {
  const [h, i, o] = text.split("x").map((x) => BigInt(x));
  if (h === undefined || i === undefined || o === undefined) throw new Error(`bad short_channel_id ${text}`);
  return (h << 40n) | (i << 16n) | o;
}
const signed = (scid: bigint): string => BigInt.asIntN(64, scid).toString();

interface Graph {
  channels: string[];
  policies: { scid: string; direction: number; fee_base_msat: string; disabled: boolean }[];
  nodes: string[];
}

async function graphOf(n: NetNode): Promise<Graph> {
  const s = `"${n.schemas.channel}"`;
  const channels = await net.query<{ s: string }>(
    `SELECT short_channel_id::text AS s FROM ${s}.graph_channels ORDER BY 1`,
  );
  const policies = await net.query<Graph["policies"][number]>(
    `SELECT short_channel_id::text AS scid, direction, fee_base_msat::text AS fee_base_msat, disabled
       FROM ${s}.graph_policies ORDER BY 1, 2`,
  );
  const nodes = await net.query<{ node_id: string }>(`SELECT node_id FROM ${s}.graph_nodes ORDER BY 1`);
  return { channels: channels.map((x) => x.s), policies, nodes: nodes.map((x) => x.node_id) };
}

/** B's ln_gossip_dropped_total by reason, read from its /metrics. */
async function droppedOnB(): Promise<Record<string, number>> {
  const url = B.replicas[0]?.opsUrl;
  if (url === undefined) throw new Error("B's channel service serves no /metrics");
  const text = await (await fetch(`${url}/metrics`)).text();
  const out: Record<string, number> = {};
  for (const m of text.matchAll(/^ln_gossip_dropped_total\{([^}]*)\} (\S+)$/gm)) {
    const reason = /reason="([^"]+)"/.exec(m[1] ?? "")?.[1];
    if (reason) out[reason] = Number(m[2]);
  }
  return out;
}

function keyPair(): { priv: Buffer; pub: Buffer } {
  let priv: Buffer;
  do priv = randomBytes(32);
  while (!ecc.isPrivate(priv));
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
}

/** A channel_announcement of two made-up nodes at `scid`, all four signatures right. */
function fakeAnnouncement(
  scid: bigint,
  commit: [{ priv: Buffer; pub: Buffer }, { priv: Buffer; pub: Buffer }],
): Pkt {
  const [x, y] = [keyPair(), keyPair()];
  const [n1, n2] = Buffer.compare(x.pub, y.pub) < 0 ? [x, y] : [y, x];
  const fields = {
    shortChannelId: scid,
    nodeId1: n1.pub,
    nodeId2: n2.pub,
    commitKey1: commit[0].pub,
    commitKey2: commit[1].pub,
  };
  const digest = channelAnnouncementDigest(fields);
  const sign = (k: Buffer): Buffer => Buffer.from(ecc.sign(digest, k));
  return {
    kind: "channel_announcement",
    ...fields,
    nodeSig1: sign(n1.priv),
    nodeSig2: sign(n2.priv),
    commitSig1: sign(commit[0].priv),
    commitSig2: sign(commit[1].priv),
  };
}

/** Where a confirmed transaction is: its block's height and its index there. */
async function positionOf(txid: string): Promise<{ height: number; txIndex: number }> {
  const rt = net.regtest;
  for (let h = rt.height(); h > rt.height() - 10; h--) {
    const block = await rt.rpc.getBlock(await rt.rpc.getBlockHash(h), 1);
    if (typeof block === "string") throw new Error("getblock verbosity 1 answered raw");
    const i = block.tx.findIndex((t) => String(t) === txid);
    if (i >= 0) return { height: h, txIndex: i };
  }
  throw new Error(`${txid} is not in the last 10 blocks`);
}

/** A P2SH 2-of-2 of the two keys funded, confirmed, then spent and confirmed: a spent anchor. */
async function spentAnchor(
  k: [{ priv: Buffer; pub: Buffer }, { priv: Buffer; pub: Buffer }],
): Promise<bigint> {
  const redeem = anchorScript(k[0].pub, k[1].pub);
  const p2sh = payments.p2sh({ redeem: { output: redeem }, network: networks.regtest });
  if (!p2sh.address || !p2sh.output) throw new Error("no P2SH address");
  const amount = 100_000;
  const f = await net.regtest.fund(p2sh.address, sat(BigInt(amount)));
  const pos = await positionOf(f.txid);
  const tx = new Transaction();
  tx.version = 2;
  tx.addInput(Buffer.from(f.txid, "hex").reverse(), f.vout);
  tx.addOutput(p2sh.output, BigInt(amount - 10_000));
  const hash = tx.hashForSignature(0, redeem, Transaction.SIGHASH_ALL);
  // The script's keys are sorted: the signatures go in the same order.
  const sorted = [...k].sort((a, b) => Buffer.compare(a.pub, b.pub));
  const sigs = sorted.map((x) =>
    script.signature.encode(Buffer.from(ecc.sign(hash, x.priv)), Transaction.SIGHASH_ALL),
  );
  tx.setInputScript(0, script.compile([opcodes.OP_0, ...sigs, redeem]));
  await net.regtest.submit(tx.toHex());
  await net.regtest.mine(1);
  return (BigInt(pos.height) << 40n) | (BigInt(pos.txIndex) << 16n) | BigInt(f.vout);
}

describe("gossip A-B-C", () => {
  beforeAll(async () => {
    net = await startNetwork({
      nodes: ["A", "B", "C"],
      channelEnv: { CHANNEL_DELAY_BLOCKS: "6", GOSSIP_ANNOUNCE_DEPTH: String(DEPTH) },
      nodeChannelEnv: {
        B: { CHANNEL_OPS_LISTEN: "127.0.0.1:0", GOSSIP_RATE_BURST: String(BURST), GOSSIP_RATE_PER_S: "1" },
      },
      ...(netLog ? { log: netLog } : {}),
    });
    [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    await net.fund([A, B], FUND_SAT);
    await net.connect(A, B);
    await net.connect(B, C);
    const [x, y] = [await net.openStart(A, B, CHANNEL_SAT), await net.openStart(B, C, CHANNEL_SAT)];
    const [abOk, bcOk] = [net.bothNormal(A, B, x.id), net.bothNormal(B, C, y.id)];
    await net.waitFor(
      "A-B and B-C normal on both ends",
      async () => {
        const [p, q] = [await abOk(), await bcOk()];
        return (p === true && q === true) || `A-B ${String(p)}; B-C ${String(q)}`;
      },
      { mine: true, timeoutMs: 120_000 },
    );
    const [bOfAB, cOfBC] = [await channelWith(B, A), await channelWith(C, B)];
    if (bOfAB === undefined || cOfBC === undefined) throw new Error("B or C does not list its channel");
    await net.waitShortChannelIds(A, [x.id]);
    await net.waitShortChannelIds(B, [bOfAB.id, y.id]);
    const scidOf = async (n: NetNode, id: string): Promise<bigint> =>
      scidNumber((await n.api.channels()).find((c) => c.id === id)?.shortChannelId ?? "");
    ab = { a: x.id, b: bOfAB.id, scid: await scidOf(A, x.id) };
    bc = { b: y.id, c: cOfBC.id, scid: await scidOf(B, y.id) };
  }, 240_000);

  afterAll(async () => {
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("converges: every graph has both channels, both directions' policies and the three nodes", async () => {
    const want = [signed(ab.scid), signed(bc.scid)].sort();
    const nodes = [A.nodeId, B.nodeId, C.nodeId].sort();
    await net.waitFor(
      "every node's graph complete",
      async () => {
        for (const n of [A, B, C]) {
          const g = await graphOf(n);
          if (JSON.stringify(g.channels) !== JSON.stringify(want))
            return `${n.name}: channels ${g.channels.join(",")}`;
          if (g.policies.length !== 4) return `${n.name}: ${g.policies.length} policies`;
          if (JSON.stringify(g.nodes) !== JSON.stringify(nodes)) return `${n.name}: ${g.nodes.length} nodes`;
        }
        return true;
      },
      { mine: true, intervalMs: 1000, timeoutMs: 60_000 },
    );
    // Each policy row is the forwarding node's own policy, enabled: both peers are connected.
    for (const n of [A, B, C])
      for (const p of (await graphOf(n)).policies)
        expect(p.disabled, `${n.name} ${p.scid}/${p.direction}`).toBe(false);
  }, 90_000);

  it("a policy change on B reaches A", async () => {
    await B.api.setPolicy(ab.b, { feeBaseMsat: 4321n });
    // direction 0: node_id_1 (the lower key) forwards; B's direction on A-B follows the keys.
    const direction = Buffer.compare(Buffer.from(B.nodeId, "hex"), Buffer.from(A.nodeId, "hex")) < 0 ? 0 : 1;
    await net.waitFor(
      "A's graph to have B's new fee on A-B",
      async () => {
        const p = (await graphOf(A)).policies.find(
          (x) => x.scid === signed(ab.scid) && x.direction === direction,
        );
        return p?.fee_base_msat === "4321" || `B's fee in A's graph: ${p?.fee_base_msat ?? "none"}`;
      },
      { intervalMs: 250, timeoutMs: 30_000 },
    );
  }, 40_000);

  it("C's gateway gone: B disables B-C, A learns it, and B refuses A's HTLC for C once C has been gone 15 s (not at the HTLC's timeout)", async () => {
    await net.kill(C, "peer");
    const direction = Buffer.compare(Buffer.from(B.nodeId, "hex"), Buffer.from(C.nodeId, "hex")) < 0 ? 0 : 1;
    await net.waitFor(
      "A's graph to have B's side of B-C disabled",
      async () => {
        const p = (await graphOf(A)).policies.find(
          (x) => x.scid === signed(bc.scid) && x.direction === direction,
        );
        return p?.disabled === true || `disabled: ${String(p?.disabled)}`;
      },
      { intervalMs: 250, timeoutMs: 30_000 },
    );
    // BOLT #4: temporary_channel_failure = UPDATE | 7, from B (route hop 0), after the forwarder's
    // reconnect grace, not after the HTLC's timeout.
    const route = await net.route([A, B, C], [ab.a, bc.b]);
    const p = await net.payRoute(A, route, 1_000_000n, randomBytes(32).toString("hex"), {
      finalExpiryBlocks: 40,
    });
    expect(p.status).toBe("failed");
    expect(p.failure?.hop).toBe(0);
    expect(p.failure?.nodeId).toBe(B.nodeId);
    expect(p.failure?.code).toBe(0x1000 | 7);
  }, 60_000);

  describe("a hostile peer's bad gossip to B", () => {
    let nc: NatsConnection;
    let fake: string;
    const answered: Pkt[] = [];
    const send = (p: Pkt | Buffer): void =>
      nc.publish(peerSubjects(`${B.prefix}.peer`, fake).in, Buffer.isBuffer(p) ? p : encodePkt(p));

    beforeAll(async () => {
      const url = net.natsInfra?.url;
      if (url === undefined) throw new Error("no NATS");
      nc = await connect({ servers: url });
      fake = keyPair().pub.toString("hex");
      nc.subscribe(peerSubjects(`${B.prefix}.peer`, fake).out, {
        callback: (e, m) => !e && answered.push(decodePkt(m.data)),
      });
    });
    afterAll(async () => {
      await nc?.drain();
    });

    /** Sends, then waits for B's count of `reason` to grow by `n`. */
    async function expectDropped(
      what: string,
      reason: string,
      n: number,
      act: () => Promise<void> | void,
    ): Promise<void> {
      const before = (await droppedOnB())[reason] ?? 0;
      await act();
      await net.waitFor(
        `B to drop ${what} (${reason})`,
        async () => {
          const now = (await droppedOnB())[reason] ?? 0;
          return now - before >= n || `${reason}: ${now - before} of ${n}`;
        },
        { intervalMs: 200, timeoutMs: 20_000, quiet: true },
      );
    }

    it("a channel_update with a bad signature", async () => {
      const rows = await net.query<{ u: Buffer }>(
        `SELECT channel_update AS u FROM "${B.schemas.channel}".graph_policies WHERE short_channel_id = ${signed(ab.scid)} LIMIT 1`,
      );
      const u = decodePkt(rows[0]?.u ?? Buffer.alloc(0));
      if (u.kind !== "channel_update") throw new Error("no stored channel_update");
      const bad: Pkt = {
        ...u,
        timestamp: u.timestamp + 10,
        sig: Buffer.from(ecc.sign(randomBytes(32), keyPair().priv)),
      };
      await expectDropped("a forged channel_update", "BAD_SIGNATURE", 1, () => send(bad));
    });

    it("an announcement of an anchor position with no output", async () => {
      const scid = (BigInt(net.regtest.height() - 1) << 40n) | (5000n << 16n);
      await expectDropped("an announcement of nothing", "ANCHOR_NOT_FOUND", 1, () =>
        send(fakeAnnouncement(scid, [keyPair(), keyPair()])),
      );
    });

    it("an announcement whose anchor is spent", async () => {
      const keys: [ReturnType<typeof keyPair>, ReturnType<typeof keyPair>] = [keyPair(), keyPair()];
      const scid = await spentAnchor(keys);
      await expectDropped("a closed channel's announcement", "ANCHOR_SPENT", 1, () =>
        send(fakeAnnouncement(scid, keys)),
      );
      const g = await graphOf(B);
      expect(g.channels).not.toContain(signed(scid));
    });

    it("a channel_update no newer than B's", async () => {
      const rows = await net.query<{ u: Buffer }>(
        `SELECT channel_update AS u FROM "${B.schemas.channel}".graph_policies WHERE short_channel_id = ${signed(bc.scid)} LIMIT 1`,
      );
      const stored = rows[0]?.u;
      if (stored === undefined) throw new Error("no stored channel_update");
      await expectDropped("a replayed channel_update", "STALE_TIMESTAMP", 1, () => send(stored));
    });

    it("a flood beyond the rate limit", async () => {
      const rows = await net.query<{ u: Buffer }>(
        `SELECT channel_update AS u FROM "${B.schemas.channel}".graph_policies WHERE short_channel_id = ${signed(bc.scid)} LIMIT 1`,
      );
      const stored = rows[0]?.u;
      if (stored === undefined) throw new Error("no stored channel_update");
      // Twice the bucket at once: at most BURST (plus a token a second) are looked at.
      await expectDropped("a flood", "RATE_LIMITED", BURST - 5, () => {
        for (let i = 0; i < 2 * BURST; i++) send(stored);
      });
    });

    it("B answered none of it with an error, and A-B stays normal and pays", async () => {
      expect(answered.filter((p) => p.kind === "error")).toEqual([]);
      expect((await B.api.channel(ab.b)).phase).toBe("normal");
      expect((await A.api.channel(ab.a)).phase).toBe("normal");
      const inv = await B.api.createInvoice(10_000_000n, "after the bad gossip");
      const route = await net.route([A, B], [ab.a]);
      const p = await net.payRoute(A, route, 10_000_000n, inv.rHash, { finalExpiryBlocks: 40 });
      expect(p.status, p.failureReason ?? "").toBe("succeeded");
    }, 60_000);
  });
});
