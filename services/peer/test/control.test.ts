import net from "node:net";
import { once } from "node:events";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { NatsConnection } from "nats";
import {
  decodePeerConnectReply,
  decodePeersReply,
  encodePeerConnectRequest,
  encodePeerResyncRequest,
  encodeAckReply,
  peerControlSubjects,
  peerSubjects,
  type PeerConnectReply,
} from "@ln/proto";
import { DialError, natsAckFor, serveControl, type PeerGateway } from "../src/index.js";
import { gateway, natsConn, nodeKey, runPrefix, until } from "./helpers.js";

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
});

const keep = (g: PeerGateway): PeerGateway => (gateways.push(g), g);

async function freePort(): Promise<number> {
  const s = net.createServer().listen(0, "127.0.0.1");
  await once(s, "listening");
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function ctlConnect(prefix: string, body: Uint8Array): Promise<PeerConnectReply> {
  const m = await nats.request(peerControlSubjects(prefix).connect, body, { timeout: 10_000 });
  return decodePeerConnectReply(m.data);
}

describe("natsAckFor", () => {
  it("refuses without a responder or an answer in time, is the count when answered, an error on garbage", async () => {
    const prefix = runPrefix("ack");
    const peer = nodeKey();
    const ack = natsAckFor(nats, prefix, 200);
    await expect(ack(peer.pub)).rejects.toThrow(/did not answer the ack request/); // no responders
    const subject = peerSubjects(prefix, peer.hex).ack;
    const silent = nats.subscribe(subject, { callback: () => undefined });
    await nats.flush();
    const t0 = Date.now();
    await expect(ack(peer.pub)).rejects.toThrow(/did not answer the ack request/); // timed out
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    silent.unsubscribe();
    let answer: Uint8Array = encodeAckReply(42n);
    const responder = nats.subscribe(subject, { callback: (_e, m) => void m.respond(answer) });
    await nats.flush();
    expect(await ack(peer.pub)).toBe(42n);
    answer = encodeAckReply(18446744073709551615n);
    expect(await ack(peer.pub)).toBe(18446744073709551615n);
    answer = new Uint8Array(); // an ack_reply without its ack: never taken as 0
    await expect(ack(peer.pub)).rejects.toThrow(
      /answer to the ack request did not decode: ack reply without ack/,
    );
    answer = Buffer.from("42"); // the old decimal text
    await expect(ack(peer.pub)).rejects.toThrow(/did not decode/);
    responder.unsubscribe();
  });
});

describe("serveControl", () => {
  it("connects on request, reports failures with codes an operator can act on, lists peers", async () => {
    const [a, b] = [nodeKey(), nodeKey()];
    const [pa, pb] = [runPrefix("a"), runPrefix("b")];
    const ga = keep(gateway(a, nats, { subjectPrefix: pa, log, handshakeTimeoutMs: 1000 }));
    const gb = keep(gateway(b, nats, { subjectPrefix: pb, log, handshakeTimeoutMs: 1000 }));
    serveControl({ nats, prefix: pa, gateway: ga, log });
    serveControl({ nats, prefix: pb, gateway: gb, log });
    await nats.flush();
    const port = await gb.listen(0, "127.0.0.1");

    // A connect_request with host (1) and port (2) but no node_id (3).
    const noNodeId = Buffer.concat([
      Buffer.from([0x0a, 9]),
      Buffer.from("127.0.0.1"),
      Buffer.from([0x10, 1]),
    ]);
    const bad = await ctlConnect(pa, noNodeId);
    expect(bad).toMatchObject({ ok: false, code: "BAD_REQUEST", message: expect.stringMatching(/nodeId/) });

    const closed = await freePort();
    const unreachable = await ctlConnect(
      pa,
      encodePeerConnectRequest({ host: "127.0.0.1", port: closed, nodeId: b.hex }),
    );
    expect(unreachable).toMatchObject({ ok: false, code: "UNREACHABLE" });
    expect(unreachable.ok || unreachable.message).toMatch(`cannot reach 127.0.0.1:${closed} (ECONNREFUSED)`);

    const stranger = nodeKey();
    const wrongKey = await ctlConnect(
      pa,
      encodePeerConnectRequest({ host: "127.0.0.1", port, nodeId: stranger.hex }),
    );
    expect(wrongKey).toMatchObject({ ok: false, code: "HANDSHAKE_FAILED" });
    expect(wrongKey.ok || wrongKey.message).toContain(`check that ${stranger.hex} is the node id`);

    const ok = await ctlConnect(pa, encodePeerConnectRequest({ host: "127.0.0.1", port, nodeId: b.hex }));
    expect(ok).toEqual({ ok: true, nodeId: b.hex });
    // Already connected: ok at once, the connection is kept (no REPLACED).
    expect(
      await ctlConnect(pa, encodePeerConnectRequest({ host: "127.0.0.1", port, nodeId: b.hex })),
    ).toEqual(ok);

    const peersOf = async (prefix: string): Promise<unknown> =>
      decodePeersReply((await nats.request(peerControlSubjects(prefix).peers, new Uint8Array())).data).peers;
    expect(await peersOf(pa)).toEqual([{ nodeId: b.hex, host: "127.0.0.1", port, direction: "outbound" }]);
    expect(await peersOf(pb)).toEqual([
      {
        nodeId: a.hex,
        host: expect.stringMatching(/127\.0\.0\.1$/),
        port: expect.any(Number),
        direction: "inbound",
      },
    ]);
    expect(logs.filter((l) => (l as { event?: string }).event === "disconnected")).toEqual([]);

    // A resync (published to every replica) drops the connection on the side that holds it.
    nats.publish(peerControlSubjects(pb).resync, encodePeerResyncRequest({ nodeId: a.hex }));
    await until(() => gb.peers.length === 0 && ga.peers.length === 0, 5000, "resync drops the connection");
    expect(logs).toContainEqual(
      expect.objectContaining({ event: "disconnected", peer: a.hex, reason: "RESYNC" }),
    );

    await ga.close();
    const after = await ctlConnect(pa, encodePeerConnectRequest({ host: "127.0.0.1", port, nodeId: b.hex }));
    expect(after).toMatchObject({ ok: false, code: "GATEWAY_CLOSED" });
  });

  it("ACK_UNAVAILABLE when the channel service answers the ack request with an error", async () => {
    const [a, b] = [nodeKey(), nodeKey()];
    const [pa, pb] = [runPrefix("a"), runPrefix("b")];
    const ga = keep(gateway(a, nats, { subjectPrefix: pa, ackFor: natsAckFor(nats, pa, 500) }));
    const gb = keep(gateway(b, nats, { subjectPrefix: pb }));
    const port = await gb.listen(0, "127.0.0.1");
    nats.subscribe(peerSubjects(pa, b.hex).ack, { callback: (_e, m) => void m.respond(Buffer.from("oops")) });
    await nats.flush();
    const err = await ga.connect("127.0.0.1", port, b.pub).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DialError);
    expect((err as DialError).code).toBe("ACK_UNAVAILABLE");
    expect((err as DialError).message).toMatch(/channel service/);
  });

  it("a dial that never connects ends as UNREACHABLE at the deadline", async () => {
    const a = nodeKey();
    const ga = keep(gateway(a, nats, { subjectPrefix: runPrefix("a"), handshakeTimeoutMs: 100 }));
    // A non-routable address (TEST-NET-1): the SYN goes nowhere, or the host is unreachable.
    const err = await ga.connect("192.0.2.1", 9735, nodeKey().pub).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DialError);
    expect((err as DialError).code).toBe("UNREACHABLE");
  });
});
