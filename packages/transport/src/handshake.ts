import { createHash, randomBytes } from "node:crypto";
import * as ecc from "tiny-secp256k1";
import { decryptWithAD, encryptWithAD, hkdf2, MessageCipher } from "./cipher.js";
import { HandshakeError } from "./errors.js";

/**
 * ECDH of our static private key with `remoteKey`: SHA256(compressed(remoteKey * priv)).
 * Injected so the node key can live in a remote signer.
 */
export type StaticEcdh = (remoteKey: Uint8Array) => Promise<Uint8Array>;

/** Debug hook receiving the spec's named intermediate values (h, ck, ss, temp_k1, ...). Holds secrets. */
export type HandshakeTrace = (name: string, value: Buffer) => void;

export interface HandshakeResult {
  remoteStatic: Buffer;
  /** h after act three: the handshake's transcript hash. */
  handshakeHash: Buffer;
  sendingKey: Buffer;
  receivingKey: Buffer;
  /** ck as it stands before the final HKDF(ck, zero); both directions start rotation from it. */
  chainingKey: Buffer;
  encryptor: MessageCipher;
  decryptor: MessageCipher;
}

export const ACT_ONE_BYTES = 50;
export const ACT_TWO_BYTES = 50;
export const ACT_THREE_BYTES = 66;

const PROTOCOL_NAME = "Noise_XK_secp256k1_ChaChaPoly_SHA256";
const PROLOGUE = "lightning";
const EMPTY = Buffer.alloc(0);

function sha256(...parts: Uint8Array[]): Buffer {
  const hash = createHash("sha256");
  for (const p of parts) hash.update(p);
  return hash.digest();
}

function isCompressedPoint(p: Uint8Array): boolean {
  return p.length === 33 && (p[0] === 2 || p[0] === 3) && ecc.isPoint(p);
}

/** BOLT 8 ECDH: SHA256 of the compressed shared point. */
export function ecdh(priv: Uint8Array, pub: Uint8Array): Buffer {
  const point = ecc.pointMultiply(pub, priv, true);
  if (point === null) throw new Error("ECDH produced the point at infinity");
  return sha256(point);
}

/** StaticEcdh for a private key held in this process. */
export function localStaticEcdh(priv: Uint8Array): StaticEcdh {
  if (!ecc.isPrivate(priv)) throw new Error("static private key is not a valid secp256k1 scalar");
  const key = Uint8Array.from(priv);
  return (remoteKey) => Promise.resolve(ecdh(key, remoteKey));
}

function ephemeralKey(given: Uint8Array | undefined): { priv: Buffer; pub: Buffer } {
  let priv: Buffer;
  if (given !== undefined) {
    if (!ecc.isPrivate(given)) throw new Error("ephemeral private key is not a valid secp256k1 scalar");
    priv = Buffer.from(given);
  } else {
    // A random 32-byte string is out of range with probability ~2^-128, but check anyway.
    do priv = randomBytes(32);
    while (!ecc.isPrivate(priv));
  }
  const pub = ecc.pointFromScalar(priv, true);
  if (pub === null) throw new Error("ephemeral key has no public point");
  return { priv, pub: Buffer.from(pub) };
}

/** Symmetric handshake state (h, ck) shared by both roles. */
class SymmetricState {
  h: Buffer;
  ck: Buffer;
  constructor(
    responderStatic: Uint8Array,
    private readonly trace: HandshakeTrace | undefined,
  ) {
    this.h = sha256(Buffer.from(PROTOCOL_NAME, "ascii"));
    this.ck = this.h;
    this.h = sha256(this.h, Buffer.from(PROLOGUE, "ascii"));
    this.h = sha256(this.h, responderStatic);
  }
  emit(name: string, value: Buffer): void {
    this.trace?.(name, value);
  }
  mixHash(data: Uint8Array): void {
    this.h = sha256(this.h, data);
    this.emit("h", this.h);
  }
  /** ck, temp_k = HKDF(ck, ss); returns temp_k. */
  mixKey(ss: Uint8Array, tempName: string): Buffer {
    this.emit("ss", Buffer.from(ss));
    const [ck, temp] = hkdf2(this.ck, ss);
    this.ck = ck;
    this.emit("ck", ck);
    this.emit(tempName, temp);
    return temp;
  }
  /** Final split: the first key is the initiator's sending key. */
  split(): [Buffer, Buffer] {
    return hkdf2(this.ck, EMPTY);
  }
}

type Act = "one" | "two" | "three";

/** Checks an incoming act's length, version byte and ephemeral key, with the act's error codes. */
function readEphemeralAct(act: "one" | "two", input: Uint8Array): { re: Buffer; c: Buffer } {
  const prefix = act === "one" ? "ACT1" : "ACT2";
  if (input.length !== ACT_ONE_BYTES) {
    throw new HandshakeError(
      `${prefix}_READ_FAILED`,
      `act ${act}: got ${input.length} bytes, expected ${ACT_ONE_BYTES}`,
    );
  }
  const buf = Buffer.from(input);
  if (buf[0] !== 0) {
    throw new HandshakeError(`${prefix}_BAD_VERSION`, `act ${act}: version byte ${buf[0]}, expected 0`);
  }
  const re = buf.subarray(1, 34);
  if (!isCompressedPoint(re)) {
    throw new HandshakeError(
      `${prefix}_BAD_PUBKEY`,
      `act ${act}: ephemeral key ${re.toString("hex")} is not a valid compressed secp256k1 point`,
    );
  }
  return { re, c: buf.subarray(34) };
}

function finish(s: SymmetricState, remoteStatic: Buffer, initiator: boolean): HandshakeResult {
  const [k1, k2] = s.split();
  const [sendingKey, receivingKey] = initiator ? [k1, k2] : [k2, k1];
  return {
    remoteStatic,
    handshakeHash: s.h,
    sendingKey,
    receivingKey,
    chainingKey: s.ck,
    encryptor: new MessageCipher(sendingKey, s.ck),
    decryptor: new MessageCipher(receivingKey, s.ck),
  };
}

interface HandshakeOptions {
  /** Our static public key (33 bytes compressed). */
  localStatic: Uint8Array;
  staticEcdh: StaticEcdh;
  /** Tests only; otherwise a random valid key is generated. */
  ephemeralPriv?: Uint8Array;
  trace?: HandshakeTrace;
}

/** Base for both roles: state guard so acts run once, in order, and never concurrently. */
abstract class Handshake {
  protected readonly s: SymmetricState;
  protected readonly e: { priv: Buffer; pub: Buffer };
  protected readonly localStatic: Buffer;
  protected readonly staticEcdh: StaticEcdh;
  #state: Act | "busy" | "done" | "failed";

  protected constructor(opts: HandshakeOptions, responderStatic: Uint8Array, first: Act) {
    if (!isCompressedPoint(opts.localStatic))
      throw new Error("localStatic must be a 33-byte compressed point");
    this.localStatic = Buffer.from(opts.localStatic);
    this.staticEcdh = opts.staticEcdh;
    this.e = ephemeralKey(opts.ephemeralPriv);
    this.s = new SymmetricState(responderStatic, opts.trace);
    this.#state = first;
  }

  /** Current handshake hash h. */
  get handshakeHash(): Buffer {
    return Buffer.from(this.s.h);
  }

  /** Current chaining key ck. */
  get chainingKey(): Buffer {
    return Buffer.from(this.s.ck);
  }

  /** Runs one step if it is the expected one; a failed step poisons the handshake. */
  protected async step<T>(
    expected: Act,
    name: string,
    next: Act | "done",
    run: () => Promise<T>,
  ): Promise<T> {
    if (this.#state !== expected) {
      throw new Error(`${name} called out of order (handshake state: ${this.#state})`);
    }
    this.#state = "busy";
    try {
      const out = await run();
      this.#state = next;
      return out;
    } catch (err) {
      this.#state = "failed";
      throw err;
    }
  }

  /** Mixes ss into ck, returns [0 || e.pub || encryptWithAD(temp_k, 0, h, "")] and temp_k. */
  protected writeEphemeralAct(ss: Uint8Array, tempName: string): { act: Buffer; temp: Buffer } {
    const temp = this.s.mixKey(ss, tempName);
    const c = encryptWithAD(temp, 0, this.s.h, EMPTY);
    this.s.emit("c", c);
    this.s.mixHash(c);
    return { act: Buffer.concat([Buffer.from([0]), this.e.pub, c]), temp };
  }
}

export interface InitiatorOptions extends HandshakeOptions {
  /** The responder's static public key (33 bytes compressed). */
  remoteStatic: Uint8Array;
}

/** The connecting side: knows the responder's static key in advance. */
export class InitiatorHandshake extends Handshake {
  readonly #remoteStatic: Buffer;

  constructor(opts: InitiatorOptions) {
    if (!isCompressedPoint(opts.remoteStatic)) {
      throw new Error("remoteStatic must be a 33-byte compressed point");
    }
    super(opts, opts.remoteStatic, "one");
    this.#remoteStatic = Buffer.from(opts.remoteStatic);
  }

  /** Act one: 50 bytes to send. */
  actOne(): Promise<Buffer> {
    return this.step("one", "actOne", "two", () => {
      this.s.mixHash(this.e.pub);
      return Promise.resolve(this.writeEphemeralAct(ecdh(this.e.priv, this.#remoteStatic), "temp_k1").act);
    });
  }

  /** Reads act two (50 bytes) and returns act three (66 bytes) plus the transport keys. */
  actTwoThenThree(act2: Uint8Array): Promise<{ act3: Buffer; result: HandshakeResult }> {
    return this.step("two", "actTwoThenThree", "done", async () => {
      const { re, c } = readEphemeralAct("two", act2);
      this.s.emit("re", re);
      this.s.mixHash(re);
      const tempK2 = this.s.mixKey(ecdh(this.e.priv, re), "temp_k2");
      if (decryptWithAD(tempK2, 0, this.s.h, c) === null) {
        throw new HandshakeError("ACT2_BAD_TAG", "act two: MAC does not verify");
      }
      this.s.mixHash(c);

      // Act three: send our static key encrypted, then prove we hold its private key.
      const encStatic = encryptWithAD(tempK2, 1, this.s.h, this.localStatic);
      this.s.emit("c", encStatic);
      this.s.mixHash(encStatic);
      const tempK3 = this.s.mixKey(await this.staticEcdh(re), "temp_k3");
      const t = encryptWithAD(tempK3, 0, this.s.h, EMPTY);
      this.s.emit("t", t);
      const act3 = Buffer.concat([Buffer.from([0]), encStatic, t]);
      return { act3, result: finish(this.s, this.#remoteStatic, true) };
    });
  }
}

/** The listening side: learns the initiator's static key in act three. */
export class ResponderHandshake extends Handshake {
  #tempK2: Buffer = EMPTY;

  constructor(opts: HandshakeOptions) {
    super(opts, opts.localStatic, "one");
  }

  /** Reads act one (50 bytes) and returns act two (50 bytes). */
  actOneThenTwo(act1: Uint8Array): Promise<Buffer> {
    return this.step("one", "actOneThenTwo", "three", async () => {
      const { re, c } = readEphemeralAct("one", act1);
      this.s.emit("re", re);
      this.s.mixHash(re);
      const tempK1 = this.s.mixKey(await this.staticEcdh(re), "temp_k1");
      if (decryptWithAD(tempK1, 0, this.s.h, c) === null) {
        throw new HandshakeError("ACT1_BAD_TAG", "act one: MAC does not verify");
      }
      this.s.mixHash(c);

      this.s.emit("e.pub", this.e.pub);
      this.s.mixHash(this.e.pub);
      const { act, temp } = this.writeEphemeralAct(ecdh(this.e.priv, re), "temp_k2");
      this.#tempK2 = temp;
      return act;
    });
  }

  /** Reads act three (66 bytes); returns the initiator's static key and the transport keys. */
  actThree(act3: Uint8Array): Promise<HandshakeResult> {
    return this.step("three", "actThree", "done", () => {
      if (act3.length !== ACT_THREE_BYTES) {
        throw new HandshakeError(
          "ACT3_READ_FAILED",
          `act three: got ${act3.length} bytes, expected ${ACT_THREE_BYTES}`,
        );
      }
      const buf = Buffer.from(act3);
      if (buf[0] !== 0) {
        throw new HandshakeError("ACT3_BAD_VERSION", `act three: version byte ${buf[0]}, expected 0`);
      }
      const encStatic = buf.subarray(1, 50);
      const t = buf.subarray(50);
      const rs = decryptWithAD(this.#tempK2, 1, this.s.h, encStatic);
      if (rs === null) {
        throw new HandshakeError("ACT3_BAD_CIPHERTEXT", "act three: encrypted static key fails its MAC");
      }
      this.s.emit("rs", rs);
      this.s.mixHash(encStatic);
      if (!isCompressedPoint(rs)) {
        throw new HandshakeError(
          "ACT3_BAD_PUBKEY",
          `act three: static key ${rs.toString("hex")} is not a valid compressed secp256k1 point`,
        );
      }
      const tempK3 = this.s.mixKey(ecdh(this.e.priv, rs), "temp_k3");
      if (decryptWithAD(tempK3, 0, this.s.h, t) === null) {
        throw new HandshakeError("ACT3_BAD_TAG", "act three: final MAC does not verify");
      }
      return Promise.resolve(finish(this.s, Buffer.from(rs), false));
    });
  }
}
