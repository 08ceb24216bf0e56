/** BOLT #4: onion peeling, hop payloads, failure messages, error packets and their unwrapping. */
import { createHash, createHmac } from "node:crypto";
import {
  buildOnion,
  createErrorPacket,
  decodeErrorPacket,
  decodeFailReason,
  decodeFailure,
  decodeHopPayload,
  encodeFailure,
  encodeHopPayload,
  encodeMalformedReason,
  OnionError,
  peelOnion,
  wrapErrorPacket,
  type Failure,
} from "@ln/onion";
import * as ecc from "tiny-secp256k1";
import { craft, localEcdh } from "../../../packages/onion/test/helpers.js";
import { ACCEPTED, check, codedErrors, type TargetSpec } from "../target.js";

const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();
const hmac = (key: Buffer, data: Buffer): Buffer => createHmac("sha256", key).update(data).digest();
const umKey = (secret: Buffer): Buffer => hmac(Buffer.from("um"), secret);

// Byte 0 of an input says what the rest goes to.
const OPS = [
  "peel",
  "error-packet",
  "hop-payload",
  "failure",
  "fail-reason",
  "crafted-peel",
  "crafted-error",
] as const;

export const onionTarget: TargetSpec = {
  name: "onion",
  weight: 60,
  what: `byte 0 picks ${OPS.join(", ")}; crafted-*: the rest is sealed with a valid HMAC first, so it reaches the payload and failure decoders`,
  async create() {
    const key = sha256(Buffer.from("fuzz node"));
    const pub = Buffer.from(ecc.pointFromScalar(key, true) as Uint8Array);
    const ad = Buffer.alloc(32, 0x42);
    const payloads = [
      encodeHopPayload({ amtToForwardMsat: 5000n, outgoingCltvValue: 900, shortChannelId: 3n }),
      encodeHopPayload({
        amtToForwardMsat: 5000n,
        outgoingCltvValue: 900,
        paymentData: { paymentSecret: Buffer.alloc(32, 7), totalMsat: 5000n },
      }),
    ];
    const built = buildOnion({
      sessionKey: sha256(Buffer.from("fuzz session")),
      hops: payloads.map((payload) => ({ nodeId: pub, payload })),
      associatedData: ad,
    });
    const peeled = await peelOnion(built.packet, ad, localEcdh(key));
    const secrets = built.sharedSecrets;
    const failures: Failure[] = [
      { name: "temporary_node_failure" },
      { name: "incorrect_or_unknown_payment_details", htlcMsat: 5000n, height: 900 },
      { name: "fee_insufficient", htlcMsat: 5000n, channelUpdate: Buffer.alloc(40, 1) },
      { name: "invalid_onion_hmac", sha256OfOnion: sha256(built.packet) },
    ] as Failure[];
    const errorPackets = failures.flatMap((f) => {
      const atLast = createErrorPacket(secrets[1] as Buffer, encodeFailure(f));
      return [
        createErrorPacket(secrets[0] as Buffer, encodeFailure(f)),
        wrapErrorPacket(secrets[0] as Buffer, atLast),
      ];
    });
    const op = (o: (typeof OPS)[number], b: Buffer): Buffer =>
      Buffer.concat([Buffer.from([OPS.indexOf(o)]), b]);
    const crafted = Buffer.alloc(1300);
    (payloads[0] as Buffer).copy(crafted);
    const corpus = [
      op("peel", built.packet),
      op("peel", peeled.kind === "forward" ? peeled.next : built.packet),
      ...errorPackets.map((p) => op("error-packet", p)),
      ...payloads.map((p) => op("hop-payload", p)),
      ...failures.map((f) => op("failure", encodeFailure(f))),
      ...errorPackets.map((p) => op("fail-reason", p)),
      op("fail-reason", encodeMalformedReason(0xc005, sha256(built.packet))),
      op("crafted-peel", crafted),
      ...failures.map((f) => {
        const m = encodeFailure(f);
        const body = Buffer.concat([
          Buffer.from([m.length >> 8, m.length & 0xff]),
          m,
          Buffer.from([0, 4]),
          Buffer.alloc(4),
        ]);
        return op("crafted-error", body);
      }),
    ];
    const craftKey = sha256(Buffer.from("fuzz crafted"));
    return {
      name: "onion",
      corpus,
      typed: codedErrors(OnionError),
      async run(input) {
        const rest = input.subarray(1);
        switch (OPS[(input[0] ?? 0) % OPS.length]) {
          case "peel":
          case "crafted-peel": {
            let packet = rest;
            if ((input[0] ?? 0) % OPS.length === OPS.indexOf("crafted-peel")) {
              const clear = Buffer.alloc(1300);
              rest.copy(clear);
              packet = craft(clear, pub, craftKey, ad).packet;
            }
            const p = await peelOnion(packet, ad, localEcdh(key));
            if (p.kind === "forward") check(p.next.length === 1366, "a next onion of the wrong size");
            return ACCEPTED;
          }
          case "error-packet": {
            const r = decodeErrorPacket(secrets, rest);
            check(r.hop >= 0 && r.hop < secrets.length, `an error from hop ${r.hop}`);
            return ACCEPTED;
          }
          case "hop-payload":
            decodeHopPayload(rest);
            return ACCEPTED;
          case "failure":
            encodeFailure(decodeFailure(rest));
            return ACCEPTED;
          case "fail-reason":
            decodeFailReason(rest);
            return ACCEPTED;
          default: {
            // An error packet made by the last hop around any body: its HMAC is right, its content not.
            const secret = secrets[1] as Buffer;
            const sealed = Buffer.concat([hmac(umKey(secret), rest), rest]);
            const packet = wrapErrorPacket(secrets[0] as Buffer, wrapErrorPacket(secret, sealed));
            const r = decodeErrorPacket(secrets, packet);
            check(r.hop === 1, `a packet sealed by hop 1 read as hop ${r.hop}'s`);
            return ACCEPTED;
          }
        }
      },
    };
  },
};
