/**
 * Justice over the real processes (DESIGN.md 7, draft 6.1): B is the victim, A and C cheat. Each
 * cheater keeps a copy of a commitment that gives it more, lets it be revoked by paying, then
 * broadcasts it re-signed with a fresh nonce (its txid is one B never saw). B's watchtower alone
 * must take every output through the revocation path: first with B's channel service stopped,
 * then with B's signer down when the breach appears and back a few blocks later (the tower keeps
 * retrying and raises an alert meanwhile). B's wallet ends with each channel's whole value less
 * the fees, each fee read off the chain.
 *
 * NET_LOG=1 prints the network's progress lines.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultSweepScript } from "@ln/justice";
import { buildCommitment } from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { StaleCommitment } from "../lab/breach.js";
import { confirmedAt, confirmedSpenders } from "../lab/chain.js";
import { startNetwork, type NetNode, type Network } from "../lab/network.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[justice] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let C: NetNode;

beforeAll(async () => {
  net = await startNetwork({ nodes: ["A", "B", "C"], ...(netLog ? { log: netLog } : {}) });
  [A, B, C] = [net.node("A"), net.node("B"), net.node("C")];
  await net.fund([A, C], FUND_SAT);
}, 240_000);
afterAll(async () => {
  await net?.cleanup();
}, 60_000);

/**
 * Opens cheater→B, pays both ways, keeps the cheater's commitment, pays again so B holds its
 * revocation, and waits until B's tower holds every record of the channel.
 */
async function staleCommitmentOf(
  cheater: NetNode,
): Promise<{ stale: StaleCommitment; victimChannel: string }> {
  await net.connect(cheater, B);
  const ids = await net.open(cheater, B, CHANNEL_SAT);
  for (const [payer, payee, msat] of [
    [cheater, B, 900_000_000n],
    [B, cheater, 100_000_000n],
  ] as const)
    expect((await net.pay(payer, payee, msat, { timeoutMs: 60_000 })).status).toBe("succeeded");
  const stale = await net.keepCommitment(cheater, ids.a);
  expect((await net.pay(cheater, B, 1_500_000_000n, { timeoutMs: 60_000 })).status).toBe("succeeded");
  await net.waitFor(
    `B's records of channel ${ids.b} with the tower`,
    async () => {
      const unpublished = await net.query(
        `SELECT 1 FROM "${B.schemas.channel}".tower_records WHERE channel_id = '${ids.b}' AND published_at IS NULL`,
      );
      const revoked = await net.query<{ n: string }>(
        `SELECT max(number)::text AS n FROM "${B.schemas.channel}".peer_revocations WHERE channel_id = '${ids.b}'`,
      );
      const held = await towerRecords(B);
      return (
        (unpublished.length === 0 && BigInt(revoked[0]?.n ?? "-1") >= stale.number && held > 0) ||
        `${unpublished.length} unpublished, highest revoked ${revoked[0]?.n}, tower holds ${held}`
      );
    },
    { timeoutMs: 30_000, intervalMs: 200, quiet: true },
  );
  return { stale, victimChannel: ids.b };
}

/** How many records B's tower holds (its own table). */
async function towerRecords(n: NetNode): Promise<number> {
  const rows = await net.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM "${n.schemas.tower}".tower_records`,
  );
  return Number(rows[0]?.n ?? 0);
}

/**
 * Mines until every revocable output of the breach (the cheater's own output and the HTLCs) is
 * spent in a block, then checks each spend is justice to B's final-key output and that the sums
 * add up: the breach's outputs are the anchor less the commitment fee; justice pays the revocable
 * ones out less its own fee. B's own output on it pays B's final key already (the wallet's).
 * Returns what B ends up with on chain before its wallet's sweeps.
 */
async function expectPunished(
  stale: StaleCommitment,
  breach: Transaction,
  breachHeight: number,
): Promise<bigint> {
  const rpc = net.regtest.rpc;
  const txid = breach.getId();
  const commitment = buildCommitment(stale.params);
  const revocable = commitment.outputs.filter((o) => o.kind !== "to_other").map((o) => o.vout);
  const ours = commitment.outputs.find((o) => o.kind === "to_other");
  expect(revocable.length).toBeGreaterThan(0);
  let spenders: Awaited<ReturnType<typeof confirmedSpenders>> = [];
  await net.waitFor(
    "every revocable output of the breach spent in a block",
    async () => {
      spenders = (await confirmedSpenders(rpc, txid, breachHeight)).filter((s) =>
        s.vouts.some((v) => revocable.includes(v)),
      );
      const spent = new Set(spenders.flatMap((s) => s.vouts));
      return (
        revocable.every((v) => spent.has(v)) || `${spent.size}/${revocable.length} revocable outputs spent`
      );
    },
    { mine: true, timeoutMs: 90_000, intervalMs: 500 },
  );
  const sweepScript = defaultSweepScript(stale.params);
  const breachOut = breach.outs.reduce((a, o) => a + BigInt(o.value), 0n);
  expect(breachOut).toBe(CHANNEL_SAT - commitment.paidFee);
  const revocableOut = revocable.reduce((a, v) => a + BigInt(breach.outs[v]?.value ?? 0n), 0n);
  let justiceOut = 0n;
  for (const { tx, vouts } of spenders) {
    for (const o of tx.outs) expect(Buffer.from(o.script).equals(sweepScript)).toBe(true);
    justiceOut += tx.outs.reduce((a, o) => a + BigInt(o.value), 0n);
    // Justice spends only revocable outputs of the breach (nothing else pays its fee).
    expect(tx.ins.every((i) => Buffer.from(i.hash).reverse().toString("hex") === txid)).toBe(true);
    expect(vouts.every((v) => revocable.includes(v))).toBe(true);
  }
  const justiceFee = revocableOut - justiceOut;
  expect(justiceFee).toBeGreaterThan(0n);
  // At most 5 % of what it takes back: the tower does not burn the channel in fees.
  expect(justiceFee * 20n).toBeLessThan(revocableOut);
  return justiceOut + (ours?.amount ?? 0n);
}

/**
 * B's wallet sweeps the justice outputs and its own output of the breach (all to its final key)
 * into its own keys: credited with them less the sweeps' fees.
 */
async function expectWalletCredited(before: bigint, justiceOut: bigint): Promise<void> {
  let last = before;
  await net.waitFor(
    "B's wallet credited with the punished channel",
    async () => {
      last = BigInt((await B.api.walletBalance()).confirmedSat);
      // The sweep fee is small: within 1 % of the amount and more than nothing.
      return (last - before < justiceOut && (last - before) * 100n > justiceOut * 99n) || `confirmed ${last}`;
    },
    { mine: true, timeoutMs: 90_000, intervalMs: 500 },
  );
}

describe("the watchtower punishes revoked commitments", () => {
  it("with the victim's channel service stopped: the tower alone takes the cheater's outputs, the wallet the rest", async () => {
    const { stale } = await staleCommitmentOf(A);
    const walletBefore = BigInt((await B.api.walletBalance()).confirmedSat);
    await net.kill(B, "channel");
    const breach = await net.breach(A, stale);
    expect(breach.getId()).not.toBe(buildCommitment(stale.params).tx.getId());
    await net.regtest.mine(1);
    const breachHeight = (await confirmedAt(net.regtest.rpc, breach.getId())) ?? -1;
    expect(breachHeight).toBeGreaterThan(0);
    const justiceOut = await expectPunished(stale, breach, breachHeight);
    await net.restart(B, "channel");
    await expectWalletCredited(walletBefore, justiceOut);
  }, 400_000);

  it("with the victim's signer down when the breach appears: an alert, then justice once it is back", async () => {
    const { stale } = await staleCommitmentOf(C);
    const walletBefore = BigInt((await B.api.walletBalance()).confirmedSat);
    await net.kill(B, "signer");
    const breach = await net.breach(C, stale);
    await net.regtest.mine(1);
    const breachHeight = (await confirmedAt(net.regtest.rpc, breach.getId())) ?? -1;
    const towerLog = join(net.dir, "logs", `${B.processes.watchtower}.log`);
    await net.waitFor(
      "B's tower to raise the alert",
      // A JSON log record with the alert field set where the event happens (@ln/log structuredLog).
      async () =>
        /"alert":true[^\n]*"msg":"the signer is unreachable/.test(readFileSync(towerLog, "utf8")) ||
        "no alert yet",
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    // A few blocks pass, well within the delay, without justice.
    await net.regtest.mine(3);
    expect((await confirmedSpenders(net.regtest.rpc, breach.getId(), breachHeight)).length).toBe(0);
    await net.restart(B, "signer");
    const justiceOut = await expectPunished(stale, breach, breachHeight);
    await expectWalletCredited(walletBefore, justiceOut);
  }, 400_000);
});
