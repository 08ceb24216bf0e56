/**
 * The forwarding table's moves that ride on channel steps (forwarding/records.ts, DESIGN.md 10):
 * a forward is claimed by exactly one outgoing HTLC; the downstream outcome is recorded once, a
 * failure with our error layer added (erratum 9); the upstream answer closes it. The error packets
 * are checked the way the payer reads them (@ln/onion's decodeErrorPacket over the route's shared
 * secrets), with the failure built here by hand. Real Postgres.
 */
import { randomBytes } from "node:crypto";
import {
  createErrorPacket,
  decodeErrorPacket,
  decodeFailReason,
  encodeFailure,
  encodeMalformedReason,
  FAILURE_CODES,
} from "@ln/onion";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelStore } from "../src/channels/store.js";
import {
  ForwardError,
  forwardOffered,
  incomingOnionReceived,
  offeredHtlcResolved,
  receivedHtlcResolved,
} from "../src/forwarding/records.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `fwd_records_${randomBytes(6).toString("hex")}`;
const q = `"${schema}"`;
// The shared secrets of a route payer -> us (hop 0) -> next (hop 1).
const ourSecret = Buffer.alloc(32, 0x11);
const nextSecret = Buffer.alloc(32, 0x22);

beforeAll(async () => {
  await new ChannelStore(pool, schema).migrate();
  await pool.query(`INSERT INTO ${q}.channels (id, state) VALUES ('in', '{}'), ('out', '{}')`);
});
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS ${q} CASCADE`);
  await pool.end();
});

let nextHtlc = 0;
/** A forward decided and waiting to be offered on 'out'. */
async function offering(): Promise<{ id: bigint; inHtlc: bigint }> {
  const inHtlc = BigInt(nextHtlc++);
  const r = await pool.query<{ id: string }>(
    `INSERT INTO ${q}.forwards (in_channel, in_htlc_id, r_hash, in_amount_msat, in_expiry, shared_secret,
       out_channel, out_amount_msat, out_expiry, next_onion, status)
     VALUES ('in', $1, $2, 1001100, 1200, $3, 'out', 1000000, 1160, $4, 'offering') RETURNING id::text AS id`,
    [inHtlc.toString(), "ab".repeat(32), ourSecret, Buffer.alloc(1366)],
  );
  return { id: BigInt(r.rows[0]!.id), inHtlc };
}

async function row(id: bigint): Promise<Record<string, unknown>> {
  const r = await pool.query(`SELECT * FROM ${q}.forwards WHERE id = $1`, [id.toString()]);
  return r.rows[0] as Record<string, unknown>;
}

/** Runs `fn` in a transaction that commits. */
async function tx<T>(fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const c = await pool.connect();
  try {
    await c.query("BEGIN");
    const v = await fn(c);
    await c.query("COMMIT");
    return v;
  } catch (e) {
    await c.query("ROLLBACK");
    throw e;
  } finally {
    c.release();
  }
}

describe("the forwarding table in the channels' steps", () => {
  it("a forward is claimed by exactly one outgoing HTLC: a second claim fails its step", async () => {
    const f = await offering();
    await tx((c) => forwardOffered(c, schema, f.id, "out", 5n));
    expect(await row(f.id)).toMatchObject({ status: "offered", out_htlc_id: "5" });
    await expect(tx((c) => forwardOffered(c, schema, f.id, "out", 6n))).rejects.toMatchObject({
      code: "FORWARD_NOT_OFFERING",
    });
    await expect(tx((c) => forwardOffered(c, schema, f.id, "out", 6n))).rejects.toBeInstanceOf(ForwardError);
    expect(await row(f.id)).toMatchObject({ status: "offered", out_htlc_id: "5" });
  });

  it("R downstream fulfils the forward once; our fulfil upstream settles it", async () => {
    const f = await offering();
    await tx((c) => forwardOffered(c, schema, f.id, "out", 10n));
    const r = "cd".repeat(32);
    expect(await tx((c) => offeredHtlcResolved(c, schema, "out", 10n, { kind: "fulfilled", r }))).toBe(true);
    expect(await row(f.id)).toMatchObject({ status: "fulfilled", preimage: r });
    // A second outcome of the same HTLC changes nothing (an outcome is final).
    await tx((c) => offeredHtlcResolved(c, schema, "out", 10n, { kind: "failed", reason: "00" }));
    expect(await row(f.id)).toMatchObject({ status: "fulfilled", preimage: r });
    // Not a forward's HTLC: the caller records a payment instead.
    expect(await tx((c) => offeredHtlcResolved(c, schema, "out", 999n, { kind: "fulfilled", r }))).toBe(
      false,
    );
    await tx((c) => incomingOnionReceived(c, schema, "in", f.inHtlc, "ee".repeat(1366)));
    expect(await tx((c) => receivedHtlcResolved(c, schema, "in", f.inHtlc, { kind: "fulfilled", r }))).toBe(
      true,
    );
    expect(await row(f.id)).toMatchObject({ status: "settled" });
    const onions = await pool.query(`SELECT 1 FROM ${q}.incoming_onions WHERE htlc_id = $1`, [
      f.inHtlc.toString(),
    ]);
    expect(onions.rowCount).toBe(0);
  });

  it("a downstream error packet goes upstream with our layer: the payer reads the next hop's failure", async () => {
    const f = await offering();
    await tx((c) => forwardOffered(c, schema, f.id, "out", 20n));
    // The next hop fails with incorrect_or_unknown_payment_details (PERM|15, htlc 1000000 msat, height 1100).
    const message = Buffer.concat([
      Buffer.from([0x40, 0x0f]),
      Buffer.from("00000000000f4240", "hex"),
      Buffer.from("0000044c", "hex"),
    ]);
    const downstream = createErrorPacket(nextSecret, message);
    await tx((c) =>
      offeredHtlcResolved(c, schema, "out", 20n, { kind: "failed", reason: downstream.toString("hex") }),
    );
    const failed = await row(f.id);
    expect(failed["status"]).toBe("failed");
    const up = failed["upstream_reason"] as Buffer;
    expect(decodeErrorPacket([ourSecret, nextSecret], up)).toEqual({
      hop: 1,
      failure: { name: "incorrect_or_unknown_payment_details", htlcMsat: 1_000_000n, height: 1100 },
    });
    await tx((c) =>
      receivedHtlcResolved(c, schema, "in", f.inHtlc, { kind: "failed", reason: up.toString("hex") }),
    );
    expect(await row(f.id)).toMatchObject({ status: "failed_back" });
  });

  it("a next hop that could not read its onion: our own error packet with its BADONION code", async () => {
    const f = await offering();
    await tx((c) => forwardOffered(c, schema, f.id, "out", 30n));
    const sha = Buffer.alloc(32, 0x5a);
    const malformed = encodeMalformedReason(0x8000 | 0x4000 | 5, sha);
    expect(malformed.length).toBe(34);
    await tx((c) =>
      offeredHtlcResolved(c, schema, "out", 30n, { kind: "failed", reason: malformed.toString("hex") }),
    );
    const up = (await row(f.id))["upstream_reason"] as Buffer;
    expect(decodeErrorPacket([ourSecret, nextSecret], up)).toEqual({
      hop: 0,
      failure: { name: "invalid_onion_hmac", sha256OfOnion: sha },
    });
    expect(FAILURE_CODES.invalid_onion_hmac).toBe(0xc005);
  });

  it("a reason that is no error packet, or a timeout on chain: our own failure", async () => {
    const f = await offering();
    await tx((c) => forwardOffered(c, schema, f.id, "out", 40n));
    await tx((c) =>
      offeredHtlcResolved(c, schema, "out", 40n, {
        kind: "failed",
        reason: Buffer.from("no", "utf8").toString("hex"),
      }),
    );
    const up = (await row(f.id))["upstream_reason"] as Buffer;
    expect(decodeErrorPacket([ourSecret], up).failure.name).toBe("temporary_channel_failure");

    const g = await offering();
    await tx((c) => forwardOffered(c, schema, g.id, "out", 41n));
    await tx((c) => offeredHtlcResolved(c, schema, "out", 41n, { kind: "timed_out" }));
    const timedOut = await row(g.id);
    expect(timedOut["status"]).toBe("failed");
    expect(decodeFailReason(timedOut["upstream_reason"] as Buffer).kind).toBe("packet");
    expect(decodeErrorPacket([ourSecret], timedOut["upstream_reason"] as Buffer)).toEqual({
      hop: 0,
      failure: { name: "permanent_channel_failure" },
    });
    expect(encodeFailure({ name: "permanent_channel_failure" })).toEqual(Buffer.from([0x40, 0x08]));
  });
});
