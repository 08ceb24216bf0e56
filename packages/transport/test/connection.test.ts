import { once } from "node:events";
import type net from "node:net";
import { decodePkt, encodePkt } from "@ln/proto";
import * as ecc from "tiny-secp256k1";
import {
  authenticate,
  sessionDigest,
  ConnectionClosed,
  initiate,
  InitiatorHandshake,
  localSignSession,
  type MessageCipher,
  localStaticEcdh,
  respond,
  type NoiseConnection,
} from "@ln/transport";
import { afterEach, describe, expect, it } from "vitest";
import { dial, listen, nodeKey, opts, pair } from "./helpers.js";

const alice = nodeKey(0x11);
const bob = nodeKey(0x21);
const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0)) await c();
});

async function connected(extra = {}): Promise<{ initiator: NoiseConnection; responder: NoiseConnection }> {
  const p = await pair(alice, bob, extra);
  cleanups.push(p.close);
  return p;
}

async function closeReason(p: Promise<unknown>): Promise<ConnectionClosed> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(ConnectionClosed);
  return e as ConnectionClosed;
}

describe("an established connection over loopback", () => {
  it("learns the initiator's key, agrees on h, and carries messages both ways across key rotations", async () => {
    const { initiator, responder } = await connected();
    expect(responder.remoteStatic.equals(alice.pub)).toBe(true);
    expect(initiator.remoteStatic.equals(bob.pub)).toBe(true);
    expect(initiator.handshakeHash.equals(responder.handshakeHash)).toBe(true);
    // 1200 messages cross two key rotations (every 500 messages) on each side.
    const sent = Array.from({ length: 1200 }, (_, i) => Buffer.from(`message ${i}`));
    await Promise.all(sent.map((m) => initiator.send(m)));
    for (const m of sent) expect((await responder.receive()).equals(m)).toBe(true);
    const big = Buffer.alloc(65535, 7);
    await responder.send(big);
    await responder.send(Buffer.alloc(0));
    expect((await initiator.receive()).equals(big)).toBe(true);
    expect((await initiator.receive()).length).toBe(0);
  });

  it("refuses to send a message larger than 65535 bytes and stays usable", async () => {
    const { initiator, responder } = await connected();
    await expect(initiator.send(Buffer.alloc(65536))).rejects.toThrow(/65535/);
    await initiator.send(Buffer.from("still here"));
    expect((await responder.receive()).toString()).toBe("still here");
  });

  it("reports a clean close by the peer", async () => {
    const { initiator, responder } = await connected();
    initiator.close();
    expect((await closeReason(responder.receive())).code).toBe("PEER_CLOSED");
    expect((await responder.closed).code).toBe("PEER_CLOSED");
    expect((await initiator.closed).code).toBe("LOCAL_CLOSE");
  });
});

describe("authenticate (DESIGN.md 3)", () => {
  it("exchanges node ids and acks, each side checking the other's session_sig", async () => {
    const { initiator, responder } = await connected();
    const [a, b] = await Promise.all([
      authenticate(initiator, { nodeId: alice.pub, signSession: localSignSession(alice.priv), ack: 7n }),
      authenticate(responder, { nodeId: bob.pub, signSession: localSignSession(bob.priv), ack: 0n }),
    ]);
    expect(a).toEqual({ remoteNodeId: bob.pub, remoteAck: 0n });
    expect(b).toEqual({ remoteNodeId: alice.pub, remoteAck: 7n });
  });

  /** Runs our authenticate on the responder while the initiator sends `first` by hand. */
  async function against(first: Buffer): Promise<{ error: unknown; replies: string[] }> {
    const { initiator, responder } = await connected();
    const ours = authenticate(responder, {
      nodeId: bob.pub,
      signSession: localSignSession(bob.priv),
      ack: 0n,
    });
    await initiator.send(first);
    const error = await ours.then(
      () => undefined,
      (e: unknown) => e,
    );
    const replies: string[] = [];
    for await (const m of initiator) {
      const p = decodePkt(m);
      replies.push(p.kind === "error" ? `error: ${p.problem}` : p.kind);
    }
    return { error, replies };
  }

  it("rejects a node_id that is not the handshake's static key, sending an error", async () => {
    const mallory = nodeKey(0x31);
    // Mallory's own valid signature of some digest: the node_id check comes first.
    const { error, replies } = await against(
      encodePkt({ kind: "authenticate", nodeId: mallory.pub, sessionSig: Buffer.alloc(64, 1) }),
    );
    expect(error).toMatchObject({ code: "NODE_ID_MISMATCH" });
    expect(replies).toEqual(["authenticate", expect.stringMatching(/^error: authenticate: node_id/)]);
  });

  it("rejects a session_sig over another session", async () => {
    const other = await localSignSession(alice.priv)(Buffer.alloc(32, 9));
    const r = await against(
      encodePkt({ kind: "authenticate", nodeId: alice.pub, sessionSig: Buffer.from(other) }),
    );
    expect(r.error).toMatchObject({ code: "BAD_SESSION_SIG" });
    expect(r.replies[1]).toMatch(/session_sig/);
  });

  it("rejects the high-S twin of a valid session_sig", async () => {
    const { initiator, responder } = await connected();
    const ours = authenticate(responder, {
      nodeId: bob.pub,
      signSession: localSignSession(bob.priv),
      ack: 0n,
    });
    const low = Buffer.from(await localSignSession(alice.priv)(Buffer.from(initiator.handshakeHash)));
    // (r, n - s) verifies under plain ECDSA but is not low-S.
    const n = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
    const high = Buffer.concat([
      low.subarray(0, 32),
      Buffer.from(
        (n - BigInt(`0x${low.subarray(32).toString("hex")}`)).toString(16).padStart(64, "0"),
        "hex",
      ),
    ]);
    expect(ecc.verify(sessionDigest(initiator.handshakeHash), alice.pub, high, false)).toBe(true);
    await initiator.send(encodePkt({ kind: "authenticate", nodeId: alice.pub, sessionSig: high }));
    await expect(ours).rejects.toMatchObject({ code: "BAD_SESSION_SIG" });
  });

  it("rejects a first message that is not authenticate, or does not decode", async () => {
    const r1 = await against(encodePkt({ kind: "update_fee", feeRate: 1 }));
    expect(r1.error).toMatchObject({ code: "NOT_AUTHENTICATE" });
    expect(r1.replies[1]).toMatch(/expected authenticate first, got update_fee/);
    const r2 = await against(Buffer.from("2a0308d8085001", "hex"));
    expect(r2.error).toMatchObject({ code: "MALFORMED" });
    expect(r2.replies[1]).toMatch(/unknown even field 10/);
  });

  it("does not answer a peer's error with an error", async () => {
    const r = await against(encodePkt({ kind: "error", problem: "go away" }));
    expect(r.error).toMatchObject({ code: "PEER_ERROR", problem: expect.stringMatching(/go away/) });
    expect(r.replies).toEqual(["authenticate"]);
  });
});

describe("bad peers at the responder: disconnected with a reason, the listener keeps serving", () => {
  async function responderFacing(
    script: (s: net.Socket) => Promise<void>,
    extra = {},
  ): Promise<ConnectionClosed> {
    let result!: Promise<NoiseConnection>;
    const server = await listen((s) => (result = respond(s, opts(bob, extra))));
    cleanups.push(server.close);
    const s = await dial(server.port);
    s.on("error", () => undefined);
    await script(s);
    const reason = await closeReason(result);
    // The same listener still completes a good handshake afterwards.
    const good = await dial(server.port);
    const hs = await initiate(good, { ...opts(alice), remoteStatic: bob.pub });
    expect((await result).remoteStatic.equals(alice.pub)).toBe(true);
    hs.close();
    return reason;
  }

  const actOne = async (): Promise<Buffer> =>
    new InitiatorHandshake({
      localStatic: alice.pub,
      staticEcdh: localStaticEcdh(alice.priv),
      remoteStatic: bob.pub,
    }).actOne();

  it("garbage", async () => {
    const r = await responderFacing(async (s) => {
      s.write(Buffer.alloc(50, 0xab));
    });
    expect(r).toMatchObject({ code: "HANDSHAKE_FAILED", handshakeCode: "ACT1_BAD_VERSION" });
  });

  it("a truncated act one, then hang-up", async () => {
    const r = await responderFacing(async (s) => {
      s.end((await actOne()).subarray(0, 20));
    });
    expect(r).toMatchObject({ code: "HANDSHAKE_FAILED", handshakeCode: "ACT1_READ_FAILED" });
  });

  it("a wrong version byte", async () => {
    const r = await responderFacing(async (s) => {
      const a = await actOne();
      a[0] = 1;
      s.write(a);
    });
    expect(r).toMatchObject({ code: "HANDSHAKE_FAILED", handshakeCode: "ACT1_BAD_VERSION" });
  });

  it("a bad MAC on act one", async () => {
    const r = await responderFacing(async (s) => {
      const a = await actOne();
      a[49] = (a[49] as number) ^ 1;
      s.write(a);
    });
    expect(r).toMatchObject({ code: "HANDSHAKE_FAILED", handshakeCode: "ACT1_BAD_TAG" });
  });

  it("silence past the handshake deadline", async () => {
    const r = await responderFacing(async () => undefined, { handshakeTimeoutMs: 200 });
    expect(r.code).toBe("HANDSHAKE_TIMEOUT");
  });
});

describe("bad frames after the handshake", () => {
  /** A peer driven by hand over a raw socket: it holds its own encryptor to forge frames. */
  async function handPeer(): Promise<{
    socket: net.Socket;
    encryptor: MessageCipher;
    conn: Promise<NoiseConnection>;
  }> {
    let conn!: Promise<NoiseConnection>;
    const server = await listen((s) => (conn = respond(s, opts(bob))));
    cleanups.push(server.close);
    const socket = await dial(server.port);
    socket.on("error", () => undefined);
    const hs = new InitiatorHandshake({
      localStatic: alice.pub,
      staticEcdh: localStaticEcdh(alice.priv),
      remoteStatic: bob.pub,
    });
    socket.write(await hs.actOne());
    const [act2] = (await once(socket, "data")) as [Buffer];
    const { act3, result } = await hs.actTwoThenThree(act2);
    socket.write(act3);
    return { socket, encryptor: result.encryptor, conn };
  }

  it("a bad MAC on a length header disconnects with BAD_MAC", async () => {
    const { socket, encryptor, conn } = await handPeer();
    const frame = encryptor.encryptMessage(Buffer.from("hello"));
    frame[3] = (frame[3] as number) ^ 1; // inside the length header's MAC
    socket.write(frame);
    const responder = await conn;
    expect((await closeReason(responder.receive())).code).toBe("BAD_MAC");
  });

  it("a bad MAC on a body disconnects with BAD_MAC", async () => {
    const { socket, encryptor, conn } = await handPeer();
    const frame = encryptor.encryptMessage(Buffer.from("hello"));
    frame[frame.length - 1] = (frame[frame.length - 1] as number) ^ 1;
    socket.write(frame);
    expect((await closeReason((await conn).receive())).code).toBe("BAD_MAC");
  });

  it("the largest length (65535) with a short body, then hang-up, is a peer close", async () => {
    const { socket, encryptor, conn } = await handPeer();
    socket.end(encryptor.encryptMessage(Buffer.alloc(65535)).subarray(0, 1000));
    expect((await closeReason((await conn).receive())).code).toBe("PEER_CLOSED");
  });
});

describe("backpressure and the buffered-bytes cap", () => {
  it("stops reading a socket whose messages are not consumed, and resumes when they are", async () => {
    const { initiator, responder } = await connected({ maxBufferedBytes: 200_000 });
    const chunk = Buffer.alloc(60_000, 1);
    let sent = 0;
    const sender = (async () => {
      for (let i = 0; i < 200; i++) {
        await initiator.send(chunk);
        sent++;
      }
    })();
    await new Promise((r) => setTimeout(r, 300));
    // TCP pushed back: the sender is blocked well before 200 messages, and we hold at most the cap plus a chunk.
    expect(sent).toBeLessThan(200);
    expect(responder.bufferedInbound).toBeLessThanOrEqual(200_000 + 65_536 + 34);
    for (let i = 0; i < 200; i++) expect((await responder.receive()).length).toBe(60_000);
    await sender;
    expect(sent).toBe(200);
  });

  it("drops a peer that does not read once our send buffer passes the cap", async () => {
    const { initiator } = await connected({ maxBufferedBytes: 70_000 });
    const chunk = Buffer.alloc(60_000, 1);
    const sends = Array.from({ length: 400 }, () => initiator.send(chunk).catch((e: unknown) => e));
    const results = await Promise.all(sends);
    const failure = results.find((r) => r instanceof ConnectionClosed) as ConnectionClosed | undefined;
    expect(failure?.code).toBe("SLOW_PEER");
    expect((await initiator.closed).code).toBe("SLOW_PEER");
  });
});
