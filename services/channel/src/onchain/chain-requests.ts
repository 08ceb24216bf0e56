import {
  decodeAnchorOutputReply,
  decodeBroadcastReply,
  decodeRequestReply,
  decodeTip,
  encodeAnchorOutputRequest,
  encodeBroadcastRequest,
  encodeWatchScripts,
  EventDecodeError,
  type AnchorOutputQuery,
  type ChainTip,
} from "@ln/proto";
import { ErrorCode, NatsError, type NatsConnection } from "nats";

/**
 * Requests to this node's chain watcher (services/watchtower) over core NATS request/reply; the
 * channel service never talks to the bitcoin node itself. `prefix` is the chain prefix, e.g.
 * "lab.a.chain". Subjects: `<prefix>.watch_script`, `<prefix>.broadcast`, `<prefix>.tip`,
 * `<prefix>.anchor_output`.
 */

/**
 * UNAVAILABLE: no chain watcher answered (none running, or too slow), or it could not reach the
 * node; the request may be retried. REJECTED: the node refused the transaction (reason in the
 * message and `reason`), or the watcher refused the request; retrying the same will not help.
 */
export type ChainRequestErrorCode = "UNAVAILABLE" | "REJECTED";

export class ChainRequestError extends Error {
  override readonly name = "ChainRequestError";
  constructor(
    readonly code: ChainRequestErrorCode,
    message: string,
    /** The node's or the watcher's own reason, verbatim, when it gave one. */
    readonly reason?: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export const DEFAULT_CHAIN_REQUEST_TIMEOUT_MS = 10_000;

async function request(
  nc: NatsConnection,
  prefix: string,
  what: string,
  data: Uint8Array,
  timeoutMs: number,
): Promise<Uint8Array> {
  const subject = `${prefix}.${what}`;
  try {
    return (await nc.request(subject, data, { timeout: timeoutMs })).data;
  } catch (e) {
    const reason =
      e instanceof NatsError && e.code === ErrorCode.NoResponders
        ? "no responders"
        : e instanceof NatsError && e.code === ErrorCode.Timeout
          ? `no answer within ${timeoutMs} ms`
          : e instanceof Error
            ? e.message
            : String(e);
    throw new ChainRequestError(
      "UNAVAILABLE",
      `the chain watcher for ${prefix} is not answering ${subject} (${reason}); start it (services/watchtower) with LN_PREFIX set to this node's prefix`,
      undefined,
      { cause: e },
    );
  }
}

function decoded<T>(prefix: string, what: string, decode: () => T): T {
  try {
    return decode();
  } catch (e) {
    if (!(e instanceof EventDecodeError)) throw e;
    throw new ChainRequestError(
      "UNAVAILABLE",
      `the chain watcher for ${prefix} answered ${what} with something unreadable (${e.message}); is it the same version?`,
      undefined,
      { cause: e },
    );
  }
}

/**
 * Asks the chain watcher to report outputs paying these scripts (hex) as wallet_output events from
 * the next block on. Resolves once they are stored.
 */
export async function watchScripts(
  nc: NatsConnection,
  prefix: string,
  scriptsHex: readonly string[],
  timeoutMs = DEFAULT_CHAIN_REQUEST_TIMEOUT_MS,
): Promise<void> {
  const data = encodeWatchScripts(scriptsHex.map((h) => h.toLowerCase()));
  const reply = await request(nc, prefix, "watch_script", data, timeoutMs);
  const { error } = decoded(prefix, "watch_script", () => decodeRequestReply(reply));
  if (error !== "")
    throw new ChainRequestError(
      error.startsWith("could not store") ? "UNAVAILABLE" : "REJECTED",
      `the chain watcher for ${prefix} did not take the scripts: ${error}`,
      error,
    );
}

/** Sends a serialized transaction (hex) to the node through the chain watcher; returns its txid. */
export async function broadcastTx(
  nc: NatsConnection,
  prefix: string,
  txHex: string,
  timeoutMs = DEFAULT_CHAIN_REQUEST_TIMEOUT_MS,
): Promise<string> {
  if (!/^(?:[0-9a-fA-F]{2})+$/.test(txHex))
    throw new ChainRequestError("REJECTED", "broadcastTx: the transaction is not hex", "not hex");
  const data = encodeBroadcastRequest(Buffer.from(txHex, "hex"));
  const reply = await request(nc, prefix, "broadcast", data, timeoutMs);
  const r = decoded(prefix, "broadcast", () => decodeBroadcastReply(reply));
  if ("txid" in r) return r.txid;
  if (r.code === "UNAVAILABLE")
    throw new ChainRequestError(
      "UNAVAILABLE",
      `the chain watcher for ${prefix} could not reach the node to broadcast: ${r.error}`,
      r.error,
    );
  throw new ChainRequestError("REJECTED", `the node rejected the transaction: ${r.error}`, r.error);
}

/** The node's best block, as the chain watcher sees it. */
export async function chainTip(
  nc: NatsConnection,
  prefix: string,
  timeoutMs = DEFAULT_CHAIN_REQUEST_TIMEOUT_MS,
): Promise<ChainTip> {
  const reply = await request(nc, prefix, "tip", new Uint8Array(0), timeoutMs);
  const tip = decoded(prefix, "tip", () => decodeTip(reply));
  if (tip.hash === "")
    throw new ChainRequestError(
      "UNAVAILABLE",
      `the chain watcher for ${prefix} answers but cannot reach its node and has seen no block yet`,
    );
  return tip;
}

/** The output at a short_channel_id's position, as the chain watcher found it in the best chain. */
export type AnchorOutput =
  { found: false } | { found: true; txid: string; script: Buffer; valueSat: bigint; unspent: boolean };

/**
 * The output at `position` (a short_channel_id's height, tx index, output index) in the best
 * chain, whether it is unspent, for checking a channel_announcement's anchor (DESIGN.md 10).
 * UNAVAILABLE if the watcher or its node cannot be asked.
 */
export async function anchorOutput(
  nc: NatsConnection,
  prefix: string,
  position: AnchorOutputQuery,
  timeoutMs = DEFAULT_CHAIN_REQUEST_TIMEOUT_MS,
): Promise<AnchorOutput> {
  const u32 = (n: number): boolean => Number.isInteger(n) && n >= 0 && n <= 0xffff_ffff;
  if (!u32(position.height) || !u32(position.txIndex) || !u32(position.outputIndex))
    throw new ChainRequestError("REJECTED", "anchorOutput: the position is not three uint32", "bad position");
  const reply = await request(nc, prefix, "anchor_output", encodeAnchorOutputRequest(position), timeoutMs);
  const r = decoded(prefix, "anchor_output", () => decodeAnchorOutputReply(reply));
  if ("error" in r)
    throw new ChainRequestError(
      "UNAVAILABLE",
      `the chain watcher for ${prefix} could not reach the node to find an anchor: ${r.error}`,
      r.error,
    );
  return r;
}
