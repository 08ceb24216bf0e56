/**
 * BOLT #4's own test vectors (/work/shared/vectors, copied unchanged from bolt04/onion-test.json
 * and onion-error-test.json): the onion built byte for byte, peeled hop by hop with each hop's
 * private key, and the error packet of the last hop as it reaches the payer.
 */
import { createHash, createHmac } from "node:crypto";
import { readFileSync } from "node:fs";
import * as ecc from "tiny-secp256k1";
import { describe, expect, it } from "vitest";
import {
  buildOnion,
  cipherStream,
  createErrorPacket,
  decodeErrorPacket,
  decodeHopPayload,
  encodeFailure,
  encodeHopPayload,
  FAILURE_CODES,
  generateKey,
  ONION_PACKET_BYTES,
  peelOnion,
  wrapErrorPacket,
  type Ecdh,
  type HopPayload,
} from "@ln/onion";
import { ERROR_TRACE } from "./bolt04-error-trace.js";

interface OnionVector {
  generate: {
    session_key: string;
    associated_data: string;
    hops: { pubkey: string; payload: string }[];
  };
  onion: string;
  decode: string[];
}
interface ErrorVector {
  generate: {
    session_key: string;
    failure_message: string;
    hops: {
      pubkey: string;
      hop_shared_secret: string;
      ammag_key: string;
      um_key?: string;
      payload?: string;
    }[];
  };
  errorpacket: string;
}

const load = <T>(name: string): T =>
  JSON.parse(readFileSync(new URL(`../../../../shared/vectors/${name}`, import.meta.url), "utf8")) as T;
const onionVector = load<OnionVector>("bolt04-onion.json");
const errorVector = load<ErrorVector>("bolt04-onion-error.json");
const hex = (s: string): Buffer => Buffer.from(s, "hex");
const sha256 = (b: Uint8Array): Buffer => createHash("sha256").update(b).digest();

/** The node's ECDH, as the signer does it: SHA256 of the compressed point priv * P. */
const localEcdh =
  (priv: Buffer): Ecdh =>
  (point) =>
    Promise.resolve(sha256(ecc.pointMultiply(point, priv, true)!));

// The payloads as BOLT #4 spells them, read by hand from the vector's bytes.
const paymentSecret = hex("24a33562c54507a9334e79f0dc4f17d407e6d7c61f0e2f3d0d38599502f61704");
const EXPECTED: HopPayload[] = [
  { amtToForwardMsat: 15000n, outgoingCltvValue: 1500, shortChannelId: 1n },
  { amtToForwardMsat: 14000n, outgoingCltvValue: 1400, shortChannelId: 2n },
  { amtToForwardMsat: 12500n, outgoingCltvValue: 1250, shortChannelId: 3n },
  { amtToForwardMsat: 10000n, outgoingCltvValue: 1000, shortChannelId: 4n },
  { amtToForwardMsat: 10000n, outgoingCltvValue: 1000, paymentData: { paymentSecret, totalMsat: 10000n } },
];

// secp256k1's group order, for computing the ephemeral keys independently of the package.
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const toBig = (b: Buffer): bigint => BigInt(`0x${b.toString("hex")}`);
const toKey = (n: bigint): Buffer => hex(n.toString(16).padStart(64, "0"));
const pub = (priv: Buffer): Buffer => Buffer.from(ecc.pointFromScalar(priv, true)!);

const { generate } = onionVector;
const hops = generate.hops.map((h) => ({ nodeId: hex(h.pubkey), payload: hex(h.payload) }));
const sessionKey = hex(generate.session_key);
const associatedData = hex(generate.associated_data);

describe("bolt04-onion.json", () => {
  it("the hand-read payloads: each hop's decoded TLVs, and the encodings of the hops with no extra TLV", () => {
    for (const [i, h] of hops.entries()) expect(decodeHopPayload(h.payload)).toEqual(EXPECTED[i]);
    // Hops 1 and 4 carry unknown odd TLVs (513 and 301), which we skip and cannot re-encode.
    expect(encodeHopPayload(EXPECTED[0]!).toString("hex")).toBe("1202023a98040205dc06080000000000000001");
    expect(encodeHopPayload(EXPECTED[2]!).toString("hex")).toBe(generate.hops[2]!.payload);
    expect(encodeHopPayload(EXPECTED[3]!).toString("hex")).toBe(generate.hops[3]!.payload);
  });

  it("buildOnion gives the vector's 1,366-byte packet byte for byte", () => {
    const { packet, sharedSecrets } = buildOnion({ sessionKey, hops, associatedData });
    expect(packet.length).toBe(ONION_PACKET_BYTES);
    expect(packet.toString("hex")).toBe(onionVector.onion);
    expect(sharedSecrets.map((s) => s.toString("hex"))).toEqual(
      errorVector.generate.hops.map((h) => h.hop_shared_secret),
    );
  });

  it("each hop peels its layer with its own key: its payload, the next packet, and the last hop is final", async () => {
    let packet = hex(onionVector.onion);
    let ephemeral = toBig(sessionKey);
    for (const [i, privHex] of onionVector.decode.entries()) {
      const priv = hex(privHex);
      expect(pub(priv).equals(hops[i]!.nodeId)).toBe(true);
      // Independently: the ephemeral key hop i sees and the shared secret it derives.
      expect(packet.subarray(1, 34).equals(pub(toKey(ephemeral)))).toBe(true);
      const secret = sha256(ecc.pointMultiply(hops[i]!.nodeId, toKey(ephemeral), true)!);
      const peeled = await peelOnion(packet, associatedData, localEcdh(priv));
      expect(peeled.payload).toEqual(EXPECTED[i]);
      expect(peeled.sharedSecret.equals(secret)).toBe(true);
      if (i < hops.length - 1) {
        if (peeled.kind !== "forward") throw new Error(`hop ${i} is not a forward`);
        expect(peeled.next.length).toBe(ONION_PACKET_BYTES);
        expect(peeled.next[0]).toBe(0);
        packet = peeled.next;
        ephemeral = (ephemeral * toBig(sha256(Buffer.concat([pub(toKey(ephemeral)), secret])))) % N;
      } else {
        expect(peeled.kind).toBe("final");
      }
    }
  });

  it("the wrong key, or other associated data, is invalid_onion_hmac with the shared secret", async () => {
    const packet = hex(onionVector.onion);
    for (const [ad, key] of [
      [associatedData, hex(onionVector.decode[1]!)],
      [Buffer.alloc(32, 0x43), hex(onionVector.decode[0]!)],
    ] as const) {
      const e = await peelOnion(packet, ad, localEcdh(key)).catch((x: unknown) => x);
      expect(e).toMatchObject({ name: "OnionError", code: "INVALID_HMAC" });
      expect(e).toHaveProperty("failure", { name: "invalid_onion_hmac", sha256OfOnion: sha256(packet) });
      expect(e).toHaveProperty("sharedSecret");
    }
  });
});

describe("bolt04-onion-error.json", () => {
  const ehops = errorVector.generate.hops;
  const secrets = ehops.map((h) => hex(h.hop_shared_secret));

  it("each hop's ammag key, and the failing hop's um key", () => {
    for (const h of ehops)
      expect(generateKey("ammag", hex(h.hop_shared_secret)).toString("hex")).toBe(h.ammag_key);
    const last = ehops[4]!;
    expect(generateKey("um", hex(last.hop_shared_secret)).toString("hex")).toBe(last.um_key);
  });

  it("the failing hop's packet, every layer on the way back byte for byte, and the payer reading hop 4's temporary_node_failure", () => {
    const message = hex(errorVector.generate.failure_message);
    expect(encodeFailure({ name: "temporary_node_failure" }).equals(message)).toBe(true);
    const created = createErrorPacket(secrets[4]!, message);
    expect(created.length).toBe(292);
    // Without its ammag layer: HMAC under um, then the vector's payload (u16 len, message, u16 pad len, pad).
    const clear = wrapErrorPacket(secrets[4]!, created);
    expect(clear.subarray(32).toString("hex")).toBe(ehops[4]!.payload);
    const um = hex(ehops[4]!.um_key!);
    expect(clear.subarray(0, 32).equals(createHmac("sha256", um).update(clear.subarray(32)).digest())).toBe(
      true,
    );
    // Each hop's ammag stream and the packet as it passes it on, as BOLT #4's text prints them.
    let packet = clear;
    for (const { hop, stream, packet: expected } of ERROR_TRACE) {
      expect(cipherStream(generateKey("ammag", secrets[hop]!), 292).toString("hex"), `hop ${hop}`).toBe(
        stream,
      );
      packet = hop === 4 ? created : wrapErrorPacket(secrets[hop]!, packet);
      expect(packet.toString("hex"), `hop ${hop}`).toBe(expected);
    }
    expect(packet.toString("hex")).toBe(errorVector.errorpacket);
    const decoded = decodeErrorPacket(secrets, packet);
    expect(decoded).toEqual({ hop: 4, failure: { name: "temporary_node_failure" } });
    expect(FAILURE_CODES[decoded.failure.name as "temporary_node_failure"]).toBe(0x2002);
  });
});
