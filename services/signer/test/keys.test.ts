import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@ln/bitcoin";
import { generateFromSeed } from "@ln/shachain";
import { BIP32Factory } from "bip32";
import * as ecc from "tiny-secp256k1";
import { afterAll, describe, expect, it } from "vitest";
import { SignerError } from "../src/errors.js";
import { createSeedFile, decryptSeed, encryptSeed, KeyRing, readSeedFile } from "../src/keys.js";

const dir = mkdtempSync(join(tmpdir(), "signer-seed-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(f: () => unknown): string | undefined {
  try {
    f();
  } catch (e) {
    return e instanceof SignerError ? e.code : `not a SignerError: ${String(e)}`;
  }
  return undefined;
}

describe("seed file (AES-256-GCM)", () => {
  it("round trip: encrypt then decrypt gives the seed; the file is 61 bytes and holds no seed bytes", () => {
    const seed = randomBytes(32);
    const key = randomBytes(32);
    const file = encryptSeed(seed, key);
    expect(file.length).toBe(61);
    expect(file.includes(seed)).toBe(false);
    expect(decryptSeed(file, key).equals(seed)).toBe(true);
  });

  it("a wrong key is refused with WRONG_SEED_KEY; a tampered file too; a foreign file is BAD_SEED_FILE", () => {
    const file = encryptSeed(randomBytes(32), Buffer.alloc(32, 1));
    expect(codeOf(() => decryptSeed(file, Buffer.alloc(32, 2)))).toBe("WRONG_SEED_KEY");
    const tampered = Buffer.from(file);
    tampered[40]! ^= 1;
    expect(codeOf(() => decryptSeed(tampered, Buffer.alloc(32, 1)))).toBe("WRONG_SEED_KEY");
    expect(codeOf(() => decryptSeed(Buffer.alloc(10), Buffer.alloc(32, 1)))).toBe("BAD_SEED_FILE");
  });

  it("created with mode 0600, read back; none before; a wrong key refuses to start", async () => {
    const path = join(dir, "seed.bin");
    const key = randomBytes(32);
    expect(await readSeedFile(path, key)).toBeUndefined();
    const first = { seed: randomBytes(32) };
    await createSeedFile(path, key, first.seed);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect((await readSeedFile(path, key))?.equals(first.seed)).toBe(true);
    // Never over an existing file.
    expect(await createSeedFile(path, key, randomBytes(32)).catch((e: unknown) => e)).toBeInstanceOf(Error);
    const err = await readSeedFile(path, randomBytes(32)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SignerError);
    expect((err as SignerError).code).toBe("WRONG_SEED_KEY");
    expect((err as SignerError).message).toContain(path);
    // The file was not replaced by the failed start.
    expect(decryptSeed(readFileSync(path), key).equals(first.seed)).toBe(true);
  });

  it("a file that is not a seed file is BAD_SEED_FILE", async () => {
    const path = join(dir, "junk.bin");
    writeFileSync(path, "not a seed");
    const err = await readSeedFile(path, randomBytes(32)).catch((e: unknown) => e);
    expect((err as SignerError).code).toBe("BAD_SEED_FILE");
  });
});

describe("key derivation", () => {
  const seed = Buffer.from("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff", "hex");
  // Independent computation: the bip32 library directly, on the paths README.md documents.
  const root = BIP32Factory(ecc).fromSeed(seed);
  const pub = (path: string): string => Buffer.from(root.derivePath(path).publicKey).toString("hex");

  it("is deterministic and follows the documented paths", () => {
    const a = new KeyRing(seed);
    const b = new KeyRing(Buffer.from(seed));
    expect(a.nodePub.toString("hex")).toBe(pub("m/1017'/0'/0'"));
    expect(b.nodePub.equals(a.nodePub)).toBe(true);
    for (const ch of [0, 1, 7, 0x7fff_ffff]) {
      const k = a.channel(ch);
      expect(k.commit.pub.toString("hex")).toBe(pub(`m/1017'/1'/${ch}'/0'`));
      expect(k.final.pub.toString("hex")).toBe(pub(`m/1017'/1'/${ch}'/1'`));
      expect(k.shachainSeed.equals(Buffer.from(root.derivePath(`m/1017'/1'/${ch}'/2'`).privateKey!))).toBe(
        true,
      );
      expect(b.channel(ch).commit.priv.equals(k.commit.priv)).toBe(true);
    }
    expect(a.wallet(3).pub.toString("hex")).toBe(pub("m/1017'/2'/3'"));
  });

  it("channels get distinct keys; revocation hashes are SHA256 of the shachain preimages (n=0 is index 2^64-1)", () => {
    const ring = new KeyRing(seed);
    const keys = [0, 1, 2].flatMap((c) => [
      ring.channel(c).commit.pub,
      ring.channel(c).final.pub,
      ring.nodePub,
    ]);
    expect(new Set(keys.map((k) => k.toString("hex"))).size).toBe(7);
    const s = ring.channel(5).shachainSeed;
    expect(ring.revocationPreimage(5, 0n).equals(generateFromSeed(s, 0xffff_ffff_ffff_ffffn))).toBe(true);
    expect(ring.revocationHash(5, 3n).equals(sha256(generateFromSeed(s, 0xffff_ffff_ffff_fffcn)))).toBe(true);
  });

  it("refuses an index outside the hardened range", () => {
    const ring = new KeyRing(seed);
    expect(codeOf(() => ring.channel(0x8000_0000))).toBe("INVALID_REQUEST");
    expect(codeOf(() => ring.channel(-1))).toBe("INVALID_REQUEST");
  });
});
