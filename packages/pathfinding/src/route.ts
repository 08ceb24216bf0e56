import { msat, type Msat } from "@ln/bitcoin";
import { forwardingFee } from "./fee.js";

/** A channel direction's forwarding terms (the forwarder's channel_update). */
export interface HopPolicy {
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
  htlcMinimumMsat: Msat;
  htlcMaximumMsat: Msat;
}

/** One direction of a channel: `from` forwards to `to` over it under `policy` (from's channel_update). */
export interface Edge {
  shortChannelId: bigint;
  from: string;
  to: string;
  capacityMsat: Msat;
  policy: HopPolicy;
}

export interface RouteQuery {
  source: string;
  destination: string;
  /** What the destination receives. */
  amountMsat: Msat;
  /** The payee's min_final_cltv_expiry_delta. */
  finalCltvDelta: number;
  /** The most the forwarders may charge together. */
  maxFeeMsat: Msat;
  /** The most the forwarders' cltv deltas plus finalCltvDelta may add up to. */
  maxTotalCltvDelta: number;
  /** edgeKey(scid, from) of channel directions not to use. */
  excludedEdges?: ReadonlySet<string>;
  /** Nodes never used as an intermediate hop (excluding the source or the destination: no route). */
  excludedNodes?: ReadonlySet<string>;
  /** Risk cost per msat per block, in billionths (default DEFAULT_RISK_FACTOR). */
  riskFactor?: number;
}

/**
 * Same shape as services/channel/src/payments/route.ts RouteHop: hops[i] is the node reached over
 * shortChannelId, with the fee/delta its forwarder (hops[i-1], or us for i=0 -> zero) charges.
 */
export interface PathHop {
  nodeId: string;
  shortChannelId: bigint;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
}

export type RouteResult =
  | { ok: true; hops: PathHop[]; amountMsat: Msat /* we send */; feeMsat: Msat; cltvDelta: number }
  | { ok: false; reason: string };

/** BOLT #4: at most 20 hops fit the onion (payments/route.ts MAX_ROUTE_HOPS). */
export const MAX_HOPS = 20;
/**
 * The risk cost of a forwarding hop is floor(amount_msat * cltv_expiry_delta * riskFactor / 1e9):
 * the amount the forwarder receives, locked for the blocks it adds. 15 is lnd's default
 * (RiskFactorBillionths): 1,000,000 sat held 144 blocks costs 2,160 msat, about the fee of a
 * 1,000 msat + 1 ppm channel for that amount.
 */
export const DEFAULT_RISK_FACTOR = 15;
/**
 * Non-dominated labels kept per node. Only a dense graph reaches it; past it new labels are dropped
 * and the route found may not be the cheapest (the one approximation of the search).
 */
const MAX_LABELS_PER_NODE = 64;

const U64_MAX = 0xffff_ffff_ffff_ffffn;
/** riskFactor is taken to 6 decimal places: risk = amount * delta * round(riskFactor * 1e6) / 1e15. */
const RISK_SCALE = 1_000_000_000_000_000n;

export const edgeKey = (shortChannelId: bigint, from: string): string => `${shortChannelId}:${from}`;

/** A partial route from a node to the destination, built backwards (the search's state). */
interface Label {
  node: number;
  /** The edge leaving `node` toward the destination; undefined at the destination. */
  edge: Edge | undefined;
  parent: Label | undefined;
  /** The HTLC amount that reaches `node`. */
  amount: bigint;
  /** The forwarders' deltas downstream of `node`, plus the final delta. */
  cltv: number;
  /** Fees plus risk downstream of `node`. */
  cost: bigint;
  hops: number;
  seq: number;
  dead: boolean;
}

interface Limits {
  maxFee: bigint;
  maxCltv: number;
}

/**
 * The cheapest route (fees plus risk, see DEFAULT_RISK_FACTOR) from q.source to q.destination that
 * delivers q.amountMsat, within every edge's capacity and HTLC bounds, the fee and expiry limits, the
 * exclusions and MAX_HOPS. Searched backwards from the destination (as lnd and CLN do) so that each
 * hop's amount includes the fees of the hops after it. The source's own edges charge no fee and
 * add no delta (our channel), so hops[0] has a zero fee and delta as planRoute requires.
 *
 * The search keeps, per node, every partial route not dominated by another (cheaper or equal, no
 * larger amount, expiry or hop count), so the limits cannot hide a feasible route behind a cheaper
 * infeasible one. Ties go the same way whatever the edges' order (they are sorted by scid, then
 * forwarder). A failure's reason starts with what limited it: "invalid query", "excluded",
 * "no path", "hop limit", "capacity", "fee limit", "expiry limit", "fee limit or expiry limit" (each
 * alone blocks a different route), "fee limit and expiry limit" (only lifting both finds one).
 */
export function findRoute(edges: readonly Edge[], q: RouteQuery): RouteResult {
  const invalid = checkQuery(q);
  if (invalid !== undefined) return { ok: false, reason: `invalid query: ${invalid}` };
  if (q.source === q.destination)
    return { ok: false, reason: "invalid query: the source is the destination (paying ourselves)" };
  const excludedNodes = q.excludedNodes ?? new Set<string>();
  if (excludedNodes.has(q.destination)) return { ok: false, reason: "excluded: the destination is excluded" };
  if (excludedNodes.has(q.source)) return { ok: false, reason: "excluded: the source is excluded" };

  const graph = new Graph(edges, q);
  const riskMicro = BigInt(Math.round((q.riskFactor ?? DEFAULT_RISK_FACTOR) * 1e6));
  const limits: Limits = { maxFee: q.maxFeeMsat, maxCltv: q.maxTotalCltvDelta };
  const found = search(graph, q, riskMicro, limits);
  if (found !== undefined) return toRoute(graph, q, found);
  return { ok: false, reason: diagnose(edges, graph, q, riskMicro) };
}

function checkQuery(q: RouteQuery): string | undefined {
  if (q.amountMsat <= 0n || q.amountMsat > U64_MAX)
    return `amount ${q.amountMsat} msat is not a positive u64`;
  if (q.maxFeeMsat < 0n) return `maxFeeMsat ${q.maxFeeMsat} is negative`;
  if (!Number.isSafeInteger(q.finalCltvDelta) || q.finalCltvDelta < 0)
    return `finalCltvDelta ${q.finalCltvDelta} is not a non-negative integer`;
  if (!Number.isSafeInteger(q.maxTotalCltvDelta) || q.maxTotalCltvDelta < 0)
    return `maxTotalCltvDelta ${q.maxTotalCltvDelta} is not a non-negative integer`;
  const rf = q.riskFactor ?? DEFAULT_RISK_FACTOR;
  if (!Number.isFinite(rf) || rf < 0 || rf > 1e9) return `riskFactor ${rf} is not from 0 to 1e9`;
  return undefined;
}

/** Fees and deltas that fit their BOLT #7 fields; anything else could not be a channel_update. */
const usablePolicy = (e: Edge): boolean => {
  const p = e.policy;
  return (
    p.feeBaseMsat >= 0n &&
    p.feeBaseMsat <= 0xffff_ffffn &&
    p.feeProportionalMillionths >= 0n &&
    p.feeProportionalMillionths <= 0xffff_ffffn &&
    Number.isInteger(p.cltvExpiryDelta) &&
    p.cltvExpiryDelta >= 0 &&
    p.cltvExpiryDelta <= 0xffff &&
    p.htlcMinimumMsat >= 0n &&
    e.capacityMsat >= 0n
  );
};

const compareEdges = (a: Edge, b: Edge): number =>
  a.shortChannelId < b.shortChannelId
    ? -1
    : a.shortChannelId > b.shortChannelId
      ? 1
      : a.from < b.from
        ? -1
        : a.from > b.from
          ? 1
          : 0;

/** The usable edges, by the node they reach, in a fixed order. */
class Graph {
  readonly ids: string[];
  readonly index = new Map<string, number>();
  /** incoming[v]: the edges that reach v with their forwarder's index, sorted by scid then forwarder. */
  readonly incoming: Array<Array<{ e: Edge; from: number }>>;
  /** The largest htlc_minimum of a usable edge. */
  readonly maxHtlcMinimum: bigint;
  readonly source: number;
  readonly destination: number;

  constructor(edges: readonly Edge[], q: RouteQuery, withExclusions = true) {
    const exE = withExclusions ? (q.excludedEdges ?? new Set<string>()) : new Set<string>();
    const exN = withExclusions ? (q.excludedNodes ?? new Set<string>()) : new Set<string>();
    const usable = edges.filter(
      (e) =>
        e.from !== e.to &&
        e.from !== q.destination &&
        e.to !== q.source &&
        !exN.has(e.from) &&
        !exN.has(e.to) &&
        (exE.size === 0 || !exE.has(edgeKey(e.shortChannelId, e.from))) &&
        usablePolicy(e),
    );
    const ids = new Set<string>([q.source, q.destination]);
    for (const e of usable) ids.add(e.from).add(e.to);
    this.ids = [...ids].sort();
    this.ids.forEach((id, i) => this.index.set(id, i));
    this.incoming = this.ids.map(() => []);
    let maxMin = 0n;
    for (const e of [...usable].sort(compareEdges)) {
      (this.incoming[this.at(e.to)] as Array<{ e: Edge; from: number }>).push({ e, from: this.at(e.from) });
      if (e.policy.htlcMinimumMsat > maxMin) maxMin = e.policy.htlcMinimumMsat;
    }
    this.maxHtlcMinimum = maxMin;
    this.source = this.at(q.source);
    this.destination = this.at(q.destination);
  }

  at(id: string): number {
    return this.index.get(id) as number;
  }
}

const onPath = (l: Label, node: number): boolean => {
  for (let x: Label | undefined = l; x !== undefined; x = x.parent) if (x.node === node) return true;
  return false;
};

const nodesWithin = (a: Label, b: Label): boolean => {
  for (let x: Label | undefined = a; x !== undefined; x = x.parent) if (!onPath(b, x.node)) return false;
  return true;
};

/**
 * Whether `a` makes `b` useless: every way to extend `b` to the source also extends `a` (its nodes
 * are among b's, or no HTLC minimum can bind: then a route through a node on both halves has a
 * shortcut that is no worse), at no greater cost. Fees and risk grow with the amount, so a smaller
 * amount is never worse, except against an htlc_minimum above it: hence equal amounts, or amounts
 * at or above every htlc_minimum.
 */
function dominates(a: Label, b: Label, maxMin: bigint, minCanBind: boolean): boolean {
  if (a.cost > b.cost || a.amount > b.amount || a.cltv > b.cltv || a.hops > b.hops) return false;
  if (a.amount !== b.amount && a.amount < maxMin) return false;
  return !minCanBind || nodesWithin(a, b);
}

const before = (a: Label, b: Label): boolean =>
  a.cost !== b.cost
    ? a.cost < b.cost
    : a.amount !== b.amount
      ? a.amount < b.amount
      : a.cltv !== b.cltv
        ? a.cltv < b.cltv
        : a.hops !== b.hops
          ? a.hops < b.hops
          : a.seq < b.seq;

class Heap {
  private readonly xs: Label[] = [];
  get size(): number {
    return this.xs.length;
  }
  push(l: Label): void {
    const xs = this.xs;
    xs.push(l);
    let i = xs.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(xs[i] as Label, xs[p] as Label)) break;
      [xs[i], xs[p]] = [xs[p] as Label, xs[i] as Label];
      i = p;
    }
  }
  pop(): Label | undefined {
    const xs = this.xs;
    const top = xs[0];
    const last = xs.pop();
    if (xs.length > 0 && last !== undefined) {
      xs[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < xs.length && before(xs[l] as Label, xs[m] as Label)) m = l;
        if (r < xs.length && before(xs[r] as Label, xs[m] as Label)) m = r;
        if (m === i) break;
        [xs[i], xs[m]] = [xs[m] as Label, xs[i] as Label];
        i = m;
      }
    }
    return top;
  }
}

/** The cheapest label at the source within `limits`, or undefined. */
function search(g: Graph, q: RouteQuery, riskMicro: bigint, limits: Limits): Label | undefined {
  const minCanBind = q.amountMsat < g.maxHtlcMinimum;
  const labels: Label[][] = g.ids.map(() => []);
  const heap = new Heap();
  let seq = 0;
  const add = (l: Label): void => {
    const here = labels[l.node] as Label[];
    if (here.some((x) => dominates(x, l, g.maxHtlcMinimum, minCanBind))) return;
    const kept = here.filter((x) => {
      if (!dominates(l, x, g.maxHtlcMinimum, minCanBind)) return true;
      x.dead = true;
      return false;
    });
    labels[l.node] = kept;
    if (kept.length >= MAX_LABELS_PER_NODE) return;
    kept.push(l);
    heap.push(l);
  };
  add({
    node: g.destination,
    edge: undefined,
    parent: undefined,
    amount: q.amountMsat,
    cltv: q.finalCltvDelta,
    cost: 0n,
    hops: 0,
    seq: seq++,
    dead: false,
  });
  if (q.finalCltvDelta > limits.maxCltv) return undefined;

  while (heap.size > 0) {
    const l = heap.pop() as Label;
    if (l.dead) continue;
    if (l.node === g.source) return l;
    if (l.hops >= MAX_HOPS) continue;
    for (const { e, from } of g.incoming[l.node] as Array<{ e: Edge; from: number }>) {
      // e carries l.amount from its forwarder to l.node.
      if (l.amount > e.capacityMsat) continue;
      if (l.amount < e.policy.htlcMinimumMsat || l.amount > e.policy.htlcMaximumMsat) continue;
      if (onPath(l, from)) continue;
      let amount = l.amount;
      let cltv = l.cltv;
      let cost = l.cost;
      if (from !== g.source) {
        const fee = forwardingFee(e.policy, l.amount);
        amount += fee;
        cltv += e.policy.cltvExpiryDelta;
        cost += fee + (amount * BigInt(e.policy.cltvExpiryDelta) * riskMicro) / RISK_SCALE;
      }
      if (amount > U64_MAX || amount - q.amountMsat > limits.maxFee || cltv > limits.maxCltv) continue;
      add({ node: from, edge: e, parent: l, amount, cltv, cost, hops: l.hops + 1, seq: seq++, dead: false });
    }
  }
  return undefined;
}

function toRoute(g: Graph, q: RouteQuery, found: Label): RouteResult {
  const hops: PathHop[] = [];
  // The labels from the source to the destination; label.edge leaves label.node toward it.
  for (let l: Label | undefined = found; l?.edge !== undefined; l = l.parent) {
    const e = l.edge;
    const ours = l.node === g.source;
    hops.push({
      nodeId: e.to,
      shortChannelId: e.shortChannelId,
      feeBaseMsat: ours ? msat(0n) : e.policy.feeBaseMsat,
      feeProportionalMillionths: ours ? 0n : e.policy.feeProportionalMillionths,
      cltvExpiryDelta: ours ? 0 : e.policy.cltvExpiryDelta,
    });
  }
  return {
    ok: true,
    hops,
    amountMsat: msat(found.amount),
    feeMsat: msat(found.amount - q.amountMsat),
    cltvDelta: found.cltv,
  };
}

/** Why no route: the first limit that, lifted, lets one through (or the shape of the graph). */
function diagnose(edges: readonly Edge[], g: Graph, q: RouteQuery, riskMicro: bigint): string {
  const hopsNeeded = fewestHops(g);
  if (hopsNeeded === undefined) {
    const open = new Graph(edges, q, false);
    return fewestHops(open) === undefined
      ? "no path: no channels lead from the source to the destination"
      : "no path: every path uses an excluded channel or node";
  }
  if (hopsNeeded > MAX_HOPS)
    return `hop limit: the shortest path has ${hopsNeeded} hops, more than ${MAX_HOPS}`;
  const noFeeLimit = U64_MAX;
  const noCltvLimit = Number.MAX_SAFE_INTEGER;
  const free = search(g, q, riskMicro, { maxFee: noFeeLimit, maxCltv: noCltvLimit });
  if (free === undefined)
    return `capacity: no path can carry ${q.amountMsat} msat (channel capacity, htlc_minimum or htlc_maximum, within ${MAX_HOPS} hops)`;
  const withCltv = search(g, q, riskMicro, { maxFee: noFeeLimit, maxCltv: q.maxTotalCltvDelta });
  const withFee = search(g, q, riskMicro, { maxFee: q.maxFeeMsat, maxCltv: noCltvLimit });
  const fee = (l: Label): bigint => l.amount - q.amountMsat;
  if (withCltv !== undefined && withFee !== undefined)
    return `fee limit or expiry limit: within the expiry limit the cheapest route charges ${fee(withCltv)} msat in fees (limit ${q.maxFeeMsat} msat); within the fee limit it needs a total cltv delta of ${withFee.cltv} blocks (limit ${q.maxTotalCltvDelta})`;
  if (withCltv !== undefined)
    return `fee limit: the cheapest route within the expiry limit charges ${fee(withCltv)} msat in fees, above the limit of ${q.maxFeeMsat} msat`;
  if (withFee !== undefined)
    return `expiry limit: the cheapest route within the fee limit needs a total cltv delta of ${withFee.cltv} blocks, above the limit of ${q.maxTotalCltvDelta}`;
  return `fee limit and expiry limit: the cheapest route charges ${fee(free)} msat in fees with a total cltv delta of ${free.cltv} blocks; the limits are ${q.maxFeeMsat} msat and ${q.maxTotalCltvDelta} blocks`;
}

/** Hops of the shortest path from the source to the destination, ignoring amounts (BFS backwards). */
function fewestHops(g: Graph): number | undefined {
  const dist = new Map<number, number>([[g.destination, 0]]);
  let frontier = [g.destination];
  for (let d = 1; frontier.length > 0; d++) {
    const next: number[] = [];
    for (const v of frontier)
      for (const { from: u } of g.incoming[v] as Array<{ e: Edge; from: number }>) {
        if (dist.has(u)) continue;
        if (u === g.source) return d;
        dist.set(u, d);
        next.push(u);
      }
    frontier = next;
  }
  return undefined;
}
