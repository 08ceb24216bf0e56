/**
 * The crash points of a forward (issue 15), crashed at on the forwarding node B by
 * forward-crash-points.test.ts. crash-points.test.ts counts them as covered there, so that every
 * point of CRASH_POINTS is crashed at by one test or the other.
 */
export const FORWARD_CRASH_POINTS: readonly string[] = [
  "channel.forward.incoming_committed",
  "channel.forward.row_written",
  "channel.forward.outgoing_added",
  "channel.forward.r_downstream",
  "channel.forward.before_upstream_fulfil",
];
