import { shortChannelId, ShortChannelIdError, type ShortChannelId } from "@ln/bitcoin";
import type protobuf from "protobufjs";
import { decodeMessage, loadSchema, u64 } from "./json-codec.js";

/** NATS payloads between services (events.proto), as typed plain data. */
export type ChainEvent =
  | { kind: "block_connected"; height: number; hash: string; time: number }
  | { kind: "block_disconnected"; height: number; hash: string }
  | {
      kind: "anchor_depth";
      channelId: string;
      depth: number;
      /**
       * Where the anchor is while it is in a block of the best chain (its BOLT #7
       * short_channel_id, DESIGN.md 10); absent at depth 0 and in events from older watchers.
       */
      position?: ShortChannelId;
    }
  | { kind: "anchor_spent"; channelId: string; txid: string; height: number; txHex: string }
  | {
      kind: "wallet_output";
      txid: string;
      vout: number;
      amountSat: bigint;
      scriptHex: string;
      height: number;
      blockHash: string;
      /** The transaction holding the output (hex). */
      txHex: string;
    };

/** The chain watcher's answer to `<prefix>.broadcast`: a txid, or the error and its code. */
export type BroadcastReply = { txid: string } | { error: string; code: BroadcastErrorCode };

/**
 * REJECTED: the node judged the transaction (invalid, conflicting, missing inputs, fee too low).
 * UNAVAILABLE: the node could not be asked (down, timeout, bad credentials).
 * BAD_REQUEST: the request was not a transaction.
 */
export type BroadcastErrorCode = "REJECTED" | "UNAVAILABLE" | "BAD_REQUEST";

/** The node's best block (`<prefix>.tip`); height 0 with hash "" when nothing is known. */
export interface ChainTip {
  height: number;
  hash: string;
  time: number;
}

export interface WatchAnchor {
  channelId: string;
  txid: string;
  vout: number;
  depth: number;
}

/** `<prefix>.anchor_output`: the output at a short_channel_id's position (gossip, DESIGN.md 10). */
export interface AnchorOutputQuery {
  height: number;
  txIndex: number;
  outputIndex: number;
}

/** The chain watcher's answer: the output if found, or the reason the node could not be asked. */
export type AnchorOutputReply =
  | { found: false }
  | { found: true; txid: string; script: Buffer; valueSat: bigint; unspent: boolean }
  | { error: string };

export class EventDecodeError extends Error {
  override readonly name = "EventDecodeError";
}

const root = loadSchema("events");
const ChainEventType = root.lookupType("events.chain_event");
const WatchAnchorType = root.lookupType("events.watch_anchor");
const WatchScriptsType = root.lookupType("events.watch_scripts");
const RequestReplyType = root.lookupType("events.request_reply");
const BroadcastRequestType = root.lookupType("events.broadcast_request");
const BroadcastReplyType = root.lookupType("events.broadcast_reply");
const TipType = root.lookupType("events.tip");
const AnchorOutputRequestType = root.lookupType("events.anchor_output_request");
const AnchorOutputReplyType = root.lookupType("events.anchor_output_reply");

const camel = (s: string): string => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const rename = (o: object, f: (s: string) => string): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [f(k), v]));

const decode = (type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> =>
  decodeMessage(type, bytes, (m) => new EventDecodeError(m));

export function encodeChainEvent(e: ChainEvent): Buffer {
  const { kind, ...fields } = e;
  const f = rename(fields, snake);
  if (e.kind === "wallet_output") f["amount_sat"] = u64(e.amountSat);
  if (e.kind === "anchor_depth" && e.position) f["position"] = rename(e.position, snake);
  return Buffer.from(ChainEventType.encode({ [kind]: f }).finish());
}

export function decodeChainEvent(bytes: Uint8Array): ChainEvent {
  const o = decode(ChainEventType, bytes);
  const kind = o["event"];
  if (typeof kind !== "string" || typeof o[kind] !== "object" || o[kind] === null)
    throw new EventDecodeError("chain_event without an event");
  const fields = rename(o[kind], camel);
  if (kind === "wallet_output") {
    if (
      !/^[0-9a-f]{64}$/.test(String(fields["txid"])) ||
      !isHex(fields["scriptHex"]) ||
      !isHex(fields["txHex"])
    )
      throw new EventDecodeError(
        "wallet_output needs a 64-hex txid, a hex script and the transaction in hex",
      );
    fields["amountSat"] = BigInt(String(fields["amountSat"]));
  }
  if (kind === "anchor_depth") {
    const p = fields["position"];
    if (typeof p === "object" && p !== null) fields["position"] = anchorPosition(rename(p, camel));
    else delete fields["position"];
  }
  if (kind === "anchor_spent" && (!/^[0-9a-f]{64}$/.test(String(fields["txid"])) || !isHex(fields["txHex"])))
    throw new EventDecodeError("anchor_spent needs a 64-hex txid and the spending transaction in hex");
  return { kind, ...fields } as ChainEvent;
}

/** An anchor_position whose parts fit a short_channel_id (3, 3 and 2 bytes). */
function anchorPosition(p: Record<string, unknown>): ShortChannelId {
  const { height, txIndex, outputIndex } = p;
  if (typeof height !== "number" || typeof txIndex !== "number" || typeof outputIndex !== "number")
    throw new EventDecodeError("anchor_position fields missing");
  try {
    return shortChannelId(height, txIndex, outputIndex);
  } catch (e) {
    if (e instanceof ShortChannelIdError) throw new EventDecodeError(`anchor_position: ${e.message}`);
    throw e;
  }
}

const isHex = (v: unknown): v is string => typeof v === "string" && /^(?:[0-9a-f]{2})*$/.test(v);

export const encodeWatchAnchor = (w: WatchAnchor): Buffer =>
  Buffer.from(WatchAnchorType.encode(rename(w, snake)).finish());

export function decodeWatchAnchor(bytes: Uint8Array): WatchAnchor {
  const o = rename(decode(WatchAnchorType, bytes), camel);
  if (typeof o["channelId"] !== "string" || !/^[0-9a-f]{64}$/.test(String(o["txid"])))
    throw new EventDecodeError("watch_anchor needs a channel_id and a 64-hex txid");
  return o as unknown as WatchAnchor;
}

/** `<prefix>.watch_script`: output scripts (lowercase hex) of the channel service's wallet. */
export const encodeWatchScripts = (scriptsHex: readonly string[]): Buffer =>
  Buffer.from(WatchScriptsType.encode({ script_hex: scriptsHex }).finish());

/** The scripts, lowercased; each must be non-empty hex of at most 10,000 bytes (consensus limit). */
export function decodeWatchScripts(bytes: Uint8Array): string[] {
  const list = decode(WatchScriptsType, bytes)["script_hex"];
  if (!Array.isArray(list)) throw new EventDecodeError("watch_scripts without script_hex");
  return list.map((v: unknown) => {
    const h = typeof v === "string" ? v.toLowerCase() : "";
    if (h === "" || h.length > 20_000 || !isHex(h))
      throw new EventDecodeError(
        "watch_scripts: every script_hex must be non-empty hex (at most 10,000 bytes)",
      );
    return h;
  });
}

/** A reply with nothing but an error; "" means done. */
export const encodeRequestReply = (error: string): Buffer =>
  Buffer.from(RequestReplyType.encode({ error }).finish());

export function decodeRequestReply(bytes: Uint8Array): { error: string } {
  const error = decode(RequestReplyType, bytes)["error"];
  if (typeof error !== "string") throw new EventDecodeError("request_reply without error");
  return { error };
}

/** `<prefix>.broadcast`: a serialized transaction. */
export const encodeBroadcastRequest = (tx: Uint8Array): Buffer =>
  Buffer.from(BroadcastRequestType.encode({ tx }).finish());

export function decodeBroadcastRequest(bytes: Uint8Array): { tx: Buffer } {
  const tx = decode(BroadcastRequestType, bytes)["tx"];
  if (!(tx instanceof Uint8Array) || tx.length === 0)
    throw new EventDecodeError("broadcast_request without a tx");
  return { tx: Buffer.from(tx) };
}

export const encodeBroadcastReply = (r: BroadcastReply): Buffer =>
  Buffer.from(BroadcastReplyType.encode("txid" in r ? { txid: r.txid } : r).finish());

const BROADCAST_CODES: readonly string[] = ["REJECTED", "UNAVAILABLE", "BAD_REQUEST"];

export function decodeBroadcastReply(bytes: Uint8Array): BroadcastReply {
  const o = decode(BroadcastReplyType, bytes);
  const { txid, error, code } = o;
  if (typeof txid !== "string" || typeof error !== "string" || typeof code !== "string")
    throw new EventDecodeError("broadcast_reply fields missing");
  if (error === "" && code === "") {
    if (!/^[0-9a-f]{64}$/.test(txid)) throw new EventDecodeError("broadcast_reply: txid must be 64 hex");
    return { txid };
  }
  if (!BROADCAST_CODES.includes(code))
    throw new EventDecodeError(`broadcast_reply: unknown code ${JSON.stringify(code)}`);
  return { error, code: code as BroadcastErrorCode };
}

export const encodeTip = (t: ChainTip): Buffer => Buffer.from(TipType.encode(t).finish());

export function decodeTip(bytes: Uint8Array): ChainTip {
  const { height, hash, time } = decode(TipType, bytes);
  if (typeof height !== "number" || typeof time !== "number" || typeof hash !== "string")
    throw new EventDecodeError("tip fields missing");
  if (hash !== "" && !/^[0-9a-f]{64}$/.test(hash)) throw new EventDecodeError("tip: hash must be 64 hex");
  return { height, hash, time };
}

const U32 = (v: unknown, what: string): number => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff)
    throw new EventDecodeError(`${what} is not a uint32`);
  return v;
};

export const encodeAnchorOutputRequest = (q: AnchorOutputQuery): Buffer =>
  Buffer.from(
    AnchorOutputRequestType.encode({
      height: q.height,
      tx_index: q.txIndex,
      output_index: q.outputIndex,
    }).finish(),
  );

export function decodeAnchorOutputRequest(bytes: Uint8Array): AnchorOutputQuery {
  const o = decode(AnchorOutputRequestType, bytes);
  return {
    height: U32(o["height"], "anchor_output_request.height"),
    txIndex: U32(o["tx_index"], "anchor_output_request.tx_index"),
    outputIndex: U32(o["output_index"], "anchor_output_request.output_index"),
  };
}

export function encodeAnchorOutputReply(r: AnchorOutputReply): Buffer {
  const fields =
    "error" in r
      ? { error: r.error }
      : r.found
        ? { found: true, txid: r.txid, script: r.script, value_sat: u64(r.valueSat), unspent: r.unspent }
        : { found: false };
  return Buffer.from(AnchorOutputReplyType.encode(fields).finish());
}

export function decodeAnchorOutputReply(bytes: Uint8Array): AnchorOutputReply {
  const o = decode(AnchorOutputReplyType, bytes);
  const { found, txid, script, unspent, error } = o;
  const value = o["value_sat"];
  if (typeof error === "string" && error !== "") return { error };
  if (found !== true) return { found: false };
  if (typeof txid !== "string" || !/^[0-9a-f]{64}$/.test(txid))
    throw new EventDecodeError("anchor_output_reply: txid must be 64 hex");
  if (!(script instanceof Uint8Array)) throw new EventDecodeError("anchor_output_reply: script missing");
  if (typeof value !== "string" || !/^[0-9]{1,20}$/.test(value))
    throw new EventDecodeError("anchor_output_reply: value_sat missing");
  return {
    found: true,
    txid,
    script: Buffer.from(script),
    valueSat: BigInt(value),
    unspent: unspent === true,
  };
}
