import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type NatsConnection } from "nats";
import {
  decodePeerConnectRequest,
  encodePeerConnectReply,
  encodePeersReply,
  PEER_CONTROL_QUEUE,
  peerControlSubjects,
} from "@ln/proto";
import { connectPeer, listPeers, PeerRequestError } from "../src/peers/peer-requests.js";
import { testNatsUrl } from "@ln/testkit";

let nc: NatsConnection;
const NODE = `03${"cd".repeat(32)}`;
const prefix = (): string => `t${randomBytes(6).toString("hex")}.peer`;

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
});
afterAll(async () => {
  await nc.drain();
});

async function failure(p: Promise<unknown>): Promise<PeerRequestError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(PeerRequestError);
  return e as PeerRequestError;
}

describe("peer gateway requests", () => {
  it("UNAVAILABLE when no gateway serves the prefix, saying to start one", async () => {
    const p = prefix();
    const e = await failure(connectPeer(nc, p, { host: "h", port: 1, nodeId: NODE }));
    expect(e.code).toBe("UNAVAILABLE");
    expect(e.message).toContain(`start the peer gateway for ${p}`);
    expect((await failure(listPeers(nc, p))).code).toBe("UNAVAILABLE");
  });

  it("sends the request, returns the node id, or throws the gateway's code and message", async () => {
    const p = prefix();
    const seen: unknown[] = [];
    let failNext = false;
    nc.subscribe(peerControlSubjects(p).connect, {
      queue: PEER_CONTROL_QUEUE,
      callback: (_e, m) => {
        const req = decodePeerConnectRequest(m.data);
        seen.push(req);
        m.respond(
          encodePeerConnectReply(
            failNext
              ? { ok: false, code: "UNREACHABLE", message: "cannot reach h:1 (ECONNREFUSED)" }
              : { ok: true, nodeId: req.nodeId },
          ),
        );
      },
    });
    nc.subscribe(peerControlSubjects(p).peers, {
      queue: PEER_CONTROL_QUEUE,
      callback: (_e, m) =>
        void m.respond(
          encodePeersReply({ peers: [{ nodeId: NODE, host: "h", port: 1, direction: "outbound" }] }),
        ),
    });
    await nc.flush();
    expect(await connectPeer(nc, p, { host: "h", port: 1, nodeId: NODE })).toEqual({ nodeId: NODE });
    expect(seen).toEqual([{ host: "h", port: 1, nodeId: NODE }]);
    failNext = true;
    const e = await failure(connectPeer(nc, p, { host: "h", port: 1, nodeId: NODE }));
    expect([e.code, e.message]).toEqual(["UNREACHABLE", "cannot reach h:1 (ECONNREFUSED)"]);
    expect(await listPeers(nc, p)).toEqual([{ nodeId: NODE, host: "h", port: 1, direction: "outbound" }]);
  });

  it("TIMEOUT when the gateway does not answer in time, BAD_REPLY when the answer does not decode", async () => {
    const p = prefix();
    nc.subscribe(peerControlSubjects(p).connect, { callback: () => undefined });
    nc.subscribe(peerControlSubjects(p).peers, { callback: (_e, m) => void m.respond(Buffer.from([0xff])) });
    await nc.flush();
    const t = await failure(connectPeer(nc, p, { host: "h", port: 1, nodeId: NODE }, 100));
    expect(t.code).toBe("TIMEOUT");
    expect(t.message).toContain("within 100 ms");
    const b = await failure(listPeers(nc, p));
    expect(b.code).toBe("BAD_REPLY");
  });
});
