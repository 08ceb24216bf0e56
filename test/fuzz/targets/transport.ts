/** BOLT #8: garbage to the handshake acts, and to a receiving transport after a real handshake. */
import { decodePkt, encodePkt, WireError } from "@ln/proto";
import {
  HandshakeError,
  InitiatorHandshake,
  localStaticEcdh,
  MessageCipher,
  ResponderHandshake,
  TransportError,
  type HandshakeResult,
} from "@ln/transport";
import * as ecc from "tiny-secp256k1";
import { ACCEPTED, check, codedErrors, type TargetSpec } from "../target.js";
import { pktCorpus } from "./pkt.js";

const pubOf = (priv: Buffer): Buffer => Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
const lsPriv = Buffer.alloc(32, 0x11);
const rsPriv = Buffer.alloc(32, 0x21);
const ePrivI = Buffer.alloc(32, 0x12);
const ePrivR = Buffer.alloc(32, 0x22);

const initiator = (): InitiatorHandshake =>
  new InitiatorHandshake({
    localStatic: pubOf(lsPriv),
    staticEcdh: localStaticEcdh(lsPriv),
    remoteStatic: pubOf(rsPriv),
    ephemeralPriv: ePrivI,
  });
const responder = (): ResponderHandshake =>
  new ResponderHandshake({
    localStatic: pubOf(rsPriv),
    staticEcdh: localStaticEcdh(rsPriv),
    ephemeralPriv: ePrivR,
  });

export interface Session {
  act1: Buffer;
  act2: Buffer;
  act3: Buffer;
  initiator: HandshakeResult;
  responder: HandshakeResult;
}

let session: Promise<Session> | undefined;
/** One real handshake, made once. */
export function realSession(): Promise<Session> {
  session ??= (async () => {
    const i = initiator();
    const r = responder();
    const act1 = await i.actOne();
    const act2 = await r.actOneThenTwo(act1);
    const { act3, result } = await i.actTwoThenThree(act2);
    return { act1, act2, act3, initiator: result, responder: await r.actThree(act3) };
  })();
  return session;
}

export const handshakeTarget: TargetSpec = {
  name: "handshake",
  weight: 2,
  what: "byte 0 picks act one, two or three; the rest is the act, fed to a fresh handshake at that point",
  async create() {
    const s = await realSession();
    return {
      name: "handshake",
      corpus: [
        Buffer.concat([Buffer.from([0]), s.act1]),
        Buffer.concat([Buffer.from([1]), s.act2]),
        Buffer.concat([Buffer.from([2]), s.act3]),
      ],
      typed: codedErrors(HandshakeError),
      async run(input) {
        const act = input.subarray(1);
        switch ((input[0] ?? 0) % 3) {
          case 0:
            await responder().actOneThenTwo(act);
            return ACCEPTED;
          case 1: {
            const i = initiator();
            await i.actOne();
            const { result } = await i.actTwoThenThree(act);
            check(result.sendingKey.length === 32, "act two accepted without keys");
            return ACCEPTED;
          }
          default: {
            const r = responder();
            await r.actOneThenTwo(s.act1);
            const result = await r.actThree(act);
            check(ecc.isPoint(result.remoteStatic), "act three accepted with a static key that is no point");
            return ACCEPTED;
          }
        }
      },
    };
  },
};

export const framesTarget: TargetSpec = {
  name: "transport-frames",
  weight: 60,
  what: "a byte stream to the receiving side of a real session: lengths and bodies decrypted, bodies decoded as pkts",
  async create() {
    const s = await realSession();
    const receiver = (): MessageCipher =>
      new MessageCipher(s.responder.receivingKey, s.responder.chainingKey);
    const pkts = (await pktCorpus()).map((p) => encodePkt(p));
    const corpus: Buffer[] = [];
    // Streams of one to three real frames, from a fresh sender (nonces from 0, as the receiver's).
    for (let i = 0; i < pkts.length; i++) {
      const send = new MessageCipher(s.initiator.sendingKey, s.initiator.chainingKey);
      const frames = [pkts[i], pkts[(i * 7 + 1) % pkts.length], pkts[(i * 13 + 2) % pkts.length]]
        .slice(0, 1 + (i % 3))
        .map((p) => send.encryptMessage(p as Buffer));
      corpus.push(Buffer.concat(frames));
    }
    return {
      name: "transport-frames",
      corpus,
      typed: codedErrors(TransportError, WireError),
      run(input) {
        const dec = receiver();
        let at = 0;
        while (input.length - at >= 18) {
          const n = dec.decryptLength(input.subarray(at, at + 18));
          check(Number.isInteger(n) && n >= 0 && n <= 65535, `a decrypted length of ${n}`);
          if (input.length - at - 18 < n + 16) break; // the rest of the frame has not arrived
          const body = dec.decryptBody(input.subarray(at + 18, at + 18 + n + 16));
          check(body.length === n, "a body of another length than its header said");
          decodePkt(body);
          at += 18 + n + 16;
        }
        return ACCEPTED;
      },
    };
  },
};
