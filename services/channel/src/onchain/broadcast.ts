import type { Broadcast } from "@ln/channel-core";
import { closeParamsMsg, commitmentParamsMsg, type SignerClient } from "@ln/signer-client";
import { buildClose, finalizeAnchorSpend } from "@ln/tx";

/**
 * What the core asks to broadcast (draft 6.3, or an agreed close), signed by the signer: the close
 * transaction with the peer's last close signature and ours, or our latest commitment, which only
 * the signer completes (it refuses a revoked one). Returns the transaction hex, or nothing.
 * The anchor's commit keys are ours first, then the peer's, as the core builds them.
 */
export async function signedBroadcast(
  signer: SignerClient,
  channel: number,
  b: Broadcast,
  /** R of HTLCs of ours the peer fulfilled (signer-adapter.ts `fulfilledPreimages`). */
  preimages: readonly Buffer[] = [],
): Promise<string | undefined> {
  switch (b.tx) {
    case "nothing":
      return undefined;
    case "commitment": {
      const reply = await signer.call("SignLocalCommitment", {
        channel,
        number: b.number,
        params: commitmentParamsMsg(b.params),
        their_sig: Buffer.from(b.theirSig, "hex"),
        preimages: [...preimages],
      });
      return reply.tx_hex;
    }
    case "close": {
      const ours = await signer.call("SignClose", { channel, params: closeParamsMsg(b.params) });
      const close = buildClose(b.params);
      const [ourKey, theirKey] = b.params.anchor.commitKeys;
      return finalizeAnchorSpend(close.tx, close.anchorRedeemScript, [
        { pubkey: ourKey, compact: ours.signature },
        { pubkey: theirKey, compact: Buffer.from(b.theirSig, "hex") },
      ]).toHex();
    }
  }
}
