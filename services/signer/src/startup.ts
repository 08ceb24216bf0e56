/**
 * Binds the seed to the signer's database (DESIGN.md 4). The policy state (what was revealed,
 * signed for broadcast, revoked) is worth something only next to the seed it was made with: a
 * seed started on an empty database forgets every revealed commitment, and a new seed on an old
 * database (a volume not mounted) is a new node in the old one's place. So the database records a
 * fingerprint of its seed at first start, and every start compares.
 */
import { randomBytes } from "node:crypto";
import { sha256 } from "@ln/bitcoin";
import { SignerError } from "./errors.js";
import { createSeedFile, KeyRing, readSeedFile } from "./keys.js";
import type { SignerStore } from "./store.js";

const FINGERPRINT_LABEL = Buffer.from("ln-signer seed fingerprint v1");

/** SHA256(label || node public key): names the seed without revealing it (or the node id). */
export function seedFingerprint(keys: KeyRing): Buffer {
  return sha256(Buffer.concat([FINGERPRINT_LABEL, keys.nodePub]));
}

export interface OpenedSeed {
  keys: KeyRing;
  /** A new seed file was written (first start). */
  created: boolean;
  /** The fingerprint was recorded now for state made before fingerprints existed. */
  adopted: boolean;
}

/**
 * Opens the seed of `seedFile` against the state in `store` (migrated): refuses a seed file next to
 * a database without state (STATE_MISSING), a database with state but no seed file (SEED_MISSING),
 * and a seed that is not the database's (SEED_STATE_MISMATCH). On first start (neither) it records
 * the new seed's fingerprint before it writes the seed file, so a crash in between leaves a
 * database that names a seed never used, which SEED_MISSING explains.
 */
export async function openSeed(
  store: SignerStore,
  seedFile: string,
  seedKey: Uint8Array,
  where: string,
): Promise<OpenedSeed> {
  const state = await store.seedState();
  const seed = await readSeedFile(seedFile, seedKey);
  if (seed === undefined) {
    if (state.fingerprint !== undefined || state.hasState)
      throw new SignerError(
        "SEED_MISSING",
        `the signer's database (${where}) holds the state of a seed, but the seed file ${seedFile} does not exist: ` +
          "mount the volume that holds it or restore it from its backup (deploy/README.md). Starting with a new seed would make a new node in this one's place. " +
          (state.hasState
            ? "This state has channels: never drop it."
            : "If this database was made by a first start that failed before writing the seed file (no channel was ever opened), drop the schema and start again."),
      );
    const fresh = randomBytes(32);
    const keys = new KeyRing(fresh);
    if (!(await store.recordSeedFingerprint(seedFingerprint(keys))))
      throw new SignerError("SEED_MISSING", `another signer recorded its seed in ${where} at the same time`);
    await createSeedFile(seedFile, seedKey, fresh);
    fresh.fill(0);
    return { keys, created: true, adopted: false };
  }
  const keys = new KeyRing(seed);
  seed.fill(0);
  const fingerprint = seedFingerprint(keys);
  if (state.fingerprint !== undefined) {
    if (!state.fingerprint.equals(fingerprint))
      throw new SignerError(
        "SEED_STATE_MISMATCH",
        `the seed file ${seedFile} is not the seed whose state the signer's database (${where}) holds: ` +
          "point SIGNER_DATABASE_URL/SIGNER_DATABASE_SCHEMA at this seed's database, or SIGNER_SEED_FILE at this database's seed",
      );
    return { keys, created: false, adopted: false };
  }
  if (!state.hasState)
    throw new SignerError(
      "STATE_MISSING",
      `the seed file ${seedFile} exists but the signer's database (${where}) holds no state: ` +
        "restore the signer's own database from its backup, or point SIGNER_DATABASE_URL/SIGNER_DATABASE_SCHEMA at it (deploy/README.md). " +
        "Signing on an empty state would forget which commitments were revoked.",
    );
  // State from a signer that did not record fingerprints yet: this seed is the one it ran with.
  await store.recordSeedFingerprint(fingerprint);
  return { keys, created: false, adopted: true };
}
