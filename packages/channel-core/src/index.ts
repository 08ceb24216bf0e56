export {
  ackFor,
  checkOpenChannel,
  createChannel,
  MAX_OFFERED_HTLCS,
  stagedViews,
  step,
  unrevokedCommitments,
} from "./channel.js";
export * from "./types.js";
export * from "./views.js";
export * from "./serialize.js";
