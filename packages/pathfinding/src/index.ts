export { forwardingFee } from "./fee.js";
export {
  DEFAULT_RISK_FACTOR,
  edgeKey,
  findRoute,
  MAX_HOPS,
  type Edge,
  type HopPolicy,
  type PathHop,
  type RouteQuery,
  type RouteResult,
} from "./route.js";
export { HINT_CAPACITY_MSAT, hintEdges, type RouteHintHop } from "./hints.js";
