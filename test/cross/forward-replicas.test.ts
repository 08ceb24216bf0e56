/**
 * A forward across two channel-service replicas of B (issue 15, DESIGN.md 10 "the row is the
 * hand-off"), over the real processes: B runs replicas b-1 and b-2 on one schema
 * (CHANNEL_LEASE_MS=3000). A-B is opened while only b-1 runs, so b-1 holds it; b-2 then opens
 * B-C through its own API and holds that one (the holders asserted from <schema>.channels). A pays
 * C through B: the incoming side is b-1's, the outgoing b-2's. Then a second payment is caught in
 * flight (C frozen with SIGSTOP once B's forward is offered), b-2 is SIGKILLed, b-1 takes B-C over,
 * C is let go: the payment ends succeeded exactly once, with one forward row, settled.
 *
 * NET_LOG=1 prints the network's progress lines.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { channelWith, startNetwork, WaitAbort, type NetNode, type Network } from "../lab/network.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const LEASE_MS = 3000;
const PAY_MSAT = 30_000_000n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[fwd-replicas] ${l}`) : undefined;

let net: Network;
let pool: pg.Pool;
let A: NetNode;
let B: NetNode;
let C: NetNode;
let ab: { a: string; b: string };
let bc: { b: string; c: string };

async function lease(channelId: string): Promise<{ owner: string | null; held: boolean }> {
  const r = await pool.query<{ lease_owner: string | null; held: boolean | null }>(
    `SELECT lease_owner, (lease_expires > now()) AS held FROM "${B.schemas.channel}".channels WHERE id = $1`,
    [channelId],
  );
  const row = r.rows[0];
  if (row === undefined) throw new Error(`B has no channel row ${channelId}`);
  return { owner: row.lease_owner, held: row.held === true };
}

async function waitHolder(channelId: string, replicaId: string, timeoutMs = 30_000): Promise<void> {
  await net.waitFor(
    `${replicaId} to hold B's channel ${channelId}`,
    async () => {
      const l = await lease(channelId);
      return (l.owner === replicaId && l.held) || `lease ${String(l.owner)} held=${String(l.held)}`;
    },
    { intervalMs: 250, timeoutMs },
  );
}

/** B's forwards of `rHash` from its table (any replica's view is the same rows). */
async function forwardRows(rHash: string): Promise<{ id: string; status: string }[]> {
  const r = await pool.query<{ id: string; status: string }>(
    `SELECT id::text, status FROM "${B.schemas.channel}".forwards WHERE r_hash = $1`,
    [rHash],
  );
  return r.rows;
}

async function invoiceStatus(rHash: string): Promise<string> {
  const r = await pool.query<{ status: string }>(
    `SELECT status FROM "${C.schemas.channel}".invoices WHERE r_hash = $1`,
    [rHash],
  );
  return r.rows[0]?.status ?? "missing";
}

/** All four channel ends normal without HTLCs. */
async function quiet(): Promise<true | string> {
  const ds = await Promise.all([
    A.api.channel(ab.a),
    B.api.channel(ab.b),
    B.api.channel(bc.b),
    C.api.channel(bc.c),
  ]);
  for (const d of ds)
    if (d.phase !== "normal") throw new WaitAbort(`channel ${d.id} left normal: ${d.phase}`);
  const n = ds.map((d) => d.htlcs.length);
  return n.every((x) => x === 0) || `HTLCs ${n.join(" ")}`;
}

describe("a forward across two channel-service replicas of B", () => {
  beforeAll(async () => {
    net = await startNetwork({
      nodes: ["A", "B", "C"],
      channelReplicas: { B: 2 },
      nodeChannelEnv: { B: { CHANNEL_LEASE_MS: String(LEASE_MS) } },
      ...(netLog ? { log: netLog } : {}),
    });
    [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
    pool = new pg.Pool({ connectionString: net.pgInfra?.url, max: 2 });
    const [r1, r2] = B.replicas;
    if (r1 === undefined || r2 === undefined) throw new Error("B has not two replicas");
    // Only b-1 runs while A-B opens: it takes that channel.
    await net.kill(B, "channel", { replica: 2 });
    await net.fund([A, B], FUND_SAT);
    await net.connect(A, B);
    ab = await net.open(A, B, CHANNEL_SAT);
    await waitHolder(ab.b, r1.replicaId);
    // b-2 back: B opens B-C through b-2's API, so b-2 holds it.
    await net.restart(B, "channel", 2);
    await net.connect(B, C, r2.api);
    const opened = await net.open(B, C, CHANNEL_SAT, { via: r2.api });
    const cOf = await channelWith(C, B);
    if (cOf === undefined) throw new Error("C does not list B-C");
    bc = { b: opened.a, c: cOf.id };
    await net.waitShortChannelIds(A, [ab.a]);
    await net.waitShortChannelIds(B, [ab.b, bc.b]);
  }, 300_000);

  afterAll(async () => {
    // C may be left frozen by a failed run: let it go so it stops.
    const pid = net?.supervisor.pid("C.channel");
    if (pid !== undefined) process.kill(pid, "SIGCONT");
    await pool?.end();
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("A-B is held by b-1 and B-C by b-2; A pays C through B across them", async () => {
    const [r1, r2] = [B.replicas[0], B.replicas[1]];
    expect(await lease(ab.b)).toEqual({ owner: r1?.replicaId, held: true });
    expect(await lease(bc.b)).toEqual({ owner: r2?.replicaId, held: true });

    const route = await net.route([A, B, C], [ab.a, bc.b]);
    const inv = await C.api.createInvoice(PAY_MSAT, "across replicas");
    const p = await net.payRoute(A, route, PAY_MSAT, inv.rHash, { finalExpiryBlocks: 300 });
    expect(p.status, p.failureReason ?? "").toBe("succeeded");
    await net.waitFor(
      "B's forward settled",
      async () => {
        const rows = await forwardRows(inv.rHash);
        return (rows.length === 1 && rows[0]?.status === "settled") || JSON.stringify(rows);
      },
      { intervalMs: 250, timeoutMs: 30_000 },
    );
    expect(await invoiceStatus(inv.rHash)).toBe("settled");
    // Neither channel moved: each replica did its own side.
    expect((await lease(ab.b)).owner).toBe(r1?.replicaId);
    expect((await lease(bc.b)).owner).toBe(r2?.replicaId);
    await net.waitFor("the channels quiet", quiet, { intervalMs: 250, timeoutMs: 30_000 });
  }, 180_000);

  it("the replica holding B-C dies mid-forward; the other takes B-C over and the payment succeeds once", async () => {
    const [r1, r2] = [B.replicas[0], B.replicas[1]];
    if (r1 === undefined || r2 === undefined) throw new Error("replicas");
    const route = await net.route([A, B, C], [ab.a, bc.b]);
    const inv = await C.api.createInvoice(PAY_MSAT, "holder dies");
    const aBefore = BigInt((await A.api.channel(ab.a)).localBalanceMsat);

    // C frozen: B's outgoing add gets no answer, so the forward waits at `offered` on b-2.
    const cPid = net.supervisor.pid("C.channel");
    if (cPid === undefined) throw new Error("C's channel service is not running");
    process.kill(cPid, "SIGSTOP");
    let frozen = true;
    try {
      const p0 = await net.payRoute(A, route, PAY_MSAT, inv.rHash, { finalExpiryBlocks: 300, wait: false });
      await net.waitFor(
        "B's forward offered on B-C",
        async () => {
          const rows = await forwardRows(inv.rHash);
          if (rows.length > 1) throw new WaitAbort(`${rows.length} forward rows`);
          return rows[0]?.status === "offered" || `forward ${rows[0]?.status ?? "absent"}`;
        },
        { intervalMs: 100, timeoutMs: 30_000 },
      );
      await net.kill(B, "channel", { replica: 2 });
      await waitHolder(bc.b, r1.replicaId, 6 * LEASE_MS);
      process.kill(cPid, "SIGCONT");
      frozen = false;

      const p = await net.waitPaymentFinal(A, p0.id, { timeoutMs: 90_000 });
      expect(p.status, p.failureReason ?? "").toBe("succeeded");
      const mine = (await A.api.payments()).filter((x) => x.rHash === inv.rHash);
      expect(mine.map((x) => x.status)).toEqual(["succeeded"]);
      await net.waitFor(
        "B's forward settled (one row)",
        async () => {
          const rows = await forwardRows(inv.rHash);
          return (rows.length === 1 && rows[0]?.status === "settled") || JSON.stringify(rows);
        },
        { intervalMs: 250, timeoutMs: 60_000 },
      );
      expect(await invoiceStatus(inv.rHash)).toBe("settled");
      await net.waitFor("the channels quiet", quiet, { intervalMs: 250, timeoutMs: 60_000 });
      const hop0 = p.route?.hops[0];
      expect(BigInt((await A.api.channel(ab.a)).localBalanceMsat)).toBe(
        aBefore - BigInt(hop0?.amountMsat ?? "0"),
      );
      expect((await lease(bc.b)).owner).toBe(r1.replicaId);
    } finally {
      if (frozen) process.kill(cPid, "SIGCONT");
    }
  }, 240_000);
});
