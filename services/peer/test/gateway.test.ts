import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { headers, type NatsConnection } from "nats";
import * as ecc from "tiny-secp256k1";
import { msat } from "@ln/bitcoin";
import { decodePkt, encodePkt, OUT_SEQ_HEADER } from "@ln/proto";
import { authenticate, initiate, localSignSession, localStaticEcdh, sessionDigest } from "@ln/transport";
import { decodePeerEvent } from "@ln/proto";
import type { PeerGateway } from "../src/index.js";
import {
  collect,
  dial,
  gateway,
  handPeer,
  natsConn,
  nodeKey,
  runPrefix,
  samplePkt,
  until,
  withField,
} from "./helpers.js";

let nats: NatsConnection;
const gateways: PeerGateway[] = [];
const logs: object[] = [];
const log = (line: object): void => void logs.push(line);

beforeAll(async () => {
  nats = await natsConn();
});
afterAll(async () => {
  await Promise.all(gateways.map((g) => g.close()));
  await nats.drain();
  // Log lines are JSON objects with no secrets: nothing that looks like a private key or sig.
  for (const l of logs) expect(JSON.stringify(l)).not.toMatch(/priv|secret|preimage|token/i);
});

const keep = (g: PeerGateway): PeerGateway => (gateways.push(g), g);

describe("PeerGateway", () => {
  it("connects two gateways, announces acks, relays 100 pkts each way in order, bitwise", async () => {
    const [a, b] = [nodeKey(), nodeKey()];
    const [pa, pb] = [runPrefix("a"), runPrefix("b")];
    const ga = keep(gateway(a, nats, { subjectPrefix: pa, ackFor: () => Promise.resolve(7n), log }));
    const gb = keep(
      gateway(b, nats, { subjectPrefix: pb, ackFor: () => Promise.resolve(12345678901234567890n), log }),
    );
    const aEvents = collect(nats, `${pa}.${b.hex}.events`);
    const bEvents = collect(nats, `${pb}.${a.hex}.events`);
    const aIn = collect(nats, `${pa}.${b.hex}.in`);
    const bIn = collect(nats, `${pb}.${a.hex}.in`);
    await Promise.all([aEvents.ready, bEvents.ready, aIn.ready, bIn.ready]);

    const port = await gb.listen(0, "127.0.0.1");
    const c = await ga.connect("127.0.0.1", port, b.pub);
    expect(c).toEqual({ peerNodeId: b.hex, theirAck: 12345678901234567890n });
    await until(() => aEvents.msgs.length >= 1 && bEvents.msgs.length >= 1, 5000, "connected events");
    expect(decodePeerEvent(aEvents.msgs[0] as Buffer)).toEqual({
      type: "connected",
      theirAck: "12345678901234567890",
    });
    expect(decodePeerEvent(bEvents.msgs[0] as Buffer)).toEqual({ type: "connected", theirAck: "7" });
    expect(ga.peers).toEqual([b.hex]);
    expect(gb.peers).toEqual([a.hex]);

    const sentAB = Array.from({ length: 100 }, (_, i) => samplePkt(i));
    const sentBA = Array.from({ length: 100 }, (_, i) => samplePkt(1000 + i));
    for (let i = 0; i < 100; i++) {
      nats.publish(`${pa}.${b.hex}.out`, sentAB[i] as Buffer);
      nats.publish(`${pb}.${a.hex}.out`, sentBA[i] as Buffer);
    }
    await until(() => bIn.msgs.length >= 100 && aIn.msgs.length >= 100, 10_000, "100 pkts each way");
    expect(bIn.msgs).toEqual(sentAB);
    expect(aIn.msgs).toEqual(sentBA);

    // A second connection from A replaces the first: B announces the drop, then the new one.
    await ga.connect("127.0.0.1", port, b.pub);
    await until(() => bEvents.msgs.length >= 3, 5000, "replacement events");
    expect(bEvents.msgs.slice(1).map((m) => decodePeerEvent(m))).toEqual([
      { type: "disconnected", reason: "REPLACED" },
      { type: "connected", theirAck: "7" },
    ]);
    await until(() => ga.peers.length === 1 && gb.peers.length === 1, 5000, "one connection each");
    nats.publish(`${pa}.${b.hex}.out`, samplePkt(5));
    await until(() => bIn.msgs.length === 101, 5000, "pkt over the new connection");
    expect(bIn.msgs[100]).toEqual(samplePkt(5));

    // Closing A: both sides announce the disconnect; B's outbound to A is then dropped.
    await ga.close();
    await until(() => bEvents.msgs.length >= 4 && gb.peers.length === 0, 5000, "disconnect on B");
    expect(decodePeerEvent(bEvents.msgs[3] as Buffer)).toEqual({
      type: "disconnected",
      reason: "PEER_CLOSED",
    });
    expect(decodePeerEvent(aEvents.msgs.at(-1) as Buffer)).toEqual({
      type: "disconnected",
      reason: "GATEWAY_CLOSED",
    });
  });

  it("ends a peer's connection before it reads the ack for the peer's new one", async () => {
    // A connection still delivering after the ack of the next one was read would deliver pkts
    // the peer then resends on the new one (from that ack): the channel would take them twice.
    const [a, b] = [nodeKey(), nodeKey()];
    const [pa, pb] = [runPrefix("a"), runPrefix("b")];
    /** At each of B's ack reads: whether B still had a connection with A delivering pkts. */
    const liveAtAck: boolean[] = [];
    const ga = keep(gateway(a, nats, { subjectPrefix: pa, ackFor: () => Promise.resolve(0n), log }));
    const gb = keep(
      gateway(b, nats, {
        subjectPrefix: pb,
        ackFor: () => {
          liveAtAck.push(gb.peers.includes(a.hex));
          return Promise.resolve(0n);
        },
        log,
      }),
    );
    const port = await gb.listen(0, "127.0.0.1");
    await ga.connect("127.0.0.1", port, b.pub);
    await until(() => gb.peers.length === 1, 5000, "first connection");
    await ga.connect("127.0.0.1", port, b.pub);
    await until(() => gb.peers.length === 1 && liveAtAck.length === 2, 5000, "second connection");
    expect(liveAtAck).toEqual([false, false]);
  });

  it("fails a connection on a malformed pkt or an unknown even field; keeps it for an unknown odd field", async () => {
    const [g, good, bad, evenPeer] = [nodeKey(), nodeKey(), nodeKey(), nodeKey()];
    const p = runPrefix("g");
    const gw = keep(gateway(g, nats, { subjectPrefix: p, ackFor: () => Promise.resolve(3n), log }));
    const port = await gw.listen(0, "127.0.0.1");
    const goodIn = collect(nats, `${p}.${good.hex}.in`);
    const badEvents = collect(nats, `${p}.${bad.hex}.events`);
    const evenIn = collect(nats, `${p}.${evenPeer.hex}.in`);
    await Promise.all([goodIn.ready, badEvents.ready, evenIn.ready]);

    // Unknown odd field: delivered as sent, connection kept.
    const gc = await handPeer(port, good, g);
    expect(
      (await authenticate(gc, { nodeId: good.pub, signSession: localSignSession(good.priv), ack: 0n }))
        .remoteAck,
    ).toBe(3n);
    const odd = withField(samplePkt(0), 99);
    expect(decodePkt(odd)).toEqual(decodePkt(samplePkt(0)));
    await gc.send(odd);
    await gc.send(samplePkt(1));
    await until(() => goodIn.msgs.length === 2, 5000, "odd-field pkt");
    expect(goodIn.msgs).toEqual([odd, samplePkt(1)]);
    expect(gc.isOpen).toBe(true);

    // Malformed bytes: error back, then closed.
    const bc = await handPeer(port, bad, g);
    await authenticate(bc, { nodeId: bad.pub, signSession: localSignSession(bad.priv), ack: 0n });
    await bc.send(Buffer.from([0xff, 0xff, 0xff]));
    const err = decodePkt(await bc.receive());
    expect(err.kind).toBe("error");
    expect(await bc.closed).toMatchObject({ code: "PEER_CLOSED" });
    await until(() => badEvents.msgs.length === 2, 5000, "bad peer events");
    expect(decodePeerEvent(badEvents.msgs[1] as Buffer)).toEqual({ type: "disconnected", reason: "BAD_PKT" });

    // Unknown even field: error naming it, closed, nothing published.
    const ec = await handPeer(port, evenPeer, g);
    await authenticate(ec, { nodeId: evenPeer.pub, signSession: localSignSession(evenPeer.priv), ack: 0n });
    await ec.send(withField(samplePkt(0), 98));
    const err2 = decodePkt(await ec.receive());
    expect(err2).toMatchObject({ kind: "error" });
    expect(err2.kind === "error" && err2.problem).toMatch(/98|even|unknown/i);
    expect(await ec.closed).toMatchObject({ code: "PEER_CLOSED" });
    expect(evenIn.msgs).toEqual([]);

    // The good peer is still served, both ways.
    await gc.send(samplePkt(2));
    nats.publish(`${p}.${good.hex}.out`, samplePkt(3));
    expect(await gc.receive()).toEqual(samplePkt(3));
    await until(() => goodIn.msgs.length === 3, 5000, "good peer after the bad ones");
    expect(gw.peers).toEqual([good.hex]);
    gc.close();
  });

  it("ends the connection once it has written an error from the channel service (draft 6.3)", async () => {
    const [g, peer] = [nodeKey(), nodeKey()];
    const p = runPrefix("err");
    const gw = keep(gateway(g, nats, { subjectPrefix: p, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const events = collect(nats, `${p}.${peer.hex}.events`);
    await events.ready;
    const pc = await handPeer(port, peer, g);
    await authenticate(pc, { nodeId: peer.pub, signSession: localSignSession(peer.priv), ack: 0n });
    await until(() => gw.peers.includes(peer.hex), 5000, "connected");
    const out = `${p}.${peer.hex}.out`;
    nats.publish(out, samplePkt(0));
    nats.publish(out, encodePkt({ kind: "error", problem: "update_commit: we have no channel with you" }));
    expect(await pc.receive()).toEqual(samplePkt(0));
    expect(decodePkt(await pc.receive())).toEqual({
      kind: "error",
      problem: "update_commit: we have no channel with you",
    });
    // Written, then closed: the peer sees the end, the channel service the reason.
    expect(await pc.closed).toMatchObject({ code: "PEER_CLOSED" });
    await until(() => events.msgs.length === 2, 5000, "disconnected event");
    expect(decodePeerEvent(events.msgs[1] as Buffer)).toEqual({ type: "disconnected", reason: "SENT_ERROR" });
    expect(gw.peers).toEqual([]);
  });

  it("writes numbered outbound pkts in order, once per connection: none at or below the peer's ack, none already written, none after a gap", async () => {
    const [g, peer] = [nodeKey(), nodeKey()];
    const p = runPrefix("seq");
    const gw = keep(gateway(g, nats, { subjectPrefix: p, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const pc = await handPeer(port, peer, g);
    // The peer has our messages 1 and 2 already.
    await authenticate(pc, { nodeId: peer.pub, signSession: localSignSession(peer.priv), ack: 2n });
    await until(() => gw.peers.includes(peer.hex), 5000, "connected");
    const out = `${p}.${peer.hex}.out`;
    const numbered = (seq: number): { headers: ReturnType<typeof headers> } => {
      const h = headers();
      h.set(OUT_SEQ_HEADER, String(seq));
      return { headers: h };
    };
    nats.publish(out, samplePkt(1), numbered(1)); // acknowledged by the peer: dropped
    nats.publish(out, samplePkt(3), numbered(3)); // written
    nats.publish(out, samplePkt(2), numbered(2)); // acknowledged: dropped
    nats.publish(out, samplePkt(3), numbered(3)); // a retransmission of what this connection carried: dropped
    nats.publish(out, samplePkt(7)); // not numbered: written
    nats.publish(out, samplePkt(5), numbered(5)); // after a gap (4 is missing): dropped
    nats.publish(out, samplePkt(4), numbered(4)); // written
    expect(await pc.receive()).toEqual(samplePkt(3));
    expect(await pc.receive()).toEqual(samplePkt(7));
    expect(await pc.receive()).toEqual(samplePkt(4));
    // Nothing else came: a pkt published last arrives next.
    nats.publish(out, samplePkt(5), numbered(5));
    expect(await pc.receive()).toEqual(samplePkt(5));
  });

  it("passes gossip pkts (61, 63, 65) through both ways, unnumbered between numbered ones", async () => {
    const [g, peer] = [nodeKey(), nodeKey()];
    const p = runPrefix("gossip");
    const gw = keep(gateway(g, nats, { subjectPrefix: p, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const pIn = collect(nats, `${p}.${peer.hex}.in`);
    await pIn.ready;
    const pc = await handPeer(port, peer, g);
    await authenticate(pc, { nodeId: peer.pub, signSession: localSignSession(peer.priv), ack: 0n });
    await until(() => gw.peers.includes(peer.hex), 5000, "connected");
    const sig = Buffer.alloc(64, 7);
    const gossip = [
      encodePkt({
        kind: "channel_announcement",
        shortChannelId: 5n,
        nodeId1: g.pub,
        nodeId2: peer.pub,
        commitKey1: g.pub,
        commitKey2: peer.pub,
        nodeSig1: sig,
        nodeSig2: sig,
        commitSig1: sig,
        commitSig2: sig,
      }),
      encodePkt({
        kind: "channel_update",
        shortChannelId: 5n,
        direction: 1,
        timestamp: 1_700_000_000,
        disabled: false,
        cltvExpiryDelta: 40,
        htlcMinimumMsat: msat(1n),
        htlcMaximumMsat: msat(1000n),
        feeBaseMsat: msat(1n),
        feeProportionalMillionths: 10n,
        sig,
      }),
      encodePkt({
        kind: "node_announcement",
        nodeId: peer.pub,
        timestamp: 1,
        alias: "p",
        addresses: [],
        sig,
      }),
    ];
    // Peer -> NATS: as sent, the connection kept.
    for (const b of gossip) await pc.send(b);
    await pc.send(samplePkt(1));
    await until(() => pIn.msgs.length === 4, 5000, "gossip in");
    expect(pIn.msgs).toEqual([...gossip, samplePkt(1)]);
    expect(pc.isOpen).toBe(true);
    // NATS -> peer: gossip without OUT_SEQ_HEADER between numbered pkts takes no sequence number.
    const out = `${p}.${peer.hex}.out`;
    const numbered = (seq: number): { headers: ReturnType<typeof headers> } => {
      const h = headers();
      h.set(OUT_SEQ_HEADER, String(seq));
      return { headers: h };
    };
    nats.publish(out, samplePkt(10), numbered(1));
    for (const b of gossip) nats.publish(out, b);
    nats.publish(out, samplePkt(11), numbered(2));
    for (const expected of [samplePkt(10), ...gossip, samplePkt(11)])
      expect(await pc.receive()).toEqual(expected);
    pc.close();
  });

  it("survives 500 stuck handshakes with maxPendingHandshakes 50; they are dropped at the deadline", async () => {
    const [g, normal] = [nodeKey(), nodeKey()];
    const p = runPrefix("flood");
    const gw = keep(
      gateway(g, nats, { subjectPrefix: p, maxPendingHandshakes: 50, handshakeTimeoutMs: 500, log }),
    );
    const port = await gw.listen(0, "127.0.0.1");
    const net = await import("node:net");
    const started = Date.now();
    // What the gateway holds for them is bounded by the cap, sampled all along.
    let mostPending = 0;
    const sampler = setInterval(() => (mostPending = Math.max(mostPending, gw.pendingHandshakes)), 5);
    const stuck = Array.from({ length: 500 }, () => {
      const s = net.connect(port, "127.0.0.1");
      s.on("error", () => undefined);
      return s;
    });
    let closed = 0;
    for (const s of stuck) s.on("close", () => (closed += 1));
    await until(() => closed >= 450, 5000, "extra connections closed");
    expect(gw.pendingHandshakes).toBeLessThanOrEqual(50);

    const nc = await handPeer(port, normal, g);
    const auth = await authenticate(nc, {
      nodeId: normal.pub,
      signSession: localSignSession(normal.priv),
      ack: 9n,
    });
    expect(auth.remoteNodeId).toEqual(g.pub);
    expect(closed).toBeLessThan(500); // some stuck ones are still waiting for their deadline
    await until(() => gw.peers.includes(normal.hex), 2000, "normal peer registered");

    await until(() => closed === 500, 3000, "stuck handshakes dropped");
    clearInterval(sampler);
    expect(mostPending).toBeLessThanOrEqual(50);
    expect(Date.now() - started).toBeGreaterThanOrEqual(450);
    expect(gw.pendingHandshakes).toBe(0);
    expect(nc.isOpen).toBe(true);
    expect(logs.some((l) => (l as { event?: string }).event === "pending_handshakes_full")).toBe(true);
    nc.close();
  });

  it("drops a handshake that dribbles act one a byte at a time at the deadline", async () => {
    const g = nodeKey();
    const gw = keep(gateway(g, nats, { subjectPrefix: runPrefix("dribble"), handshakeTimeoutMs: 400, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const s = await dial(port);
    s.on("error", () => undefined);
    const started = Date.now();
    const closed = new Promise((r) => s.on("close", r));
    // Act one is 50 bytes: one every 50 ms would take 2.5 s, far past the deadline.
    const drip = setInterval(() => !s.destroyed && s.write(Buffer.from([0])), 50);
    await closed;
    clearInterval(drip);
    expect(Date.now() - started).toBeGreaterThanOrEqual(350);
    expect(Date.now() - started).toBeLessThan(2000);
    await until(() => gw.pendingHandshakes === 0, 2000, "pending cleared");
  });

  it("drops a peer that finishes the acts but never authenticates", async () => {
    const [g, idle] = [nodeKey(), nodeKey()];
    const gw = keep(gateway(g, nats, { subjectPrefix: runPrefix("idle"), handshakeTimeoutMs: 300, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const started = Date.now();
    const c = await handPeer(port, idle, g);
    expect(decodePkt(await c.receive())).toMatchObject({ kind: "authenticate", nodeId: g.pub });
    expect(gw.pendingHandshakes).toBe(1);
    expect((await c.closed).code).toBe("PEER_CLOSED");
    expect(Date.now() - started).toBeGreaterThanOrEqual(250);
    await until(() => gw.pendingHandshakes === 0, 2000, "pending cleared");
    expect(gw.peers).toEqual([]);
  });

  it("shrugs off garbage before and after the handshake, and keeps serving", async () => {
    const [g, peer] = [nodeKey(), nodeKey()];
    const gw = keep(gateway(g, nats, { subjectPrefix: runPrefix("junk"), handshakeTimeoutMs: 1000, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const { randomBytes } = await import("node:crypto");
    for (const n of [1, 49, 50, 51, 200, 5000]) {
      const s = await dial(port);
      s.on("error", () => undefined);
      const closed = new Promise((r) => s.on("close", r));
      s.write(randomBytes(n));
      if (n < 50) s.end();
      await closed;
    }
    // Garbage after act three is a bad MAC: dropped, not a crash.
    const raw = await dial(port);
    raw.on("error", () => undefined);
    await initiate(raw, {
      localStatic: peer.pub,
      staticEcdh: localStaticEcdh(peer.priv),
      remoteStatic: g.pub,
    });
    const rawClosed = new Promise((r) => raw.on("close", r));
    raw.write(randomBytes(100));
    await rawClosed;
    const ok = await handPeer(port, peer, g);
    await authenticate(ok, { nodeId: peer.pub, signSession: localSignSession(peer.priv), ack: 0n });
    await until(() => gw.peers.includes(peer.hex), 2000, "peer after garbage");
    ok.close();
  });

  it("refuses a wrong session_sig and a node_id mismatch with an error", async () => {
    const [g, peer, other] = [nodeKey(), nodeKey(), nodeKey()];
    const p = runPrefix("auth");
    const gw = keep(gateway(g, nats, { subjectPrefix: p, log }));
    const port = await gw.listen(0, "127.0.0.1");
    const events = collect(nats, `${p}.*.events`);
    await events.ready;

    // session_sig over the wrong digest.
    const c1 = await handPeer(port, peer, g);
    const wrongSig = Buffer.from(ecc.sign(sessionDigest(Buffer.alloc(32, 1)), peer.priv));
    await c1.send(encodePkt({ kind: "authenticate", nodeId: peer.pub, sessionSig: wrongSig, ack: 0n }));
    expect(decodePkt(await c1.receive())).toMatchObject({ kind: "authenticate", nodeId: g.pub });
    expect(decodePkt(await c1.receive())).toMatchObject({
      kind: "error",
      problem: expect.stringMatching(/session_sig/),
    });
    expect(await c1.closed).toMatchObject({ code: "PEER_CLOSED" });

    // node_id of another key, correctly signed by that key.
    const c2 = await handPeer(port, peer, g);
    const otherSig = Buffer.from(ecc.sign(sessionDigest(c2.handshakeHash), other.priv));
    await c2.send(encodePkt({ kind: "authenticate", nodeId: other.pub, sessionSig: otherSig, ack: 0n }));
    expect(decodePkt(await c2.receive())).toMatchObject({ kind: "authenticate" });
    expect(decodePkt(await c2.receive())).toMatchObject({
      kind: "error",
      problem: expect.stringMatching(/node_id/),
    });
    expect(await c2.closed).toMatchObject({ code: "PEER_CLOSED" });

    // A dial to the wrong node id fails in the handshake.
    const gx = keep(gateway(other, nats, { subjectPrefix: p }));
    await expect(gx.connect("127.0.0.1", port, peer.pub)).rejects.toThrow();

    await nats.flush();
    expect(events.msgs).toEqual([]);
    expect(gw.peers).toEqual([]);
    await until(() => gw.pendingHandshakes === 0, 2000, "pending cleared");
  });
});
