/**
 * The shell's half of data-loss protection (DESIGN.md 6): the signer's records compared with the
 * channel state (channel-core's signerAhead), and the signer refusals that mean our state is
 * behind. A channel found behind is stopped by the core (phase "behind") and never broadcasts.
 */
import type { SignerChannelStatus } from "@ln/channel-core";
import type { ChannelStatusReply, SignerClient } from "@ln/signer-client";
import { signerRefusal } from "../onchain/wallet.js";

const fromReply = (r: ChannelStatusReply): SignerChannelStatus => ({
  highestRevealed: r.has_revealed ? BigInt(r.highest_revealed) : undefined,
  highestLocalSigned: r.has_local_signed ? BigInt(r.highest_local_signed) : undefined,
  highestRemoteSigned: r.has_remote_signed ? BigInt(r.highest_remote_signed) : undefined,
});

/** The signer's records of channel `channel` (ChannelStatus). */
export async function signerStatus(signer: SignerClient, channel: number): Promise<SignerChannelStatus> {
  return fromReply(await signer.call("ChannelStatus", { channel }));
}

/** Signer channels per SignerStatuses call. */
export const STATUSES_PER_CALL = 2000;

/**
 * The signer's records of many channels (SignerStatuses, STATUSES_PER_CALL at a time), by signer
 * channel; a channel the signer never allocated is absent.
 */
export async function signerStatuses(
  signer: SignerClient,
  channels: readonly number[],
): Promise<Map<number, SignerChannelStatus>> {
  const out = new Map<number, SignerChannelStatus>();
  const unique = [...new Set(channels)];
  for (let i = 0; i < unique.length; i += STATUSES_PER_CALL) {
    const r = await signer.call("SignerStatuses", { channels: unique.slice(i, i + STATUSES_PER_CALL) });
    for (const e of r.statuses) if (e.known) out.set(e.channel, fromReply(e.status));
  }
  return out;
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
