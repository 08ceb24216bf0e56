/**
 * The shell's half of data-loss protection (DESIGN.md 6): the signer's records compared with the
 * channel state (channel-core's signerAhead), and the signer refusals that mean our state is
 * behind. A channel found behind is stopped by the core (phase "behind") and never broadcasts.
 */
import type { SignerChannelStatus } from "@ln/channel-core";
import type { SignerClient } from "@ln/signer-client";
import { signerRefusal } from "../onchain/wallet.js";

/** The signer's records of channel `channel` (ChannelStatus). */
export async function signerStatus(signer: SignerClient, channel: number): Promise<SignerChannelStatus> {
  const r = await signer.call("ChannelStatus", { channel });
  return {
    highestRevealed: r.has_revealed ? BigInt(r.highest_revealed) : undefined,
    highestLocalSigned: r.has_local_signed ? BigInt(r.highest_local_signed) : undefined,
    highestRemoteSigned: r.has_remote_signed ? BigInt(r.highest_remote_signed) : undefined,
  };
}

/**
 * Refusals that say our state is behind the signer's: our commitment for broadcast is revoked
 * (SignLocalCommitment), or the commitment we would revoke into is (RevealRevocation). Retrying
 * cannot help; the channel stops instead.
 */
const BEHIND_REFUSALS = new Set(["COMMITMENT_REVOKED", "NEXT_COMMITMENT_REVOKED"]);

/** The signer's refusal text if `e` (or one of the errors it gathers) is such a refusal. */
export function behindRefusal(e: unknown): string | undefined {
  if (e instanceof AggregateError)
    for (const inner of e.errors as unknown[]) {
      const found = behindRefusal(inner);
      if (found !== undefined) return found;
    }
  const r = signerRefusal(e);
  return r !== undefined && BEHIND_REFUSALS.has(r.code) ? r.details : undefined;
}
