/**
 * A restored channel database over the real processes (DESIGN.md 6, data-loss protection): A's
 * channel schema is dumped (pg_dump) after one payment, two more payments follow, A's channel
 * service stops, the dump is restored (the signer's schema is not: it is never restored together
 * with the channel state), and the service starts again. A's state is now behind B's and its own
 * signer's: A must never broadcast its commitment (B holds revocations for it), must stop the
 * channel as "behind" with an ALERT, and B must close with its latest commitment, whose output to
 * A's final key A's wallet sweeps. A ends with its latest balance less the fees, read off the chain.
 * Meanwhile the operator's force close is refused by A's signer (the commitment is revoked) and
 * leaves the channel behind.
 *
 * NET_LOG=1 prints the network's progress lines.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { Transaction } from "bitcoinjs-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { confirmedAt, confirmedSpenders, spentTxid } from "../lab/chain.js";
import { startNetwork, type NetNode, type Network } from "../lab/network.js";

const run = promisify(execFile);
const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const BEFORE_BACKUP_MSAT = 100_000_000n;
const AFTER_BACKUP_MSAT = [200_000_000n, 300_000_000n];
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[data-loss] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let ids: { a: string; b: string };
let ok = false;

beforeAll(async () => {
  net = await startNetwork({ nodes: ["A", "B"], ...(netLog ? { log: netLog } : {}) });
  [A, B] = [net.node("A"), net.node("B")];
  await net.fund(A, FUND_SAT);
  await net.connect(A, B);
  ids = await net.open(A, B, CHANNEL_SAT);
}, 300_000);
afterAll(async () => {
  await net?.cleanup({ removeDir: ok });
  if (!ok && net !== undefined) console.log(`[data-loss] logs kept in ${net.dir}/logs`);
}, 60_000);

/** The mempool transactions spending an output of `txid`. */
async function mempoolSpenders(txid: string): Promise<string[]> {
  const rpc = net.regtest.rpc;
  const out: string[] = [];
  for (const id of await rpc.getRawMempool()) {
    const hex = await rpc.getRawTransaction(id).catch(() => undefined); // mined or evicted meanwhile
    if (typeof hex !== "string") continue;
    const tx = Transaction.fromHex(hex);
    if (tx.ins.some((_, i) => spentTxid(tx, i) === txid)) out.push(tx.getId());
  }
  return out;
}

/** P2SH(<key> OP_CHECKSIG), by hand: OP_HASH160 <HASH160(0x21 key 0xac)> OP_EQUAL. */
async function toOtherScriptPubKey(keyHex: string): Promise<Buffer> {
  const { createHash } = await import("node:crypto");
  const redeem = Buffer.concat([Buffer.from([0x21]), Buffer.from(keyHex, "hex"), Buffer.from([0xac])]);
  const h160 = createHash("ripemd160").update(createHash("sha256").update(redeem).digest()).digest();
  return Buffer.concat([Buffer.from([0xa9, 0x14]), h160, Buffer.from([0x87])]);
}

describe("a restored channel database", () => {
  it("never broadcasts our commitment: the peer closes with its latest, our output is swept, only fees are lost", async () => {
    const url = net.pgInfra?.url ?? "";
    expect((await net.pay(A, B, BEFORE_BACKUP_MSAT, { channelId: ids.a })).status).toBe("succeeded");
    // The backup: A's channel schema alone, as a point-in-time restore of that database gives it.
    const dump = join(net.dir, "a-channel.dump");
    await run("pg_dump", ["--format=custom", `--schema=${A.schemas.channel}`, `--file=${dump}`, url]);
    for (const m of AFTER_BACKUP_MSAT)
      expect((await net.pay(A, B, m, { channelId: ids.a })).status).toBe("succeeded");
    const latest = await A.api.channel(ids.a);
    const paid = BEFORE_BACKUP_MSAT + AFTER_BACKUP_MSAT.reduce((a, b) => a + b, 0n);
    expect(BigInt(latest.localBalanceMsat)).toBe(CHANNEL_SAT * 1000n - paid);
    const anchorTxid = latest.anchorTxid ?? "";
    expect(anchorTxid).not.toBe("");
    const openHeight = (await confirmedAt(net.regtest.rpc, anchorTxid)) ?? 0;
    const walletBefore = await A.api.walletBalance();
    expect(walletBefore.unconfirmedSat).toBe("0");
    const finalKey = (
      await net.query<{ final_pubkey: string }>(
        `SELECT final_pubkey FROM "${A.schemas.channel}".final_scripts WHERE channel_id = '${ids.a}'`,
      )
    )[0]?.final_pubkey;
    expect(finalKey).toBeDefined();

    // Stop A's channel service, restore the backup over its schema, start it again.
    await net.kill(A, "channel", { signal: "SIGTERM" });
    await net.query(`DROP SCHEMA "${A.schemas.channel}" CASCADE`);
    await run("pg_restore", ["--exit-on-error", `--dbname=${url}`, dump]);
    await net.restart(A, "channel");
    expect(BigInt((await A.api.channel(ids.a)).localBalanceMsat)).toBe(
      CHANNEL_SAT * 1000n - BEFORE_BACKUP_MSAT,
    );

    // A stops the channel as behind, with an alert; B fails it and broadcasts its latest commitment.
    await net.waitFor(
      "A's channel to be behind",
      async () => {
        const c = await A.api.channel(ids.a);
        return (c.phase === "behind" && c.failure?.code === "DATA_LOSS") || `${c.phase}`;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    const channelLog = join(net.dir, "logs", `${A.processes.channel[0] ?? ""}.log`);
    expect(readFileSync(channelLog, "utf8")).toMatch(
      new RegExp(`ALERT channel ${ids.a}: data loss suspected`),
    );
    let bCommitment = "";
    await net.waitFor(
      "B to broadcast its commitment",
      async () => {
        const c = await B.api.channel(ids.b);
        bCommitment = c.transactions.find((t) => t.kind === "commitment")?.txid ?? "";
        return bCommitment !== "" || c.phase;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    // The operator's force close asks the signer for our commitment; the signer refuses it as
    // revoked (its state was not restored) and the channel is behind again, nothing broadcast.
    expect((await A.api.forceClose(ids.a)).phase).toBe("behind");
    expect((await A.api.channel(ids.a)).transactions).toEqual([]);
    // In the mempool, the only spend of the anchor is B's commitment.
    await net.waitFor(
      "B's commitment, alone, to spend the anchor in the mempool",
      async () => {
        const inMempool = await mempoolSpenders(anchorTxid);
        return JSON.stringify(inMempool) === JSON.stringify([bCommitment]) || JSON.stringify(inMempool);
      },
      { timeoutMs: 30_000, intervalMs: 250 },
    );
    let spenders: Awaited<ReturnType<typeof confirmedSpenders>> = [];
    await net.waitFor(
      "the anchor to be spent in a block",
      async () => {
        spenders = await confirmedSpenders(net.regtest.rpc, anchorTxid, openHeight);
        return spenders.length > 0 || "unspent";
      },
      { mine: true, timeoutMs: 60_000, intervalMs: 500 },
    );
    // The only spend of the anchor is B's commitment; A broadcast nothing, ever.
    expect(spenders.map((s) => s.tx.getId())).toEqual([bCommitment]);
    expect((await A.api.channel(ids.a)).transactions).toEqual([]);
    expect(await net.query(`SELECT 1 FROM "${A.schemas.channel}".broadcasts`)).toEqual([]);

    // B's commitment pays A its latest balance less A's half of the commitment fee (draft 3.6).
    const commitment = spenders[0]?.tx as Transaction;
    const commitmentHeight = spenders[0]?.height ?? 0;
    const fee = CHANNEL_SAT - commitment.outs.reduce((a, o) => a + BigInt(o.value), 0n);
    const ourScript = await toOtherScriptPubKey(finalKey ?? "");
    const vout = commitment.outs.findIndex((o) => Buffer.from(o.script).equals(ourScript));
    expect(vout).toBeGreaterThanOrEqual(0);
    const ours = BigInt(commitment.outs[vout]?.value ?? 0);
    expect(ours).toBe((CHANNEL_SAT * 1000n - paid) / 1000n - fee / 2n);

    // A's wallet sweeps that output to its own key: credited with it less the sweep's fee.
    let sweep: Transaction | undefined;
    await net.waitFor(
      "A's wallet to sweep its output of B's commitment",
      async () => {
        const s = await confirmedSpenders(net.regtest.rpc, bCommitment, commitmentHeight);
        sweep = s.find((x) => x.vouts.includes(vout))?.tx;
        return sweep !== undefined || "not swept";
      },
      { mine: true, timeoutMs: 90_000, intervalMs: 500 },
    );
    const swept = (sweep as Transaction).outs.reduce((a, o) => a + BigInt(o.value), 0n);
    expect(swept).toBeLessThan(ours);
    expect((ours - swept) * 100n).toBeLessThan(ours); // the sweep fee: under 1 %
    const expected = BigInt(walletBefore.confirmedSat) + swept;
    await net.waitFor(
      `A's wallet to show ${expected} sat confirmed`,
      async () => {
        const b = await A.api.walletBalance();
        return (BigInt(b.confirmedSat) === expected && b.unconfirmedSat === "0") || JSON.stringify(b);
      },
      { mine: true, timeoutMs: 60_000, intervalMs: 500 },
    );
    // The peer closed: the channel is over (failed, still DATA_LOSS), and A never broadcast.
    const after = await A.api.channel(ids.a);
    expect([after.phase, after.failure?.code, after.transactions]).toEqual(["failed", "DATA_LOSS", []]);
    ok = true;
  }, 600_000);
});
