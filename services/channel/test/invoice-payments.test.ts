/**
 * POST /v1/payments with a BOLT #11 invoice, against real Postgres (migration 23): the payment's
 * row commits with the Idempotency-Key's result; the same invoice is never paid twice while one
 * payment of it is pending or succeeded unless the operator says allowRepeat; a bad, expired,
 * wrong-network or own invoice is refused with its code and writes nothing. The payer loop is not
 * running here (nothing is sent): the rows and the answers are what is checked.
 */
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { msat } from "@ln/bitcoin";
import { assembleInvoice, unsignedInvoice, type InvoiceFields } from "@ln/invoice";
import type { FastifyInstance } from "fastify";
import pg from "pg";
import { pointFromScalar, signRecoverable } from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi } from "../src/api/index.js";
import type { InvoicePayment, NodeBackend } from "../src/api/backend.js";
import { ChannelNodeBackend, type ChannelNodeBackendOptions } from "../src/api/node-backend.js";
import { inEventTransaction } from "../src/events/event-log.js";
import { invoicePaymentSucceeded } from "../src/payments/records.js";
import { MemoryBackend } from "./memory-backend.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 6 });
const schema = `chan_invpay_test_${randomBytes(6).toString("hex")}`;

const PAYEE_KEY = Buffer.alloc(32, 7);
const PAYEE = Buffer.from(pointFromScalar(PAYEE_KEY, true) ?? []);
const OUR_KEY = Buffer.alloc(32, 3);
const OUR_NODE = Buffer.from(pointFromScalar(OUR_KEY, true) ?? []).toString("hex");
const NOW_S = 1_800_000_000;

function invoice(
  over: Partial<InvoiceFields> & { noAmount?: boolean } = {},
  key: Buffer = PAYEE_KEY,
): { bolt11: string; rHash: string } {
  const { noAmount, ...given } = over;
  const preimage = randomBytes(32);
  const paymentHash = createHash("sha256").update(preimage).digest();
  const f: InvoiceFields = {
    network: "regtest",
    amountMsat: msat(250_000n),
    timestamp: NOW_S - 10,
    paymentHash,
    paymentSecret: randomBytes(32),
    description: "a test payment",
    expirySeconds: 3600,
    minFinalCltvExpiryDelta: 40,
    payee: PAYEE,
    routeHints: [],
    ...given,
  };
  if (noAmount === true) delete f.amountMsat;
  const s = signRecoverable(unsignedInvoice(f).signingHash, key);
  return {
    bolt11: assembleInvoice(f, Buffer.from(s.signature), s.recoveryId),
    rHash: paymentHash.toString("hex"),
  };
}

/** The in-memory node with the real invoice payments (ChannelNodeBackend over this schema). */
class InvoiceBackend extends MemoryBackend implements NodeBackend {
  readonly woken: string[] = [];
  private readonly real = new ChannelNodeBackend({
    pool,
    schema,
    network: "regtest",
    nodeId: OUR_NODE,
    now: () => NOW_S * 1000,
    payer: { notify: () => this.woken.push("notify") },
    // The rest is the running node's: paying an invoice only writes its row.
  } as Partial<ChannelNodeBackendOptions> as ChannelNodeBackendOptions);
  payInvoice: NonNullable<NodeBackend["payInvoice"]> = (req, record) => this.real.payInvoice(req, record);
  listInvoicePayments = (limit: number): Promise<InvoicePayment[]> => this.real.listInvoicePayments(limit);
  getInvoicePayment = (id: string): Promise<InvoicePayment | undefined> => this.real.getInvoicePayment(id);
}

let app: FastifyInstance;
let backend: InvoiceBackend;
let admin: string;

beforeAll(async () => {
  backend = new InvoiceBackend({ pool });
  app = await buildApi({ pool, schema, backend });
  admin = (await new ApiStore(pool, schema).createToken("test admin", ["admin"])).token;
});

afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const pay = (body: object, key: string = randomUUID()) =>
  app.inject({
    method: "POST",
    url: "/v1/payments",
    headers: { authorization: `Bearer ${admin}`, "idempotency-key": key },
    payload: body,
  });
const json = <T>(r: { body: string }): T => JSON.parse(r.body) as T;
const errorCode = (r: { body: string }): string => json<{ error: { code: string } }>(r).error.code;
const rowsOf = async (rHash: string): Promise<{ id: string; status: string }[]> =>
  (
    await pool.query<{ id: string; status: string }>(
      `SELECT id, status FROM "${schema}".invoice_payments WHERE r_hash = $1 ORDER BY created_at`,
      [rHash],
    )
  ).rows;

describe("paying an invoice", () => {
  it("writes a pending payment with the invoice's hash, payee and amount; the fee limit defaults to 1% + 1000 msat", async () => {
    const inv = invoice();
    const r = await pay({ invoice: inv.bolt11 });
    expect(r.statusCode, r.body).toBe(201);
    const p = json<{
      id: string;
      kind: string;
      status: string;
      rHash: string;
      payee: string;
      amountMsat: string;
      maxFeeMsat: string;
      attempts: unknown[];
      deadline: string;
    }>(r);
    expect(p).toMatchObject({
      kind: "invoice",
      status: "pending",
      rHash: inv.rHash,
      payee: PAYEE.toString("hex"),
      amountMsat: "250000",
      // 250 000 / 100 + 1000
      maxFeeMsat: "3500",
      attempts: [],
    });
    // 60 s after "now" by default.
    expect(p.deadline).toBe(new Date((NOW_S + 60) * 1000).toISOString());
    expect(await rowsOf(inv.rHash)).toEqual([{ id: p.id, status: "pending" }]);
    // The payer was woken to send the first attempt.
    expect(backend.woken.length).toBeGreaterThan(0);
    const get = await app.inject({
      url: `/v1/payments/${p.id}`,
      headers: { authorization: `Bearer ${admin}` },
    });
    expect(json<{ id: string; kind: string }>(get)).toMatchObject({ id: p.id, kind: "invoice" });
    const list = await app.inject({ url: "/v1/payments", headers: { authorization: `Bearer ${admin}` } });
    expect(json<{ payments: { id: string }[] }>(list).payments.map((x) => x.id)).toContain(p.id);
    const ev = await pool.query<{ status: string; detail: { rHash: string } }>(
      `SELECT status, detail FROM "${schema}".events WHERE kind = 'payment' AND subject = $1`,
      [p.id],
    );
    expect(ev.rows).toEqual([
      { status: "pending", detail: expect.objectContaining({ rHash: inv.rHash }) as object },
    ]);
  });

  it("a retry with the same Idempotency-Key returns the same payment and writes nothing new", async () => {
    const inv = invoice();
    const key = randomUUID();
    const first = await pay({ invoice: inv.bolt11, maxFeeMsat: "777" }, key);
    const again = await pay({ invoice: inv.bolt11, maxFeeMsat: "777" }, key);
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(again.headers["idempotent-replayed"]).toBe("true");
    expect(json<{ id: string }>(again).id).toBe(json<{ id: string }>(first).id);
    expect(json<{ maxFeeMsat: string }>(again).maxFeeMsat).toBe("777");
    expect(await rowsOf(inv.rHash)).toHaveLength(1);
    // The same key for another request is refused.
    const other = await pay({ invoice: invoice().bolt11 }, key);
    expect(other.statusCode).toBe(422);
  });

  it("the same invoice while it is being paid: 409 INVOICE_PAYMENT_PENDING, nothing written", async () => {
    const inv = invoice();
    expect((await pay({ invoice: inv.bolt11 })).statusCode).toBe(201);
    const twice = await pay({ invoice: inv.bolt11 });
    expect(twice.statusCode).toBe(409);
    expect(errorCode(twice)).toBe("INVOICE_PAYMENT_PENDING");
    expect(await rowsOf(inv.rHash)).toHaveLength(1);
  });

  it("the same invoice once paid: 409 INVOICE_ALREADY_PAID; with allowRepeat: a second payment", async () => {
    const inv = invoice();
    const first = json<{ id: string }>(await pay({ invoice: inv.bolt11 }));
    // An attempt of it succeeded (records.ts, in the step that received R): 250 000 + 1 200 sent.
    await inEventTransaction(pool, schema, (c) =>
      invoicePaymentSucceeded(c, schema, first.id, "11".repeat(32), "251200"),
    );
    const paid = json<{ status: string; feeMsat: string; preimage: string }>(
      await app.inject({ url: `/v1/payments/${first.id}`, headers: { authorization: `Bearer ${admin}` } }),
    );
    expect(paid).toMatchObject({ status: "succeeded", feeMsat: "1200", preimage: "11".repeat(32) });
    const twice = await pay({ invoice: inv.bolt11 });
    expect(twice.statusCode).toBe(409);
    expect(errorCode(twice)).toBe("INVOICE_ALREADY_PAID");
    const repeat = await pay({ invoice: inv.bolt11, allowRepeat: true });
    expect(repeat.statusCode, repeat.body).toBe(201);
    expect((await rowsOf(inv.rHash)).map((x) => x.status)).toEqual(["succeeded", "pending"]);
  });

  it("an invoice whose payment failed may be paid again", async () => {
    const inv = invoice();
    const first = json<{ id: string }>(await pay({ invoice: inv.bolt11 }));
    await pool.query(`UPDATE "${schema}".invoice_payments SET status = 'failed' WHERE id = $1`, [first.id]);
    expect((await pay({ invoice: inv.bolt11 })).statusCode).toBe(201);
  });

  it("concurrent requests for one invoice: exactly one payment", async () => {
    const inv = invoice();
    const rs = await Promise.all(Array.from({ length: 5 }, () => pay({ invoice: inv.bolt11 })));
    expect(rs.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409, 409]);
    expect(await rowsOf(inv.rHash)).toHaveLength(1);
  });

  it("the unique index refuses a second pending row of one r_hash even without the API's check", async () => {
    const inv = invoice();
    const p = json<{ id: string }>(await pay({ invoice: inv.bolt11 }));
    const insert = (id: string, allowRepeat: boolean) =>
      pool.query(
        `INSERT INTO "${schema}".invoice_payments (id, bolt11, r_hash, payee, amount_msat, max_fee_msat, deadline, allow_repeat)
         VALUES ($1, 'x', $2, 'p', 1, 1, now(), $3)`,
        [id, inv.rHash, allowRepeat],
      );
    await expect(insert(`${p.id}-dup`, false)).rejects.toMatchObject({ code: "23505" });
    await expect(insert(`${p.id}-repeat`, true)).resolves.toBeDefined();
  });
});

describe("invoices refused before anything is sent (400) — the key is free again", () => {
  const cases: { name: string; body: () => object; code: string }[] = [
    {
      name: "expired",
      body: () => ({ invoice: invoice({ timestamp: NOW_S - 4000, expirySeconds: 3600 }).bolt11 }),
      code: "INVOICE_EXPIRED",
    },
    {
      name: "another network",
      body: () => ({ invoice: invoice({ network: "testnet" }).bolt11 }),
      code: "WRONG_NETWORK",
    },
    {
      name: "our own",
      body: () => ({ invoice: invoice({ payee: Buffer.from(OUR_NODE, "hex") }, OUR_KEY).bolt11 }),
      code: "OWN_INVOICE",
    },
    { name: "not an invoice", body: () => ({ invoice: "lnbcrt1notaninvoice" }), code: "INVALID_INVOICE" },
    {
      name: "no amount and none given",
      body: () => ({ invoice: invoice({ noAmount: true }).bolt11 }),
      code: "AMOUNT_REQUIRED",
    },
    {
      name: "an amount given for an invoice with one",
      body: () => ({ invoice: invoice().bolt11, amountMsat: "1000" }),
      code: "AMOUNT_NOT_ALLOWED",
    },
  ];
  for (const c of cases)
    it(`${c.name}: ${c.code}`, async () => {
      const key = randomUUID();
      const before = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".invoice_payments`);
      const r = await pay(c.body(), key);
      expect(r.statusCode, r.body).toBe(400);
      expect(errorCode(r)).toBe(c.code);
      const after = await pool.query(`SELECT count(*)::int AS n FROM "${schema}".invoice_payments`);
      expect(after.rows).toEqual(before.rows);
      // Nothing was bound to the key: a corrected request may use it.
      const ok = await pay({ invoice: invoice().bolt11 }, key);
      expect(ok.statusCode, ok.body).toBe(201);
    });

  it("an invoice without an amount is paid with the amount given", async () => {
    const inv = invoice({ noAmount: true });
    const r = await pay({ invoice: inv.bolt11, amountMsat: "42000" });
    expect(r.statusCode, r.body).toBe(201);
    // 42 000 / 100 + 1000
    expect(json<{ amountMsat: string; maxFeeMsat: string }>(r)).toMatchObject({
      amountMsat: "42000",
      maxFeeMsat: "1420",
    });
  });
});
