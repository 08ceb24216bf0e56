/**
 * A payment sent with an onion learns who failed it (DESIGN.md 10, 11): the route and the onion's
 * shared secrets move onto the payment row in the step that adds the HTLC, and the step that makes
 * the peer's removal irrevocable reads its fail reason (a BOLT #4 error packet, or a malformed
 * reason from our peer) into failure_hop / failure_node / failure_code. The error packets are made
 * here as the failing node and the hops before it would (@ln/onion's createErrorPacket and
 * wrapErrorPacket with the route's shared secrets). Real Postgres; two channel ends in-process.
 */
import { randomBytes } from "node:crypto";
import { msat, sat, sha256, txidFromHex } from "@ln/bitcoin";
import { createChannel, type ChannelState, type Input } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import {
  buildOnion,
  createErrorPacket,
  peelOnion,
  encodeFailure,
  encodeHopPayload,
  encodeMalformedReason,
  FAILURE_CODES,
  wrapErrorPacket,
} from "@ln/onion";
import { decodePkt } from "@ln/proto";
import pg from "pg";
import { pointFromScalar, pointMultiply } from "tiny-secp256k1";
import { ChannelNodeBackend } from "../src/api/node-backend.js";
import { BackendError, type PayRequest } from "../src/api/backend.js";
import type { ChannelNode } from "../src/channels/node.js";
import { NodeError } from "../src/channels/errors.js";
import { ForwardingPolicies, defaultForwardingPolicy } from "../src/forwarding/policy.js";
import { afterAll, describe, expect, it } from "vitest";
import { ChannelRunner, type EffectSink } from "../src/channels/runner.js";
import { ChannelStore } from "../src/channels/store.js";
import { Ledger, type PaymentRoute } from "../src/payments/ledger.js";
import { keepPaymentOnion } from "../src/payments/records.js";
import { planRoute } from "../src/payments/route.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schemas: string[] = [];
afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

const CHANNEL = "chan-1";
const PAYMENT = `${CHANNEL}:0`;
const R_HASH = sha256(Buffer.alloc(32, 9)).toString("hex");
const nodeKey = (k: number): string =>
  Buffer.from(pointFromScalar(Buffer.alloc(32, k), true) as Uint8Array).toString("hex");
const B = nodeKey(0x0b);
const C = nodeKey(0x0c);
const D = nodeKey(0x0d);
const scid = (h: bigint, t: bigint, o: bigint): bigint => (h << 40n) | (t << 16n) | o;

type Side = "A" | "B";

/** Two channel ends over real Postgres, as money-records.test.ts; effects do nothing. */
class Ends {
  readonly stores: Record<Side, ChannelStore>;
  readonly ledgerA: Ledger;
  readonly signers: Record<Side, TestSigner> = { A: new TestSigner(0x10), B: new TestSigner(0x20) };
  readonly queue: { to: Side; input: Input }[] = [];
  readonly runners: Record<Side, ChannelRunner>;

  constructor() {
    const schema = (): string => {
      const s = `payfail_test_${randomBytes(6).toString("hex")}`;
      schemas.push(s);
      return s;
    };
    this.stores = { A: new ChannelStore(pool, schema()), B: new ChannelStore(pool, schema()) };
    this.ledgerA = new Ledger(pool, this.stores.A.schema);
    this.runners = { A: this.runner("A"), B: this.runner("B") };
  }

  private runner(side: Side): ChannelRunner {
    const other: Side = side === "A" ? "B" : "A";
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
      this.stores[side],
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
      const t = await this.stores[side].create(CHANNEL, created, {
        signerChannel: 0,
        ...(side === "A" ? { peerNodeId: B } : {}),
      });
      expect(await this.stores[side].acquireLease(CHANNEL, "replica-1", 60_000)).toBe(true);
      for (const m of t.sends)
        this.queue.push({ to: side === "A" ? "B" : "A", input: { type: "pkt", pkt: decodePkt(m.bytes) } });
    }
    await this.drain();
    for (const side of ["A", "B"] as const)
      this.queue.push({ to: side, input: { type: "chain", event: { kind: "anchor_depth", depth: 1 } } });
    await this.drain();
    expect(((await this.stores.A.load(CHANNEL)) as ChannelState).phase).toBe("normal");
  }

  /** Every update_add_htlc B received: its onion. */
  readonly onionsToB: Buffer[] = [];

  async drain(): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift()) {
      if (next.to === "B" && next.input.type === "pkt" && next.input.pkt.kind === "update_add_htlc")
        this.onionsToB.push(next.input.pkt.route);
      await this.runners[next.to].input(CHANNEL, next.input);
    }
  }

  command(side: Side, command: Extract<Input, { type: "command" }>["command"]) {
    return this.runners[side].input(CHANNEL, { type: "command", command });
  }

  async row(): Promise<Record<string, unknown> | undefined> {
    const r = await pool.query<Record<string, unknown>>(
      `SELECT status, failure_reason, failure_hop, failure_node, failure_code, route, onion_secrets
         FROM "${this.stores.A.schema}".payments WHERE id = $1`,
      [PAYMENT],
    );
    return r.rows[0];
  }

  async events(): Promise<{ status: string; detail: Record<string, unknown> }[]> {
    const r = await pool.query<{ status: string; detail: Record<string, unknown> }>(
      `SELECT status, detail FROM "${this.stores.A.schema}".events WHERE kind = 'payment' ORDER BY seq`,
    );
    return r.rows;
  }

  async kept(): Promise<number> {
    const r = await pool.query(`SELECT 1 FROM "${this.stores.A.schema}".payment_onions`);
    return r.rowCount ?? 0;
  }
}

/** The 3-hop route of route.test.ts (B, C, D) to the payee D: 1,000,000 msat at 4800. */
const HOPS = [
  {
    nodeId: B,
    shortChannelId: scid(700n, 1n, 0n),
    feeBaseMsat: msat(0n),
    feeProportionalMillionths: 0n,
    cltvExpiryDelta: 0,
  },
  {
    nodeId: C,
    shortChannelId: scid(710n, 2n, 1n),
    feeBaseMsat: msat(2000n),
    feeProportionalMillionths: 250n,
    cltvExpiryDelta: 144,
  },
  {
    nodeId: D,
    shortChannelId: scid(720n, 3n, 0n),
    feeBaseMsat: msat(1000n),
    feeProportionalMillionths: 100n,
    cltvExpiryDelta: 40,
  },
];

/** A pays over HOPS as the API does: the onion kept with its route, then add_htlc with it. */
async function payOverRoute(n: Ends): Promise<Buffer[]> {
  const plan = planRoute(HOPS, msat(1_000_000n), 4800);
  const onion = buildOnion({
    sessionKey: Buffer.alloc(32, 0x42),
    hops: plan.hops.map((h) => ({
      nodeId: Buffer.from(h.nodeId, "hex"),
      payload: encodeHopPayload(h.payload),
    })),
    associatedData: Buffer.from(R_HASH, "hex"),
  });
  const route: PaymentRoute = {
    hops: plan.hops.map((h, i) => ({
      nodeId: h.nodeId,
      shortChannelId: ["700x1x0", "710x2x1", "720x3x0"][i] ?? "",
      feeBaseMsat: h.feeBaseMsat.toString(),
      feeProportionalMillionths: h.feeProportionalMillionths.toString(),
      cltvExpiryDelta: h.cltvExpiryDelta,
      amountMsat: h.amountMsat.toString(),
      expiry: h.expiry,
    })),
  };
  const packet = onion.packet.toString("hex");
  await keepPaymentOnion(pool, n.stores.A.schema, packet, route, onion.sharedSecrets);
  await n.command("A", {
    kind: "add_htlc",
    amountMsat: plan.amountMsat,
    rHash: R_HASH,
    expiry: { blocks: plan.expiry },
    route: packet,
  });
  await n.drain();
  return onion.sharedSecrets;
}

/** B fails HTLC 0 back with `reason`; A's step that makes it irrevocable records the failure. */
async function failBack(n: Ends, reason: Buffer): Promise<void> {
  await n.command("B", { kind: "fail_htlc", id: 0n, reason: reason.toString("hex") });
  await n.drain();
}

describe("a payment over a route learns who failed it", () => {
  it("the route and shared secrets move onto the payment row in the step that adds the HTLC", async () => {
    const n = new Ends();
    await n.open();
    const secrets = await payOverRoute(n);
    const row = await n.row();
    expect(row?.status).toBe("pending");
    expect((row?.onion_secrets as Buffer).equals(Buffer.concat(secrets))).toBe(true);
    expect((row?.route as PaymentRoute).hops.map((h) => [h.nodeId, h.amountMsat, h.expiry])).toEqual([
      [B, "1003350", 4984],
      [C, "1001100", 4840],
      [D, "1000000", 4800],
    ]);
    expect(await n.kept()).toBe(0);
    // The ledger's reads never carry the secrets.
    const p = await n.ledgerA.payment(PAYMENT);
    expect(p?.route?.hops).toHaveLength(3);
    expect(JSON.stringify(p, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))).not.toContain(
      Buffer.concat(secrets).subarray(0, 32).toString("hex"),
    );
  });

  it("an error packet from hop 1, wrapped by hop 0: hop 1, C, fee_insufficient", async () => {
    const n = new Ends();
    await n.open();
    const secrets = await payOverRoute(n);
    const [s0, s1] = secrets as [Buffer, Buffer];
    // C refuses: fee_insufficient (0x100c) for the 1,001,100 msat HTLC it got, no channel_update.
    const message = Buffer.concat([
      Buffer.from([0x10, 0x0c]),
      Buffer.from("00000000000f468c", "hex"), // 1,001,100
      Buffer.from([0x00, 0x00]), // channel_update length 0
    ]);
    expect(
      message.equals(
        encodeFailure({ name: "fee_insufficient", htlcMsat: 1_001_100n, channelUpdate: Buffer.alloc(0) }),
      ),
    ).toBe(true);
    await failBack(n, wrapErrorPacket(s0, createErrorPacket(s1, message)));
    const reason = `hop 1 (${C.slice(0, 8)}…): fee_insufficient (htlc 1001100 msat)`;
    expect(await n.row()).toMatchObject({
      status: "failed",
      failure_hop: 1,
      failure_node: C,
      failure_code: 0x100c,
      failure_reason: reason,
    });
    expect(await n.ledgerA.payment(PAYMENT)).toMatchObject({
      status: "failed",
      failureReason: reason,
      failure: {
        hop: 1,
        nodeId: C,
        code: 4108,
        name: "fee_insufficient",
        description: "fee_insufficient (htlc 1001100 msat)",
      },
    });
    const events = await n.events();
    expect(events.map((e) => e.status)).toEqual(["pending", "failed"]);
    expect(events[1]?.detail).toMatchObject({
      failureReason: reason,
      failure: { hop: 1, nodeId: C, code: 4108, name: "fee_insufficient" },
    });
  });

  it("the payee's own failure (hop 2), wrapped by hops 1 and 0", async () => {
    const n = new Ends();
    await n.open();
    const [s0, s1, s2] = (await payOverRoute(n)) as [Buffer, Buffer, Buffer];
    // incorrect_or_unknown_payment_details (0x400f): htlc 1,000,000 msat, height 1000.
    const message = Buffer.from("400f" + "00000000000f4240" + "000003e8", "hex");
    await failBack(n, wrapErrorPacket(s0, wrapErrorPacket(s1, createErrorPacket(s2, message))));
    expect(await n.row()).toMatchObject({
      status: "failed",
      failure_hop: 2,
      failure_node: D,
      failure_code: FAILURE_CODES.incorrect_or_unknown_payment_details,
      failure_reason: `hop 2 (${D.slice(0, 8)}…): incorrect_or_unknown_payment_details (htlc 1000000 msat, height 1000)`,
    });
  });

  it("a malformed reason (34 bytes) is our peer's: hop 0", async () => {
    const n = new Ends();
    await n.open();
    await payOverRoute(n);
    const sha = Buffer.alloc(32, 0x5a);
    await failBack(n, encodeMalformedReason(0xc005, sha)); // invalid_onion_hmac
    expect(await n.row()).toMatchObject({
      status: "failed",
      failure_hop: 0,
      failure_node: B,
      failure_code: 0xc005,
      failure_reason: `hop 0 (${B.slice(0, 8)}…): invalid_onion_hmac (sha256 of onion ${sha.toString("hex")})`,
    });
  });

  it("an unreadable error packet is recorded as such; the step commits", async () => {
    const n = new Ends();
    await n.open();
    await payOverRoute(n);
    await failBack(n, randomBytes(292));
    expect(await n.row()).toMatchObject({
      status: "failed",
      failure_hop: null,
      failure_node: null,
      failure_code: null,
      failure_reason: "unreadable error packet",
    });
    expect((await n.ledgerA.payment(PAYMENT))?.failure).toBeUndefined();
  });
});

/** The control API's backend over A: its node runs commands through A's runner. */
function backendOf(n: Ends): ChannelNodeBackend {
  const node = {
    height: 1000,
    command: async (id: string, command: Extract<Input, { type: "command" }>["command"], within?: never) => {
      const t = await n.runners.A.input(id, { type: "command", command }, within);
      const refused = t.outputs.find((o) => o.type === "command_rejected");
      if (refused?.type === "command_rejected") throw new NodeError(refused.code, refused.problem);
      return t.outputs;
    },
  } as unknown as ChannelNode;
  const unused = {} as never;
  return new ChannelNodeBackend({
    node,
    store: n.stores.A,
    ledger: n.ledgerA,
    resolution: unused,
    wallet: unused,
    peers: unused,
    policies: new ForwardingPolicies(pool, n.stores.A.schema, defaultForwardingPolicy(144)),
    pool,
    schema: n.stores.A.schema,
    nodeId: "02".padEnd(66, "1"),
    network: "regtest",
    version: "test",
    invoiceHash: () => Promise.reject(new Error("unused")),
    signInvoice: () => Promise.reject(new Error("no invoices here")),
    minFinalCltvExpiryDelta: 18,
  });
}

/** The node key k's ECDH (BOLT #4): SHA-256 of the compressed point k * ephemeral key. */
const ecdhOf =
  (k: number) =>
  (point: Buffer): Promise<Buffer> =>
    Promise.resolve(sha256(Buffer.from(pointMultiply(point, Buffer.alloc(32, k), true) as Uint8Array)));

describe("ChannelNodeBackend.pay with a route", () => {
  const request: PayRequest = {
    rHash: R_HASH,
    amountMsat: msat(1_000_000n),
    expiry: { blocks: 4800 },
    route: HOPS,
  };

  it("offers the route's HTLC over our channel with its first hop; each hop peels what route.ts planned", async () => {
    const n = new Ends();
    await n.open();
    const backend = backendOf(n);
    let recorded: unknown;
    const p = await backend.pay(request, {
      complete: (_tx, payment) => {
        recorded = payment;
        return Promise.resolve();
      },
    });
    expect(p).toMatchObject({
      id: PAYMENT,
      channelId: CHANNEL,
      amountMsat: 1_003_350n,
      expiry: { blocks: 4984 },
    });
    expect(p.route?.hops.map((h) => [h.shortChannelId, h.amountMsat, h.expiry])).toEqual([
      ["700x1x0", "1003350", 4984],
      ["710x2x1", "1001100", 4840],
      ["720x3x0", "1000000", 4800],
    ]);
    // The API's record, completed in the add step, already names the route.
    expect(recorded).toEqual(p);
    await n.drain();
    const [onion] = n.onionsToB;
    const ad = Buffer.from(R_HASH, "hex");
    const atB = await peelOnion(onion as Buffer, ad, ecdhOf(0x0b));
    expect(atB.kind).toBe("forward");
    expect(atB.payload).toEqual({
      amtToForwardMsat: 1_001_100n,
      outgoingCltvValue: 4840,
      shortChannelId: scid(710n, 2n, 1n),
    });
    if (atB.kind !== "forward") return;
    const atC = await peelOnion(atB.next, ad, ecdhOf(0x0c));
    expect(atC.payload).toEqual({
      amtToForwardMsat: 1_000_000n,
      outgoingCltvValue: 4800,
      shortChannelId: scid(720n, 3n, 0n),
    });
    if (atC.kind !== "forward") return;
    const atD = await peelOnion(atC.next, ad, ecdhOf(0x0d));
    expect(atD).toMatchObject({
      kind: "final",
      payload: {
        amtToForwardMsat: 1_000_000n,
        outgoingCltvValue: 4800,
        paymentData: { paymentSecret: Buffer.alloc(32), totalMsat: 1_000_000n },
      },
    });
    // The secrets on the row are the ones each hop derived.
    const row = await n.row();
    expect(
      (row?.onion_secrets as Buffer).equals(
        Buffer.concat([atB.sharedSecret, atC.sharedSecret, atD.sharedSecret]),
      ),
    ).toBe(true);
  });

  it("refuses a route the channel's peer does not start, a time expiry and a bad route, keeping nothing", async () => {
    const n = new Ends();
    await n.open();
    const backend = backendOf(n);
    const code = (r: PayRequest) =>
      backend.pay(r).then(
        () => "paid",
        (e: unknown) => (e instanceof BackendError ? e.code : String(e)),
      );
    expect(await code({ ...request, route: [{ ...HOPS[0], nodeId: C }] as never })).toBe("NOT_FOUND");
    expect(await code({ ...request, channelId: CHANNEL, route: [{ ...HOPS[0], nodeId: C }] as never })).toBe(
      "INVALID",
    );
    expect(await code({ ...request, expiry: { seconds: 1_800_000_000 } })).toBe("INVALID");
    expect(await code({ ...request, route: [{ ...HOPS[0], cltvExpiryDelta: 6 }] as never })).toBe("INVALID");
    // The channel refuses an HTLC past its balance: the kept onion is forgotten.
    expect(await code({ ...request, amountMsat: msat(2_000_000_000n) })).toBe("INSUFFICIENT_FUNDS");
    expect(await n.kept()).toBe(0);
    expect(await n.row()).toBeUndefined();
  });
});
