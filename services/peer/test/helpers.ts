import { once } from "node:events";
import net from "node:net";
import { randomBytes } from "node:crypto";
import * as ecc from "tiny-secp256k1";
import { connect as natsConnect, type NatsConnection } from "nats";
import { encodePkt, type Pkt } from "@ln/proto";
import { initiate, localSignSession, localStaticEcdh, type NoiseConnection } from "@ln/transport";
import { PeerGateway, type PeerGatewayOptions } from "../src/index.js";
import { testNatsUrl } from "@ln/testkit";

export const NATS_URL = testNatsUrl();

export interface NodeKey {
  priv: Buffer;
  pub: Buffer;
  hex: string;
}

export function nodeKey(): NodeKey {
  for (;;) {
    const priv = randomBytes(32);
    if (!ecc.isPrivate(priv)) continue;
    const pub = Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array);
    return { priv, pub, hex: pub.toString("hex") };
  }
}

/** A subject prefix no other run uses. */
export const runPrefix = (name: string): string => `t${randomBytes(6).toString("hex")}.${name}`;

export const natsConn = (): Promise<NatsConnection> => natsConnect({ servers: NATS_URL });

export function gateway(
  key: NodeKey,
  nats: NatsConnection,
  extra: Partial<PeerGatewayOptions> = {},
): PeerGateway {
  return new PeerGateway({
    nodeId: key.pub,
    staticEcdh: localStaticEcdh(key.priv),
    signSession: localSignSession(key.priv),
    nats,
    ackFor: () => Promise.resolve(0n),
    ...extra,
  });
}

export async function until(cond: () => boolean, timeoutMs = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Every message on `subject`, in arrival order. Await `ready` before causing traffic. */
export function collect(nats: NatsConnection, subject: string): { msgs: Buffer[]; ready: Promise<void> } {
  const msgs: Buffer[] = [];
  const sub = nats.subscribe(subject);
  void (async () => {
    for await (const m of sub) msgs.push(Buffer.from(m.data));
  })();
  return { msgs, ready: nats.flush() };
}

export async function dial(port: number): Promise<net.Socket> {
  const s = net.connect(port, "127.0.0.1");
  await once(s, "connect");
  return s;
}

/** A peer driven by hand: the BOLT #8 handshake only, authenticate is the test's business. */
export async function handPeer(port: number, key: NodeKey, gatewayKey: NodeKey): Promise<NoiseConnection> {
  return initiate(await dial(port), {
    localStatic: key.pub,
    staticEcdh: localStaticEcdh(key.priv),
    remoteStatic: gatewayKey.pub,
  });
}

/** A varied, valid pkt for message number i. */
export function samplePkt(i: number): Buffer {
  const kinds: Pkt[] = [
    { kind: "update_fee", feeRate: 1000 + i },
    { kind: "update_fulfill_htlc", id: BigInt(i), r: Buffer.alloc(32, i & 0xff) },
    { kind: "update_fail_htlc", id: BigInt(i), reason: Buffer.from(`reason ${i}`) },
    { kind: "close_clearing" },
  ];
  return encodePkt(kinds[i % kinds.length] as Pkt);
}

/** A top-level protobuf varint field appended to a pkt: odd numbers may be ignored, even must not. */
export function withField(pkt: Buffer, fieldNumber: number): Buffer {
  const tag = fieldNumber << 3; // wire type 0
  const varint: number[] = [];
  for (let v = tag; ;) {
    if (v < 0x80) {
      varint.push(v);
      break;
    }
    varint.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  return Buffer.concat([pkt, Buffer.from([...varint, 1])]);
}
