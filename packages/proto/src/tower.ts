import type { Locktime } from "@ln/bitcoin";
import type protobuf from "protobufjs";
import { decodeMessage, loadSchema, u64 } from "./json-codec.js";

/**
 * tower.proto's messages (DESIGN.md 7) as typed plain data: camelCase, uint64 as bigint, bytes as
 * Buffer, a txid as display-order hex. @ln/justice seals and opens records; this codec is for the
 * services that carry them (the channel service's outbox, the tower's NATS consumer).
 */
export interface SealedRecordMsg {
  /** First 16 bytes of SHA256(normalized txid). */
  locator: Buffer;
  /** 1 || nonce (24) || XChaCha20-Poly1305 ciphertext and tag. */
  blob: Buffer;
}

export interface RecordHtlcMsg {
  id: bigint;
  offeredByOwner: boolean;
  amountMsat: bigint;
  rHash: Buffer;
  expiry: Locktime;
}

export interface RecordParamsMsg {
  anchor: { outpoint: { txid: string; vout: number }; amountSat: bigint; commitKeys: [Buffer, Buffer] };
  ownerFinal: Buffer;
  otherFinal: Buffer;
  revocationHash: Buffer;
  delay: Locktime;
  ownerMsat: bigint;
  otherMsat: bigint;
  htlcs: RecordHtlcMsg[];
  feeRate: number;
}

export interface RevocationRecordMsg {
  signerChannel: number;
  revokedNumber: bigint;
  revocationPreimage: Buffer;
  params: RecordParamsMsg;
  sweepScript: Buffer;
}

export class TowerDecodeError extends Error {
  override readonly name = "TowerDecodeError";
}

const root = loadSchema("tower");
const SealedRecordType = root.lookupType("tower.sealed_record");
const RevocationRecordType = root.lookupType("tower.revocation_record");

export const LOCATOR_BYTES = 16;

type Obj = Record<string, unknown>;

const decode = (type: protobuf.Type, bytes: Uint8Array): Obj =>
  decodeMessage(type, bytes, (m) => new TowerDecodeError(m));

const fail = (field: string, what: string): never => {
  throw new TowerDecodeError(`${field}: ${what}`);
};
const obj = (v: unknown, field: string): Obj =>
  typeof v === "object" && v !== null && !Buffer.isBuffer(v) ? (v as Obj) : fail(field, "missing");
const bytesOf = (v: unknown, field: string, length?: number): Buffer => {
  if (!(v instanceof Uint8Array)) return fail(field, "not bytes");
  if (length !== undefined && v.length !== length) fail(field, `${length} bytes expected, got ${v.length}`);
  return Buffer.from(v);
};
const bigOf = (v: unknown, field: string): bigint =>
  typeof v === "string" && /^[0-9]+$/.test(v) ? BigInt(v) : fail(field, "not a uint64");
const numOf = (v: unknown, field: string): number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : fail(field, "not a uint32");

function locktimeOf(v: unknown, field: string): Locktime {
  const o = obj(v, field);
  if (o["unit"] === "blocks") return { blocks: numOf(o["blocks"], `${field}.blocks`) };
  if (o["unit"] === "seconds") return { seconds: numOf(o["seconds"], `${field}.seconds`) };
  return fail(field, "no unit");
}
const locktimeMsg = (l: Locktime): Obj => ("blocks" in l ? { blocks: l.blocks } : { seconds: l.seconds });

function paramsOf(v: unknown): RecordParamsMsg {
  const p = obj(v, "params");
  const anchor = obj(p["anchor"], "params.anchor");
  const outpoint = obj(anchor["outpoint"], "params.anchor.outpoint");
  const txid = outpoint["txid"];
  if (typeof txid !== "string" || !/^[0-9a-f]{64}$/.test(txid))
    fail("params.anchor.outpoint.txid", "not 64 hex");
  const keys = anchor["commit_keys"];
  if (!Array.isArray(keys) || keys.length !== 2) return fail("params.anchor.commit_keys", "exactly two keys");
  const htlcs = p["htlcs"];
  if (!Array.isArray(htlcs)) return fail("params.htlcs", "not a list");
  return {
    anchor: {
      outpoint: { txid: txid as string, vout: numOf(outpoint["vout"], "params.anchor.outpoint.vout") },
      amountSat: bigOf(anchor["amount_sat"], "params.anchor.amount_sat"),
      commitKeys: [
        bytesOf(keys[0], "params.anchor.commit_keys", 33),
        bytesOf(keys[1], "params.anchor.commit_keys", 33),
      ],
    },
    ownerFinal: bytesOf(p["owner_final"], "params.owner_final", 33),
    otherFinal: bytesOf(p["other_final"], "params.other_final", 33),
    revocationHash: bytesOf(p["revocation_hash"], "params.revocation_hash", 32),
    delay: locktimeOf(p["delay"], "params.delay"),
    ownerMsat: bigOf(p["owner_msat"], "params.owner_msat"),
    otherMsat: bigOf(p["other_msat"], "params.other_msat"),
    htlcs: htlcs.map((x, i) => {
      const h = obj(x, `params.htlcs[${i}]`);
      if (typeof h["offered_by_owner"] !== "boolean")
        fail(`params.htlcs[${i}].offered_by_owner`, "not a bool");
      return {
        id: bigOf(h["id"], `params.htlcs[${i}].id`),
        offeredByOwner: h["offered_by_owner"] as boolean,
        amountMsat: bigOf(h["amount_msat"], `params.htlcs[${i}].amount_msat`),
        rHash: bytesOf(h["r_hash"], `params.htlcs[${i}].r_hash`, 32),
        expiry: locktimeOf(h["expiry"], `params.htlcs[${i}].expiry`),
      };
    }),
    feeRate: numOf(p["fee_rate"], "params.fee_rate"),
  };
}

function paramsMsg(p: RecordParamsMsg): Obj {
  return {
    anchor: {
      outpoint: { txid: p.anchor.outpoint.txid, vout: p.anchor.outpoint.vout },
      amount_sat: u64(p.anchor.amountSat),
      commit_keys: [...p.anchor.commitKeys],
    },
    owner_final: p.ownerFinal,
    other_final: p.otherFinal,
    revocation_hash: p.revocationHash,
    delay: locktimeMsg(p.delay),
    owner_msat: u64(p.ownerMsat),
    other_msat: u64(p.otherMsat),
    htlcs: p.htlcs.map((h) => ({
      id: u64(h.id),
      offered_by_owner: h.offeredByOwner,
      amount_msat: u64(h.amountMsat),
      r_hash: h.rHash,
      expiry: locktimeMsg(h.expiry),
    })),
    fee_rate: p.feeRate,
  };
}

export const encodeSealedRecordMsg = (m: SealedRecordMsg): Buffer =>
  Buffer.from(SealedRecordType.encode({ locator: m.locator, blob: m.blob }).finish());

/** The NATS payload; the locator must be 16 bytes and the blob non-empty. */
export function decodeSealedRecordMsg(bytes: Uint8Array): SealedRecordMsg {
  const o = decode(SealedRecordType, bytes);
  const blob = bytesOf(o["blob"], "blob");
  if (blob.length === 0) fail("blob", "empty");
  return { locator: bytesOf(o["locator"], "locator", LOCATOR_BYTES), blob };
}

export function encodeRevocationRecordMsg(r: RevocationRecordMsg): Buffer {
  return Buffer.from(
    RevocationRecordType.encode({
      signer_channel: r.signerChannel,
      revoked_number: u64(r.revokedNumber),
      revocation_preimage: r.revocationPreimage,
      params: paramsMsg(r.params),
      sweep_script: r.sweepScript,
    }).finish(),
  );
}

/** Checks the shape (lengths, a unit on every locktime, two commit keys), not the cryptography. */
export function decodeRevocationRecordMsg(bytes: Uint8Array): RevocationRecordMsg {
  const o = decode(RevocationRecordType, bytes);
  const sweepScript = bytesOf(o["sweep_script"], "sweep_script");
  if (sweepScript.length === 0) fail("sweep_script", "empty");
  return {
    signerChannel: numOf(o["signer_channel"], "signer_channel"),
    revokedNumber: bigOf(o["revoked_number"], "revoked_number"),
    revocationPreimage: bytesOf(o["revocation_preimage"], "revocation_preimage", 32),
    params: paramsOf(o["params"]),
    sweepScript,
  };
}
