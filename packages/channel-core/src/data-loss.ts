/**
 * Data-loss protection (DESIGN.md 6): a node whose stored state is older than the peer's or its
 * own signer's (a restored database) must never broadcast its commitment, which the peer may hold
 * a revocation for. These are the rules that tell; channel.ts stops the channel on them.
 */
import type { ChannelState } from "./types.js";

/** Our state is behind the peer's: the channel stops (phase "behind"). Never escapes `step`. */
export class Behind extends Error {
  constructor(readonly problem: string) {
    super(problem);
  }
}

/** What the signer records of a channel (its ChannelStatus answer); undefined: never done. */
export interface SignerChannelStatus {
  /** The highest commitment of ours whose revocation preimage it revealed. */
  highestRevealed: bigint | undefined;
  /** The highest commitment of ours it saw signed by the peer (with a reveal). */
  highestLocalSigned: bigint | undefined;
  /** The highest commitment of the peer it signed. */
  highestRemoteSigned: bigint | undefined;
}

/**
 * Why the signer's records show a later state than `s`, or undefined if they do not. The shell's
 * order (state durable before the signer is asked) allows the signer one step ahead and no more:
 * a reveal of commitment N - 1 while our state holds N; a signature on the peer's commitment one
 * past its current (the state asking for it may not be stored yet after a crash).
 */
export function signerAhead(s: ChannelState, status: SignerChannelStatus): string | undefined {
  const lc = s.localCommit;
  const rc = s.remoteCommit;
  if (!lc || !rc || !s.opening.anchorSigned) return undefined;
  if (status.highestRevealed !== undefined && status.highestRevealed >= lc.number)
    return `the signer revealed the revocation preimage of our commitment ${status.highestRevealed}, but our state's current commitment is ${lc.number}`;
  if (status.highestLocalSigned !== undefined && status.highestLocalSigned > lc.number)
    return `the signer saw our commitment ${status.highestLocalSigned} signed by the peer, but our state's current commitment is ${lc.number}`;
  if (status.highestRemoteSigned !== undefined && status.highestRemoteSigned > rc.number + 1n)
    return `the signer signed the peer's commitment ${status.highestRemoteSigned}, but our state knows the peer's commitments up to ${(s.remotePending ?? rc).number}`;
  return undefined;
}
