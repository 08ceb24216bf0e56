/** `authenticate`: the first message of a connection, checked against the session (DESIGN.md 3). */
import { decodePkt, encodePkt, WireError, type Pkt } from "@ln/proto";
import { AuthenticateError, authenticate, sessionDigest, type NoiseConnection } from "@ln/transport";
import * as ecc from "tiny-secp256k1";
import { ACCEPTED, check, codedErrors, type TargetSpec } from "../target.js";
import { pktCorpus } from "./pkt.js";
import { realSession } from "./transport.js";

const ourPriv = Buffer.alloc(32, 0x31);
const peerPriv = Buffer.alloc(32, 0x32);
const pubOf = (priv: Buffer): Buffer => Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);

/**
 * A connection whose first received message is `first`: records what is sent and whether it was
 * closed. Only the members `authenticate` uses, so a cast stands in for the socket-bound class.
 */
function fakeConnection(first: Buffer, remoteStatic: Buffer, handshakeHash: Buffer) {
  const sent: Buffer[] = [];
  let closed = false;
  const conn = {
    remoteStatic,
    handshakeHash,
    send: (m: Uint8Array): Promise<void> => {
      sent.push(Buffer.from(m));
      return Promise.resolve();
    },
    receive: (): Promise<Buffer> => Promise.resolve(first),
    close: (): void => {
      closed = true;
    },
  };
  return { conn: conn as unknown as NoiseConnection, sent, isClosed: () => closed };
}

export const authenticateTarget: TargetSpec = {
  name: "authenticate",
  weight: 10,
  what: "the peer's first message after a real handshake: authenticated, or an AuthenticateError with `error` sent first (draft 6.3)",
  async create() {
    const s = await realSession();
    const hh = s.responder.handshakeHash;
    const peer = pubOf(peerPriv);
    const valid = (ack?: bigint): Buffer =>
      encodePkt({
        kind: "authenticate",
        nodeId: peer,
        sessionSig: Buffer.from(ecc.sign(sessionDigest(hh), peerPriv)),
        ...(ack === undefined ? {} : { ack }),
      });
    const others = (await pktCorpus()).filter((p) => p.kind !== "authenticate").slice(0, 20);
    // Our own signature, made once: the target is the check of theirs.
    const ourSig = Buffer.from(ecc.sign(sessionDigest(hh), ourPriv));
    return {
      name: "authenticate",
      corpus: [valid(), valid(0n), valid(7n), valid(2n ** 64n - 1n), ...others.map((p: Pkt) => encodePkt(p))],
      protoFrom: 0,
      typed: codedErrors(AuthenticateError),
      async run(input) {
        const c = fakeConnection(input, peer, hh);
        try {
          const r = await authenticate(c.conn, {
            nodeId: pubOf(ourPriv),
            signSession: () => Promise.resolve(ourSig),
            ack: 0n,
          });
          check(r.remoteNodeId.equals(peer), "authenticated as another node than the handshake's");
          return ACCEPTED;
        } catch (e) {
          if (e instanceof AuthenticateError) {
            // Draft 6.3: a failed connection gets an `error` first, unless the peer's own error failed it.
            const answer = c.sent[1];
            if (e.code === "PEER_ERROR") check(answer === undefined, "an error answered with an error");
            else {
              let reply: Pkt | WireError | undefined;
              try {
                reply = answer && decodePkt(answer);
              } catch (w) {
                if (!(w instanceof WireError)) throw w;
                reply = w;
              }
              check(
                reply !== undefined && !(reply instanceof WireError) && reply.kind === "error",
                `${e.code} without an error sent`,
              );
            }
            check(c.isClosed(), `${e.code} without closing the connection`);
          }
          throw e;
        }
      },
    };
  },
};
