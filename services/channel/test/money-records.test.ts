/**
 * Money records in the channel transaction (DESIGN.md 11, issue 14): a payment, an invoice and a
 * channel's status change commit with the channel step that moves them, with their status events,
 * or not at all; nothing is written after the commit, so a crash there loses nothing and a new
 * process needs no replay. Real Postgres; two channel ends in-process (as runner.test.ts).
 */
import { silentLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { msat, sat, sha256, txidFromHex, txidToInternal } from "@ln/bitcoin";
import { createChannel, htlcsToSettle, type ChannelState, type Input } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import { decodePkt } from "@ln/proto";
import type { SignerClient } from "@ln/signer-client";
import { script as bscript, Transaction } from "bitcoinjs-lib";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { ApiStore } from "../src/api/api-store.js";
import { Ledger } from "../src/payments/ledger.js";
import { keepPaymentOnion, withOfferedPayment } from "../src/payments/records.js";
import { createInvoicePayment } from "../src/payments/invoice-payments.js";
import { Resolver } from "../src/onchain/resolution.js";
import { ChannelRunner, type EffectSink } from "../src/channels/runner.js";
import { ChannelStore, type WithinTransition } from "../src/channels/store.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schemas: string[] = [];
const newSchema = (): string => {
  const s = `money_test_${randomBytes(6).toString("hex")}`;
  schemas.push(s);
  return s;
};
afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

const CHANNEL = "chan-1";
type Side = "A" | "B";
const R = Buffer.alloc(32, 7);
const R_HEX = R.toString("hex");
const R_HASH = sha256(R).toString("hex");
const PAYMENT = `${CHANNEL}:0`;
const hexText = (t: string): string => Buffer.from(t, "utf8").toString("hex");

/** Thrown by a hook inside a transaction, after the step's own writes: all must roll back. */
class Injected extends Error {}
const failInside: WithinTransition = () => Promise.reject(new Injected("failure inside the transaction"));

/** Two channel ends, each its own schema, store and runner; effects do nothing (a crash after commit). */
class Ends {
  readonly stores: Record<Side, ChannelStore> = {
    A: new ChannelStore(pool, newSchema()),
    B: new ChannelStore(pool, newSchema()),
  };
  readonly ledgers: Record<Side, Ledger> = {
    A: new Ledger(pool, this.stores.A.schema),
    B: new Ledger(pool, this.stores.B.schema),
  };
  readonly signers: Record<Side, TestSigner> = { A: new TestSigner(0x10), B: new TestSigner(0x20) };
  readonly queue: { to: Side; input: Input }[] = [];
  readonly runners: Record<Side, ChannelRunner>;

  constructor() {
    this.runners = { A: this.runner("A"), B: this.runner("B") };
  }

  /** A runner over `side`'s store: a new one is what a restarted process would build. */
  runner(side: Side, store = this.stores[side]): ChannelRunner {
    const other: Side = side === "A" ? "B" : "A";
    // Nothing money-related happens in effects: the process may as well die here.
    const effects: EffectSink = (_id, o) => {
      if (o.type === "build_anchor")
        this.queue.push({
          to: side,
          input: {
            type: "anchor_built",
            outpoint: { txid: txidFromHex("ab".repeat(32)), vout: 0 },
            amount: o.amount,
          },
        });
      return Promise.resolve();
    };
    return new ChannelRunner(
      store,
      "replica-1",
      { answer: (_id, r) => Promise.resolve(this.signers[side].answer(r)) },
      {
        send: (_id, m) => {
          this.queue.push({ to: other, input: { type: "pkt", pkt: decodePkt(m.bytes) } });
          return Promise.resolve();
        },
      },
      effects,
    );
  }

  async open(): Promise<void> {
    for (const side of ["A", "B"] as const) {
      const s = this.signers[side];
      await this.stores[side].migrate();
      const created = createChannel({
        role: side === "A" ? "creator" : "acceptor",
        local: {
          delay: { blocks: 144 },
          minDepth: 1,
          initialFeeRate: 10_000,
          commitKey: s.commitKey,
          finalKey: s.finalKey,
          revocationHash: s.revocationHash(0n),
          nextRevocationHash: s.revocationHash(1n),
        },
        ...(side === "A" ? { fundingSat: sat(1_000_000) } : {}),
        policy: { autoCommit: true },
        chain: { height: 1000, time: 1_700_000_000 },
      });
      const t = await this.stores[side].create(CHANNEL, created, { signerChannel: 0 });
      expect(await this.stores[side].acquireLease(CHANNEL, "replica-1", 60_000)).toBe(true);
      for (const m of t.sends)
        this.queue.push({ to: side === "A" ? "B" : "A", input: { type: "pkt", pkt: decodePkt(m.bytes) } });
    }
    await this.drain();
    for (const side of ["A", "B"] as const)
      this.queue.push({ to: side, input: { type: "chain", event: { kind: "anchor_depth", depth: 1 } } });
    await this.drain();
    expect((await this.state("A")).phase).toBe("normal");
    expect((await this.state("B")).phase).toBe("normal");
  }

  /** Delivers every message; `after` runs after each input, with who took it. */
  async drain(after?: (to: Side, input: Input) => Promise<void>): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      await this.runners[next.to].input(CHANNEL, next.input);
      await after?.(next.to, next.input);
    }
  }

  command(side: Side, command: Extract<Input, { type: "command" }>["command"], within?: WithinTransition) {
    return this.runners[side].input(CHANNEL, { type: "command", command }, within);
  }

  async state(side: Side): Promise<ChannelState> {
    return (await this.stores[side].load(CHANNEL)) as ChannelState;
  }

  async payment(side: Side): Promise<Record<string, unknown> | undefined> {
    const r = await pool.query<Record<string, unknown>>(
      `SELECT id, r_hash, amount_msat::text AS amount_msat, expiry, status, preimage, failure_reason
         FROM "${this.stores[side].schema}".payments WHERE id = $1`,
      [PAYMENT],
    );
    return r.rows[0];
  }

  async events(side: Side, kind: string): Promise<{ subject: string; status: string; detail: unknown }[]> {
    const r = await pool.query<{ subject: string; status: string; detail: unknown }>(
      `SELECT subject, status, detail FROM "${this.stores[side].schema}".events WHERE kind = $1 ORDER BY seq`,
      [kind],
    );
    return r.rows;
  }

  async outboxCount(side: Side): Promise<number> {
    const r = await pool.query<{ n: string }>(
      `SELECT count(*) AS n FROM "${this.stores[side].schema}".outbox`,
    );
    return Number(r.rows[0]?.n);
  }

  /** B's invoice for R (the signer would derive R; here the test's R). */
  async invoice(amountMsat: bigint): Promise<void> {
    await this.ledgers.B.addInvoice(() => Promise.resolve(R_HASH), msat(amountMsat), "coffee");
  }

  pay(within?: WithinTransition) {
    return this.command(
      "A",
      { kind: "add_htlc", amountMsat: msat(50_000_000n), rHash: R_HASH, expiry: { blocks: 5000 } },
      within,
    );
  }
}

const pendingRow = {
  id: PAYMENT,
  r_hash: R_HASH,
  amount_msat: "50000000",
  expiry: { blocks: 5000 },
  status: "pending",
  preimage: null,
  failure_reason: null,
};
const paymentDetail = { channelId: CHANNEL, rHash: R_HASH, amountMsat: "50000000" };

describe("money records in the channel transaction", () => {
  it("a payment's row and event exist exactly when the step that offered its HTLC committed", async () => {
    const n = new Ends();
    await n.open();
    const before = await n.state("A");
    const outbox = await n.outboxCount("A");
    // A failure inside the transaction, after the state, records and outbox were written.
    await expect(n.pay(failInside)).rejects.toBeInstanceOf(Injected);
    expect(await n.state("A")).toEqual(before);
    expect(await n.payment("A")).toBeUndefined();
    expect(await n.events("A", "payment")).toEqual([]);
    expect(await n.outboxCount("A")).toBe(outbox);
    expect(n.queue).toEqual([]);
    // Committed: the state offers HTLC 0, and the payment is pending, with its event.
    await n.pay();
    expect((await n.state("A")).nextHtlcId).toBe(1n);
    expect(await n.payment("A")).toEqual(pendingRow);
    expect(await n.events("A", "payment")).toEqual([
      { subject: PAYMENT, status: "pending", detail: paymentDetail },
    ]);
  });

  it("succeeded with R in the step that receives R; the invoice settled in the step of our fulfil", async () => {
    const n = new Ends();
    await n.open();
    await n.invoice(50_000_000n);
    expect(await n.events("B", "invoice")).toEqual([
      { subject: R_HASH, status: "open", detail: { amountMsat: "50000000" } },
    ]);
    await n.pay();
    await n.drain();
    const [htlc] = htlcsToSettle(await n.state("B"));
    expect(htlc?.rHash).toBe(R_HASH);
    // B's fulfil rolled back: the invoice stays open and the HTLC is still B's to settle.
    const fulfil = { kind: "fulfill_htlc" as const, id: 0n, r: R_HEX };
    await expect(n.command("B", fulfil, failInside)).rejects.toBeInstanceOf(Injected);
    expect(await n.ledgers.B.invoice(R_HASH)).toMatchObject({ status: "open" });
    expect(htlcsToSettle(await n.state("B"))).toHaveLength(1);
    // Committed: settled with it.
    await n.command("B", fulfil);
    expect(await n.ledgers.B.invoice(R_HASH)).toMatchObject({ status: "settled" });
    expect((await n.events("B", "invoice")).map((e) => e.status)).toEqual(["open", "settled"]);
    // A's step that takes the update_fulfill_htlc: rolled back, still pending; committed, succeeded.
    const next = n.queue.shift();
    expect(next?.input.type === "pkt" && next.input.pkt.kind).toBe("update_fulfill_htlc");
    const fulfilPkt = next?.input as Input;
    await expect(n.runners.A.input(CHANNEL, fulfilPkt, failInside)).rejects.toBeInstanceOf(Injected);
    expect(await n.payment("A")).toEqual(pendingRow);
    await n.runners.A.input(CHANNEL, fulfilPkt);
    expect(await n.payment("A")).toEqual({ ...pendingRow, status: "succeeded", preimage: R_HEX });
    await n.drain();
    expect(await n.events("A", "payment")).toEqual([
      { subject: PAYMENT, status: "pending", detail: paymentDetail },
      { subject: PAYMENT, status: "succeeded", detail: paymentDetail },
    ]);
  });

  it("failed, with the reason, in the step that makes the peer's removal irrevocable", async () => {
    const n = new Ends();
    await n.open();
    await n.pay();
    await n.drain();
    await n.command("B", { kind: "fail_htlc", id: 0n, reason: hexText("no such invoice") });
    // After every input A takes: failed if and only if no commitment of A's can still hold it.
    let sawPendingWhileRemoving = false;
    await n.drain(async (to) => {
      if (to !== "A") return;
      const s = await n.state("A");
      const held = [s.localCommit, s.remoteCommit, s.remotePending].some((v) =>
        v?.htlcs.some((h) => h.offerer === "local" && h.id === 0n),
      );
      const row = await n.payment("A");
      expect(row?.status).toBe(held ? "pending" : "failed");
      if (held && s.localCommit?.htlcs.length === 0) sawPendingWhileRemoving = true;
    });
    // The removal was in our commitment while the peer's still held the HTLC: not yet final then.
    expect(sawPendingWhileRemoving).toBe(true);
    expect(await n.payment("A")).toEqual({
      ...pendingRow,
      status: "failed",
      failure_reason: "no such invoice",
    });
    expect(await n.events("A", "payment")).toEqual([
      { subject: PAYMENT, status: "pending", detail: paymentDetail },
      { subject: PAYMENT, status: "failed", detail: { ...paymentDetail, failureReason: "no such invoice" } },
    ]);
  });

  it("a payment request's idempotency result commits with the step that offers the HTLC", async () => {
    const n = new Ends();
    await n.open();
    const api = new ApiStore(pool, n.stores.A.schema);
    const claim = () => api.claimIdempotency("token-1", "key-1", "POST /v1/payments", "hash-1");
    expect(await claim()).toEqual({ kind: "claimed" });
    // As app.ts's PaymentRecord: the response names the payment, as recorded in the same step.
    const complete = withOfferedPayment(n.ledgers.A, CHANNEL, (c, row) =>
      api.completeIdempotency("token-1", "key-1", 201, { id: row.id, status: row.status }, c),
    );
    const thenFail: WithinTransition = async (c, t) => {
      await complete(c, t);
      await failInside(c, t);
    };
    await expect(n.pay(thenFail)).rejects.toBeInstanceOf(Injected);
    // Rolled back with the payment: the key is still in progress (a retry cannot pay twice).
    expect(await claim()).toEqual({ kind: "in_progress" });
    expect(await n.payment("A")).toBeUndefined();
    await n.pay(complete);
    // No write after the commit: a retry is answered with the payment at once.
    expect(await claim()).toEqual({
      kind: "done",
      status: 201,
      response: { id: PAYMENT, status: "pending" },
    });
  });

  it("each channel phase change is an event of the step that made it", async () => {
    const n = new Ends();
    await n.open();
    for (const side of ["A", "B"] as const)
      expect(await n.events(side, "channel")).toEqual([
        { subject: CHANNEL, status: "opening", detail: {} },
        { subject: CHANNEL, status: "normal", detail: {} },
      ]);
    await expect(n.command("A", { kind: "close" }, failInside)).rejects.toBeInstanceOf(Injected);
    expect((await n.events("A", "channel")).map((e) => e.status)).toEqual(["opening", "normal"]);
    await n.command("A", { kind: "close" });
    await n.drain();
    expect((await n.events("A", "channel")).map((e) => e.status)).toEqual([
      "opening",
      "normal",
      "clearing",
      "closed",
    ]);
  });

  it("a new process over the same database finds every record final: no replay", async () => {
    const n = new Ends();
    await n.open();
    await n.invoice(50_000_000n);
    await n.pay();
    await n.drain();
    await n.command("B", { kind: "fulfill_htlc", id: 0n, r: R_HEX });
    await n.drain();
    // A restarted process: its own store, ledger and runner over the same schemas; the old
    // runner's effects never ran anything money-related, and nothing is replayed.
    const storeA = new ChannelStore(pool, n.stores.A.schema);
    const ledgerA = new Ledger(pool, n.stores.A.schema);
    const ledgerB = new Ledger(pool, n.stores.B.schema);
    expect(await ledgerA.payment(PAYMENT)).toMatchObject({ status: "succeeded", amountMsat: 50_000_000n });
    expect(await ledgerB.invoice(R_HASH)).toMatchObject({ status: "settled" });
    const events = await n.events("A", "payment");
    await n.runner("A", storeA).input(CHANNEL, { type: "resume" });
    expect(await n.events("A", "payment")).toEqual(events);
    expect(await ledgerA.payments()).toHaveLength(1);
  });
});

/**
 * An invoice payment's attempt (payments/payer.ts): its onion kept with the invoice payment's id
 * becomes a payments row naming it in the step that adds the HTLC; the attempt's success pays the
 * invoice payment (preimage, fee) in the step that receives R; its failure leaves it pending.
 */
describe("an invoice payment's attempts move in the channel transaction", () => {
  const INVOICE_MSAT = 49_990_000n;
  /** Any bytes as the HTLC's onion: only its hash ties it to the kept route here. */
  const ONION = "0a".repeat(200);

  async function attempt(n: Ends): Promise<string> {
    const schema = n.stores.A.schema;
    const ip = await createInvoicePayment(pool, schema, {
      bolt11: "lnbcrt-test",
      rHash: R_HASH,
      payee: `02${"cc".repeat(32)}`,
      amountMsat: msat(INVOICE_MSAT),
      maxFeeMsat: msat(20_000n),
      deadline: new Date(Date.now() + 60_000),
      allowRepeat: false,
    });
    const route = {
      hops: [
        {
          nodeId: `03${"bb".repeat(32)}`,
          shortChannelId: "1x1x0",
          feeBaseMsat: "0",
          feeProportionalMillionths: "0",
          cltvExpiryDelta: 0,
          amountMsat: "50000000",
          expiry: 5000,
        },
      ],
    };
    await keepPaymentOnion(pool, schema, ONION, route, [Buffer.alloc(32, 1)], {
      invoicePaymentId: ip.id,
      channelId: CHANNEL,
    });
    await n.command("A", {
      kind: "add_htlc",
      amountMsat: msat(50_000_000n),
      rHash: R_HASH,
      expiry: { blocks: 5000 },
      route: ONION,
    });
    return ip.id;
  }
  const ipRow = async (n: Ends, id: string) =>
    (
      await pool.query<{ status: string; preimage: string | null; fee_msat: string | null }>(
        `SELECT status, preimage, fee_msat::text AS fee_msat FROM "${n.stores.A.schema}".invoice_payments WHERE id = $1`,
        [id],
      )
    ).rows[0];

  it("the add step writes the attempt row naming its invoice payment, with its event", async () => {
    const n = new Ends();
    await n.open();
    const id = await attempt(n);
    const r = await pool.query<{ invoice_payment_id: string }>(
      `SELECT invoice_payment_id FROM "${n.stores.A.schema}".payments WHERE id = $1`,
      [PAYMENT],
    );
    expect(r.rows).toEqual([{ invoice_payment_id: id }]);
    const events = await n.events("A", "payment");
    expect(events.find((e) => e.subject === PAYMENT)).toEqual({
      subject: PAYMENT,
      status: "pending",
      detail: { ...paymentDetail, invoicePaymentId: id },
    });
  });

  it("the attempt's success pays the invoice payment in the step that receives R (fee = sent - amount)", async () => {
    const n = new Ends();
    await n.open();
    await n.invoice(50_000_000n);
    const id = await attempt(n);
    await n.drain();
    await n.command("B", { kind: "fulfill_htlc", id: 0n, r: R_HEX });
    const next = n.queue.shift();
    expect(next?.input.type === "pkt" && next.input.pkt.kind).toBe("update_fulfill_htlc");
    const fulfilPkt = next?.input as Input;
    // Rolled back: the attempt and its invoice payment stay pending together.
    await expect(n.runners.A.input(CHANNEL, fulfilPkt, failInside)).rejects.toBeInstanceOf(Injected);
    expect(await ipRow(n, id)).toEqual({ status: "pending", preimage: null, fee_msat: null });
    await n.runners.A.input(CHANNEL, fulfilPkt);
    // 50 000 000 sent - 49 990 000 for the payee = 10 000 msat of fees.
    expect(await ipRow(n, id)).toEqual({ status: "succeeded", preimage: R_HEX, fee_msat: "10000" });
    const events = await n.events("A", "payment");
    expect(events.filter((e) => e.subject === id).map((e) => e.status)).toEqual(["pending", "succeeded"]);
  });

  it("the attempt's failure leaves the invoice payment pending, for the payer", async () => {
    const n = new Ends();
    await n.open();
    const id = await attempt(n);
    await n.drain();
    await n.command("B", { kind: "fail_htlc", id: 0n, reason: hexText("no") });
    await n.drain();
    expect((await n.payment("A"))?.status).toBe("failed");
    expect(await ipRow(n, id)).toEqual({ status: "pending", preimage: null, fee_msat: null });
    const failed = (await n.events("A", "payment")).find(
      (e) => e.subject === PAYMENT && e.status === "failed",
    );
    expect(failed?.detail).toMatchObject({ invoicePaymentId: id });
  });
});

describe("on-chain outcomes of HTLCs update the records with the resolution's own write", () => {
  /** A resolution of A's channel with one claim on vout 1 for HTLC 0 (A offered it: its payment). */
  async function resolved(what: "htlc_timeout" | "htlc_redeem", sweepTxid: string | null) {
    const n = new Ends();
    await n.open();
    const s = n.stores.A.schema;
    const spendTxid = "cd".repeat(32);
    await pool.query(
      `INSERT INTO "${s}".onchain_resolutions (channel_id, kind, spend_txid, spend_hex, number, height)
       VALUES ($1, 'their_commitment', $2, '00', 1, 1100)`,
      [CHANNEL, spendTxid],
    );
    await pool.query(
      `INSERT INTO "${s}".onchain_claims (channel_id, vout, what, amount_sat, htlc_id, r_hash, status, sweep_txid)
       VALUES ($1, 1, $2, 50000, 0, $3, $4, $5)`,
      [CHANNEL, what, R_HASH, sweepTxid ? "sweeping" : "waiting", sweepTxid],
    );
    const unused = (): never => {
      throw new Error("not used when an output is spent");
    };
    const resolver = new Resolver({
      pool,
      schema: s,
      store: n.stores.A,
      ledger: n.ledgers.A,
      signer: new Proxy({}, { get: unused }) as SignerClient,
      wallet: { sweepOutputs: unused, rebroadcast: unused },
      watchOutput: unused,
      feeRate: 2000,
      log: silentLog,
    });
    return { n, resolver, spendTxid };
  }

  /** A transaction spending `txid:vout` with `pushes` in its scriptSig. */
  const spender = (txid: string, vout: number, pushes: Buffer[]): Transaction => {
    const tx = new Transaction();
    tx.addInput(txidToInternal(txidFromHex(txid)), vout, 0xffffffff, bscript.compile(pushes));
    tx.addOutput(Buffer.from("0014" + "11".repeat(20), "hex"), 40_000n);
    return tx;
  };

  it("the peer's redeem with R settles our payment as succeeded, with the claim's spend", async () => {
    const { n, resolver, spendTxid } = await resolved("htlc_timeout", null);
    await n.pay();
    await n.drain();
    const tx = spender(spendTxid, 1, [Buffer.alloc(72, 1), R, Buffer.alloc(1, 1)]);
    await resolver.onOutputSpent(CHANNEL, 1, tx.toHex(), 1101);
    expect(await n.payment("A")).toEqual({ ...pendingRow, status: "succeeded", preimage: R_HEX });
    expect((await n.events("A", "payment")).map((e) => e.status)).toEqual(["pending", "succeeded"]);
    expect((await resolver.view(CHANNEL))?.claims[0]).toMatchObject({ status: "lost", spentHeight: 1101 });
    // Delivered again (the stream may): nothing changes twice.
    await resolver.onOutputSpent(CHANNEL, 1, tx.toHex(), 1101);
    expect((await n.events("A", "payment")).map((e) => e.status)).toEqual(["pending", "succeeded"]);
  });

  it("our timeout sweep of an HTLC we offered fails the payment", async () => {
    const tx = spender("cd".repeat(32), 1, [Buffer.alloc(72, 1)]);
    const { n, resolver } = await resolved("htlc_timeout", tx.getId());
    await n.pay();
    await n.drain();
    await resolver.onOutputSpent(CHANNEL, 1, tx.toHex(), 1101);
    expect(await n.payment("A")).toEqual({
      ...pendingRow,
      status: "failed",
      failure_reason: "timed out on chain",
    });
    expect((await n.events("A", "payment")).map((e) => e.status)).toEqual(["pending", "failed"]);
    expect((await resolver.view(CHANNEL))?.claims[0]).toMatchObject({ status: "swept" });
  });

  it("our redeem sweep with R settles the invoice", async () => {
    const tx = spender("cd".repeat(32), 1, [Buffer.alloc(72, 1), R]);
    const { n, resolver } = await resolved("htlc_redeem", tx.getId());
    // The invoice is A's here (the claim is on A's resolution).
    await n.ledgers.A.addInvoice(() => Promise.resolve(R_HASH), msat(50_000_000n), "on chain");
    await resolver.onOutputSpent(CHANNEL, 1, tx.toHex(), 1101);
    expect(await n.ledgers.A.invoice(R_HASH)).toMatchObject({ status: "settled" });
    expect((await n.events("A", "invoice")).map((e) => e.status)).toEqual(["open", "settled"]);
  });
});
