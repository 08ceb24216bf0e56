/**
 * Decoding of the signer's requests (server side): validate and convert to the domain types of
 * @ln/tx. The message types and their encoding live in @ln/signer-client.
 */
import { msat, sat, txidFromHex, TxidError, type Locktime } from "@ln/bitcoin";
import type { CloseParams, CommitmentHtlc, CommitmentParams } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import type { InvoiceFields, InvoiceNetwork } from "@ln/invoice";
import { invalid } from "./errors.js";

import type {
  AnchorInputMsg,
  CloseParamsMsg,
  CloseSideMsg,
  CommitmentParamsMsg,
  LocktimeMsg,
  SignInvoiceRequest,
  U64,
} from "@ln/signer-client";

export type * from "@ln/signer-client";

// ---- decoding (server side): validate and convert to domain types ----

export function u64(v: U64 | undefined, what: string): bigint {
  if (v === undefined || !/^[0-9]{1,20}$/.test(v)) throw invalid(`${what} is not a uint64`);
  const n = BigInt(v);
  if (n > 0xffff_ffff_ffff_ffffn) throw invalid(`${what} is not a uint64`);
  return n;
}

export function present<T>(m: T | null | undefined, what: string): T {
  if (m === null || m === undefined) throw invalid(`${what} is missing`);
  return m;
}

export function bytes(b: Buffer | undefined, length: number, what: string): Buffer {
  if (b === undefined || b.length !== length)
    throw invalid(`${what} must be ${length} bytes, got ${b?.length ?? 0}`);
  return b;
}

export function pubkey(b: Buffer | undefined, what: string): Buffer {
  const k = bytes(b, 33, what);
  if (!ecc.isPoint(k)) throw invalid(`${what} is not a compressed secp256k1 point`);
  return k;
}

export function locktime(m: LocktimeMsg | null | undefined, what: string): Locktime {
  const l = present(m, what);
  if (l.unit === "blocks" && l.blocks !== undefined) return { blocks: l.blocks };
  if (l.unit === "seconds" && l.seconds !== undefined) return { seconds: l.seconds };
  throw invalid(`${what} has neither blocks nor seconds`);
}

export function transaction(hex: string, what: string): Transaction {
  if (!/^([0-9a-fA-F]{2})+$/.test(hex)) throw invalid(`${what} is not hex`);
  try {
    return Transaction.fromHex(hex);
  } catch (e) {
    throw invalid(`${what} does not decode: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function anchorInput(m: AnchorInputMsg | null, what: string): CommitmentParams["anchor"] {
  const a = present(m, what);
  const o = present(a.outpoint, `${what}.outpoint`);
  let txid;
  try {
    txid = txidFromHex(o.txid);
  } catch (e) {
    if (e instanceof TxidError) throw invalid(`${what}.outpoint.txid: ${e.message}`);
    throw e;
  }
  if (a.commit_keys.length !== 2) throw invalid(`${what}.commit_keys must hold exactly two keys`);
  return {
    outpoint: { txid, vout: o.vout },
    amount: sat(u64(a.amount_sat, `${what}.amount_sat`)),
    commitKeys: [
      pubkey(a.commit_keys[0], `${what}.commit_keys[0]`),
      pubkey(a.commit_keys[1], `${what}.commit_keys[1]`),
    ],
  };
}

export function commitmentParams(
  m: CommitmentParamsMsg | null | undefined,
  what = "params",
): CommitmentParams {
  const p = present(m, what);
  const htlcs: CommitmentHtlc[] = p.htlcs.map((h, i) => ({
    id: u64(h.id, `${what}.htlcs[${i}].id`),
    offeredByOwner: h.offered_by_owner,
    amountMsat: msat(u64(h.amount_msat, `${what}.htlcs[${i}].amount_msat`)),
    rHash: bytes(h.r_hash, 32, `${what}.htlcs[${i}].r_hash`),
    expiry: locktime(h.expiry, `${what}.htlcs[${i}].expiry`),
  }));
  return {
    anchor: anchorInput(p.anchor, `${what}.anchor`),
    ownerFinal: pubkey(p.owner_final, `${what}.owner_final`),
    otherFinal: pubkey(p.other_final, `${what}.other_final`),
    revocationHash: bytes(p.revocation_hash, 32, `${what}.revocation_hash`),
    delay: locktime(p.delay, `${what}.delay`),
    ownerMsat: msat(u64(p.owner_msat, `${what}.owner_msat`)),
    otherMsat: msat(u64(p.other_msat, `${what}.other_msat`)),
    htlcs,
    feeRate: p.fee_rate,
  };
}

export function closeParams(m: CloseParamsMsg | null | undefined, what = "params"): CloseParams {
  const p = present(m, what);
  const side = (s: CloseSideMsg | null, name: string): CloseParams["a"] => {
    const x = present(s, `${what}.${name}`);
    return {
      finalKey: pubkey(x.final_key, `${what}.${name}.final_key`),
      msat: msat(u64(x.msat, `${what}.${name}.msat`)),
    };
  };
  return {
    anchor: anchorInput(p.anchor, `${what}.anchor`),
    a: side(p.a, "a"),
    b: side(p.b, "b"),
    closeFee: sat(u64(p.close_fee_sat, `${what}.close_fee_sat`)),
  };
}

const INVOICE_NETWORKS: readonly InvoiceNetwork[] = ["regtest", "testnet", "bitcoin"];

/** SignInvoice's fields; their consistency with the index and our key is the service's check. */
export function invoiceFields(r: SignInvoiceRequest): InvoiceFields {
  const network = INVOICE_NETWORKS.find((n) => n === r.network);
  if (network === undefined)
    throw invalid(`network ${JSON.stringify(r.network)} is not regtest, testnet or bitcoin`);
  const amount = u64(r.amount_msat, "amount_msat");
  const timestamp = u64(r.timestamp, "timestamp");
  if (timestamp > BigInt(Number.MAX_SAFE_INTEGER)) throw invalid("timestamp is out of range");
  const hasHash = (r.description_hash?.length ?? 0) > 0;
  if (hasHash && r.description !== "") throw invalid("give a description or its hash, not both");
  return {
    network,
    ...(amount === 0n ? {} : { amountMsat: msat(amount) }),
    timestamp: Number(timestamp),
    paymentHash: bytes(r.payment_hash, 32, "payment_hash"),
    paymentSecret: bytes(r.payment_secret, 32, "payment_secret"),
    ...(hasHash
      ? { descriptionHash: bytes(r.description_hash, 32, "description_hash") }
      : { description: r.description }),
    expirySeconds: r.expiry_seconds,
    minFinalCltvExpiryDelta: r.min_final_cltv_expiry_delta,
    payee: pubkey(r.payee, "payee"),
    routeHints: (r.route_hints ?? []).map((hint, i) =>
      (hint.hops ?? []).map((h, j) => ({
        nodeId: pubkey(h.node_id, `route_hints[${i}].hops[${j}].node_id`).toString("hex"),
        shortChannelId: u64(h.short_channel_id, `route_hints[${i}].hops[${j}].short_channel_id`),
        feeBaseMsat: msat(h.fee_base_msat),
        feeProportionalMillionths: BigInt(h.fee_proportional_millionths),
        cltvExpiryDelta: h.cltv_expiry_delta,
      })),
    ),
  };
}
