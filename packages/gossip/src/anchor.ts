/** Whether an on-chain output is a channel's anchor: the P2SH 2-of-2 of its two commit keys. */
import { anchorScript, p2shOutput } from "@ln/scripts";
import { OK, refuse, type GossipCheck } from "./errors.js";

export interface AnchorOutput {
  /** The output's scriptPubKey. */
  script: Buffer;
  valueSat: bigint;
}

export function anchorMatches(output: AnchorOutput, commitKey1: Buffer, commitKey2: Buffer): boolean {
  if (commitKey1.length !== 33 || commitKey2.length !== 33) return false;
  return p2shOutput(anchorScript(commitKey1, commitKey2)).equals(output.script);
}

/**
 * A channel_announcement's anchor as the chain watcher found it (`anchor_output`): there,
 * unspent, paying the 2-of-2 of the announced commit keys.
 */
export function checkAnchor(
  found: { found: boolean; unspent: boolean; script: Buffer; valueSat: bigint },
  commitKey1: Buffer,
  commitKey2: Buffer,
): GossipCheck {
  if (!found.found) return refuse("ANCHOR_NOT_FOUND", "no output at the short_channel_id's position");
  if (!anchorMatches(found, commitKey1, commitKey2))
    return refuse("ANCHOR_MISMATCH", "the output is not the 2-of-2 of the announced commit keys");
  if (!found.unspent) return refuse("ANCHOR_SPENT", "the anchor output is spent");
  return OK;
}
