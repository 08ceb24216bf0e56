/*~ The tower's Prometheus metrics, registered once by whoever wires the tower (main.ts, tests). */
import { Counter, Gauge, Histogram, type Registry } from "@ln/metrics";

/** The tower's metrics; labels are kinds and outcomes, never a txid, channel or locator. */
export function towerMetrics(registry: Registry) {
  const registers = [registry];
  const m = {
    recordsStored: new Counter({
      name: "watchtower_records_stored_total",
      help: "Revocation records stored (a re-delivered record already stored is not counted).",
      registers,
    }),
    recordsRejected: new Counter({
      name: "watchtower_records_rejected_total",
      help: "Records skipped, by reason: malformed (the NATS payload does not decode) or unopenable (a locator matched but the record did not open for the transaction).",
      labelNames: ["reason"] as const,
      registers,
    }),
    breaches: new Counter({
      name: "watchtower_breaches_seen_total",
      help: "Revoked commitments seen, by where first seen: mempool or block.",
      labelNames: ["where"] as const,
      registers,
    }),
    broadcasts: new Counter({
      name: "watchtower_justice_broadcast_total",
      help: "Justice transactions sent, by kind: first, replacement (fee bump) or rebroadcast (after a reorg or eviction); a send the node refused is counted too.",
      labelNames: ["kind"] as const,
      registers,
    }),
    broadcastRejected: new Counter({
      name: "watchtower_justice_broadcast_rejected_total",
      help: "Justice or breach sends the node refused (e.g. a replacement already superseded, a breach already replaced).",
      registers,
    }),
    confirmed: new Counter({
      name: "watchtower_justice_confirmed_total",
      help: "Justice transactions seen confirmed (again after a reorg counts again).",
      registers,
    }),
    waiting: new Gauge({
      name: "watchtower_justice_waiting_for_signer",
      help: "Breaches whose justice cannot be signed because the signer is unreachable (ALERT: see the log for the blocks left).",
      registers,
    }),
    signerWaits: new Counter({
      name: "watchtower_signer_waits_total",
      help: "SignJustice calls that failed because the signer was unreachable or too slow; retried with backoff.",
      registers,
    }),
    feeCapped: new Counter({
      name: "watchtower_justice_fee_capped_total",
      help: "Justice transactions due for a fee bump that already pay WATCHTOWER_MAX_FEE_RATE: no longer bumped.",
      registers,
    }),
    refusals: new Counter({
      name: "watchtower_signer_refusals_total",
      help: "SignJustice calls the signer refused: a bug or an attack, see the log.",
      registers,
    }),
    claimsLost: new Counter({
      name: "watchtower_justice_claims_lost_total",
      help: "Breach work dropped unrecorded and unsent because this replica's claim expired and another replica took the breach over (slow signer or node; the other replica does the work).",
      registers,
    }),
    blockCheck: new Histogram({
      name: "watchtower_justice_block_check_seconds",
      help: "Time to match a block's transactions and check every open breach.",
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    }),
  };
  for (const reason of ["malformed", "unopenable"]) m.recordsRejected.inc({ reason }, 0);
  for (const where of ["mempool", "block"]) m.breaches.inc({ where }, 0);
  for (const kind of ["first", "replacement", "rebroadcast"]) m.broadcasts.inc({ kind }, 0);
  return m;
}
export type TowerMetrics = ReturnType<typeof towerMetrics>;
