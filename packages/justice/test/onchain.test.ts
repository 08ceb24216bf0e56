/**
 * Justice against a malleated breach, proven by a real node (bcoin in regtest): the tower opens
 * the record with the breach's normalized txid, builds justice against the txid actually on
 * chain, and the node accepts and mines it.
 */
import { sat, sumSat, type Sat } from "@ln/bitcoin";
import { RpcError } from "@ln/chain-client";
import { startRegtest, type Regtest } from "@ln/regtest";
import {
  anchorSighash,
  buildCommitment,
  buildSpend,
  finalizeAnchorSpend,
  signDigest,
  type Commitment,
  type CommitmentHtlc,
  type CommitmentParams,
  type Spend,
} from "@ln/tx";
import { segwitAnchor } from "@ln/tx/testing";
import { Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  decodeSealedRecord,
  defaultSweepScript,
  encodeSealedRecord,
  finalizeJustice,
  justiceSignRequestFields,
  locatorOf,
  normalizedTxidBytes,
  openRecord,
  planJustice,
  replaceJustice,
  sealRecord,
  type RevocationRecord,
} from "../src/index.js";
import { htlcFor, peer, peerParams, R, us } from "./fixtures.js";

const FEE_RATE = 2000; // satoshi per 1000 bytes: above the node's relay minimum

let rt: Regtest;
beforeAll(async () => {
  rt = await startRegtest();
}, 120_000);
afterAll(async () => {
  await rt?.stop();
});

async function accepted(tx: Transaction): Promise<void> {
  expect(await rt.rpc.sendRawTransaction(tx.toHex())).toBe(tx.getId());
}
async function mined(tx: Transaction): Promise<void> {
  await rt.mine(1);
  const info = await rt.rpc.getRawTransaction(tx.getId(), true);
  expect(typeof info === "object" && (info.confirmations ?? 0) >= 1).toBe(true);
}
const unspent = async (txid: string, vout: number): Promise<boolean> =>
  (await rt.rpc.call<unknown>("gettxout", [txid, vout, true])) !== null;

/** A segwit-funded 2-of-2 anchor of the two commit keys, confirmed. */
async function openAnchor(amount: Sat): Promise<CommitmentParams["anchor"]> {
  const { tx, anchor } = await segwitAnchor({
    fund: (address, value) => rt.fund(address, value),
    funder: peer.wallet,
    commitKeys: [peer.commit.pub, us.commit.pub],
    amount,
    feeRate: FEE_RATE,
  });
  await accepted(tx);
  await mined(tx);
  return anchor;
}

/** Both commit keys sign; `peerNonce` re-signs the peer's (the broadcaster's) half with another nonce. */
function signedByBoth(c: Commitment, peerNonce?: Buffer): Transaction {
  const digest = anchorSighash(c.tx, c.anchorRedeemScript);
  const peerSig = Buffer.from(
    peerNonce ? ecc.sign(digest, peer.commit.priv, peerNonce) : ecc.sign(digest, peer.commit.priv),
  );
  return finalizeAnchorSpend(c.tx, c.anchorRedeemScript, [
    { pubkey: peer.commit.pub, compact: peerSig },
    { pubkey: us.commit.pub, compact: Buffer.from(ecc.sign(digest, us.commit.priv)) },
  ]);
}

/** The peer revokes commitment N; later it broadcasts it, malleated. Returns what the tower sees. */
async function breachOf(htlcs: CommitmentHtlc[], preimage: Buffer) {
  const anchor = await openAnchor(sat(2_000_000));
  const params = peerParams(anchor, htlcs, preimage, FEE_RATE);
  const commitment = buildCommitment(params);
  const original = signedByBoth(commitment);
  const record: RevocationRecord = {
    signerChannel: 3,
    revokedNumber: 41n,
    revocationPreimage: preimage,
    params,
    sweepScript: defaultSweepScript(params),
  };
  // The channel service seals and publishes; the tower only has the NATS bytes.
  const wire = encodeSealedRecord(sealRecord(record));
  const breach = signedByBoth(commitment, Buffer.alloc(32, 0xee));
  expect(breach.getId()).not.toBe(original.getId());
  await accepted(breach);
  await mined(breach);
  return { params, commitment, original, breach, wire };
}

/** The tower: look the breach up by locator, open the record with its normalized txid. */
function towerOpens(wire: Buffer, breach: Transaction): RevocationRecord {
  const sealed = decodeSealedRecord(wire);
  const ntxid = normalizedTxidBytes(breach);
  expect(sealed.locator).toEqual(locatorOf(ntxid));
  return openRecord(sealed.blob, ntxid);
}

const signAll = (s: Spend): Transaction =>
  finalizeJustice(
    s,
    s.requests.map((r) => signDigest(us.final.priv, r.digest)),
  );
const outTotal = (tx: Transaction): bigint => tx.outs.reduce((a, o) => a + o.value, 0n);

describe("justice on a real regtest node", () => {
  it("a malleated breach with both HTLC kinds: justice spends every revocable output, accepted and mined", async () => {
    const expiry = { blocks: 5000 };
    const htlcs = [
      htlcFor(1, true, 40_000, expiry),
      htlcFor(2, true, 50_000, expiry),
      htlcFor(3, false, 60_000, expiry),
      htlcFor(4, false, 70_000, expiry),
    ];
    const { commitment, original, breach, wire } = await breachOf(htlcs, R(0x99));
    expect(new Set(commitment.outputs.map((o) => o.kind))).toEqual(
      new Set(["to_owner", "to_other", "htlc_offered", "htlc_received"]),
    );
    const record = towerOpens(wire, breach);

    // A transaction that is not this commitment is refused.
    const unrelated = breach.clone();
    unrelated.locktime = 1;
    expect(() => planJustice(record, unrelated, FEE_RATE)).toThrow(
      expect.objectContaining({ name: "JusticeError", code: "NOT_THIS_COMMITMENT" }),
    );

    const plan = planJustice(record, breach, FEE_RATE);
    expect(plan.spends).toHaveLength(1);
    expect(plan.breachTxid).toBe(breach.getId());
    const spend = plan.spends[0]!;
    // Spends the txid on chain, not the one the commitment had when signed.
    for (const input of spend.tx.ins)
      expect(Buffer.from(input.hash).reverse().toString("hex")).toBe(breach.getId());
    // Every revocable output; the to-other output pays our final key already (the wallet's).
    const revocable = commitment.outputs.filter((o) => o.kind !== "to_other").map((o) => o.vout);
    const ours = commitment.outputs.find((o) => o.kind === "to_other")!;
    expect(spend.tx.ins.map((i) => i.index).sort()).toEqual(revocable.sort());
    expect(spend.tx.outs.map((o) => o.script)).toEqual([p2shOf(record)]);

    const fields = justiceSignRequestFields(record, breach, spend);
    expect(fields).toMatchObject({ channel: 3, revokedNumber: 41n, commitmentTxHex: breach.toHex() });
    expect(Transaction.fromHex(fields.justiceTxHex).getId()).toBe(spend.tx.getId());
    expect(original.getId()).not.toBe(breach.getId());

    for (let vout = 0; vout < breach.outs.length; vout++)
      expect(await unspent(breach.getId(), vout)).toBe(true);
    const justice = signAll(spend);
    await accepted(justice);
    await mined(justice);
    for (const vout of revocable) expect(await unspent(breach.getId(), vout)).toBe(false);
    expect(await unspent(breach.getId(), ours.vout)).toBe(true);
    expect(outTotal(justice)).toBe(outTotal(breach) - ours.amount - plan.feeSat);
    expect(plan.sweptSat).toBe(outTotal(justice));
    // The fee is the rate on the signed size (signatures at most 73 bytes each: a little margin).
    expect(plan.feeSat).toBeGreaterThanOrEqual(BigInt(Math.ceil((justice.byteLength() * FEE_RATE) / 1000)));
  });

  it("many HTLCs and a small maxBytes: several justice transactions, each accepted and mined", async () => {
    const htlcs = Array.from({ length: 30 }, (_, i) =>
      htlcFor(10 + i, i % 2 === 0, 20_000 + i * 100, { blocks: 6000 }),
    );
    const { commitment, breach, wire } = await breachOf(htlcs, R(0x98));
    const record = towerOpens(wire, breach);
    const maxBytes = 3000;
    const plan = planJustice(record, breach, FEE_RATE, maxBytes);
    expect(plan.spends.length).toBeGreaterThan(2);
    const txs = plan.spends.map(signAll);
    for (const tx of txs) {
      expect(tx.byteLength()).toBeLessThan(maxBytes);
      await accepted(tx);
    }
    await rt.mine(1);
    const revocable = commitment.outputs.filter((o) => o.kind !== "to_other");
    for (const o of revocable) expect(await unspent(breach.getId(), o.vout)).toBe(false);
    const swept = txs.reduce((a, tx) => a + outTotal(tx), 0n);
    expect(swept).toBe(sumSat(revocable.map((o) => o.amount)) - plan.feeSat);
    expect(sumSat(plan.spends.map((s) => s.fee))).toBe(plan.feeSat);
  });

  it("a replacement at a higher fee rate: same inputs, higher fee, RBF signalled; the node lets it replace the original", async () => {
    const { breach, wire } = await breachOf([htlcFor(50, true, 30_000, { blocks: 7000 })], R(0x97));
    const record = towerOpens(wire, breach);
    const plan = planJustice(record, breach, FEE_RATE);
    const bumped = replaceJustice(plan, FEE_RATE * 3);
    expect(() => replaceJustice(plan, FEE_RATE)).toThrow(
      expect.objectContaining({ name: "JusticeError", code: "FEE_NOT_HIGHER" }),
    );
    expect(bumped.spends).toHaveLength(plan.spends.length);
    plan.spends.forEach((s, i) => {
      const r = bumped.spends[i]!;
      const outpoints = (t: Transaction) =>
        t.ins.map((x) => [Buffer.from(x.hash).toString("hex"), x.index, x.sequence]);
      expect(outpoints(r.tx)).toEqual(outpoints(s.tx));
      expect(r.fee).toBeGreaterThan(s.fee);
      expect(r.tx.outs[0]!.value).toBe(s.tx.outs[0]!.value - (r.fee - s.fee));
      for (const tx of [s.tx, r.tx])
        for (const input of tx.ins) expect(input.sequence).toBeLessThan(0xffff_fffe);
    });
    expect(bumped.feeSat).toBeGreaterThan(plan.feeSat);
    // The node (the harness's BIP125 rules) judges it: the original goes to the mempool, the
    // replacement evicts it and is mined.
    const first = signAll(plan.spends[0]!);
    const replacement = signAll(bumped.spends[0]!);
    await accepted(first);
    await accepted(replacement);
    const mempool = await rt.rpc.getRawMempool();
    expect(mempool).toContain(replacement.getId());
    expect(mempool).not.toContain(first.getId());
    await mined(replacement);
  });

  it("without the RBF signal (another spend's default sequences) the node refuses the replacement", async () => {
    const { breach, wire } = await breachOf([], R(0x96));
    const record = towerOpens(wire, breach);
    const plan = planJustice(record, breach, FEE_RATE);
    const bumped = replaceJustice(plan, FEE_RATE * 3);
    const final = buildSpend(plan.spends[0]!.inputs, record.sweepScript, FEE_RATE);
    for (const input of final.tx.ins) expect(input.sequence).toBe(0xffff_ffff);
    await accepted(signAll(final));
    const refused = await rt.rpc.sendRawTransaction(signAll(bumped.spends[0]!).toHex()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(RpcError);
    expect((refused as RpcError).rpcMessage).toMatch(/conflict/);
  });
});

const p2shOf = (r: RevocationRecord): Buffer => defaultSweepScript(r.params);
