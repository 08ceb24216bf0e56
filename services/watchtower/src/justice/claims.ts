/*~ Durable claims on breaches: how replicas share the justice work without holding a row lock
 * while they call the node or the signer. A worker claims a breach in one statement (only if
 * unclaimed or its claim expired), does the slow calls with no transaction open, and records the
 * outcome in one short transaction only if the claim is still its own, clearing it. A crashed
 * worker's claim expires and another replica takes the breach over; the outcome of a worker whose
 * claim was taken over is refused, so it neither records nor broadcasts what it signed: two
 * replicas never both send justice for one breach from different plans. */
import { inTransaction } from "@ln/postgres";
import type { TowerContext } from "../context.js";
import type { BreachState } from "../justice-core.js";

/** What claims need of the tower's context. */
export type ClaimContext = Pick<TowerContext, "pool" | "table" | "workerId" | "claimTtlMs">;

/** One claim on one breach: the fence an outcome must match to be recorded. */
export interface Claim {
  ntxid: Buffer;
  worker: string;
  /** The breach's claim_seq as this claim set it: a later claim (a takeover) has another. */
  seq: string;
}

/** A claimed breach with what the work needs. */
export interface ClaimedBreach {
  claim: Claim;
  locator: Buffer;
  breachHex: string;
  state: BreachState;
  /** The sealed record the breach matched. */
  blob: Buffer;
  /** Every justice version signed so far, by txid. */
  versions: Map<string, string>;
}

/** A justice transaction signed under a claim, stored with the outcome. */
export interface SignedVersion {
  txid: string;
  group: number;
  feeRate: number;
  hex: string;
}

/** What a worker found and did: the breach's next state and what it signed, or its end. */
export type Outcome =
  | { kind: "update"; state: BreachState; signed: readonly SignedVersion[] }
  /** Done with (buried justice, or nothing to take): the breach and its record are deleted. */
  | { kind: "prune" };

/** Claims the breach for `ctx.workerId` if nobody holds a live claim on it; undefined otherwise. */
export async function claimBreach(ctx: ClaimContext, ntxid: Buffer): Promise<ClaimedBreach | undefined> {
  const b = ctx.table("tower_breaches");
  const r = await ctx.pool.query<{
    claim_seq: string;
    locator: Buffer;
    breach_hex: string;
    state: BreachState;
    blob: Buffer;
  }>(
    `UPDATE ${b} SET claimed_by = $2, claimed_until = now() + $3::int * interval '1 millisecond', claim_seq = claim_seq + 1
       FROM ${ctx.table("tower_records")} r
      WHERE ${b}.ntxid = $1 AND r.locator = ${b}.locator AND r.blob_hash = ${b}.blob_hash
        AND (${b}.claimed_until IS NULL OR ${b}.claimed_until < now())
      RETURNING ${b}.claim_seq::text, ${b}.locator, ${b}.breach_hex, ${b}.state, r.blob`,
    [ntxid, ctx.workerId, ctx.claimTtlMs],
  );
  const row = r.rows[0];
  if (row === undefined) return undefined; // gone, or another worker holds it
  // Only the claimant writes versions: these are all there are while the claim holds.
  const versions = await ctx.pool.query<{ txid: string; tx_hex: string }>(
    `SELECT txid, tx_hex FROM ${ctx.table("tower_justice")} WHERE ntxid = $1`,
    [ntxid],
  );
  return {
    claim: { ntxid, worker: ctx.workerId, seq: row.claim_seq },
    locator: row.locator,
    breachHex: row.breach_hex,
    state: row.state,
    blob: row.blob,
    versions: new Map(versions.rows.map((v) => [v.txid, v.tx_hex])),
  };
}

const FENCE = "ntxid = $1 AND claimed_by = $2 AND claim_seq = $3::bigint";
const fence = (c: Claim): unknown[] => [c.ntxid, c.worker, c.seq];

/**
 * Extends the claim by the TTL from now, before another slow call. False when the claim was
 * taken over (or the breach re-planned or pruned): the worker must stop.
 */
export async function renewClaim(ctx: ClaimContext, c: Claim): Promise<boolean> {
  const r = await ctx.pool.query(
    `UPDATE ${ctx.table("tower_breaches")} SET claimed_until = now() + $4::int * interval '1 millisecond' WHERE ${FENCE}`,
    [...fence(c), ctx.claimTtlMs],
  );
  return r.rowCount === 1;
}

/**
 * Records the outcome and clears the claim, in one short transaction, if the claim is still this
 * one (an expired claim nobody took over still is). False, with nothing written, otherwise.
 */
export function recordOutcome(ctx: ClaimContext, c: Claim, outcome: Outcome): Promise<boolean> {
  return inTransaction(ctx.pool, async (tx) => {
    if (outcome.kind === "prune") {
      const gone = await tx.query<{ locator: Buffer }>(
        `DELETE FROM ${ctx.table("tower_breaches")} WHERE ${FENCE} RETURNING locator`,
        fence(c),
      );
      const locator = gone.rows[0]?.locator;
      if (locator === undefined) return false;
      await tx.query(`DELETE FROM ${ctx.table("tower_records")} WHERE locator = $1`, [locator]);
      return true;
    }
    // The fenced UPDATE first: it takes the row lock, so no takeover commits in between.
    const updated = await tx.query(
      `UPDATE ${ctx.table("tower_breaches")} SET state = $4, updated_at = now(), claimed_by = NULL, claimed_until = NULL
        WHERE ${FENCE}`,
      [...fence(c), JSON.stringify(outcome.state)],
    );
    if (updated.rowCount !== 1) return false;
    for (const v of outcome.signed)
      await tx.query(
        `INSERT INTO ${ctx.table("tower_justice")} (txid, ntxid, grp, fee_rate, tx_hex) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (txid) DO NOTHING`,
        [v.txid, c.ntxid, v.group, v.feeRate, v.hex],
      );
    return true;
  });
}

/** Gives the claim up without an outcome (the work failed): another attempt need not wait for it to expire. */
export async function releaseClaim(ctx: ClaimContext, c: Claim): Promise<void> {
  await ctx.pool.query(
    `UPDATE ${ctx.table("tower_breaches")} SET claimed_by = NULL, claimed_until = NULL WHERE ${FENCE}`,
    fence(c),
  );
}
