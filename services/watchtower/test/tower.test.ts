/**
 * The tower against a real regtest node, NATS JetStream, Postgres and the real signer (DESIGN.md 7;
 * draft 6.1): a revoked commitment, re-signed by the peer so that its txid is new, is punished by
 * spending every one of its outputs to the record's sweep script, whatever happens meanwhile.
 */
import { recordingLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { startRegtest, type Regtest } from "@ln/regtest";
import { Transaction } from "bitcoinjs-lib";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { startTestSigner, TEST_CLIENTS, type TestSigner } from "../../signer/test/helpers.js";
import { ensureRecordsStream } from "../src/streams.js";
import {
  confirmed,
  DB,
  makeBreach,
  mempoolSpenders,
  publishRecord,
  spendersOf,
  startTower,
  until,
  type Breach,
} from "./justice-fixture.js";
import { testNatsUrl } from "@ln/testkit";

let rt: Regtest;
let signer: TestSigner;
let nc: NatsConnection;
let jsm: JetStreamManager;
const pool = new pg.Pool({ connectionString: DB, max: 4 });
const cleanup: (() => Promise<unknown>)[] = [];

beforeAll(async () => {
  rt = await startRegtest();
  signer = await startTestSigner();
  nc = await connect({ servers: testNatsUrl() });
  jsm = await nc.jetstreamManager();
}, 120_000);
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => undefined);
});
afterAll(async () => {
  await nc?.close();
  await signer?.close();
  await pool.end();
  await rt?.stop();
});

/** A fresh schema, stream and subject for one test, dropped after it. */
function place() {
  const run = randomBytes(4).toString("hex");
  const p = {
    schema: `tower_test_${run}`,
    stream: `TOWER_TEST_${run.toUpperCase()}`,
    subject: `tt_${run}.tower.records`,
  };
  cleanup.push(
    () => pool.query(`DROP SCHEMA IF EXISTS "${p.schema}" CASCADE`),
    () => jsm.streams.delete(p.stream),
  );
  return p;
}

async function tower(p: ReturnType<typeof place>, extra: Partial<Parameters<typeof startTower>[0]> = {}) {
  const t = await startTower({ rt, signer, nc, ...p, ...extra });
  cleanup.push(() => t.stop());
  return t;
}

/** Publishes the breach's record where `t` takes records from, and waits until it is stored. */
async function recordStored(
  t: Awaited<ReturnType<typeof tower>>,
  p: ReturnType<typeof place>,
  b: Breach,
): Promise<void> {
  await publishRecord(nc, p.subject, b);
  await until(async () => (await t.metrics.recordsStored.get()).values[0]?.value === 1, "the record stored");
}

const outputsTotal = (tx: Transaction): bigint => tx.outs.reduce((a, o) => a + o.value, 0n);

/**
 * Every revocable output of the breach spent, in blocks, by transactions paying only the sweep
 * script; our own output (to-other) left to the wallet.
 */
async function expectPunished(b: Breach, from: number): Promise<Transaction[]> {
  const breachTxid = b.breach.getId();
  await until(async () => {
    const mined = await spendersOf(rt, breachTxid, from);
    if (mined.size === b.revocable.length) return true;
    // A block only once justice waits in the mempool for every output not taken yet: a block
    // mined before the tower sent it (a busy machine) counts towards its bump, and a replacement
    // would follow that no chain made necessary.
    const waiting = new Set(
      (await mempoolSpenders(rt, breachTxid)).flatMap((t) =>
        t.ins.filter((i) => Buffer.from(i.hash).reverse().toString("hex") === breachTxid).map((i) => i.index),
      ),
    );
    if (b.revocable.every((vout) => mined.has(vout) || waiting.has(vout))) await rt.mine(1);
    return false;
  }, "justice to confirm");
  const spenders = await spendersOf(rt, breachTxid, from);
  expect([...spenders.keys()].sort()).toEqual([...b.revocable].sort());
  const justice = [...new Map([...spenders.values()].map((t) => [t.getId(), t])).values()];
  let paid = 0n;
  for (const j of justice) {
    for (const o of j.outs) expect(Buffer.from(o.script).equals(b.sweepScript)).toBe(true);
    paid += outputsTotal(j);
  }
  const fees = justice.reduce((a, j) => {
    const inputs = j.ins.reduce((s, i) => s + b.breach.outs[i.index]!.value, 0n);
    return a + inputs - outputsTotal(j);
  }, 0n);
  expect(fees).toBeGreaterThan(0n);
  const ours = b.ourVout === undefined ? 0n : b.breach.outs[b.ourVout]!.value;
  expect(paid).toBe(outputsTotal(b.breach) - ours - fees);
  return justice;
}

/** The fee of a justice transaction in satoshi per 1000 bytes of its signed size. */
function rateOf(b: Breach, j: Transaction): number {
  const inputs = j.ins.reduce((s, i) => s + b.breach.outs[i.index]!.value, 0n);
  return (Number(inputs - outputsTotal(j)) * 1000) / j.byteLength();
}

/**
 * A breach mined and its record published, then the node's fee estimate and mining floor set
 * (`resetFees` puts them back).
 */
async function pricedBreach(estimate: number, floor = 0) {
  const p = place();
  const b = await makeBreach(rt, signer);
  const from = rt.height() + 1;
  await rt.submit(b.breach.toHex());
  await rt.mine(1);
  await ensureRecordsStream(jsm, p.stream, p.subject);
  await publishRecord(nc, p.subject, b);
  rt.setFeeEstimate(estimate);
  rt.setMinMiningFeeRate(floor);
  return { p, b, from };
}

function resetFees(): void {
  rt.setFeeEstimate(undefined);
  rt.setMinMiningFeeRate(0);
}

describe("the tower punishes a breach", () => {
  it("seen in the mempool, re-signed with a fresh nonce", async () => {
    const p = place();
    const t = await tower(p);
    const b = await makeBreach(rt, signer);
    expect(b.breach.getId()).not.toBe(b.original.getId());
    await recordStored(t, p, b);
    const from = rt.height() + 1;
    await rt.submit(b.breach.toHex());
    await until(
      async () => (await mempoolSpenders(rt, b.breach.getId())).length > 0,
      "justice in the mempool",
    );
    expect((await t.metrics.breaches.get()).values.find((v) => v.labels.where === "mempool")?.value).toBe(1);
    const justice = await expectPunished(b, from);
    // At the fallback rate (bcoin has no estimate on regtest), measured on the signed size.
    for (const j of justice) {
      expect(rateOf(b, j)).toBeGreaterThanOrEqual(2000);
      expect(rateOf(b, j)).toBeLessThan(2100);
    }
    expect(
      t.sends
        .filter((s) => s.kind === "first")
        .map((s) => s.txid)
        .sort(),
    ).toEqual(justice.map((j) => j.getId()).sort());
  });

  it("seen only in a block, by a tower started after it was mined", async () => {
    const p = place();
    const b = await makeBreach(rt, signer);
    const from = rt.height() + 1;
    await rt.submit(b.breach.toHex());
    await rt.mine(1);
    expect(await confirmed(rt, b.breach.getId())).toBe(true);
    // The record arrives before the tower runs: the stream keeps it.
    await ensureRecordsStream(jsm, p.stream, p.subject);
    await publishRecord(nc, p.subject, b);
    const t = await tower(p, { startHeight: from });
    await expectPunished(b, from);
    expect((await t.metrics.breaches.get()).values.find((v) => v.labels.where === "block")?.value).toBe(1);
    // Buried (depth 3 here): breach and record are pruned.
    await until(async () => {
      const r = await pool.query(`SELECT count(*)::int AS n FROM "${p.schema}".tower_breaches`);
      if (r.rows[0].n === 0) return true;
      await rt.mine(1);
      return false;
    }, "the breach pruned");
    const records = await pool.query(`SELECT count(*)::int AS n FROM "${p.schema}".tower_records`);
    expect(records.rows[0].n).toBe(0);
  });

  it("skips a record that does not decode or open, and keeps going", async () => {
    const p = place();
    const t = await tower(p);
    await nc.jetstream().publish(p.subject, Buffer.from("not a record"), { msgID: "junk" });
    // A record under the right locator whose blob is for another commitment: it cannot open.
    const b = await makeBreach(rt, signer);
    const other = await makeBreach(rt, signer);
    const { encodeSealedRecord, decodeSealedRecord } = await import("@ln/justice");
    const wrong = encodeSealedRecord({
      locator: b.record.locator,
      blob: decodeSealedRecord(other.record.payload).blob,
    });
    await nc.jetstream().publish(p.subject, wrong, { msgID: "wrong" });
    await publishRecord(nc, p.subject, b);
    await until(
      async () => (await t.metrics.recordsStored.get()).values[0]?.value === 2,
      "both records stored",
    );
    expect(
      (await t.metrics.recordsRejected.get()).values.find((v) => v.labels.reason === "malformed")?.value,
    ).toBe(1);
    const from = rt.height() + 1;
    await rt.submit(b.breach.toHex());
    await expectPunished(b, from);
    expect(
      (await t.metrics.recordsRejected.get()).values.find((v) => v.labels.reason === "unopenable")?.value,
    ).toBeGreaterThanOrEqual(1);
  });
});

describe("the tower keeps at it", () => {
  it("waits for a signer that is down, raising the alarm, and signs once it is back", async () => {
    const p = place();
    const t = await tower(p);
    const b = await makeBreach(rt, signer);
    await recordStored(t, p, b);
    await signer.running.shutdown(100);
    const from = rt.height() + 1;
    await rt.submit(b.breach.toHex());
    await until(async () => (await t.metrics.waiting.get()).values[0]!.value > 0, "the alert gauge");
    // The breach itself is an alert too (level warn): this one is the signer's.
    const alert = t.logs.find((l) => l.alert && l.msg.startsWith("the signer is unreachable"));
    expect(alert?.level).toBe("error");
    expect(alert?.msg).toMatch(/20 blocks remain before the revoked commitment's delay runs out/);
    expect(alert?.fields).toMatchObject({ breach: b.breach.getId(), blocksLeft: 20 });
    await rt.mine(3);
    await until(
      () => t.logs.some((l) => l.alert && l.fields["blocksLeft"] === 17 && / 17 blocks remain/.test(l.msg)),
      "the alert counting down",
    );
    expect((await t.metrics.waiting.get()).values[0]!.value).toBe(1);
    expect((await t.metrics.signerWaits.get()).values[0]!.value).toBeGreaterThan(0);
    expect(await mempoolSpenders(rt, b.breach.getId())).toEqual([]);
    await restartSigner();
    await expectPunished(b, from);
    expect((await t.metrics.waiting.get()).values[0]!.value).toBe(0);
    expect((await t.metrics.refusals.get()).values[0]!.value).toBe(0);
  });

  it("re-broadcasts after the breach's block is reorganised away", async () => {
    const p = place();
    const t = await tower(p);
    const b = await makeBreach(rt, signer);
    await recordStored(t, p, b);
    const fork = rt.height() + 1;
    await rt.submit(b.breach.toHex());
    await until(
      async () => (await mempoolSpenders(rt, b.breach.getId())).length > 0,
      "justice in the mempool",
    );
    await rt.mine(1);
    const [justice] = [...(await spendersOf(rt, b.breach.getId(), fork)).values()];
    expect(justice).toBeDefined();
    await until(
      async () => (await t.metrics.confirmed.get()).values[0]!.value >= 1,
      "the tower to see it confirmed",
    );
    const sentBefore = t.sends.length;
    // The new branch leaves both out (a miner fee floor above the breach's rate) ...
    rt.setMinMiningFeeRate(50_000);
    await rt.reorg(1, 1);
    expect(await confirmed(rt, b.breach.getId())).toBe(false);
    // ... until the floor is lifted: whatever the node kept or dropped, justice must end up mined.
    rt.setMinMiningFeeRate(0);
    await expectPunished(b, fork);
    expect(await confirmed(rt, b.breach.getId())).toBe(true);
    // bcoin drops the transactions of an invalidated block: the tower had to send both again,
    // justice as a rebroadcast, or as a fee bump if a block came while the floor kept it out.
    const after = t.sends.slice(sentBefore);
    expect(after.some((s) => s.kind === "breach")).toBe(true);
    expect(after.some((s) => s.kind === "rebroadcast" || s.kind === "replacement")).toBe(true);
  });

  it("pays the estimate, and replaces justice that a fee floor keeps out of blocks", async () => {
    const { p, b, from } = await pricedBreach(10_000, 15_000);
    try {
      const t = await tower(p, { startHeight: from });
      await until(() => t.sends.some((s) => s.kind === "first"), "the first justice");
      const first = Transaction.fromHex(t.sends.find((s) => s.kind === "first")!.hex);
      expect(rateOf(b, first)).toBeGreaterThanOrEqual(10_000);
      expect(rateOf(b, first)).toBeLessThan(10_500);
      await rt.mine(1);
      expect(await confirmed(rt, first.getId())).toBe(false);
      const justice = await expectPunished(b, from);
      const replacements = t.sends.filter((s) => s.kind === "replacement");
      expect(replacements.length).toBeGreaterThanOrEqual(2); // 12,500 then 15,625
      for (const j of justice) {
        expect(rateOf(b, j)).toBeGreaterThanOrEqual(15_000);
        expect(j.getId()).toBe(replacements[replacements.length - 1]!.txid);
      }
      expect(await confirmed(rt, first.getId())).toBe(false);
    } finally {
      resetFees();
    }
  });
});

describe("the tower's fee-rate ceiling (WATCHTOWER_MAX_FEE_RATE)", () => {
  it("caps its bumps at the ceiling, then stops bumping and counts it, re-sending what it has", async () => {
    const { p, b, from } = await pricedBreach(10_000, 15_000); // nothing at 12,000 confirms under that floor
    try {
      const t = await tower(p, { startHeight: from, settings: { maxFeeRate: 12_000 } });
      await until(() => t.sends.some((s) => s.kind === "first"), "the first justice");
      const capped = async () => (await t.metrics.feeCapped.get()).values[0]?.value ?? 0;
      // 10,000 bumped to 12,500 would pass the ceiling: 12,000; then no more bumps.
      await until(async () => {
        if ((await capped()) >= 1) return true;
        await rt.mine(1);
        return false;
      }, "the ceiling reached");
      const replacements = t.sends.filter((s) => s.kind === "replacement");
      expect(replacements).toHaveLength(1);
      const last = Transaction.fromHex(replacements[0]!.hex);
      // Measured on the actual size: the signatures may be a byte or two shorter than the worst case paid for.
      expect(rateOf(b, last)).toBeGreaterThanOrEqual(12_000);
      expect(rateOf(b, last)).toBeLessThan(12_600);
      rt.setMinMiningFeeRate(0);
      // The fee floor gone, the capped version confirms: no version above the ceiling was made.
      const justice = await expectPunished(b, from);
      for (const j of justice) expect(j.getId()).toBe(last.getId());
      for (const send of t.sends.filter((s) => s.kind !== "breach"))
        expect(rateOf(b, Transaction.fromHex(send.hex))).toBeLessThan(12_600);
    } finally {
      resetFees();
    }
  });
});

describe("the tower's fee share ceiling (WATCHTOWER_MAX_FEE_PERCENT)", () => {
  it("lowers the rate so that no justice fee exceeds the share of what it takes", async () => {
    const { p, b, from } = await pricedBreach(50_000);
    try {
      await tower(p, { startHeight: from, settings: { maxFeePercent: 1 } });
      const justice = await expectPunished(b, from);
      for (const j of justice) {
        const taken = j.ins.reduce((sum, i) => sum + b.breach.outs[i.index]!.value, 0n);
        const fee = taken - outputsTotal(j);
        expect(fee * 100n).toBeLessThanOrEqual(taken); // 1 %
        expect(rateOf(b, j)).toBeLessThan(50_000); // the estimate was lowered to fit
      }
    } finally {
      resetFees();
    }
  });
});

describe("records", () => {
  it("stores a backlog in batches; a failed insert is redelivered, a bad record held up nothing", async () => {
    const p = place();
    await ensureRecordsStream(jsm, p.stream, p.subject);
    const t = await tower(p);
    // Until the constraint goes, every insert fails (NOT VALID: it only checks new rows).
    await pool.query(`ALTER TABLE "${p.schema}".tower_records ADD CONSTRAINT held CHECK (false) NOT VALID`);
    const { encodeSealedRecord } = await import("@ln/justice");
    const js = nc.jetstream();
    const n = 1200; // more than one batch
    const payloads = Array.from({ length: n }, () =>
      encodeSealedRecord({ locator: randomBytes(16), blob: randomBytes(200) }),
    );
    // The bad record first, in a batch whose insert fails: terminated all the same, not redelivered.
    await js.publish(p.subject, Buffer.from("not a record"), { msgID: "junk" });
    await Promise.all(payloads.map((payload, i) => js.publish(p.subject, payload, { msgID: `r${i}` })));
    await js.publish(p.subject, payloads[0]!, { msgID: "again" }); // stored once
    const count = async (): Promise<number> =>
      (await pool.query(`SELECT count(*)::int AS n FROM "${p.schema}".tower_records`)).rows[0].n;
    await until(
      () => t.logs.some((l) => l.level === "warn" && l.msg.startsWith("could not store")),
      "a failed insert",
    );
    expect(await count()).toBe(0);
    const malformed = async () =>
      (await t.metrics.recordsRejected.get()).values.find((v) => v.labels.reason === "malformed")?.value;
    await until(async () => (await malformed()) === 1, "the bad record dropped");
    await pool.query(`ALTER TABLE "${p.schema}".tower_records DROP CONSTRAINT held`);
    await until(async () => {
      const info = await jsm.consumers.info(p.stream, "tower");
      return info.num_pending === 0 && info.num_ack_pending === 0;
    }, "every message acked");
    expect(await count()).toBe(n);
    expect((await t.metrics.recordsStored.get()).values[0]!.value).toBe(n);
    expect(await malformed()).toBe(1);
  });
});

describe("replicas", () => {
  it("a restarted tower takes over the stored records and the cursor; each record is stored once", async () => {
    const p = place();
    // The breach's funding before the first tower starts: `fund` may mine a hundred blocks, and a
    // tower started before them must follow each (a few queries apiece). Stopped at an arbitrary
    // point, the first tower left the second all it had not reached, so the test's length hung on
    // a race between the follower and the miner, and on a busy machine it ran out of time.
    const b = await makeBreach(rt, signer);
    const a = await tower(p);
    await publishRecord(nc, p.subject, b);
    // The same record under another message id: JetStream keeps it, the tower stores it once.
    await nc.jetstream().publish(p.subject, b.record.payload, { msgID: "again" });
    // One block for the first tower to follow, so that it stores a cursor the second resumes from.
    await rt.mine(1);
    const followed = rt.height();
    await until(async () => {
      const r = await pool.query(`SELECT count(*)::int AS n FROM "${p.schema}".tower_records`);
      const info = await jsm.consumers.info(p.stream, "tower");
      const c = await pool.query<{ height: number }>(
        `SELECT (cursor->>'height')::int AS height FROM "${p.schema}".tower_cursor`,
      );
      return (
        r.rows[0].n === 1 &&
        info.num_ack_pending === 0 &&
        info.num_pending === 0 &&
        c.rows[0]?.height === followed
      );
    }, "both messages handled and the block followed");
    expect((await a.metrics.recordsStored.get()).values[0]!.value).toBe(1);
    await a.stop();
    const from = rt.height() + 1;
    await rt.submit(b.breach.toHex());
    await rt.mine(1);
    // Its default start (the tip + 1) is past the breach's block: only the stored cursor finds it.
    const second = await tower(p);
    await expectPunished(b, from);
    expect(second.sends.filter((s) => s.kind === "first").length).toBe(1);
  });

  it("two towers at once: one justice per breach input, no conflicting broadcasts", async () => {
    const p = place();
    const shared = { startHeight: rt.height() + 1 };
    const [a, c] = [await tower(p, shared), await tower(p, shared)];
    const breaches = [await makeBreach(rt, signer), await makeBreach(rt, signer)];
    for (const b of breaches) await publishRecord(nc, p.subject, b);
    await until(async () => {
      const r = await pool.query(`SELECT count(*)::int AS n FROM "${p.schema}".tower_records`);
      return r.rows[0].n === 2;
    }, "the records stored");
    const from = rt.height() + 1;
    for (const b of breaches) await rt.submit(b.breach.toHex());
    for (const b of breaches) await expectPunished(b, from);
    const sent = [...a.sends, ...c.sends].filter((s) => s.kind !== "breach");
    for (const b of breaches) {
      const txids = new Set(
        sent
          .filter((s) =>
            Transaction.fromHex(s.hex).ins.some(
              (i) => Buffer.from(i.hash).reverse().toString("hex") === b.breach.getId(),
            ),
          )
          .map((s) => s.txid),
      );
      // One transaction covers all four outputs here; no fee bump happened (mined at once).
      expect(txids.size).toBe(1);
      expect(sent.filter((s) => txids.has(s.txid) && s.kind === "replacement")).toEqual([]);
    }
    const stored =
      (await a.metrics.recordsStored.get()).values[0]!.value +
      (await c.metrics.recordsStored.get()).values[0]!.value;
    expect(stored).toBe(2);
  });
});

/** The signer brought back by restartSigner: it lives until the end of the file. */
let restarted: { shutdown(ms?: number): Promise<void> } | undefined;
/** Brings the signer back on the same address, over the same keys and policy store. */
async function restartSigner(): Promise<void> {
  const { startServer } = await import("../../signer/src/server.js");
  const { SignerService } = await import("../../signer/src/service.js");
  restarted = await startServer({
    service: new SignerService(signer.keys, signer.store, { maxFeeSat: 5000n, maxWithdrawalSat: 0n }),
    listen: signer.address,
    tls: { ca: signer.pems.ca, cert: signer.pems.serverCert, key: signer.pems.serverKey },
    clients: TEST_CLIENTS,
    log: recordingLog((r) => signer.logs.push(r.msg)),
  });
}
afterAll(async () => {
  await restarted?.shutdown(100);
});
