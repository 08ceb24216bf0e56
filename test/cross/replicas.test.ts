/**
 * Channel-service replicas over the real processes (test/lab/network.ts): node B runs two
 * channel-service replicas on the same schema (CHANNEL_REPLICA_ID b-1 and b-2, their own API
 * ports, CHANNEL_LEASE_MS=3000). A opens A-B and pays; one replica holds B's channel (its lease
 * in <schema>.channels) and the other refuses commands on it with 503 UNAVAILABLE. The holder is
 * SIGKILLed: within a few lease periods the survivor takes the channel over, and payments A→B
 * and B→A (through the survivor's API) succeed, with the balances agreeing on both ends.
 *
 * NET_LOG=1 prints the network's progress lines.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiError } from "../lab/api.js";
import { startNetwork, type ChannelReplica, type NetNode, type Network } from "../lab/network.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const LEASE_MS = 3000;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[replicas] ${l}`) : undefined;

let net: Network;
let pool: pg.Pool;
let A: NetNode;
let B: NetNode;
let ids: { a: string; b: string };
let aToB = 0n;
let holder: ChannelReplica;
let survivor: ChannelReplica;

async function lease(): Promise<{ owner: string | null; held: boolean }> {
  const r = await pool.query<{ lease_owner: string | null; held: boolean | null }>(
    `SELECT lease_owner, (lease_expires > now()) AS held FROM "${B.schemas.channel}".channels WHERE id = $1`,
    [ids.b],
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error(`B has no channel row ${ids.b}`);
  return { owner: row.lease_owner, held: row.held === true };
}

async function balancesAgree(): Promise<true | string> {
  const a = await A.api.channel(ids.a);
  const b = await survivor.api.channel(ids.b);
  const aLocal = (CHANNEL_SAT * 1000n - aToB).toString();
  const got = {
    a: [a.phase, a.localBalanceMsat, a.remoteBalanceMsat, a.htlcs.length],
    b: [b.phase, b.localBalanceMsat, b.remoteBalanceMsat, b.htlcs.length],
  };
  const want = { a: ["normal", aLocal, aToB.toString(), 0], b: ["normal", aToB.toString(), aLocal, 0] };
  return (
    JSON.stringify(got) === JSON.stringify(want) || `got ${JSON.stringify(got)}, want ${JSON.stringify(want)}`
  );
}

describe("two channel-service replicas on node B", () => {
  beforeAll(async () => {
    net = await startNetwork({
      nodes: ["A", "B"],
      channelReplicas: { B: 2 },
      channelEnv: { CHANNEL_LEASE_MS: String(LEASE_MS) },
      ...(netLog ? { log: netLog } : {}),
    });
    A = net.node("A");
    B = net.node("B");
    pool = new pg.Pool({ connectionString: net.pgInfra?.url, max: 2 });
    await net.fund(A, FUND_SAT);
    await net.connect(A, B);
    ids = await net.open(A, B, CHANNEL_SAT);
  }, 300_000);

  afterAll(async () => {
    await pool?.end();
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("A pays B; one replica holds the channel, the other answers 503 UNAVAILABLE", async () => {
    const p = await net.pay(A, B, 20_000_000n, { channelId: ids.a, timeoutMs: 60_000 });
    expect(p.status).toBe("succeeded");
    aToB += 20_000_000n;

    const l = await lease();
    expect(l.held).toBe(true);
    const h = B.replicas.find((r) => r.replicaId === l.owner);
    const other = B.replicas.find((r) => r.replicaId !== l.owner);
    if (h === undefined || other === undefined) throw new Error(`unexpected lease owner ${String(l.owner)}`);
    [holder, survivor] = [h, other];

    // Reads work on both; a command only on the holder.
    expect((await other.api.channel(ids.b)).phase).toBe("normal");
    const err = await other.api.updateFee(ids.b, 12_000).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(503);
    expect((err as ApiError).code).toBe("UNAVAILABLE");
    await net.waitFor("the balances to agree", balancesAgree, { timeoutMs: 30_000, intervalMs: 250 });
  }, 120_000);

  it("the survivor takes over within a few lease periods after the holder is SIGKILLed", async () => {
    await net.kill(B, "channel", { replica: holder.index });
    const t0 = Date.now();
    await net.waitFor(
      `replica ${survivor.replicaId} to hold B's channel`,
      async () => {
        const l = await lease();
        return (
          (l.owner === survivor.replicaId && l.held) || `lease ${String(l.owner)} held=${String(l.held)}`
        );
      },
      { timeoutMs: 5 * LEASE_MS, intervalMs: 250 },
    );
    const tookMs = Date.now() - t0;
    netLog?.(`takeover after ${tookMs} ms`);
    expect(tookMs).toBeLessThanOrEqual(5 * LEASE_MS);
    // B's node-level API now answers from the survivor.
    expect(B.api).toBe(survivor.api);
  }, 60_000);

  it("payments A→B and B→A (through the survivor's API) succeed after the takeover", async () => {
    const ab = await net.pay(A, B, 5_000_000n, {
      channelId: ids.a,
      invoiceVia: survivor.api,
      timeoutMs: 60_000,
    });
    expect(ab.status).toBe("succeeded");
    aToB += 5_000_000n;
    await net.waitFor("the balances to agree after A→B", balancesAgree, {
      timeoutMs: 30_000,
      intervalMs: 250,
    });

    const ba = await net.pay(B, A, 8_000_000n, { channelId: ids.b, via: survivor.api, timeoutMs: 60_000 });
    expect(ba.status).toBe("succeeded");
    aToB -= 8_000_000n;
    await net.waitFor("the balances to agree after B→A", balancesAgree, {
      timeoutMs: 30_000,
      intervalMs: 250,
    });

    const payments = await survivor.api.payments();
    expect(payments.filter((p) => p.channelId === ids.b).map((p) => p.status)).toEqual(["succeeded"]);
    expect((await lease()).owner).toBe(survivor.replicaId);
  }, 180_000);
});
