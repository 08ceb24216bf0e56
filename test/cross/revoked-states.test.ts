/**
 * Every revoked state (DESIGN.md 7, draft 6.1), over the two-node harness (harness.ts): a channel
 * A-B is driven through at least 200 commitment updates with HTLCs both ways, held in the
 * commitments by the payees' gates and then fulfilled or failed. A, the cheater, keeps a copy of
 * each of its commitments (its own state after every transition). Then both channel nodes stop, and
 * for a sample of the revoked ones (the first, the last, the five with the most HTLCs, random
 * others: seeded, printed) the chain is rewound to the same tip, a fresh watchtower of B's takes
 * B's revocation records from B's records stream, A broadcasts that commitment re-signed with a
 * fresh nonce, and the tower must take every output of A's (its balance, every HTLC) through the
 * revocation path: each spent in a block, by transactions spending only the breach and paying only
 * B's sweep script (B's final key, as B's own output on the breach already pays: B's wallet sweeps
 * that one), for a fee above nothing and below 5 % of the breach, the sums read off the chain.
 *
 * REVOKED_SEED=<n> replays a sample; REVOKED_UPDATES and REVOKED_SAMPLES change the sizes.
 */
import { randomBytes } from "node:crypto";
import { msat, sha256 } from "@ln/bitcoin";
import type { ChannelState } from "@ln/channel-core";
import { defaultSweepScript, normalizedTxidBytes } from "@ln/justice";
import { p2shOutput, toOtherScript } from "@ln/scripts";
import { KeyRing } from "@ln/signer-service/embedded";
import { buildCommitment } from "@ln/tx";
import { JusticeTower, type TowerSettings } from "@ln/watchtower-service";
import { Transaction } from "bitcoinjs-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { commitmentOf, resignWithKey, signedCommitment, type StaleCommitment } from "../lab/breach.js";
import { confirmedAt, confirmedSpenders, spentTxid } from "../lab/chain.js";
import { startHarness, type Harness, type Side } from "./harness.js";

const UPDATES = Number(process.env["REVOKED_UPDATES"] ?? 200);
const SAMPLES = Number(process.env["REVOKED_SAMPLES"] ?? 20);
const SEED = Number(process.env["REVOKED_SEED"] ?? randomBytes(4).readUInt32LE(0));
const CHANNEL_SAT = 3_000_000n;
const SETTINGS: TowerSettings = { bumpBlocks: 2, buryDepth: 3, feeTargetBlocks: 2, fallbackFeeRate: 2000 };

/** mulberry32: a small seeded PRNG, uniform in [0, 1). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let h: Harness | undefined;
const towerSchemas: string[] = [];

beforeAll(async () => {
  h = await startHarness();
}, 60_000);
afterAll(async () => {
  await h?.close(towerSchemas);
}, 60_000);

interface Kept {
  stale: StaleCommitment;
  htlcs: number;
}

describe("every revoked state", () => {
  it(`a channel driven through ${UPDATES} updates with HTLCs both ways: each sampled revoked state is punished completely`, async () => {
    const H = h as Harness;
    const { nodes, rt, pool, nc, run, until, state, channelOf, invoiceOf } = H;
    const [A, B] = [nodes.A, nodes.B];
    const random = prng(SEED);
    const between = (lo: number, hi: number): number => lo + Math.floor(random() * (hi - lo + 1));
    console.log(`[revoked-states] seed ${SEED} (REVOKED_SEED=${SEED} replays it)`);
    const t0 = Date.now();

    // A keeps its own commitment after every transition of its store (what its operator has).
    const kept = new Map<bigint, Kept>();
    const signerChannels = new Map<string, number>();
    const transitionAll = A.store.transitionAll.bind(A.store);
    A.store.transitionAll = async (id, owner, run, withins) => {
      const t = await transitionAll(id, owner, run, withins);
      const s = t.state;
      if (s.localCommit !== undefined && s.anchor !== undefined && s.remote !== undefined) {
        let sc = signerChannels.get(id);
        if (sc === undefined) {
          sc = (await A.store.row(id))?.signerChannel as number;
          signerChannels.set(id, sc);
        }
        const stale = commitmentOf(s, id, sc);
        kept.set(stale.number, { stale, htlcs: stale.params.htlcs.length });
      }
      return t;
    };

    const port = await B.gateway.listen(0, "127.0.0.1");
    await A.node.connect({ host: "127.0.0.1", port, nodeId: B.nodeId.toString("hex") });
    await H.openChannel(Number(CHANNEL_SAT));
    const [aId, bId] = [await channelOf("A"), await channelOf("B")];
    const add = (side: Side, rHash: string, amountMsat: bigint): Promise<unknown> =>
      nodes[side].node.command(side === "A" ? aId : bId, {
        kind: "add_htlc",
        amountMsat: msat(amountMsat),
        rHash,
        expiry: { blocks: rt.height() + 300 },
      });
    const both = async (): Promise<ChannelState[]> => [await state("A"), await state("B")];
    const everywhere = async (n: number): Promise<boolean> =>
      (await both()).every((s) => s.localCommit?.htlcs.length === n && s.remoteCommit?.htlcs.length === n);

    // B earns something to offer first.
    await add("A", await invoiceOf("B", 600_000_000n), 600_000_000n);
    await until(
      "B paid",
      async () => (await everywhere(0)) && (await state("B")).localCommit?.localMsat === 600_000_000n,
    );

    // Rounds: with both gates closed, A offers some HTLCs and B some; once all are in every
    // commitment the gates open and each is fulfilled (an invoice of the payee's) or failed.
    // Every sixth round holds many.
    let rounds = 0;
    const settled = { fulfilled: 0, failed: 0 };
    while (kept.size <= UPDATES) {
      rounds++;
      const big = rounds % 6 === 0;
      const counts: Record<Side, number> = {
        A: big ? between(7, 10) : between(1, 3),
        B: big ? between(3, 5) : between(1, 2),
      };
      const release: (() => void)[] = [];
      for (const side of ["A", "B"] as const)
        nodes[side].ledger.gate = new Promise<void>((r) => release.push(r));
      for (const side of ["A", "B"] as const)
        for (let i = 0; i < counts[side]; i++) {
          const amount = BigInt(between(5_000, 20_000)) * 1000n;
          const known = random() < 0.6;
          if (known) settled.fulfilled++;
          else settled.failed++;
          const rHash = known
            ? await invoiceOf(H.other(side), amount)
            : sha256(randomBytes(32)).toString("hex");
          await add(side, rHash, amount);
        }
      const n = counts.A + counts.B;
      await until(`round ${rounds}: ${n} HTLCs in every commitment`, () => everywhere(n));
      for (const r of release) r();
      await until(`round ${rounds}: settled`, () => everywhere(0));
    }
    // Each HTLC was fulfilled or failed as its hash was known to the payee or not (the first
    // payment to B included), as the payers' books say.
    const outcomes = async (status: string): Promise<number> =>
      [...(await A.ledger.payments()), ...(await B.ledger.payments())].filter((p) => p.status === status)
        .length;
    await until(
      "every payment settled in the books",
      async () =>
        (await outcomes("succeeded")) === settled.fulfilled + 1 &&
        (await outcomes("failed")) === settled.failed,
    );
    const latest = (await state("A")).localCommit?.number as bigint;
    console.log(
      `[revoked-states] ${rounds} rounds, ${kept.size} commitments of A kept (latest ${latest}), ` +
        `${settled.fulfilled} HTLCs fulfilled, ${settled.failed} failed, in ${Math.round((Date.now() - t0) / 1000)} s`,
    );
    // Nothing missed: every number from the first to the latest.
    const numbers = [...kept.keys()].sort((x, y) => (x < y ? -1 : 1));
    expect(numbers.at(-1)).toBe(latest);
    expect(BigInt(numbers.length)).toBe(latest - (numbers[0] as bigint) + 1n);

    // B holds A's revocation of every older commitment, recorded by B's signer; every record of
    // B's is published to its records stream.
    await until("B's revocations recorded and its records published", async () => {
      const revs = await pool.query<{ number: string }>(
        `SELECT number::text AS number FROM "${B.schema}".peer_revocations WHERE channel_id = $1 AND recorded_at IS NOT NULL`,
        [bId],
      );
      const have = new Set(revs.rows.map((r) => BigInt(r.number)));
      const unpublished = await pool.query(
        `SELECT 1 FROM "${B.schema}".tower_records WHERE published_at IS NULL`,
      );
      return numbers.every((x) => x === latest || have.has(x)) && unpublished.rowCount === 0;
    });
    // Nothing else touches the chain from here on: both channel nodes stop.
    await H.stopNode("A");
    await H.stopNode("B");
    expect((await state("A")).localCommit?.number).toBe(latest);
    const bSweep = p2shOutput(toOtherScript(Buffer.from((await state("B")).local.finalKey, "hex")));
    const records = Number(
      (await pool.query<{ n: string }>(`SELECT count(*)::text AS n FROM "${B.schema}".tower_records`)).rows[0]
        ?.n,
    );
    const jsm = await nc.jetstreamManager();
    expect((await jsm.streams.info(B.recordsStream)).state.messages).toBe(records);
    expect(records).toBeGreaterThanOrEqual(UPDATES);

    // The sample: the first, the last revoked, the five with the most HTLCs, random others.
    const revoked = numbers.filter((x) => x < latest).map((x) => kept.get(x) as Kept);
    const picked = new Map<bigint, Kept>();
    const pick = (k: Kept | undefined): void => void (k && picked.set(k.stale.number, k));
    pick(revoked[0]);
    pick(revoked.at(-1));
    for (const k of [...revoked]
      .sort((x, y) => y.htlcs - x.htlcs || Number(x.stale.number - y.stale.number))
      .slice(0, 5))
      pick(k);
    while (picked.size < Math.min(SAMPLES, revoked.length))
      pick(revoked[Math.floor(random() * revoked.length)]);
    const samples = [...picked.values()];
    console.log(
      `[revoked-states] sampled ${samples.length} of ${revoked.length} revoked: ` +
        samples.map((k) => `${k.stale.number}(${k.htlcs})`).join(" "),
    );

    const aPriv = new KeyRing(A.seed).channel(samples[0]?.stale.signerChannel as number).commit.priv;
    const H0 = rt.height();
    const mempoolSpenders = async (txid: string): Promise<number> => {
      let n = 0;
      for (const id of await rt.rpc.getRawMempool()) {
        const hex = await rt.rpc.getRawTransaction(id, false).catch(() => undefined);
        if (typeof hex !== "string") continue;
        const tx = Transaction.fromHex(hex);
        if (tx.ins.some((_, i) => spentTxid(tx, i) === txid)) n++;
      }
      return n;
    };

    for (const [i, { stale, htlcs }] of samples.entries()) {
      // The same chain each time: back to H0 (bcoin empties its mempool on the reset).
      if (rt.height() > H0) await rt.rpc.call("invalidateblock", [await rt.rpc.getBlockHash(H0 + 1)]);
      expect(rt.height()).toBe(H0);
      expect(await rt.rpc.getRawMempool()).toEqual([]);

      // A fresh tower of B's: its own schema, all of B's records from the stream.
      const schema = `cross_${run}_jt_${i}`;
      towerSchemas.push(schema);
      const durable = `jt-${run}-${i}`;
      const towerLogs: string[] = [];
      const towerLog = (level: string) => (msg: string) => void towerLogs.push(`${level}: ${msg}`);
      const tower = new JusticeTower({
        pool,
        schema,
        rpc: rt.rpc,
        signer: B.towerSigner,
        settings: SETTINGS,
        log: {
          info: towerLog("info"),
          warn: towerLog("warn"),
          error: towerLog("error"),
          alert: towerLog("ALERT"),
        },
        startHeight: H0 + 1,
        intervalMs: 50,
        mempoolPollMs: 50,
      });
      await tower.migrate();
      await tower.consumeRecords({ nc, stream: B.recordsStream, subject: B.recordsSubject, durable });
      tower.start();
      try {
        await until(`tower ${i} storing B's ${records} records`, async () => {
          const r = await pool.query<{ n: string }>(
            `SELECT count(*)::text AS n FROM "${schema}".tower_records`,
          );
          return Number(r.rows[0]?.n) === records;
        });

        // A broadcasts the revoked commitment re-signed with a fresh nonce: not the txid B saw.
        const breach = resignWithKey(stale, aPriv);
        const original = signedCommitment(stale, aPriv);
        const txid = breach.getId();
        expect(txid).not.toBe(original.getId());
        expect(normalizedTxidBytes(breach).toString("hex")).toBe(
          normalizedTxidBytes(original).toString("hex"),
        );
        await rt.submit(breach.toHex());
        await rt.mine(1);
        expect(await confirmedAt(rt.rpc, txid)).toBe(H0 + 1);

        // Mined a block whenever the tower has something in the mempool, until every output of
        // the breach is spent in a block.
        // B's sweep script: its final key's (read from B's own state). The breach's output to B
        // pays it already (B's wallet sweeps that one as a close output); justice takes the rest.
        const sweepScript = defaultSweepScript(stale.params);
        expect(sweepScript.equals(bSweep)).toBe(true);
        const toB = breach.outs.flatMap((o, v) => (Buffer.from(o.script).equals(sweepScript) ? [v] : []));
        expect(toB.length).toBeLessThanOrEqual(1);
        const taken = breach.outs.map((_, v) => v).filter((v) => !toB.includes(v));
        let spenders: Awaited<ReturnType<typeof confirmedSpenders>> = [];
        const allSpent = async (): Promise<boolean> => {
          spenders = await confirmedSpenders(rt.rpc, txid, H0 + 1);
          if (new Set(spenders.flatMap((s) => s.vouts)).size === taken.length) return true;
          if ((await mempoolSpenders(txid)) > 0) await rt.mine(1);
          return false;
        };
        await until(
          `every output of breach ${stale.number} but B's own spent in a block`,
          allSpent,
          60_000,
        ).catch(async (e: unknown) => {
          // What the tower had got to, for the failure.
          const consumer = await jsm.consumers.info(B.recordsStream, durable).catch(() => undefined);
          const q = async (sql: string): Promise<unknown[]> => (await pool.query(sql)).rows;
          const blocks: string[] = [];
          for (let b = H0 + 1; b <= (await rt.rpc.getBlockCount()); b++) {
            const hash = await rt.rpc.getBlockHash(b);
            const block = await rt.rpc.getBlock(hash, 2);
            blocks.push(
              `${b} ${hash}: ${JSON.stringify(block.tx.map((t) => (typeof t === "object" ? t.txid : t)))}`,
            );
          }
          throw new Error(
            `breach ${stale.number} (${txid}) not punished: ${String(e).split("\n")[0]}\n` +
              `tip ${rt.height()}, records consumer pending ${consumer?.num_pending} ack pending ${consumer?.num_ack_pending}, ` +
              `cursor ${JSON.stringify(await q(`SELECT cursor FROM "${schema}".tower_cursor`))}, ` +
              `breaches ${JSON.stringify(await q(`SELECT ntxid, state FROM "${schema}".tower_breaches`))}\n` +
              `blocks:\n${blocks.join("\n")}\nspenders ${JSON.stringify(spenders.map((x) => [x.tx.getId(), x.vouts, x.height]))} of ${breach.outs.length} outputs\ntower log:\n${towerLogs.join("\n")}`,
          );
        });

        // Read off the chain: each of A's outputs (its balance, every HTLC) spent once, only to
        // B's sweep script, only from the breach; B's own output left to B's wallet.
        const vouts = spenders.flatMap((s) => s.vouts).sort((x, y) => x - y);
        expect(vouts).toEqual(taken);
        const breachOut = breach.outs.reduce((a, o) => a + BigInt(o.value), 0n);
        expect(breachOut).toBe(CHANNEL_SAT - buildCommitment(stale.params).paidFee);
        let justiceOut = 0n;
        let fees = 0n;
        for (const { tx, vouts: spent } of spenders) {
          expect(tx.ins.every((_, k) => spentTxid(tx, k) === txid)).toBe(true);
          for (const o of tx.outs) expect(Buffer.from(o.script).equals(sweepScript)).toBe(true);
          const out = tx.outs.reduce((a, o) => a + BigInt(o.value), 0n);
          const fee = spent.reduce((a, v) => a + BigInt(breach.outs[v]?.value ?? 0), 0n) - out;
          expect(fee).toBeGreaterThan(0n);
          expect(fee * 20n).toBeLessThan(breachOut);
          justiceOut += out;
          fees += fee;
        }
        // All of the breach ends at B's sweep script, less the justice fees.
        const toBOut = toB.reduce((a, v) => a + BigInt(breach.outs[v]?.value ?? 0), 0n);
        expect(justiceOut + toBOut).toBe(breachOut - fees);
        expect(fees * 20n).toBeLessThan(breachOut);
        console.log(
          `[revoked-states] #${stale.number}: ${htlcs} HTLCs, ${breach.outs.length} outputs (${breachOut} sat), ` +
            `${taken.length} taken by ${spenders.length} justice tx, fee ${fees} sat`,
        );
      } finally {
        await tower.stop();
        await jsm.consumers.delete(B.recordsStream, durable).catch(() => undefined);
        await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      }
    }
    console.log(`[revoked-states] done in ${Math.round((Date.now() - t0) / 1000)} s`);
  }, 600_000);
});
