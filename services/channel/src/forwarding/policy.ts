import { msat, type Msat } from "@ln/bitcoin";
import { quoteSchema } from "@ln/postgres";
import type pg from "pg";

/**
 * What we charge and require to forward an HTLC out over a channel (DESIGN.md 10, BOLT #7's
 * channel_update fields): the fee `feeBaseMsat + amount * feeProportionalMillionths / 1e6` of the
 * amount sent on, the blocks between the incoming and the outgoing HTLC's expiry, and the
 * smallest HTLC we send.
 */
export interface ForwardingPolicy {
  feeBaseMsat: Msat;
  feeProportionalMillionths: bigint;
  cltvExpiryDelta: number;
  htlcMinimumMsat: Msat;
}

/**
 * What a forwarder charges to forward an amount (BOLT #7): base + floor(amount * ppm / 1e6), from
 * @ln/pathfinding, so the payer's route (payments/route.ts), the pathfinder and the forwarder's
 * check (forwarding/rules.ts) use one formula.
 */
export { forwardingFee } from "@ln/pathfinding";

/** Configuration defaults (config.ts reads FORWARD_*): a delta above CHANNEL_DELAY_BLOCKS + a margin. */
export const defaultForwardingPolicy = (delayBlocks: number): ForwardingPolicy => ({
  feeBaseMsat: msat(1000n),
  feeProportionalMillionths: 1n,
  cltvExpiryDelta: delayBlocks + 40,
  htlcMinimumMsat: msat(1000n),
});

const U32_MAX = 0xffff_ffffn;

export class PolicyError extends Error {
  override readonly name = "PolicyError";
  constructor(
    readonly code: "INVALID",
    message: string,
  ) {
    super(message);
  }
}

/** Checks a policy's fields are in BOLT #7's ranges (fees u32, delta u16, minimum u64). */
export function checkPolicy(p: Partial<ForwardingPolicy>): void {
  const bad = (what: string): never => {
    throw new PolicyError("INVALID", what);
  };
  if (p.feeBaseMsat !== undefined && (p.feeBaseMsat < 0n || p.feeBaseMsat > U32_MAX))
    bad(`feeBaseMsat ${p.feeBaseMsat} is not from 0 to ${U32_MAX}`);
  if (
    p.feeProportionalMillionths !== undefined &&
    (p.feeProportionalMillionths < 0n || p.feeProportionalMillionths > U32_MAX)
  )
    bad(`feeProportionalMillionths ${p.feeProportionalMillionths} is not from 0 to ${U32_MAX}`);
  if (
    p.cltvExpiryDelta !== undefined &&
    (!Number.isInteger(p.cltvExpiryDelta) || p.cltvExpiryDelta < 0 || p.cltvExpiryDelta > 0xffff)
  )
    bad(`cltvExpiryDelta ${p.cltvExpiryDelta} is not from 0 to 65535`);
  if (
    p.htlcMinimumMsat !== undefined &&
    (p.htlcMinimumMsat < 0n || p.htlcMinimumMsat > 0xffff_ffff_ffff_ffffn)
  )
    bad(`htlcMinimumMsat ${p.htlcMinimumMsat} is not a u64`);
}

interface PolicyDbRow {
  fee_base_msat: string;
  fee_proportional_millionths: string;
  cltv_expiry_delta: number;
  htlc_minimum_msat: string;
}

const toPolicy = (r: PolicyDbRow): ForwardingPolicy => ({
  feeBaseMsat: msat(BigInt(r.fee_base_msat)),
  feeProportionalMillionths: BigInt(r.fee_proportional_millionths),
  cltvExpiryDelta: r.cltv_expiry_delta,
  htlcMinimumMsat: msat(BigInt(r.htlc_minimum_msat)),
});

/** Each channel's forwarding policy (table forwarding_policies); a channel without a row has the defaults. */
export class ForwardingPolicies {
  private readonly table: string;

  constructor(
    private readonly pool: pg.Pool,
    schema: string,
    readonly defaults: ForwardingPolicy,
  ) {
    this.table = `${quoteSchema(schema)}.forwarding_policies`;
  }

  /** The channel's policy; `c`: a transaction to read it in (e.g. the forwarding decision's step). */
  async get(channelId: string, c: pg.ClientBase | pg.Pool = this.pool): Promise<ForwardingPolicy> {
    const r = await c.query<PolicyDbRow>(
      `SELECT fee_base_msat::text AS fee_base_msat, fee_proportional_millionths::text AS fee_proportional_millionths,
              cltv_expiry_delta, htlc_minimum_msat::text AS htlc_minimum_msat
         FROM ${this.table} WHERE channel_id = $1`,
      [channelId],
    );
    const row = r.rows[0];
    return row ? toPolicy(row) : this.defaults;
  }

  /**
   * Changes the fields given; the others keep their current value (the defaults for a channel
   * without a row, which are then stored: a later change of the defaults no longer moves it).
   */
  async set(channelId: string, p: Partial<ForwardingPolicy>): Promise<ForwardingPolicy> {
    checkPolicy(p);
    const d = this.defaults;
    // One statement: concurrent partial changes of one channel each keep the other's fields.
    const r = await this.pool.query<PolicyDbRow>(
      `INSERT INTO ${this.table} AS t (channel_id, fee_base_msat, fee_proportional_millionths, cltv_expiry_delta, htlc_minimum_msat)
       VALUES ($1, COALESCE($2::numeric, $6::numeric), COALESCE($3::bigint, $7::bigint),
               COALESCE($4::integer, $8::integer), COALESCE($5::numeric, $9::numeric))
       ON CONFLICT (channel_id) DO UPDATE SET
         fee_base_msat = COALESCE($2::numeric, t.fee_base_msat),
         fee_proportional_millionths = COALESCE($3::bigint, t.fee_proportional_millionths),
         cltv_expiry_delta = COALESCE($4::integer, t.cltv_expiry_delta),
         htlc_minimum_msat = COALESCE($5::numeric, t.htlc_minimum_msat),
         updated_at = now()
       RETURNING fee_base_msat::text AS fee_base_msat, fee_proportional_millionths::text AS fee_proportional_millionths,
                 cltv_expiry_delta, htlc_minimum_msat::text AS htlc_minimum_msat`,
      [
        channelId,
        p.feeBaseMsat?.toString() ?? null,
        p.feeProportionalMillionths?.toString() ?? null,
        p.cltvExpiryDelta ?? null,
        p.htlcMinimumMsat?.toString() ?? null,
        d.feeBaseMsat.toString(),
        d.feeProportionalMillionths.toString(),
        d.cltvExpiryDelta,
        d.htlcMinimumMsat.toString(),
      ],
    );
    return toPolicy(r.rows[0] as PolicyDbRow);
  }
}
