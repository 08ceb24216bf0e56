/**
 * Our BOLT #11 invoices (payments/invoices.ts, migration 22) over real Postgres: the fields given
 * to the signer, route hints for our channels the graph does not hold, and the row kept with the
 * payment secret. The signer is stood in for by a key here; the string is read back by bolt11.
 */
import { randomBytes } from "node:crypto";
import { msat, shortChannelIdToBigint, shortChannelId } from "@ln/bitcoin";
import { assembleInvoice, decodeInvoice, unsignedInvoice, type InvoiceFields } from "@ln/invoice";
import bolt11 from "bolt11";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelStore } from "../src/channels/store.js";
import type { ForwardingPolicy } from "../src/forwarding/policy.js";
import { migrateChannelService } from "../src/migrations.js";
import { signedInvoice, type InvoiceSigning } from "../src/payments/invoices.js";
import { Ledger } from "../src/payments/ledger.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `invoices_test_${randomBytes(6).toString("hex")}`;
const DEFAULTS: ForwardingPolicy = {
  feeBaseMsat: msat(1000n),
  feeProportionalMillionths: 1n,
  cltvExpiryDelta: 184,
  htlcMinimumMsat: msat(1000n),
};
const KEY = Buffer.alloc(32, 0x42);
const NODE = Buffer.from(ecc.pointFromScalar(KEY, true) ?? []).toString("hex");
const peer = (n: number): string =>
  Buffer.from(ecc.pointFromScalar(Buffer.alloc(32, n), true) ?? []).toString("hex");
const [P1, P2, P3, P4] = [peer(1), peer(2), peer(3), peer(4)];
const SCID1 = shortChannelIdToBigint(shortChannelId(500, 1, 0));
const SCID2 = shortChannelIdToBigint(shortChannelId(501, 7, 1));
const SCID4 = shortChannelIdToBigint(shortChannelId(502, 3, 0));

/** What was asked of the signer: it signs with KEY as the real one does with the node key. */
const asked: { index: number; fields: InvoiceFields }[] = [];
const signing = (): InvoiceSigning => ({
  pool,
  schema,
  store: new ChannelStore(pool, schema),
  network: "regtest",
  nodeId: NODE,
  minFinalCltvExpiryDelta: 162,
  defaultPolicy: DEFAULTS,
  signInvoice: async (index, fields) => {
    asked.push({ index, fields });
    const sig = ecc.signRecoverable(unsignedInvoice(fields).signingHash, KEY);
    return assembleInvoice(fields, Buffer.from(sig.signature), sig.recoveryId);
  },
  now: () => 1_800_000_000,
});

beforeAll(async () => {
  await migrateChannelService(pool, schema);
  const add = async (id: string, p: string, phase: string, scid: bigint | null): Promise<void> => {
    await pool.query(
      `INSERT INTO "${schema}".channels (id, state, peer_node_id, phase, short_channel_id) VALUES ($1, '{}', $2, $3, $4)`,
      [id, p, phase, scid === null ? null : BigInt.asIntN(64, scid).toString()],
    );
  };
  await add("c1", P1, "normal", SCID1); // hinted
  await add("c2", P2, "normal", SCID2); // in the graph: announced, not hinted
  await add("c3", P3, "normal", null); // no short_channel_id yet
  await add("c4", P4, "closed", SCID4); // closed
  const [n1, n2] = [NODE, P2].sort();
  await pool.query(
    `INSERT INTO "${schema}".graph_channels (short_channel_id, node_1, node_2, commit_key_1, commit_key_2,
       anchor_txid, anchor_vout, capacity_sat, announcement) VALUES ($1, $2, $3, $2, $3, $4, 1, 1000000, '\\x00')`,
    [BigInt.asIntN(64, SCID2).toString(), n1, n2, "00".repeat(32)],
  );
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

describe("our invoices", () => {
  it("are signed over the fields asked, with a hint for each unannounced live channel, and kept with their secret", async () => {
    const ledger = new Ledger(pool, schema);
    const rHash = randomBytes(32).toString("hex");
    const inv = await ledger.addInvoice(
      () => Promise.resolve(rHash),
      msat(70_000n),
      "a cake",
      (index, h) =>
        signedInvoice(signing(), index, h, {
          amountMsat: msat(70_000n),
          description: "a cake",
          expirySeconds: 120,
        }),
    );
    expect(asked).toHaveLength(1);
    expect(asked[0]?.index).toBe(inv.signerIndex);

    const s = inv.bolt11?.bolt11 ?? "";
    const b = bolt11.decode(s);
    expect(b.payeeNodeKey).toBe(NODE);
    expect(b.timestamp).toBe(1_800_000_000);
    expect(b.tagsObject).toMatchObject({
      payment_hash: rHash,
      description: "a cake",
      expire_time: 120,
      min_final_cltv_expiry: 162,
      routing_info: [
        {
          pubkey: P1,
          short_channel_id: SCID1.toString(16).padStart(16, "0"),
          fee_base_msat: 1000,
          fee_proportional_millionths: 1,
          cltv_expiry_delta: 184,
        },
      ],
    });
    // One hint only: c2 is in the graph, c3 has no short_channel_id, c4 is closed.
    expect(b.tags.filter((t) => t.tagName === "routing_info")).toHaveLength(1);

    const row = await ledger.invoice(rHash);
    expect(row?.bolt11?.bolt11).toBe(s);
    expect(row?.bolt11?.paymentSecret.toString("hex")).toBe(b.tagsObject.payment_secret);
    expect(row?.bolt11?.expiresAt.getTime()).toBe((1_800_000_000 + 120) * 1000);
    expect(row?.createdAt.getTime()).toBe(1_800_000_000 * 1000);
    expect(row?.bolt11?.minFinalCltvExpiryDelta).toBe(162);
    expect(row?.amountMsat).toBe(70_000n);

    // Each invoice its own random secret.
    const other = await ledger.addInvoice(
      () => Promise.resolve(randomBytes(32).toString("hex")),
      msat(0n),
      "any",
      (index, h) =>
        signedInvoice(signing(), index, h, { amountMsat: msat(0n), description: "any", expirySeconds: 60 }),
    );
    expect(other.bolt11?.paymentSecret.equals(row?.bolt11?.paymentSecret ?? Buffer.alloc(0))).toBe(false);
    expect(decodeInvoice(other.bolt11?.bolt11 ?? "").amountMsat).toBeUndefined();
  });
});
