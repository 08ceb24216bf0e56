/**
 * The seed key from a file (SIGNER_SEED_KEY_FILE), and the seed bound to the signer's database
 * (startup.ts): a seed file next to an empty state, a new seed next to existing state, or another
 * seed's state refuse the start; a normal restart does not.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sha256 } from "@ln/bitcoin";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { encryptSeed, KeyRing, readSeedKeyFile } from "../src/keys.js";
import { openSeed, seedFingerprint } from "../src/startup.js";
import { SignerStore } from "../src/store.js";
import { DATABASE_URL, signerCode } from "./helpers.js";

const dir = mkdtempSync(join(tmpdir(), "signer-seed-state-"));
const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
const schemas: string[] = [];

afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
  rmSync(dir, { recursive: true, force: true });
});

async function freshStore(): Promise<SignerStore> {
  const schema = `signer_seed_${randomBytes(6).toString("hex")}`;
  schemas.push(schema);
  const store = new SignerStore(pool, schema);
  await store.migrate();
  return store;
}

const codeOf = (p: Promise<unknown>): Promise<string | undefined> => signerCode(() => p);

const file = (name: string, contents: string | Buffer, mode: number): string => {
  const path = join(dir, name);
  writeFileSync(path, contents);
  chmodSync(path, mode);
  return path;
};

/** The seed fingerprint, SHA256(label || node pubkey), computed here independently of seedFingerprint. */
const fingerprintOf = (nodePub: Buffer): Buffer =>
  sha256(Buffer.concat([Buffer.from("ln-signer seed fingerprint v1"), nodePub]));

describe("SIGNER_SEED_KEY_FILE", () => {
  const key = randomBytes(32);

  it("holds 64 hex characters (a trailing newline allowed) or 32 raw bytes", async () => {
    expect((await readSeedKeyFile(file("hex", key.toString("hex"), 0o600))).equals(key)).toBe(true);
    expect((await readSeedKeyFile(file("hex-nl", `${key.toString("hex")}\n`, 0o400))).equals(key)).toBe(true);
    expect((await readSeedKeyFile(file("raw", key, 0o440))).equals(key)).toBe(true);
  });

  it("refuses a file others may read or the group may write, and anything but a key", async () => {
    const hex = key.toString("hex");
    expect(await codeOf(readSeedKeyFile(file("world", hex, 0o644)))).toBe("BAD_SEED_KEY_FILE");
    expect(await codeOf(readSeedKeyFile(file("group-w", hex, 0o660)))).toBe("BAD_SEED_KEY_FILE");
    expect(await codeOf(readSeedKeyFile(file("short", hex.slice(2), 0o600)))).toBe("BAD_SEED_KEY_FILE");
    expect(await codeOf(readSeedKeyFile(file("not-hex", "zz".repeat(32), 0o600)))).toBe("BAD_SEED_KEY_FILE");
    expect(await codeOf(readSeedKeyFile(file("raw33", randomBytes(33), 0o600)))).toBe("BAD_SEED_KEY_FILE");
    expect(await codeOf(readSeedKeyFile(join(dir, "absent")))).toBe("CONFIG");
    expect(await codeOf(readSeedKeyFile(dir))).toBe("BAD_SEED_KEY_FILE");
  });
});

describe("the seed bound to the signer's state", () => {
  const key = randomBytes(32);

  it("first start: a new seed, its fingerprint recorded; a restart opens the same seed", async () => {
    const store = await freshStore();
    const seedFile = join(dir, "first.seed");
    const first = await openSeed(store, seedFile, key, "test");
    expect(first.created).toBe(true);
    expect(existsSync(seedFile)).toBe(true);
    const expected = fingerprintOf(first.keys.nodePub);
    expect((await store.seedState()).fingerprint?.equals(expected)).toBe(true);
    expect(seedFingerprint(first.keys).equals(expected)).toBe(true);
    await store.newChannel();
    const again = await openSeed(store, seedFile, key, "test");
    expect(again).toMatchObject({ created: false, adopted: false });
    expect(again.keys.nodePub.equals(first.keys.nodePub)).toBe(true);
  });

  it("an existing seed file next to an empty schema: STATE_MISSING, nothing written", async () => {
    const seedFile = join(dir, "existing.seed");
    writeFileSync(seedFile, encryptSeed(randomBytes(32), key), { mode: 0o600 });
    const store = await freshStore();
    expect(await codeOf(openSeed(store, seedFile, key, "test"))).toBe("STATE_MISSING");
    expect((await store.seedState()).fingerprint).toBeUndefined();
  });

  it("no seed file next to a schema with state: SEED_MISSING, no seed file created", async () => {
    const store = await freshStore();
    await openSeed(store, join(dir, "used.seed"), key, "test");
    await store.newChannel();
    const fresh = join(dir, "fresh-path.seed");
    expect(await codeOf(openSeed(store, fresh, key, "test"))).toBe("SEED_MISSING");
    expect(existsSync(fresh)).toBe(false);
    // Even with only the fingerprint (a first start that died before writing its seed file).
    const bare = await freshStore();
    await bare.recordSeedFingerprint(randomBytes(32));
    expect(await codeOf(openSeed(bare, fresh, key, "test"))).toBe("SEED_MISSING");
    expect(existsSync(fresh)).toBe(false);
  });

  it("another seed than the state's: SEED_STATE_MISMATCH", async () => {
    const store = await freshStore();
    await openSeed(store, join(dir, "a.seed"), key, "test");
    const other = join(dir, "b.seed");
    writeFileSync(other, encryptSeed(randomBytes(32), key), { mode: 0o600 });
    expect(await codeOf(openSeed(store, other, key, "test"))).toBe("SEED_STATE_MISMATCH");
  });

  it("state from before fingerprints (channels, no fingerprint): the seed is adopted, then held to", async () => {
    const store = await freshStore();
    await store.newChannel();
    const seed = randomBytes(32);
    const seedFile = join(dir, "legacy.seed");
    writeFileSync(seedFile, encryptSeed(seed, key), { mode: 0o600 });
    const opened = await openSeed(store, seedFile, key, "test");
    expect(opened).toMatchObject({ created: false, adopted: true });
    expect((await store.seedState()).fingerprint?.equals(fingerprintOf(new KeyRing(seed).nodePub))).toBe(
      true,
    );
    const other = join(dir, "legacy-other.seed");
    writeFileSync(other, encryptSeed(randomBytes(32), key), { mode: 0o600 });
    expect(await codeOf(openSeed(store, other, key, "test"))).toBe("SEED_STATE_MISMATCH");
  });
});
