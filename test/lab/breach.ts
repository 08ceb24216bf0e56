/*~ A cheater's toolkit, for the lab's staged breach and the justice tests (DESIGN.md 7): keep a
 * copy of a commitment a node will later revoke, then broadcast it re-signed with a fresh nonce,
 * so its txid differs from the one the victim saw while its normalized txid does not. It reads
 * the cheater's own channel state and commit key (its row and seed file): what a dishonest
 * operator has. */
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { deserializeState, unrevokedCommitments, type ChannelState } from "@ln/channel-core";
import { decryptSeed, KeyRing } from "@ln/signer-service/embedded";
import { anchorSighash, buildCommitment, finalizeAnchorSpend, lowS, type CommitmentParams } from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";
import pg from "pg";
import * as ecc from "tiny-secp256k1";

/** A commitment of the cheater's, fully signable: its parameters and the victim's signature. */
export interface StaleCommitment {
  channelId: string;
  number: bigint;
  params: CommitmentParams;
  /** The victim's signature on it (compact hex), as the cheater's state holds it. */
  theirSig: string;
  signerChannel: number;
}

/** The cheater's current commitment in its channel state (`signerChannel`: the channel's row). */
export function commitmentOf(state: ChannelState, channelId: string, signerChannel: number): StaleCommitment {
  const ours = unrevokedCommitments(state).ours;
  if (ours === undefined || state.localCommit === undefined)
    throw new Error(`channel ${channelId} has no commitment of ours yet`);
  return {
    channelId,
    number: ours.number,
    params: ours.params,
    theirSig: state.localCommit.theirSig,
    signerChannel,
  };
}

/** The cheater's current commitment, read from its channel service's table. */
export async function keepCommitment(
  adminUrl: string,
  schema: string,
  channelId: string,
): Promise<StaleCommitment> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const r = await client.query<{ state: string; signer_channel: number | null }>(
      `SELECT state, signer_channel FROM "${schema}".channels WHERE id = $1`,
      [channelId],
    );
    const row = r.rows[0];
    if (row === undefined || row.signer_channel === null)
      throw new Error(`no channel ${channelId} in ${schema}`);
    return commitmentOf(deserializeState(row.state), channelId, row.signer_channel);
  } finally {
    await client.end();
  }
}

/**
 * The stale commitment signed by the cheater's commit key with a fresh nonce (extra entropy in
 * RFC 6979), next to the victim's signature: a valid transaction whose txid no one saw before.
 * The key is read from the cheater's seed file.
 */
export function resignCommitment(stale: StaleCommitment, seedFile: string, seedKeyHex: string): Transaction {
  const seed = decryptSeed(readFileSync(seedFile), Buffer.from(seedKeyHex, "hex"));
  return resignWithKey(stale, new KeyRing(seed).channel(stale.signerChannel).commit.priv);
}

/** The same, given the cheater's commit private key of that channel. */
export function resignWithKey(stale: StaleCommitment, commitPriv: Uint8Array): Transaction {
  return signedCommitment(stale, commitPriv, randomBytes(32));
}

/**
 * The commitment with the cheater's signature by `commitPriv` (RFC 6979 with `extraEntropy`, or
 * plain RFC 6979 as its signer signs) and the victim's.
 */
export function signedCommitment(
  stale: StaleCommitment,
  commitPriv: Uint8Array,
  extraEntropy?: Uint8Array,
): Transaction {
  const commitment = buildCommitment(stale.params);
  const digest = anchorSighash(commitment.tx, commitment.anchorRedeemScript);
  const ours = lowS(ecc.sign(digest, commitPriv, extraEntropy));
  const [ourKey, theirKey] = stale.params.anchor.commitKeys;
  return finalizeAnchorSpend(commitment.tx, commitment.anchorRedeemScript, [
    { pubkey: ourKey, compact: ours },
    { pubkey: theirKey, compact: Buffer.from(stale.theirSig, "hex") },
  ]);
}
