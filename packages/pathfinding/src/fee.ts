import { msat, type Msat } from "@ln/bitcoin";

/**
 * What a forwarder charges to forward `amountMsat` (the amount it sends on, BOLT #7):
 * fee_base_msat + floor(amount * fee_proportional_millionths / 1e6).
 */
export const forwardingFee = (
  p: { feeBaseMsat: Msat | bigint; feeProportionalMillionths: bigint },
  amountMsat: Msat | bigint,
): Msat => msat(p.feeBaseMsat + (amountMsat * p.feeProportionalMillionths) / 1_000_000n);
