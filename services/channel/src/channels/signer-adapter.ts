import { peerFulfilments, type ChannelState, type SignerReply, type SignerRequest } from "@ln/channel-core";
import { closeParamsMsg, commitmentParamsMsg, type SignerClient } from "@ln/signer-client";
import type { CoreSigner } from "./runner.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

/**
 * R of each HTLC of ours the peer fulfilled, while the core's log still holds the removal (until
 * both commitments include it): the signer lets a commitment pay such an HTLC to the peer only
 * against its R (services/signer README, BALANCE_MISMATCH).
 */
export const fulfilledPreimages = (state: ChannelState | undefined): Buffer[] =>
  state ? peerFulfilments(state).map((f) => Buffer.from(f.r, "hex")) : [];

/**
 * The core's signer requests as calls to the signer service. Its policy (DESIGN.md 4) judges each
 * one; a refusal surfaces as the gRPC error and the transition that asked is not continued.
 */
export function grpcCoreSigner(
  client: SignerClient,
  channelIndexOf: (channelId: string) => number,
): CoreSigner {
  return {
    async answer(channelId: string, r: SignerRequest, state?: ChannelState): Promise<SignerReply> {
      const channel = channelIndexOf(channelId);
      const preimages = fulfilledPreimages(state);
      switch (r.kind) {
        case "sign_remote_commitment": {
          const reply = await client.call("SignRemoteCommitment", {
            channel,
            number: r.number,
            params: commitmentParamsMsg(r.params),
            preimages,
          });
          return { kind: r.kind, sig: hex(reply.signature) };
        }
        case "reveal_revocation": {
          const reply = await client.call("RevealRevocation", {
            channel,
            revoke: r.revoke,
            next: r.next,
            signed_commitment: {
              number: r.signedCommitment.number,
              params: commitmentParamsMsg(r.signedCommitment.params),
              their_sig: Buffer.from(r.signedCommitment.theirSig, "hex"),
            },
            preimages,
          });
          return { kind: r.kind, preimage: hex(reply.preimage), nextHash: hex(reply.next_hash) };
        }
        case "sign_close": {
          const reply = await client.call("SignClose", { channel, params: closeParamsMsg(r.params) });
          return { kind: r.kind, sig: hex(reply.signature) };
        }
      }
    },
  };
}

/**
 * The peer revoked its commitment: the signer records it (DESIGN.md 4), so that later it signs
 * justice for that commitment and nothing else.
 */
export async function recordPeerRevocation(
  client: SignerClient,
  channel: number,
  revoked: { number: bigint; preimage: string },
): Promise<void> {
  await client.call("RecordPeerRevocation", {
    channel,
    number: revoked.number,
    preimage: Buffer.from(revoked.preimage, "hex"),
  });
}
