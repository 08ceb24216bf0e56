/**
 * The payer loop (payments/payer.ts) over real Postgres: what it sends next is decided from the
 * durable rows only (a new Payer, as after a restart, continues where the last one was), one
 * attempt at a time, and a payment fails only with nothing in flight. The channel is a stand-in
 * (its state as the payer reads it), and `send` writes the attempt's payments row as the add
 * step would (records.ts paymentOffered); graph rows are written here (migration 21).
 *
 * Us -(AB)-> B, and B -> C over the real BC (fee 1000 + 1000 ppm, delta 40) or a phantom PH
 * (fee 0, delta 40), so the phantom is tried first. Fees are computed by hand below.
 */
import { createHash, randomBytes } from "node:crypto";
import { msat } from "@ln/bitcoin";
import type { ChannelState } from "@ln/channel-core";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ChannelRow } from "../src/channels/store.js";
import { migrateChannelService } from "../src/migrations.js";
import { createInvoicePayment, invoicePayment } from "../src/payments/invoice-payments.js";
import { AttemptRefused, Payer, type AttemptRequest, type PayableInvoice } from "../src/payments/payer.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 6 });
const schema = `chan_payer_test_${randomBytes(6).toString("hex")}`;
const q = `"${schema}"`;

const US = `02${"aa".repeat(32)}`;
const B = `03${"bb".repeat(32)}`;
const C = `02${"cc".repeat(32)}`;
const AB = (500n << 40n) | (1n << 16n);
const BC = (500n << 40n) | (2n << 16n);
const PH = (1n << 40n) | (99n << 16n) | 7n;
const text = (n: bigint): string => `${n >> 40n}x${(n >> 16n) & 0xffffffn}x${n & 0xffffn}`;
const CHANNEL = "chan-ab";
const HEIGHT = 1000;
const AMOUNT = 2_000_000n;
/** B's fee on BC for AMOUNT: 1000 + 2 000 000 * 1000 / 1e6. */
const BC_FEE = 3000n;

const invoice: PayableInvoice = {
  payee: C,
  paymentSecret: Buffer.alloc(32, 5),
  minFinalCltvExpiryDelta: 20,
  routeHints: [],
};

let sent: AttemptRequest[] = [];
let refuse: AttemptRefused | undefined;

/** The add step's record of an attempt: a pending payments row with the route as sent. */
let htlcId = 0;
async function send(a: AttemptRequest): Promise<void> {
  if (refuse) throw refuse;
  sent.push(a);
  const id = `${CHANNEL}:${htlcId++}`;
  // Amounts as route.ts plans them: B's fee on the hop it forwards.
  const bFee = a.hops[1]?.shortChannelId === BC ? BC_FEE : 0n;
  const route = {
    hops: [
      { nodeId: B, shortChannelId: text(AB), amountMsat: String(AMOUNT + bFee), expiry: a.finalExpiry + 40 },
      {
        nodeId: C,
        shortChannelId: text(a.hops[1]?.shortChannelId ?? 0n),
        amountMsat: String(AMOUNT),
        expiry: a.finalExpiry,
      },
    ],
  };
  await pool.query(
    `INSERT INTO ${q}.payments (id, channel_id, htlc_id, r_hash, amount_msat, expiry, route, invoice_payment_id)
     VALUES ($1, $2, $3, $4, $5, '{"blocks":1}', $6, $7)`,
    [id, CHANNEL, htlcId, a.rHash, String(AMOUNT + bFee), JSON.stringify(route), a.invoicePaymentId],
  );
}

const state = {
  phase: "normal",
  localCommit: { localMsat: msat(50_000_000n) },
  remoteCommit: { localMsat: msat(50_000_000n) },
  deferred: [],
} as unknown as ChannelState;
const row: ChannelRow = {
  id: CHANNEL,
  peerNodeId: B,
  signerChannel: 1,
  phase: "normal",
  leaseOwner: "r1",
  leaseHeld: true,
  createdAt: new Date(),
  shortChannelId: { height: 500, txIndex: 1, outputIndex: 0 },
};

const logs: string[] = [];
const reports: string[] = [];
const newPayer = (now = (): number => Date.now()): Payer => new Payer({ ...payerOptions(), now });
const payerOptions = (): ConstructorParameters<typeof Payer>[0] => ({
  pool,
  schema,
  store: { rowsWithState: () => Promise.resolve([{ row, state }]), load: () => Promise.resolve(state) },
  nc: {
    subscribe: () => ({ unsubscribe: () => undefined }) as never,
    publish: () => undefined,
    isClosed: () => false,
  },
  prefix: "test",
  nodeId: US,
  holds: (id) => id === CHANNEL,
  height: () => HEIGHT,
  decode: () => invoice,
  send,
  log: { info: (l: string) => logs.push(l), warn: (l: string) => logs.push(l) } as never,
  report: (what, e) => reports.push(`${what}: ${String(e)}`),
});

async function seed(scid: bigint, from: string, to: string, base: bigint, ppm: bigint): Promise<void> {
  const [n1, n2] = from < to ? [from, to] : [to, from];
  await pool.query(
    `INSERT INTO ${q}.graph_channels (short_channel_id, node_1, node_2, commit_key_1, commit_key_2, anchor_txid,
       anchor_vout, capacity_sat, announcement) VALUES ($1, $2, $3, $2, $3, 'x', 0, 1000000, '\\x00')`,
    [BigInt.asIntN(64, scid).toString(), n1, n2],
  );
  await pool.query(
    `INSERT INTO ${q}.graph_policies (short_channel_id, direction, timestamp, disabled, cltv_expiry_delta,
       htlc_minimum_msat, htlc_maximum_msat, fee_base_msat, fee_proportional_millionths, channel_update)
     VALUES ($1, $2, 1, false, 40, 1, 1000000000, $3, $4, '\\x00')`,
    [BigInt.asIntN(64, scid).toString(), from === n1 ? 0 : 1, base.toString(), ppm.toString()],
  );
}

async function newPayment(deadlineMs = 60_000): Promise<string> {
  const p = await createInvoicePayment(pool, schema, {
    bolt11: "lnbcrt-test",
    rHash: randomBytes(32).toString("hex"),
    payee: C,
    amountMsat: msat(AMOUNT),
    maxFeeMsat: msat(10_000n),
    deadline: new Date(Date.now() + deadlineMs),
    allowRepeat: false,
  });
  return p.id;
}

const failAttempt = (id: string, hop: number, code: number): Promise<pg.QueryResult> =>
  pool.query(
    `UPDATE ${q}.payments SET status = 'failed', failure_hop = $2, failure_code = $3, failure_node = $4
      WHERE id = $1`,
    [id, hop, code, hop === 0 ? B : C],
  );
const lastAttempt = async (ip: string): Promise<string> => {
  const r = await pool.query<{ id: string }>(
    `SELECT id FROM ${q}.payments WHERE invoice_payment_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`,
    [ip],
  );
  return r.rows[0]?.id ?? "";
};

/**
 * The backend holding the payer's advisory lock on payment `id`, if one does: classid "LNIP", objid
 * the first 31 bits of sha256(id), as pg_locks shows a two-key lock.
 */
async function lockHolder(id: string): Promise<number | undefined> {
  const objid = createHash("sha256").update(id).digest().readUInt32BE(0) & 0x7fffffff;
  const r = await pool.query<{ pid: number }>(
    `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1 AND objid = $2`,
    [0x4c4e4950, objid],
  );
  return r.rows[0]?.pid;
}

/** Ends the connection that holds the lock on `id`, as a Postgres restart does; its pid once its backend exited. */
async function endLockConnection(id: string): Promise<number> {
  const pid = await lockHolder(id);
  if (pid === undefined) throw new Error("the payer holds no lock on the payment");
  await pool.query("SELECT pg_terminate_backend($1)", [pid]);
  while ((await pool.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1", [pid])).rowCount !== 0)
    await new Promise((r) => setTimeout(r, 10));
  return pid;
}

beforeAll(async () => {
  await migrateChannelService(pool, schema);
  await pool.query(`INSERT INTO ${q}.channels (id, state) VALUES ($1, '{}')`, [CHANNEL]);
  await seed(BC, B, C, 1000n, 1000n);
  await seed(PH, B, C, 0n, 0n);
});

afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`);
  await pool.end();
});

describe("the payer loop", () => {
  it("tries the cheapest route, waits while it is in flight, retries around what failed, and continues after a restart", async () => {
    sent = [];
    const id = await newPayment();
    await newPayer().runRound();
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({
      invoicePaymentId: id,
      channelId: CHANNEL,
      amountMsat: AMOUNT,
      // tip + min_final_cltv_expiry_delta + 3 blocks of margin
      finalExpiry: HEIGHT + 20 + 3,
      paymentSecret: invoice.paymentSecret,
    });
    expect(sent[0]?.hops.map((h) => [h.nodeId, h.shortChannelId])).toEqual([
      [B, AB],
      [C, PH],
    ]);
    // In flight: nothing more.
    await newPayer().runRound();
    expect(sent).toHaveLength(1);

    // B: unknown_next_peer (PERM|10) for the phantom. A new payer (a restart) retries over BC.
    await failAttempt(await lastAttempt(id), 0, 0x400a);
    await newPayer().runRound();
    expect(sent).toHaveLength(2);
    expect(sent[1]?.hops.map((h) => h.shortChannelId)).toEqual([AB, BC]);
    expect(sent[1]?.hops[1]).toMatchObject({
      feeBaseMsat: 1000n,
      feeProportionalMillionths: 1000n,
      cltvExpiryDelta: 40,
    });

    // B: fee_insufficient without a channel_update: BC is excluded too; nothing is left.
    await failAttempt(await lastAttempt(id), 0, 0x100c);
    await newPayer().runRound();
    expect(sent).toHaveLength(2);
    const p = await invoicePayment(pool, schema, id);
    expect(p?.status).toBe("failed");
    expect(p?.failure).toMatch(/^no route left/);
    expect(p?.attempts.map((a) => [a.status, a.failure?.code, String(a.feeMsat)])).toEqual([
      ["failed", 0x400a, "0"],
      ["failed", 0x100c, String(BC_FEE)],
    ]);
    const ev = await pool.query<{ status: string }>(
      `SELECT status FROM ${q}.events WHERE kind = 'payment' AND subject = $1 ORDER BY seq`,
      [id],
    );
    expect(ev.rows.map((x) => x.status)).toEqual(["pending", "failed"]);
  });

  it("an invoice's route hints: a known channel keeps its gossiped policy, an unknown one is used as hinted", async () => {
    sent = [];
    const D = `03${"dd".repeat(32)}`;
    const CD = (600n << 40n) | (9n << 16n);
    const hinted: PayableInvoice = {
      ...invoice,
      payee: D,
      routeHints: [
        [
          // B→C as the payee guesses it (free): the graph's 1000 + 1000 ppm stands.
          {
            nodeId: B,
            shortChannelId: BC,
            feeBaseMsat: msat(0n),
            feeProportionalMillionths: 0n,
            cltvExpiryDelta: 10,
          },
          {
            nodeId: C,
            shortChannelId: CD,
            feeBaseMsat: msat(7n),
            feeProportionalMillionths: 0n,
            cltvExpiryDelta: 12,
          },
        ],
      ],
    };
    const payer = new Payer({ ...payerOptions(), decode: () => hinted });
    const p = await createInvoicePayment(pool, schema, {
      bolt11: "lnbcrt-hinted",
      rHash: randomBytes(32).toString("hex"),
      payee: D,
      amountMsat: msat(AMOUNT),
      maxFeeMsat: msat(10_000n),
      deadline: new Date(Date.now() + 60_000),
      allowRepeat: false,
    });
    // The phantom (free) disabled for this one: B reaches C over the real BC only.
    await pool.query(`UPDATE ${q}.graph_policies SET disabled = true WHERE short_channel_id = $1`, [
      BigInt.asIntN(64, PH).toString(),
    ]);
    try {
      await payer.runRound();
    } finally {
      await pool.query(`UPDATE ${q}.graph_policies SET disabled = false WHERE short_channel_id = $1`, [
        BigInt.asIntN(64, PH).toString(),
      ]);
    }
    expect(sent.map((a) => a.invoicePaymentId)).toEqual([p.id]);
    expect(sent[0]?.hops).toEqual([
      { nodeId: B, shortChannelId: AB, feeBaseMsat: 0n, feeProportionalMillionths: 0n, cltvExpiryDelta: 0 },
      {
        nodeId: C,
        shortChannelId: BC,
        feeBaseMsat: 1000n,
        feeProportionalMillionths: 1000n,
        cltvExpiryDelta: 40,
      },
      { nodeId: D, shortChannelId: CD, feeBaseMsat: 7n, feeProportionalMillionths: 0n, cltvExpiryDelta: 12 },
    ]);
  });

  it("the payee's refusal ends the payment at once", async () => {
    sent = [];
    const id = await newPayment();
    await newPayer().runRound();
    await failAttempt(await lastAttempt(id), 1, 0x400f);
    await newPayer().runRound();
    expect(sent).toHaveLength(1);
    const p = await invoicePayment(pool, schema, id);
    expect(p?.status).toBe("failed");
    expect(p?.failure).toMatch(/payee refused it \(0x400f\)/);
  });

  it("past its deadline with nothing in flight: failed; with an attempt in flight: it waits", async () => {
    sent = [];
    const id = await newPayment(30_000);
    await newPayer().runRound();
    expect(sent).toHaveLength(1);
    const later = (): number => Date.now() + 60_000;
    await newPayer(later).runRound();
    expect((await invoicePayment(pool, schema, id))?.status).toBe("pending");
    await failAttempt(await lastAttempt(id), 0, 0x400a);
    await newPayer(later).runRound();
    expect(sent).toHaveLength(1);
    const p = await invoicePayment(pool, schema, id);
    expect(p?.status).toBe("failed");
    expect(p?.failure).toMatch(/timeout/);
  });

  it("our own channel refusing the HTLC: recorded as an attempt, our channel not used again", async () => {
    sent = [];
    refuse = new AttemptRefused("EXPIRY_TOO_SOON", "the expiry leaves no time");
    try {
      const id = await newPayment();
      const payer = newPayer();
      await payer.runRound();
      expect((await invoicePayment(pool, schema, id))?.status).toBe("pending");
      // The next round (wake() runs it at once) finds no other way out.
      await payer.runRound();
      const p = await invoicePayment(pool, schema, id);
      expect(p?.status).toBe("failed");
      expect(p?.failure).toMatch(/^no route left/);
      expect(p?.attempts).toEqual([
        expect.objectContaining({
          status: "failed",
          failure: expect.objectContaining({ name: "EXPIRY_TOO_SOON" }) as object,
        }),
      ]);
    } finally {
      refuse = undefined;
    }
    expect(reports).toEqual([]);
  });

  it("the lock's connection ended by Postgres while an attempt is offered: reported, not a crash; the attempt stands", async () => {
    sent = [];
    reports.length = 0;
    const id = await newPayment();
    let ended = 0;
    const payer = new Payer({
      ...payerOptions(),
      send: async (a) => {
        if (a.invoicePaymentId === id && ended === 0) ended = await endLockConnection(id);
        await send(a);
      },
    });
    // Without an error listener on the lock's client, this ends the test process instead.
    await payer.runRound();
    expect(ended).not.toBe(0);
    expect(reports.filter((r) => r.startsWith(`invoice payment ${id}:`))).toEqual([
      expect.stringMatching(/terminat|not queryable/),
    ]);
    // The attempt was offered once and is in flight: the next round sends nothing more.
    expect(sent.filter((a) => a.invoicePaymentId === id)).toHaveLength(1);
    await payer.runRound();
    expect(sent.filter((a) => a.invoicePaymentId === id)).toHaveLength(1);
    expect((await invoicePayment(pool, schema, id))?.status).toBe("pending");
  });

  it("the lock's connection lost before the attempt is sent: nothing is sent, the next round sends it once", async () => {
    sent = [];
    reports.length = 0;
    const id = await newPayment();
    let ended = 0;
    const options = payerOptions();
    const payer = new Payer({
      ...options,
      store: {
        ...options.store,
        // Read while the lock is held, before the attempt is sent.
        rowsWithState: async () => {
          // Only in this payment's step (the round goes over every pending payment).
          if (ended === 0 && (await lockHolder(id)) !== undefined) ended = await endLockConnection(id);
          return options.store.rowsWithState();
        },
      },
    });
    await payer.runRound();
    expect(ended).not.toBe(0);
    expect(sent.filter((a) => a.invoicePaymentId === id)).toEqual([]);
    expect(reports.filter((r) => r.startsWith(`invoice payment ${id}:`))).toEqual([
      expect.stringMatching(/terminat|not queryable/),
    ]);
    await payer.runRound();
    expect(sent.filter((a) => a.invoicePaymentId === id)).toHaveLength(1);
  });
});
