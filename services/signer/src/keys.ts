/**
 * The master seed (encrypted at rest) and every key derived from it (README.md "Keys").
 * Private keys never leave this module except to sign inside the signer process.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from "node:crypto";
import { constants } from "node:fs";
import { link, open, readFile, stat, unlink } from "node:fs/promises";
import { sha256 } from "@ln/bitcoin";
import { commitmentIndex, generateFromSeed } from "@ln/shachain";
import { BIP32Factory, type BIP32Interface } from "bip32";
import * as ecc from "tiny-secp256k1";
import { SignerError } from "./errors.js";

const bip32 = BIP32Factory(ecc);

// Seed file: version (1) || nonce (12) || GCM tag (16) || encrypted seed (32), AAD = SEED_AAD.
const SEED_FILE_VERSION = 1;
const SEED_AAD = Buffer.from("ln-signer master seed v1");
const SEED_FILE_LENGTH = 1 + 12 + 16 + 32;

export function encryptSeed(seed: Uint8Array, key: Uint8Array): Buffer {
  if (seed.length !== 32) throw new SignerError("BAD_SEED_FILE", "the master seed is 32 bytes");
  if (key.length !== 32) throw new SignerError("CONFIG", "the seed key is 32 bytes");
  const nonce = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", key, nonce);
  cipher.setAAD(SEED_AAD);
  const body = Buffer.concat([cipher.update(seed), cipher.final()]);
  return Buffer.concat([Buffer.of(SEED_FILE_VERSION), nonce, cipher.getAuthTag(), body]);
}

export function decryptSeed(file: Uint8Array, key: Uint8Array, where = "the seed file"): Buffer {
  if (key.length !== 32) throw new SignerError("CONFIG", "the seed key is 32 bytes");
  if (file.length !== SEED_FILE_LENGTH || file[0] !== SEED_FILE_VERSION)
    throw new SignerError(
      "BAD_SEED_FILE",
      `${where} is not a version ${SEED_FILE_VERSION} signer seed file (${file.length} bytes)`,
    );
  const buf = Buffer.from(file);
  const decipher = createDecipheriv("aes-256-gcm", key, buf.subarray(1, 13));
  decipher.setAAD(SEED_AAD);
  decipher.setAuthTag(buf.subarray(13, 29));
  try {
    return Buffer.concat([decipher.update(buf.subarray(29)), decipher.final()]);
  } catch {
    throw new SignerError(
      "WRONG_SEED_KEY",
      `${where} does not decrypt under the key of SIGNER_SEED_KEY_FILE: the key is wrong or the file is corrupted; refusing to start`,
    );
  }
}

/**
 * The seed file's key from SIGNER_SEED_KEY_FILE (a mounted Secret or a file a KMS agent writes):
 * exactly 32 bytes, or 64 hex characters with an optional trailing newline. Refused if others
 * may read it or anyone but its owner may write it (0400, 0440 and 0600 pass: a Kubernetes Secret
 * volume with an fsGroup adds group read).
 */
export async function readSeedKeyFile(path: string): Promise<Buffer> {
  const what = `the seed key file ${path} (SIGNER_SEED_KEY_FILE)`;
  let mode: number;
  let contents: Buffer;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new SignerError("BAD_SEED_KEY_FILE", `${what} is not a regular file`);
    mode = st.mode & 0o777;
    contents = await readFile(path);
  } catch (e) {
    if (e instanceof SignerError) throw e;
    throw new SignerError("CONFIG", `cannot read ${what}: ${e instanceof Error ? e.message : String(e)}`);
  }
  if ((mode & 0o037) !== 0) {
    contents.fill(0);
    throw new SignerError(
      "BAD_SEED_KEY_FILE",
      `${what} has mode 0${mode.toString(8)}: others may read it or more than its owner may write it; make it 0400 or 0600 (chmod, or the Secret volume's defaultMode)`,
    );
  }
  if (contents.length === 32) return contents;
  const text = contents.toString("latin1").replace(/\r?\n$/, "");
  contents.fill(0);
  if (!/^[0-9a-fA-F]{64}$/.test(text))
    throw new SignerError(
      "BAD_SEED_KEY_FILE",
      `${what} holds neither 64 hex characters nor 32 bytes (${contents.length} bytes); make one with: openssl rand -hex 32`,
    );
  return Buffer.from(text, "hex");
}

/** Reads and decrypts the seed file; undefined if there is none. */
export async function readSeedFile(path: string, key: Uint8Array): Promise<Buffer | undefined> {
  let contents: Buffer;
  try {
    contents = await readFile(path);
  } catch (e) {
    if (e instanceof Error && "code" in e && e.code === "ENOENT") return undefined;
    throw e;
  }
  return decryptSeed(contents, key, path);
}

/**
 * Writes `seed` to a new seed file at `path`: to a temporary file with mode 0600, synced, then
 * linked into place, which fails (EEXIST) rather than replace an existing seed file.
 */
export async function createSeedFile(path: string, key: Uint8Array, seed: Uint8Array): Promise<void> {
  const tmp = `${path}.${process.pid}.tmp`;
  const handle = await open(tmp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    await handle.writeFile(encryptSeed(seed, key));
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
}

/** BIP32 paths (README.md). Purpose 1017' keeps them apart from any wallet standard. */
export const PATHS = {
  node: "m/1017'/0'/0'",
  commit: (channel: number): string => `m/1017'/1'/${channel}'/0'`,
  final: (channel: number): string => `m/1017'/1'/${channel}'/1'`,
  shachain: (channel: number): string => `m/1017'/1'/${channel}'/2'`,
  wallet: (index: number): string => `m/1017'/2'/${index}'`,
  /** Its private key is the HMAC key of the invoice preimages (never a signing key). */
  invoice: "m/1017'/3'/0'",
} as const;

const INVOICE_LABEL = Buffer.from("ln-signer invoice");

/** A hardened index: 0 .. 2^31 - 1. */
export const MAX_INDEX = 0x7fff_ffff;

export interface KeyPair {
  pub: Buffer;
  priv: Buffer;
}

export interface ChannelKeys {
  index: number;
  commit: KeyPair;
  final: KeyPair;
  /** 32 bytes: the seed of our revocation preimages (draft 5). */
  shachainSeed: Buffer;
}

function checkIndex(index: number, what: string): void {
  if (!Number.isInteger(index) || index < 0 || index > MAX_INDEX)
    throw new SignerError("INVALID_REQUEST", `${what} ${index} is not in 0..${MAX_INDEX}`);
}

function pair(node: BIP32Interface): KeyPair {
  const priv = node.privateKey;
  if (priv === undefined) throw new Error("derived a public-only node");
  return { pub: Buffer.from(node.publicKey), priv: Buffer.from(priv) };
}

/** Every key of the node, derived on demand from the master seed (channel keys cached). */
export class KeyRing {
  readonly #root: BIP32Interface;
  readonly #node: KeyPair;
  readonly #channels = new Map<number, ChannelKeys>();
  readonly #invoiceKey: Buffer;

  constructor(seed: Uint8Array) {
    if (seed.length !== 32) throw new SignerError("BAD_SEED_FILE", "the master seed is 32 bytes");
    this.#root = bip32.fromSeed(Buffer.from(seed));
    this.#node = pair(this.#root.derivePath(PATHS.node));
    this.#invoiceKey = pair(this.#root.derivePath(PATHS.invoice)).priv;
  }

  get nodePub(): Buffer {
    return this.#node.pub;
  }

  /** The node key pair: for ECDH and the session signature only. */
  get node(): KeyPair {
    return this.#node;
  }

  channel(index: number): ChannelKeys {
    checkIndex(index, "channel index");
    let keys = this.#channels.get(index);
    if (keys === undefined) {
      keys = {
        index,
        commit: pair(this.#root.derivePath(PATHS.commit(index))),
        final: pair(this.#root.derivePath(PATHS.final(index))),
        shachainSeed: pair(this.#root.derivePath(PATHS.shachain(index))).priv,
      };
      this.#channels.set(index, keys);
    }
    return keys;
  }

  wallet(index: number): KeyPair {
    checkIndex(index, "wallet key index");
    return pair(this.#root.derivePath(PATHS.wallet(index)));
  }

  /**
   * R of invoice `index`: HMAC-SHA256(key = the private key at PATHS.invoice, message =
   * "ln-signer invoice" || uint32be(index)). Secret until RevealInvoice.
   */
  invoicePreimage(index: number): Buffer {
    checkIndex(index, "invoice index");
    const msg = Buffer.alloc(INVOICE_LABEL.length + 4);
    INVOICE_LABEL.copy(msg);
    msg.writeUInt32BE(index, INVOICE_LABEL.length);
    return createHmac("sha256", this.#invoiceKey).update(msg).digest();
  }

  /** The payment hash of invoice `index`: SHA256(R). */
  invoiceHash(index: number): Buffer {
    return sha256(this.invoicePreimage(index));
  }

  /** Our revocation preimage for commitment `number` of channel `index`. Secret until revealed. */
  revocationPreimage(index: number, number: bigint): Buffer {
    return generateFromSeed(this.channel(index).shachainSeed, commitmentIndex(checkNumber(number)));
  }

  revocationHash(index: number, number: bigint): Buffer {
    return sha256(this.revocationPreimage(index, number));
  }
}

const MAX_NUMBER = 0xffff_ffff_ffff_ffffn;

export function checkNumber(n: bigint): bigint {
  if (n < 0n || n > MAX_NUMBER)
    throw new SignerError("INVALID_REQUEST", `commitment number ${n} is not 64-bit`);
  return n;
}
