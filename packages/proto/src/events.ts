import { readFileSync } from "node:fs";
import protobuf from "protobufjs";

/** NATS payloads between services (events.proto), as typed plain data. */
export type ChainEvent =
  | { kind: "block_connected"; height: number; hash: string; time: number }
  | { kind: "block_disconnected"; height: number; hash: string }
  | { kind: "anchor_depth"; channelId: string; depth: number }
  | { kind: "anchor_spent"; channelId: string; txid: string; height: number };

export interface WatchAnchor {
  channelId: string;
  txid: string;
  vout: number;
  depth: number;
}

export class EventDecodeError extends Error {
  override readonly name = "EventDecodeError";
}

const root = protobuf.Root.fromJSON(
  JSON.parse(readFileSync(new URL("../gen/events.json", import.meta.url), "utf8")) as protobuf.INamespace,
);
const ChainEventType = root.lookupType("events.chain_event");
const WatchAnchorType = root.lookupType("events.watch_anchor");

const camel = (s: string): string => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
const snake = (s: string): string => s.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const rename = (o: object, f: (s: string) => string): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).map(([k, v]) => [f(k), v]));

function decode(type: protobuf.Type, bytes: Uint8Array): Record<string, unknown> {
  try {
    return type.toObject(type.decode(bytes), { defaults: true, oneofs: true }) as Record<string, unknown>;
  } catch (e) {
    throw new EventDecodeError(`not a ${type.name}: ${(e as Error).message}`);
  }
}

export function encodeChainEvent(e: ChainEvent): Buffer {
  const { kind, ...fields } = e;
  return Buffer.from(ChainEventType.encode({ [kind]: rename(fields, snake) }).finish());
}

export function decodeChainEvent(bytes: Uint8Array): ChainEvent {
  const o = decode(ChainEventType, bytes);
  const kind = o["event"];
  if (typeof kind !== "string" || typeof o[kind] !== "object" || o[kind] === null)
    throw new EventDecodeError("chain_event without an event");
  return { kind, ...rename(o[kind], camel) } as ChainEvent;
}

export const encodeWatchAnchor = (w: WatchAnchor): Buffer =>
  Buffer.from(WatchAnchorType.encode(rename(w, snake)).finish());

export function decodeWatchAnchor(bytes: Uint8Array): WatchAnchor {
  const o = rename(decode(WatchAnchorType, bytes), camel);
  if (typeof o["channelId"] !== "string" || !/^[0-9a-f]{64}$/.test(String(o["txid"])))
    throw new EventDecodeError("watch_anchor needs a channel_id and a 64-hex txid");
  return o as unknown as WatchAnchor;
}
