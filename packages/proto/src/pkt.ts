import { MAX_ANCHOR_SAT, msat, sat, txidFromInternal, txidToInternal } from "@ln/bitcoin";
import type { Locktime, Msat, Sat, Txid } from "@ln/bitcoin";
import * as ecc from "tiny-secp256k1";
import { decodeMessage, encodeMessage, type RawMessage } from "./raw.js";
import { PKT_SPEC, type MessageSpec } from "./schema.js";
import { WireError } from "./wire-error.js";

/** The transport's frame limit (BOLT #8): no encoded `pkt` may be larger. */
export const MAX_PKT_BYTES = 65535;
/**
 * `routing.info` is a BOLT #4 onion (DESIGN.md 10): 1,366 bytes. More is never a valid route, and
 * a node keeps each HTLC's route while the HTLC lives: unbounded, a peer makes us hold 65 kB each.
 */
export const MAX_ROUTE_BYTES = 1366;
/**
 * `fail_reason.info` is a BOLT #4 error packet (DESIGN.md 10): a 32-byte HMAC, a 2-byte length,
 * the failure message padded to 256 bytes, a 2-byte pad length: 292 bytes.
 */
export const MAX_FAIL_REASON_BYTES = 292;

export type AnchorOffer = "WILL_CREATE_ANCHOR" | "WONT_CREATE_ANCHOR";

/**
 * Gossip (DESIGN.md 10): on odd `pkt` fields, never counted by `ack` nor fed to the channel core.
 * `short_channel_id` is BOLT #7's packing (height << 40 | tx index << 16 | output index).
 */
export interface ChannelAnnouncement {
  shortChannelId: bigint;
  /** node_id_1 < node_id_2 bytewise (a rule of @ln/gossip, not of the codec). */
  nodeId1: Buffer;
  nodeId2: Buffer;
  /** Each node's anchor commit key (its open_channel.commit_key). */
  commitKey1: Buffer;
  commitKey2: Buffer;
  nodeSig1: Buffer;
  nodeSig2: Buffer;
  commitSig1: Buffer;
  commitSig2: Buffer;
}
export interface ChannelUpdate {
  shortChannelId: bigint;
  /** 0: node_id_1 forwards toward node_id_2; 1: the reverse. */
  direction: 0 | 1;
  /** Unix seconds. */
  timestamp: number;
  disabled: boolean;
  cltvExpiryDelta: number;
  htlcMinimumMsat: Msat;
  htlcMaximumMsat: Msat;
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  /** By the forwarding node's node key. */
  sig: Buffer;
}
export interface NodeAnnouncement {
  nodeId: Buffer;
  timestamp: number;
  alias: string;
  /** "host:port". */
  addresses: string[];
  sig: Buffer;
}

/**
 * One `pkt` of the draft, as typed plain data. Hashes are 32-byte Buffers in wire order, signatures
 * 64-byte compact (R || S), keys 33-byte compressed points; 64-bit values are bigint.
 */
export type Pkt =
  | {
      kind: "update_add_htlc";
      id: bigint;
      amountMsat: Msat;
      rHash: Buffer;
      expiry: Locktime;
      route: Buffer;
    }
  | { kind: "update_fulfill_htlc"; id: bigint; r: Buffer }
  | { kind: "update_fail_htlc"; id: bigint; reason: Buffer }
  | { kind: "update_fee"; feeRate: number }
  | { kind: "update_commit"; sig: Buffer; ack?: bigint }
  | { kind: "update_revocation"; revocationPreimage: Buffer; nextRevocationHash: Buffer }
  | {
      kind: "open_channel";
      delay: Locktime;
      revocationHash: Buffer;
      nextRevocationHash: Buffer;
      commitKey: Buffer;
      finalKey: Buffer;
      anch: AnchorOffer;
      minDepth: number;
      initialFeeRate: number;
    }
  | { kind: "open_anchor"; txid: Txid; outputIndex: number; amount: Sat; commitSig: Buffer }
  | { kind: "open_commit_sig"; sig: Buffer }
  | { kind: "open_complete"; blockid?: Buffer }
  | { kind: "close_clearing" }
  | { kind: "close_signature"; closeFee: Sat; sig: Buffer }
  | { kind: "error"; problem?: string }
  | { kind: "authenticate"; nodeId: Buffer; sessionSig: Buffer; ack?: bigint }
  | ({ kind: "channel_announcement" } & ChannelAnnouncement)
  | ({ kind: "channel_update" } & ChannelUpdate)
  | ({ kind: "node_announcement" } & NodeAnnouncement);

export type PktKind = Pkt["kind"];
export type PktOf<K extends PktKind> = Extract<Pkt, { kind: K }>;

/** The `pkt` oneof member that carries each kind (DESIGN.md 2). */
const MEMBER: Readonly<Record<PktKind, string>> = {
  update_add_htlc: "update_add_htlc",
  update_fulfill_htlc: "update_fulfill_htlc",
  update_fail_htlc: "update_fail_htlc",
  update_fee: "update_fee",
  update_commit: "update_commit",
  update_revocation: "update_revocation",
  open_channel: "open",
  open_anchor: "open_anchor",
  open_commit_sig: "open_commit_sig",
  open_complete: "open_complete",
  close_clearing: "close_clearing",
  close_signature: "close_signature",
  error: "error",
  authenticate: "auth",
  channel_announcement: "channel_announcement",
  channel_update: "channel_update",
  node_announcement: "node_announcement",
};

/** The gossip kinds: never counted by `ack`, never retransmitted, never fed to the channel core. */
export const GOSSIP_KINDS: ReadonlySet<PktKind> = new Set<PktKind>([
  "channel_announcement",
  "channel_update",
  "node_announcement",
]);
export const isGossipPkt = (
  p: Pkt,
): p is PktOf<"channel_announcement"> | PktOf<"channel_update"> | PktOf<"node_announcement"> =>
  GOSSIP_KINDS.has(p.kind);
const KIND_OF_MEMBER = new Map(Object.entries(MEMBER).map(([kind, member]) => [member, kind as PktKind]));

const ANCHOR_OFFER: Readonly<Record<AnchorOffer, bigint>> = {
  WILL_CREATE_ANCHOR: 1n,
  WONT_CREATE_ANCHOR: 2n,
};

// ---- field helpers: each both checks and converts, so encode and decode enforce the same rules

function words(bytes: Buffer, names: readonly string[], what: string, path: string): RawMessage {
  if (bytes.length !== names.length * 8)
    throw new WireError(
      "FIELD_RANGE",
      `${path}: a ${what} is ${names.length * 8} bytes, got ${bytes.length}`,
      path,
    );
  return Object.fromEntries(names.map((n, i) => [n, bytes.readBigUInt64LE(i * 8)]));
}
function unwords(raw: RawMessage, names: readonly string[]): Buffer {
  const out = Buffer.alloc(names.length * 8);
  names.forEach((n, i) => out.writeBigUInt64LE(raw[n] as bigint, i * 8));
  return out;
}
const HASH_WORDS = ["a", "b", "c", "d"];
const SIG_WORDS = ["r1", "r2", "r3", "r4", "s1", "s2", "s3", "s4"];
const hashOut = (h: Buffer, path: string): RawMessage => words(h, HASH_WORDS, "sha256_hash", path);
const hashIn = (raw: unknown): Buffer => unwords(raw as RawMessage, HASH_WORDS);
const sigOut = (s: Buffer, path: string): RawMessage => words(s, SIG_WORDS, "signature", path);
const sigIn = (raw: unknown): Buffer => unwords(raw as RawMessage, SIG_WORDS);

function checkKey(key: Buffer, path: string): Buffer {
  if (key.length !== 33 || (key[0] !== 2 && key[0] !== 3))
    throw new WireError("BAD_PUBKEY", `${path}: a bitcoin_pubkey is 33 bytes starting 02 or 03`, path);
  if (!ecc.isPoint(key)) throw new WireError("BAD_PUBKEY", `${path}: not a point on secp256k1`, path);
  return key;
}
const keyOut = (key: Buffer, path: string): RawMessage => ({ key: checkKey(key, `${path}.key`) });
const keyIn = (raw: unknown, path: string): Buffer =>
  checkKey((raw as RawMessage)["key"] as Buffer, `${path}.key`);

function directionIn(v: bigint, path: string): 0 | 1 {
  if (v !== 0n && v !== 1n) throw new WireError("FIELD_RANGE", `${path}: direction ${v} is not 0 or 1`, path);
  return Number(v) as 0 | 1;
}

function channelUpdateOut(u: ChannelUpdate, at: string): RawMessage {
  return {
    short_channel_id: u.shortChannelId,
    direction: BigInt(directionIn(BigInt(u.direction), `${at}.direction`)),
    timestamp: u32(u.timestamp, `${at}.timestamp`),
    disabled: u.disabled,
    cltv_expiry_delta: u32(u.cltvExpiryDelta, `${at}.cltv_expiry_delta`),
    htlc_minimum_msat: u.htlcMinimumMsat,
    htlc_maximum_msat: u.htlcMaximumMsat,
    fee_base_msat: u32big(u.feeBaseMsat, `${at}.fee_base_msat`),
    fee_proportional_millionths: u32big(u.feeProportionalMillionths, `${at}.fee_proportional_millionths`),
    sig: sigOut(u.sig, `${at}.sig`),
  };
}
function channelUpdateIn(m: RawMessage, at: string): ChannelUpdate {
  return {
    shortChannelId: m["short_channel_id"] as bigint,
    direction: directionIn(m["direction"] as bigint, `${at}.direction`),
    timestamp: Number(m["timestamp"] as bigint),
    disabled: m["disabled"] as boolean,
    cltvExpiryDelta: Number(m["cltv_expiry_delta"] as bigint),
    htlcMinimumMsat: msat(m["htlc_minimum_msat"] as bigint),
    htlcMaximumMsat: msat(m["htlc_maximum_msat"] as bigint),
    feeBaseMsat: msat(m["fee_base_msat"] as bigint),
    feeProportionalMillionths: m["fee_proportional_millionths"] as bigint,
    sig: sigIn(m["sig"]),
  };
}

function locktimeOut(l: Locktime, path: string): RawMessage {
  const [unit, value] = "blocks" in l ? ["blocks", l.blocks] : ["seconds", l.seconds];
  return { [unit]: u32(value, `${path}.${unit}`) };
}
function locktimeIn(raw: unknown): Locktime {
  const r = raw as RawMessage;
  return r["blocks"] !== undefined ? { blocks: Number(r["blocks"]) } : { seconds: Number(r["seconds"]) };
}

function u32(n: number, path: string): bigint {
  if (!Number.isInteger(n) || n < 0 || n > 0xffff_ffff)
    throw new WireError("FIELD_RANGE", `${path}: ${n} is not a uint32`, path);
  return BigInt(n);
}

function u32big(n: bigint, path: string): bigint {
  if (n < 0n || n > 0xffff_ffffn) throw new WireError("FIELD_RANGE", `${path}: ${n} is not a uint32`, path);
  return n;
}

function checkMaxBytes(b: Buffer, max: number, path: string): Buffer {
  if (b.length > max)
    throw new WireError("FIELD_TOO_LONG", `${path}: ${b.length} bytes, at most ${max}`, path);
  return b;
}

function checkAmountMsat(v: bigint, path: string): Msat {
  if (v <= 0n) throw new WireError("BAD_AMOUNT", `${path}: amount_msat must be greater than 0`, path);
  return msat(v);
}
function checkAnchorAmount(v: bigint, path: string): Sat {
  if (v > MAX_ANCHOR_SAT)
    throw new WireError("BAD_AMOUNT", `${path}: anchor amount ${v} exceeds ${MAX_ANCHOR_SAT} satoshi`, path);
  return sat(v);
}

// ---- Pkt <-> RawMessage

function toRaw(p: Pkt): RawMessage {
  const at = `pkt.${MEMBER[p.kind]}`;
  switch (p.kind) {
    case "update_add_htlc":
      return {
        id: p.id,
        amount_msat: checkAmountMsat(p.amountMsat, `${at}.amount_msat`),
        r_hash: hashOut(p.rHash, `${at}.r_hash`),
        expiry: locktimeOut(p.expiry, `${at}.expiry`),
        route: { info: checkMaxBytes(p.route, MAX_ROUTE_BYTES, `${at}.route.info`) },
      };
    case "update_fulfill_htlc":
      return { id: p.id, r: hashOut(p.r, `${at}.r`) };
    case "update_fail_htlc":
      return {
        id: p.id,
        reason: { info: checkMaxBytes(p.reason, MAX_FAIL_REASON_BYTES, `${at}.reason.info`) },
      };
    case "update_fee":
      return { fee_rate: u32(p.feeRate, `${at}.fee_rate`) };
    case "update_commit":
      return { sig: sigOut(p.sig, `${at}.sig`), ack: p.ack };
    case "update_revocation":
      return {
        revocation_preimage: hashOut(p.revocationPreimage, `${at}.revocation_preimage`),
        next_revocation_hash: hashOut(p.nextRevocationHash, `${at}.next_revocation_hash`),
      };
    case "open_channel":
      return {
        delay: locktimeOut(p.delay, `${at}.delay`),
        revocation_hash: hashOut(p.revocationHash, `${at}.revocation_hash`),
        commit_key: keyOut(p.commitKey, `${at}.commit_key`),
        final_key: keyOut(p.finalKey, `${at}.final_key`),
        anch: ANCHOR_OFFER[p.anch],
        min_depth: u32(p.minDepth, `${at}.min_depth`),
        initial_fee_rate: u32(p.initialFeeRate, `${at}.initial_fee_rate`),
        next_revocation_hash: hashOut(p.nextRevocationHash, `${at}.next_revocation_hash`),
      };
    case "open_anchor":
      return {
        txid: hashOut(txidToInternal(p.txid), `${at}.txid`),
        output_index: u32(p.outputIndex, `${at}.output_index`),
        amount: checkAnchorAmount(p.amount, `${at}.amount`),
        commit_sig: sigOut(p.commitSig, `${at}.commit_sig`),
      };
    case "open_commit_sig":
      return { sig: sigOut(p.sig, `${at}.sig`) };
    case "open_complete":
      return { blockid: p.blockid && hashOut(p.blockid, `${at}.blockid`) };
    case "close_clearing":
      return {};
    case "close_signature":
      return { close_fee: p.closeFee, sig: sigOut(p.sig, `${at}.sig`) };
    case "error":
      return { problem: p.problem };
    case "authenticate":
      return {
        node_id: keyOut(p.nodeId, `${at}.node_id`),
        session_sig: sigOut(p.sessionSig, `${at}.session_sig`),
        ack: p.ack,
      };
    case "channel_announcement":
      return {
        short_channel_id: p.shortChannelId,
        node_id_1: keyOut(p.nodeId1, `${at}.node_id_1`),
        node_id_2: keyOut(p.nodeId2, `${at}.node_id_2`),
        commit_key_1: keyOut(p.commitKey1, `${at}.commit_key_1`),
        commit_key_2: keyOut(p.commitKey2, `${at}.commit_key_2`),
        node_sig_1: sigOut(p.nodeSig1, `${at}.node_sig_1`),
        node_sig_2: sigOut(p.nodeSig2, `${at}.node_sig_2`),
        commit_sig_1: sigOut(p.commitSig1, `${at}.commit_sig_1`),
        commit_sig_2: sigOut(p.commitSig2, `${at}.commit_sig_2`),
      };
    case "channel_update":
      return channelUpdateOut(p, at);
    case "node_announcement":
      return {
        node_id: keyOut(p.nodeId, `${at}.node_id`),
        timestamp: u32(p.timestamp, `${at}.timestamp`),
        alias: p.alias,
        addresses: p.addresses,
        sig: sigOut(p.sig, `${at}.sig`),
      };
  }
}

function fromRaw(kind: PktKind, m: RawMessage): Pkt {
  const at = `pkt.${MEMBER[kind]}`;
  const n = (f: string): number => Number(m[f] as bigint);
  const b = (f: string): bigint => m[f] as bigint;
  switch (kind) {
    case "update_add_htlc":
      return {
        kind,
        id: b("id"),
        amountMsat: checkAmountMsat(b("amount_msat"), `${at}.amount_msat`),
        rHash: hashIn(m["r_hash"]),
        expiry: locktimeIn(m["expiry"]),
        route: checkMaxBytes(
          (m["route"] as RawMessage)["info"] as Buffer,
          MAX_ROUTE_BYTES,
          `${at}.route.info`,
        ),
      };
    case "update_fulfill_htlc":
      return { kind, id: b("id"), r: hashIn(m["r"]) };
    case "update_fail_htlc":
      return {
        kind,
        id: b("id"),
        reason: checkMaxBytes(
          (m["reason"] as RawMessage)["info"] as Buffer,
          MAX_FAIL_REASON_BYTES,
          `${at}.reason.info`,
        ),
      };
    case "update_fee":
      return { kind, feeRate: n("fee_rate") };
    case "update_commit":
      return withOptional({ kind, sig: sigIn(m["sig"]) }, "ack", m["ack"] as bigint | undefined);
    case "update_revocation":
      return {
        kind,
        revocationPreimage: hashIn(m["revocation_preimage"]),
        nextRevocationHash: hashIn(m["next_revocation_hash"]),
      };
    case "open_channel":
      return {
        kind,
        delay: locktimeIn(m["delay"]),
        revocationHash: hashIn(m["revocation_hash"]),
        nextRevocationHash: hashIn(m["next_revocation_hash"]),
        commitKey: keyIn(m["commit_key"], `${at}.commit_key`),
        finalKey: keyIn(m["final_key"], `${at}.final_key`),
        anch: b("anch") === 1n ? "WILL_CREATE_ANCHOR" : "WONT_CREATE_ANCHOR",
        minDepth: m["min_depth"] === undefined ? 0 : n("min_depth"),
        initialFeeRate: n("initial_fee_rate"),
      };
    case "open_anchor":
      return {
        kind,
        txid: txidFromInternal(hashIn(m["txid"])),
        outputIndex: n("output_index"),
        amount: checkAnchorAmount(b("amount"), `${at}.amount`),
        commitSig: sigIn(m["commit_sig"]),
      };
    case "open_commit_sig":
      return { kind, sig: sigIn(m["sig"]) };
    case "open_complete":
      return withOptional({ kind }, "blockid", m["blockid"] === undefined ? undefined : hashIn(m["blockid"]));
    case "close_clearing":
      return { kind };
    case "close_signature":
      return { kind, closeFee: sat(b("close_fee")), sig: sigIn(m["sig"]) };
    case "error":
      return withOptional({ kind }, "problem", m["problem"] as string | undefined);
    case "authenticate":
      return withOptional(
        { kind, nodeId: keyIn(m["node_id"], `${at}.node_id`), sessionSig: sigIn(m["session_sig"]) },
        "ack",
        m["ack"] as bigint | undefined,
      );
    case "channel_announcement":
      return {
        kind,
        shortChannelId: b("short_channel_id"),
        nodeId1: keyIn(m["node_id_1"], `${at}.node_id_1`),
        nodeId2: keyIn(m["node_id_2"], `${at}.node_id_2`),
        commitKey1: keyIn(m["commit_key_1"], `${at}.commit_key_1`),
        commitKey2: keyIn(m["commit_key_2"], `${at}.commit_key_2`),
        nodeSig1: sigIn(m["node_sig_1"]),
        nodeSig2: sigIn(m["node_sig_2"]),
        commitSig1: sigIn(m["commit_sig_1"]),
        commitSig2: sigIn(m["commit_sig_2"]),
      };
    case "channel_update":
      return { kind, ...channelUpdateIn(m, at) };
    case "node_announcement":
      return {
        kind,
        nodeId: keyIn(m["node_id"], `${at}.node_id`),
        timestamp: n("timestamp"),
        alias: m["alias"] as string,
        addresses: [...((m["addresses"] as readonly string[] | undefined) ?? [])],
        sig: sigIn(m["sig"]),
      };
  }
}

/** exactOptionalPropertyTypes: an absent optional field is absent, not `undefined`. */
function withOptional<T extends object, K extends string, V>(
  o: T,
  key: K,
  v: V | undefined,
): T & { [P in K]?: V } {
  return v === undefined ? o : { ...o, [key]: v };
}

/** Encodes a `pkt`. Throws WireError if the value breaks a field rule: we never send what we would reject. */
export function encodePkt(p: Pkt): Buffer {
  const bytes = encodeMessage(PKT_SPEC, { [MEMBER[p.kind]]: toRaw(p) });
  if (bytes.length > MAX_PKT_BYTES)
    throw new WireError("TOO_LARGE", `pkt: ${bytes.length} bytes, the limit is ${MAX_PKT_BYTES}`);
  return bytes;
}

/**
 * Decodes and validates one `pkt`. Any rejection is a WireError whose `problem` is the text for
 * the `error` message that fails the connection (draft 6.3). Never throws anything else.
 */
export function decodePkt(bytes: Uint8Array): Pkt {
  if (bytes.length > MAX_PKT_BYTES)
    throw new WireError("TOO_LARGE", `pkt: ${bytes.length} bytes, the limit is ${MAX_PKT_BYTES}`);
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const envelope = decodeMessage(PKT_SPEC, buf, 0, buf.length, "pkt");
  const [member, body] = Object.entries(envelope)[0] as [string, RawMessage];
  return fromRaw(KIND_OF_MEMBER.get(member) as PktKind, body);
}

const CHANNEL_UPDATE_SPEC = PKT_SPEC.byName.get("channel_update")?.message as MessageSpec;

/**
 * The bare `channel_update` message (not in a `pkt`), as a BOLT #4 failure carries it
 * (contracts: the protobuf encoding of the message). Same rules as inside a `pkt`.
 */
export function encodeChannelUpdateMessage(u: ChannelUpdate): Buffer {
  return encodeMessage(CHANNEL_UPDATE_SPEC, channelUpdateOut(u, "channel_update"));
}
/** Decodes a bare `channel_update`; throws only WireError. */
export function decodeChannelUpdateMessage(bytes: Uint8Array): ChannelUpdate {
  if (bytes.length > MAX_PKT_BYTES)
    throw new WireError("TOO_LARGE", `channel_update: ${bytes.length} bytes, the limit is ${MAX_PKT_BYTES}`);
  const buf = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const m = decodeMessage(CHANNEL_UPDATE_SPEC, buf, 0, buf.length, "channel_update");
  return channelUpdateIn(m, "channel_update");
}

export const isPkt = <K extends PktKind>(p: Pkt, kind: K): p is PktOf<K> => p.kind === kind;
