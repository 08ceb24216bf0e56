import { edgeKey } from "@ln/pathfinding";

/**
 * What a failed attempt teaches the next one (DESIGN.md 10, "Paying"): pure, from the attempt's
 * route and its decrypted BOLT #4 failure. The payer (payer.ts) recomputes every lesson from the
 * durable attempt rows before each attempt, so a restart continues exactly where it was.
 *
 * hops[i] is the node reached over hops[i].shortChannelId (as route.ts); a failure's `hop` is the
 * index of the node that reported it. A forwarding node's channel failure is about its outgoing
 * channel: hops[hop + 1]'s channel, in the direction from hops[hop].
 */

/** BOLT #4 failure code flags. */
export const BADONION = 0x8000;
export const PERM = 0x4000;
export const NODE = 0x2000;
export const UPDATE = 0x1000;

export interface AttemptHop {
  nodeId: string;
  shortChannelId: bigint;
}

export interface AttemptFailure {
  /** Index in hops of the node that reported it. */
  hop: number;
  /** BOLT #4 failure code. */
  code: number;
  /** The channel_update it carried (empty or absent: none). */
  channelUpdate?: Buffer | undefined;
}

/** One attempt as the payer reads it back: its route and, when it failed, why. */
export interface FailedAttempt {
  hops: readonly AttemptHop[];
  /** Undefined: the failure could not be read (no hop to blame), or our channel refused it. */
  failure: AttemptFailure | undefined;
  /** Our own channel refused to offer the HTLC (no HTLC ever existed). */
  refusedLocally?: boolean;
}

export type Lesson =
  /** Do not use this channel direction again (edgeKey(scid, from)). */
  | { kind: "exclude_edge"; edge: string; why: string }
  /** Do not route through this node again. */
  | { kind: "exclude_node"; node: string; why: string }
  /**
   * The forwarder sent its current channel_update: apply it (the graph may change) and try
   * again; the edge is excluded only if it fails this way a second time.
   */
  | { kind: "apply_update"; edge: string; update: Buffer; why: string }
  /** The payee refused: no other route can help. */
  | { kind: "stop"; why: string };

const hex = (n: number): string => `0x${n.toString(16).padStart(4, "0")}`;

/** The lesson of one failed attempt; `source` is our node id. */
export function lessonOf(source: string, a: FailedAttempt): Lesson {
  const first = a.hops[0];
  if (first === undefined) return { kind: "stop", why: "the attempt had no route" };
  const ourEdge = edgeKey(first.shortChannelId, source);
  if (a.refusedLocally === true || a.failure === undefined)
    // Our channel would not take it, or nobody can be blamed: do not go out that way again.
    return {
      kind: "exclude_edge",
      edge: ourEdge,
      why: "our first channel failed it without a readable reason",
    };
  const { hop, code } = a.failure;
  const last = a.hops.length - 1;
  const reporter = a.hops[hop];
  if (reporter === undefined || hop < 0)
    return { kind: "exclude_edge", edge: ourEdge, why: `a failure from hop ${hop}, outside the route` };
  if (hop === last) return { kind: "stop", why: `the payee refused it (${hex(code)})` };
  // A forwarder (never the payee from here on): its outgoing channel is hops[hop + 1]'s.
  const next = a.hops[hop + 1] as AttemptHop;
  const outEdge = edgeKey(next.shortChannelId, reporter.nodeId);
  if ((code & BADONION) !== 0 || (code & NODE) !== 0)
    return { kind: "exclude_node", node: reporter.nodeId, why: `hop ${hop} failed as a node (${hex(code)})` };
  if ((code & UPDATE) !== 0) {
    const update = a.failure.channelUpdate ?? Buffer.alloc(0);
    return update.length > 0
      ? {
          kind: "apply_update",
          edge: outEdge,
          update,
          why: `hop ${hop} sent its channel_update (${hex(code)})`,
        }
      : { kind: "exclude_edge", edge: outEdge, why: `hop ${hop}'s channel failed (${hex(code)})` };
  }
  if ((code & PERM) !== 0 && code !== (PERM | 1) && code !== (PERM | 22))
    return {
      kind: "exclude_edge",
      edge: outEdge,
      why: `hop ${hop}'s channel failed for good (${hex(code)})`,
    };
  // invalid_realm, invalid_onion_payload, expiry_too_far, mpp_timeout and unknown codes from a
  // forwarder: the node is what we cannot rely on.
  return { kind: "exclude_node", node: reporter.nodeId, why: `hop ${hop} failed it (${hex(code)})` };
}

export interface Exclusions {
  excludedEdges: Set<string>;
  excludedNodes: Set<string>;
  /** Set when an attempt's lesson was to stop: the payment fails with this reason. */
  stop: string | undefined;
}

/**
 * Every lesson of the attempts so far, oldest first, as exclusions: an edge whose channel_update
 * was already applied once and that failed again is excluded.
 */
export function exclusionsOf(source: string, attempts: readonly FailedAttempt[]): Exclusions {
  const out: Exclusions = { excludedEdges: new Set(), excludedNodes: new Set(), stop: undefined };
  const updated = new Set<string>();
  for (const a of attempts) {
    const l = lessonOf(source, a);
    if (l.kind === "exclude_edge") out.excludedEdges.add(l.edge);
    else if (l.kind === "exclude_node") out.excludedNodes.add(l.node);
    else if (l.kind === "apply_update") {
      if (updated.has(l.edge)) out.excludedEdges.add(l.edge);
      updated.add(l.edge);
    } else out.stop ??= l.why;
  }
  return out;
}
