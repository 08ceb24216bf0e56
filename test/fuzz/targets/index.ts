import type { TargetSpec } from "../target.js";
import { authenticateTarget } from "./authenticate.js";
import { channelTarget } from "./channel.js";
import { gossipTarget } from "./gossip.js";
import { invoiceTarget } from "./invoice.js";
import { onionTarget } from "./onion.js";
import { pktTarget } from "./pkt.js";
import { framesTarget, handshakeTarget } from "./transport.js";

/** Every target, cheap decoders first. Weights: the share of the inputs each gets. */
export const TARGETS: readonly TargetSpec[] = [
  pktTarget,
  gossipTarget,
  invoiceTarget,
  framesTarget,
  onionTarget,
  authenticateTarget,
  handshakeTarget,
  channelTarget,
];

export function selectTargets(names: string | undefined): TargetSpec[] {
  if (names === undefined || names.trim() === "") return [...TARGETS];
  const wanted = names
    .split(",")
    .map((n) => n.trim())
    .filter((n) => n !== "");
  const unknown = wanted.filter((n) => !TARGETS.some((t) => t.name === n));
  if (unknown.length > 0)
    throw new Error(
      `unknown fuzz target ${unknown.join(", ")}; targets: ${TARGETS.map((t) => t.name).join(", ")}`,
    );
  return TARGETS.filter((t) => wanted.includes(t.name));
}
