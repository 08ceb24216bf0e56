export {
  ackFor,
  checkOpenChannel,
  createChannel,
  htlcsToSettle,
  ourFulfilments,
  peerFulfilments,
  MAX_OFFERED_HTLCS,
  stagedViews,
  step,
  stepAll,
  type Steps,
  unrevokedCommitments,
} from "./channel.js";
export { signerAhead, type SignerChannelStatus } from "./data-loss.js";
export {
  deadlineReached,
  delayBlocks,
  earliestExpiry,
  EXPIRY_TOO_SOON,
  htlcDeadlinePassed,
  overdueHtlc,
  redemptionDeadline,
  type DeadlineMargin,
} from "./htlc-deadlines.js";
export * from "./types.js";
export * from "./views.js";
export * from "./serialize.js";
