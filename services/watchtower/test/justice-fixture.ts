/** A channel whose peer breaches, on a real regtest node, with the real signer (gRPC mTLS, Postgres). */
import { randomBytes } from "node:crypto";
import { msat, sat, txidFromHex } from "@ln/bitcoin";
import { RpcError } from "@ln/chain-client";
import { defaultSweepScript, encodeSealedRecord, sealRecord } from "@ln/justice";
import { recordingLog, type LogRecord } from "@ln/log";
import { newRegistry } from "@ln/metrics";
import type { Regtest } from "@ln/regtest";
import { commitmentParamsMsg, SignerClient } from "@ln/signer-client";
import {
  anchorSighash,
  buildCommitment,
  finalizeAnchorSpend,
  signDigest,
  verifyDigest,
  type CommitmentParams,
} from "@ln/tx";
import { networks, payments, Transaction } from "bitcoinjs-lib";
import type { NatsConnection } from "nats";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import {
  CLIENT_OPTIONS,
  makePeer,
  remoteParams,
  type Ours,
  type Peer,
  type StateFixture,
  type TestSigner,
} from "../../signer/test/helpers.js";
import { JusticeTower, towerMetrics, type Send, type TowerSettings } from "../src/tower.js";
import { testDatabaseUrl } from "@ln/testkit";

export const DB = testDatabaseUrl();

export async function until(
  cond: () => Promise<boolean> | boolean,
  what: string,
  ms = 60_000,
): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const STATE: StateFixture = {
  ownerMsat: 350_000_000n,
  otherMsat: 600_000_000n,
  htlcs: [
    {
      id: 0n,
      offeredByOwner: true,
      amountMsat: msat(50_000_000n),
      rHash: Buffer.alloc(32, 0x42),
      expiry: { blocks: 500 },
    },
  ],
  delay: { blocks: 20 },
};

export interface Breach {
  ours: Ours;
  peer: Peer;
  /** The revoked commitment 0, as the record describes it. */
  params: CommitmentParams;
  /** The commitment as the peer first signed it (the txid the record's channel knew). */
  original: Transaction;
  /** The same commitment re-signed by the peer with a fresh nonce: what it broadcasts. */
  breach: Transaction;
  sweepScript: Buffer;
  /** Vouts justice takes: the peer's own output and the HTLCs (ours, to-other, is the wallet's). */
  revocable: number[];
  /** Our own output's vout, if the breach has one. */
  ourVout?: number;
  /** The sealed record the channel service publishes. */
  record: { locator: Buffer; payload: Buffer };
}

/** A funded channel with the signer; commitment 0 revoked by the peer (recorded at the signer). */
export async function makeBreach(
  rt: Regtest,
  signer: TestSigner,
  label = randomBytes(4).toString("hex"),
): Promise<Breach> {
  const r = await signer.client.call("NewChannel", {});
  const ours: Ours = { channel: r.channel, commitPub: r.commit_pubkey, finalPub: r.final_pubkey };
  const peer = makePeer(`peer ${label}`);
  const amount = 1_000_000n;
  const probe = remoteParams(ours, peer, { txid: txidFromHex("00".repeat(32)), vout: 0, amount }, 0n, STATE);
  const redeem = buildCommitment(probe).anchorRedeemScript;
  const address = payments.p2sh({ redeem: { output: redeem }, network: networks.regtest }).address!;
  const funding = await rt.fund(address, sat(amount));
  const anchor = { txid: funding.txid, vout: funding.vout, amount };
  const params = remoteParams(ours, peer, anchor, 0n, STATE);
  const sign = async (n: bigint, p: CommitmentParams): Promise<Buffer> =>
    (
      await signer.client.call("SignRemoteCommitment", {
        channel: ours.channel,
        number: n,
        params: commitmentParamsMsg(p),
      })
    ).signature;
  const ourSig0 = await sign(0n, params);
  await sign(1n, remoteParams(ours, peer, anchor, 1n, STATE));
  await signer.client.call("RecordPeerRevocation", {
    channel: ours.channel,
    number: 0n,
    preimage: peer.preimage(0n),
  });

  const built = buildCommitment(params);
  const digest = anchorSighash(built.tx, built.anchorRedeemScript);
  const withPeerSig = (peerSig: Buffer): Transaction =>
    finalizeAnchorSpend(built.tx, built.anchorRedeemScript, [
      { pubkey: ours.commitPub, compact: ourSig0 },
      { pubkey: peer.commit.pub, compact: peerSig },
    ]);
  const original = withPeerSig(signDigest(peer.commit.priv, digest));
  // The peer re-signs its half with another nonce: same normalized txid, another txid.
  const resigned = Buffer.from(ecc.sign(digest, peer.commit.priv, randomBytes(32)));
  if (!verifyDigest(peer.commit.pub, digest, resigned)) throw new Error("bad re-signature");
  const breach = withPeerSig(resigned);
  const sweepScript = defaultSweepScript(params);
  const toOther = built.outputs.find((o) => o.kind === "to_other");
  const sealed = sealRecord({
    signerChannel: ours.channel,
    revokedNumber: 0n,
    revocationPreimage: peer.preimage(0n),
    params,
    sweepScript,
  });
  return {
    ours,
    peer,
    params,
    original,
    breach,
    sweepScript,
    revocable: built.outputs.filter((o) => o.kind !== "to_other").map((o) => o.vout),
    ...(toOther ? { ourVout: toOther.vout } : {}),
    record: { locator: sealed.locator, payload: encodeSealedRecord(sealed) },
  };
}

export const publishRecord = async (nc: NatsConnection, subject: string, b: { record: Breach["record"] }) =>
  nc.jetstream().publish(subject, b.record.payload, { msgID: b.record.locator.toString("hex") });

export interface RunningTower {
  tower: JusticeTower;
  metrics: ReturnType<typeof towerMetrics>;
  /** What the tower logged, as recorded (level, alert, msg, fields). */
  logs: LogRecord[];
  sends: Send[];
  client: SignerClient;
  stop(): Promise<void>;
}

export const SETTINGS: TowerSettings = {
  bumpBlocks: 2,
  buryDepth: 3,
  feeTargetBlocks: 2,
  fallbackFeeRate: 2000,
};

export async function startTower(o: {
  rt: Regtest;
  signer: TestSigner;
  nc: NatsConnection;
  schema: string;
  stream: string;
  subject: string;
  startHeight?: number;
  settings?: Partial<TowerSettings>;
  pool?: pg.Pool;
}): Promise<RunningTower> {
  const pool = o.pool ?? new pg.Pool({ connectionString: DB, max: 5 });
  const client = new SignerClient(
    o.signer.address,
    { ca: o.signer.pems.ca, cert: o.signer.pems.towerCert, key: o.signer.pems.towerKey },
    { ...CLIENT_OPTIONS, "grpc.initial_reconnect_backoff_ms": 100, "grpc.max_reconnect_backoff_ms": 500 },
  );
  const logs: LogRecord[] = [];
  const sends: Send[] = [];
  const metrics = towerMetrics(newRegistry("watchtower"));
  const tower = new JusticeTower({
    pool,
    schema: o.schema,
    rpc: o.rt.rpc,
    signer: client,
    settings: { ...SETTINGS, ...o.settings },
    metrics,
    log: recordingLog((r) => logs.push(r)),
    startHeight: o.startHeight ?? o.rt.height() + 1,
    intervalMs: 50,
    mempoolPollMs: 50,
    signerTimeoutMs: 2000,
    onBroadcast: (s) => sends.push(s),
  });
  await tower.migrate();
  await tower.consumeRecords({ nc: o.nc, stream: o.stream, subject: o.subject, durable: "tower" });
  tower.start();
  return {
    tower,
    metrics,
    logs,
    sends,
    client,
    async stop() {
      await tower.stop();
      client.close();
      if (o.pool === undefined) await pool.end();
    },
  };
}

/** Every transaction in the blocks above `from` spending an output of `txid`, by the vout it spends. */
export async function spendersOf(rt: Regtest, txid: string, from: number): Promise<Map<number, Transaction>> {
  const out = new Map<number, Transaction>();
  for (let h = from; h <= rt.height(); h++) {
    const block = await rt.rpc.getBlock(await rt.rpc.getBlockHash(h), 2);
    if (typeof block === "string") continue;
    for (const t of block.tx) {
      const tx = Transaction.fromHex(t.hex);
      for (const input of tx.ins)
        if (Buffer.from(input.hash).reverse().toString("hex") === txid) out.set(input.index, tx);
    }
  }
  return out;
}

/** Whether the node has this transaction in a block (confirmations > 0). */
export async function confirmed(rt: Regtest, txid: string): Promise<boolean> {
  try {
    const v = await rt.rpc.getRawTransaction(txid, true);
    return typeof v === "object" && (v.confirmations ?? 0) > 0;
  } catch (e) {
    if (e instanceof RpcError) return false;
    throw e;
  }
}

/** Mempool transactions spending an output of `txid`. */
export async function mempoolSpenders(rt: Regtest, txid: string): Promise<Transaction[]> {
  const out: Transaction[] = [];
  for (const id of await rt.rpc.getRawMempool()) {
    let hex: string;
    try {
      hex = (await rt.rpc.getRawTransaction(id, false)) as string;
    } catch {
      continue;
    }
    const tx = Transaction.fromHex(hex);
    if (tx.ins.some((i) => Buffer.from(i.hash).reverse().toString("hex") === txid)) out.push(tx);
  }
  return out;
}
