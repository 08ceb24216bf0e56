/** The bare channel_update, as a BOLT #4 failure carries it (contracts: its protobuf encoding). */
import {
  decodeChannelUpdateMessage,
  encodeChannelUpdateMessage,
  WireError,
  type ChannelUpdate,
} from "@ln/proto";
import { GossipError } from "./errors.js";

/** Throws GossipError (MALFORMED) if a field is out of range. */
export function encodeChannelUpdate(u: ChannelUpdate): Buffer {
  try {
    return encodeChannelUpdateMessage(u);
  } catch (e) {
    if (e instanceof WireError) throw new GossipError("MALFORMED", e.problem);
    throw e;
  }
}

/** Decodes with the pkt codec's rules (odd unknown fields skipped); throws only GossipError. */
export function decodeChannelUpdate(bytes: Uint8Array): ChannelUpdate {
  try {
    return decodeChannelUpdateMessage(bytes);
  } catch (e) {
    if (e instanceof WireError) throw new GossipError("MALFORMED", e.problem);
    throw new GossipError("MALFORMED", `channel_update: ${e instanceof Error ? e.message : String(e)}`);
  }
}
