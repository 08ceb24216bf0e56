/**
 * pnpm bench:transport — throughput of our BOLT #8 message layer against node:crypto's raw
 * chacha20-poly1305 on the same bytes (the ratio is the figure to watch; aim >= 0.9), and
 * handshakes per second with in-process ECDH.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import * as ecc from "tiny-secp256k1";
import { InitiatorHandshake, localStaticEcdh, MessageCipher, ResponderHandshake } from "@ln/transport";

const MESSAGE_BYTES = 65535; // the largest message: "64 KiB" as the transport allows it
const MESSAGES = 2000;
const ROUNDS = 7;
const message = randomBytes(MESSAGE_BYTES);
const key = randomBytes(32);

// A BOLT #8 frame is two AEADs each way: the 2-byte length and the body. The baseline does
// exactly those with raw node:crypto, so the ratio is the cost of our layer (framing, nonces,
// rotation, buffers), not of the protocol's shape. The single-AEAD figure is printed for scale.
function ours(): void {
  const enc = new MessageCipher(key, key);
  const dec = new MessageCipher(key, key);
  for (let i = 0; i < MESSAGES; i++) {
    const [header, body, mac] = enc.encryptMessageParts(message);
    dec.decryptLength(header);
    dec.decryptBody(Buffer.concat([body, mac])); // as the socket delivers it: contiguous
  }
}

const nonce = Buffer.alloc(12);
function seal(n: number, pt: Buffer): [Buffer, Buffer] {
  nonce.writeUInt32LE(n, 4);
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  const ct = c.update(pt);
  c.final();
  return [ct, c.getAuthTag()];
}
function open(n: number, ct: Buffer, tag: Buffer): Buffer {
  nonce.writeUInt32LE(n, 4);
  const d = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  d.setAuthTag(tag);
  const pt = d.update(ct);
  d.final();
  return pt;
}

function rawFrame(): void {
  const length = Buffer.from([0xff, 0xff]);
  for (let i = 0; i < MESSAGES; i++) {
    const [lct, ltag] = seal(2 * i, length);
    const [ct, tag] = seal(2 * i + 1, message);
    open(2 * i, lct, ltag);
    open(2 * i + 1, Buffer.concat([ct, tag]).subarray(0, ct.length), tag);
  }
}

function rawBodyOnly(): void {
  for (let i = 0; i < MESSAGES; i++) {
    const [ct, tag] = seal(i, message);
    open(i, ct, tag);
  }
}

function mbPerSecond(run: () => void): number {
  const t0 = process.hrtime.bigint();
  run();
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return (MESSAGES * MESSAGE_BYTES) / seconds / 1e6;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

async function handshakesPerSecond(): Promise<number> {
  const key = (fill: number): { priv: Buffer; pub: Buffer } => {
    const priv = Buffer.alloc(32, fill);
    return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true) as Uint8Array) };
  };
  const a = key(1);
  const b = key(2);
  const n = 300;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) {
    const init = new InitiatorHandshake({
      localStatic: a.pub,
      staticEcdh: localStaticEcdh(a.priv),
      remoteStatic: b.pub,
    });
    const resp = new ResponderHandshake({ localStatic: b.pub, staticEcdh: localStaticEcdh(b.priv) });
    const act2 = await resp.actOneThenTwo(await init.actOne());
    const { act3 } = await init.actTwoThenThree(act2);
    await resp.actThree(act3);
  }
  return n / (Number(process.hrtime.bigint() - t0) / 1e9);
}

ours(); // warm up every path
rawFrame();
rawBodyOnly();
const runs = { ours: [] as number[], frame: [] as number[], body: [] as number[] };
for (let r = 0; r < ROUNDS; r++) {
  // Interleaved so all see the same machine load.
  runs.ours.push(mbPerSecond(ours));
  runs.frame.push(mbPerSecond(rawFrame));
  runs.body.push(mbPerSecond(rawBodyOnly));
}
const o = median(runs.ours);
const f = median(runs.frame);
console.log(`encrypt+decrypt of ${MESSAGES} messages of ${MESSAGE_BYTES} bytes, median of ${ROUNDS} rounds`);
console.log(`  transport (MessageCipher, key rotation every 500 messages): ${o.toFixed(1)} MB/s`);
console.log(`  baseline: raw node:crypto chacha20-poly1305, same two AEADs: ${f.toFixed(1)} MB/s`);
console.log(`  ratio transport/baseline: ${(o / f).toFixed(3)} (aim >= 0.9)`);
console.log(
  `  for scale, raw node:crypto on the body alone:                ${median(runs.body).toFixed(1)} MB/s`,
);
console.log(`handshakes (both sides, in-process ECDH): ${(await handshakesPerSecond()).toFixed(0)} /s`);
