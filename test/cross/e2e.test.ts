/**
 * End to end over the real processes (test/lab/network.ts): two nodes A and B, each its signer,
 * watchtower, peer gateway and channel service as separate processes on an in-process regtest
 * node. A opens A-B; payments go both ways (B pays back from what it received); the payee fails
 * an HTLC for an unknown payment hash; the payer refuses an expiry that is too soon; A updates
 * the commitment fee rate; A closes cooperatively, and the confirmed close transaction pays
 * each side its balance (derived here from the payments made) less half the close fee.
 *
 * NET_LOG=1 prints the network's progress lines.
 */
import { randomBytes } from "node:crypto";
import { Transaction } from "bitcoinjs-lib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run as runLnctl } from "@ln/lnctl";
import { ApiError, type Payment } from "../lab/api.js";
import { channelWith, startNetwork, type Network, type NetNode } from "../lab/network.js";

const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
const FEE_RATE = 15_000; // satoshi per 1000 bytes, above the default 10 000
const netLog = process.env["NET_LOG"] ? (l: string): void => console.log(`[e2e] ${l}`) : undefined;

let net: Network;
let A: NetNode;
let B: NetNode;
let ids: { a: string; b: string };
/** What A has paid B, minus what B has paid A, in msat: tracked from the payments made. */
let aToB = 0n;

const txidOfInput = (tx: Transaction, i: number): string => {
  const input = tx.ins[i];
  if (input === undefined) throw new Error(`no input ${i}`);
  return Buffer.from(input.hash).reverse().toString("hex");
};

async function expectBalances(): Promise<void> {
  const a = await A.api.channel(ids.a);
  const b = await B.api.channel(ids.b);
  const aLocal = CHANNEL_SAT * 1000n - aToB;
  expect({
    phase: a.phase,
    local: a.localBalanceMsat,
    remote: a.remoteBalanceMsat,
    htlcs: a.htlcs.length,
  }).toEqual({ phase: "normal", local: aLocal.toString(), remote: aToB.toString(), htlcs: 0 });
  expect({
    phase: b.phase,
    local: b.localBalanceMsat,
    remote: b.remoteBalanceMsat,
    htlcs: b.htlcs.length,
  }).toEqual({ phase: "normal", local: aToB.toString(), remote: aLocal.toString(), htlcs: 0 });
}

/** Balances settle a moment after the payer sees success (the last revocation): wait for them. */
async function settled(): Promise<void> {
  await net.waitFor(
    "both ends to show the expected balances and no HTLC",
    async () => {
      try {
        await expectBalances();
        return true;
      } catch (e) {
        return e instanceof Error ? e.message.split("\n").slice(0, 12).join(" ") : String(e);
      }
    },
    { timeoutMs: 30_000, intervalMs: 250, quiet: true },
  );
  await expectBalances();
}

async function pay(payer: NetNode, payee: NetNode, amountMsat: bigint): Promise<Payment> {
  const p = await net.pay(payer, payee, amountMsat, {
    channelId: payer === A ? ids.a : ids.b,
    timeoutMs: 60_000,
  });
  expect(p.status).toBe("succeeded");
  aToB += payer === A ? amountMsat : -amountMsat;
  return p;
}

describe("two nodes end to end (separate processes)", () => {
  beforeAll(async () => {
    net = await startNetwork({ nodes: ["A", "B"], ...(netLog ? { log: netLog } : {}) });
    A = net.node("A");
    B = net.node("B");
    await net.fund(A, FUND_SAT);
    await net.connect(A, B);
    ids = await net.open(A, B, CHANNEL_SAT);
  }, 300_000);

  afterAll(async () => {
    await net?.cleanup({ removeDir: true });
  }, 60_000);

  it("opens A-B: both ends normal with the whole capacity on A's side", async () => {
    expect(ids.a).not.toBe("");
    expect(ids.b).not.toBe("");
    const a = await A.api.channel(ids.a);
    expect(a.role).toBe("creator");
    expect(a.capacitySat).toBe(CHANNEL_SAT.toString());
    expect(a.anchorTxid).toMatch(/^[0-9a-f]{64}$/);
    expect((await B.api.channel(ids.b)).role).toBe("acceptor");
    await expectBalances();
  });

  it("both ends show the short_channel_id of the anchor's place as the node's getblock has it", async () => {
    const a = await A.api.channel(ids.a);
    if (a.anchorTxid === null) throw new Error("no anchor txid");
    const anchor = await net.regtest.rpc.getRawTransaction(a.anchorTxid, true);
    if (anchor.blockhash === undefined) throw new Error("anchor not in a block");
    const block = await net.regtest.rpc.getBlock(anchor.blockhash, 1);
    const index = block.tx.indexOf(anchor.txid);
    const outputs = anchor.vout.filter((o) => Math.round(o.value * 1e8) === Number(CHANNEL_SAT));
    expect(index).toBeGreaterThan(0);
    expect(outputs).toHaveLength(1);
    const scid = `${block.height}x${index}x${outputs[0]?.n}`;
    expect(a.shortChannelId).toBe(scid);
    expect((await B.api.channel(ids.b)).shortChannelId).toBe(scid);
    expect((await A.api.channels()).find((c) => c.id === ids.a)?.shortChannelId).toBe(scid);
  });

  it("pays A→B twice, then B→A from what B received", async () => {
    await pay(A, B, 25_000_000n);
    await settled();
    await pay(A, B, 12_000_000n);
    await settled();
    await pay(B, A, 7_000_000n);
    await settled();
    const aPays = (await A.api.payments()).filter((p) => p.channelId === ids.a);
    expect(aPays.map((p) => p.status)).toEqual(["succeeded", "succeeded"]);
    const bPays = (await B.api.payments()).filter((p) => p.channelId === ids.b);
    expect(bPays.map((p) => p.status)).toEqual(["succeeded"]);
  }, 180_000);

  it("a payment for an unknown payment hash is failed by the payee", async () => {
    const rHash = randomBytes(32).toString("hex");
    const p = await A.api.pay(
      { channelId: ids.a, rHash, amountMsat: 1_000_000n, expiry: { blocks: net.regtest.height() + 300 } },
      `e2e-${randomBytes(8).toString("hex")}`,
    );
    expect(p.status).toBe("pending");
    let last: Payment = p;
    await net.waitFor(
      "the unknown-hash payment to fail",
      async () => {
        last = await A.api.payment(p.id);
        return last.status !== "pending" || last.status;
      },
      { timeoutMs: 60_000, intervalMs: 250, quiet: true },
    );
    expect(last.status).toBe("failed");
    expect(last.failureReason ?? "").toMatch(/unknown payment hash/i);
    await settled(); // nothing moved
  }, 120_000);

  it("the payer's channel refuses a payment whose expiry is too soon (422 EXPIRY_TOO_SOON)", async () => {
    const inv = await B.api.createInvoice(1_000_000n);
    const before = (await A.api.payments()).length;
    const err = await A.api
      .pay(
        {
          channelId: ids.a,
          rHash: inv.rHash,
          amountMsat: 1_000_000n,
          expiry: { blocks: net.regtest.height() + 2 },
        },
        `e2e-${randomBytes(8).toString("hex")}`,
      )
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(ApiError);
    // The channel core's refusal, its code kept through the node and the API (REJECTION_STATUS).
    expect(err).toMatchObject({ status: 422, code: "EXPIRY_TOO_SOON" });
    expect((await A.api.payments()).length).toBe(before);
    await expectBalances();
  }, 60_000);

  it("updates the fee rate; the next payment succeeds and both ends stay normal", async () => {
    const r = await A.api.updateFee(ids.a, FEE_RATE);
    expect(r.phase).toBe("normal");
    await pay(A, B, 3_000_000n);
    await settled();
  }, 120_000);

  it("lnctl drives the nodes: info, invoice, pay, payment, channel", async () => {
    const lnctl = async (node: NetNode, ...argv: string[]): Promise<{ code: number; out: string }> => {
      let out = "";
      let err = "";
      const code = await runLnctl(["--json", ...argv], {
        env: { LNCTL_URL: node.apiUrl, LNCTL_TOKEN: node.token, HOME: net.dir },
        stdout: { write: (s: string) => void (out += s) },
        stderr: { write: (s: string) => void (err += s) },
      });
      if (code !== 0) throw new Error(`lnctl ${argv.join(" ")} exited ${code}: ${err}`);
      return { code, out };
    };
    const info = JSON.parse((await lnctl(A, "info")).out) as { nodeId: string };
    expect(info.nodeId).toBe(A.nodeId);
    const inv = JSON.parse((await lnctl(B, "invoice", "1000000")).out) as { rHash: string };
    const sent = JSON.parse(
      (await lnctl(A, "pay", ids.a, inv.rHash, "1000000", "--expiry-blocks", "300")).out,
    ) as { id: string };
    aToB += 1_000_000n;
    await net.waitFor(
      "the lnctl payment to succeed",
      async () => {
        const p = JSON.parse((await lnctl(A, "payment", sent.id)).out) as { status: string };
        return p.status === "succeeded" || p.status;
      },
      { timeoutMs: 60_000, intervalMs: 250, quiet: true },
    );
    await settled();
    const channel = JSON.parse((await lnctl(B, "channel", ids.b)).out) as { localBalanceMsat: string };
    expect(channel.localBalanceMsat).toBe(aToB.toString());
  }, 120_000);

  it("closes cooperatively; the confirmed close pays each side its balance less half the fee, swept into each wallet", async () => {
    const walletBefore = {
      A: BigInt((await A.api.walletBalance()).confirmedSat),
      B: BigInt((await B.api.walletBalance()).confirmedSat),
    };
    const closing = await A.api.closeChannel(ids.a);
    expect(["clearing", "closed"]).toContain(closing.phase);
    await net.waitFor(
      "A-B to be closed on both ends",
      async () => {
        const a = await channelWith(A, B, ids.a);
        const b = await channelWith(B, A, ids.b);
        return (
          (a?.phase === "closed" && b?.phase === "closed") || `A ${a?.phase ?? "?"}, B ${b?.phase ?? "?"}`
        );
      },
      { mine: true, timeoutMs: 120_000 },
    );
    const detail = await A.api.channel(ids.a);
    const closeTxid = detail.transactions.find((t) => t.kind === "close")?.txid;
    expect(closeTxid).toMatch(/^[0-9a-f]{64}$/);
    const bClose = (await B.api.channel(ids.b)).transactions.find((t) => t.kind === "close")?.txid;
    expect(bClose).toBe(closeTxid);
    if (closeTxid === undefined || detail.anchorTxid === null) throw new Error("no close or anchor txid");

    await net.waitFor(
      "the close transaction to confirm",
      async () => {
        const t = await net.regtest.rpc.getRawTransaction(closeTxid, true);
        return (t.confirmations ?? 0) >= 1 || `confirmations ${t.confirmations ?? 0}`;
      },
      { mine: true, timeoutMs: 60_000, quiet: true },
    );
    const closeRaw = await net.regtest.rpc.getRawTransaction(closeTxid, true);
    expect(closeRaw.confirmations ?? 0).toBeGreaterThanOrEqual(1);
    const close = Transaction.fromHex(closeRaw.hex);
    expect(close.ins.length).toBe(1);
    expect(txidOfInput(close, 0)).toBe(detail.anchorTxid);
    const anchorTx = Transaction.fromHex(
      (await net.regtest.rpc.getRawTransaction(detail.anchorTxid, true)).hex,
    );
    const anchorOut = anchorTx.outs[close.ins[0]?.index ?? -1];
    const anchorSat = BigInt(anchorOut?.value ?? -1n);
    expect(anchorSat).toBe(CHANNEL_SAT);

    // Whole-satoshi payments only: balances in sat are exact.
    const aSat = (CHANNEL_SAT * 1000n - aToB) / 1000n;
    const bSat = aToB / 1000n;
    expect(aSat + bSat).toBe(CHANNEL_SAT);
    expect(bSat).toBe(25_000n + 12_000n - 7_000n + 3_000n + 1_000n);
    const outs = close.outs.map((o) => BigInt(o.value)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    expect(outs.length).toBe(2);
    const fee = anchorSat - (outs[0] ?? 0n) - (outs[1] ?? 0n);
    expect(fee % 2n).toBe(0n);
    expect(fee).toBeGreaterThan(0n);
    // At most the final commitment's fee: 338 bytes at the highest rate used (draft 3.6, 4.2).
    expect(fee).toBeLessThanOrEqual((338n * BigInt(FEE_RATE)) / 1000n);
    expect(outs).toEqual([bSat - fee / 2n, aSat - fee / 2n]);
    expect((outs[0] ?? 0n) + (outs[1] ?? 0n) + fee).toBe(anchorSat);

    // Each node's wallet sweeps its close output (P2SH to its final key) to a P2WPKH key of its
    // own: the confirmed balance grows by the output less the sweep's fee, read off the chain.
    const closeOut = { A: aSat - fee / 2n, B: bSat - fee / 2n };
    const rpc = net.regtest.rpc;
    const sweepOf = async (vout: number): Promise<Transaction | undefined> => {
      const closeHeight = (await rpc.getBlockHeader(closeRaw.blockhash ?? "")).height;
      for (let h = closeHeight; h <= (await rpc.getBlockCount()); h++) {
        const block = await rpc.getBlock(await rpc.getBlockHash(h), 2);
        for (const t of typeof block === "object" && "tx" in block ? block.tx : []) {
          if (typeof t !== "object") continue;
          const tx = Transaction.fromHex(t.hex);
          if (tx.ins.some((i, n) => txidOfInput(tx, n) === closeTxid && i.index === vout)) return tx;
        }
      }
      return undefined;
    };
    for (const side of ["A", "B"] as const) {
      const vout = close.outs.findIndex((o) => BigInt(o.value) === closeOut[side]);
      expect(vout).toBeGreaterThanOrEqual(0);
      let sweep: Transaction | undefined;
      await net.waitFor(
        `${side}'s close output swept and confirmed`,
        async () => (sweep = await sweepOf(vout)) !== undefined || "not yet",
        { mine: true, timeoutMs: 60_000, quiet: true },
      );
      const swept = sweep as Transaction;
      expect(swept.ins.length).toBe(1);
      expect(swept.outs.length).toBe(1);
      const out = swept.outs[0] as { value: bigint | number; script: Buffer };
      expect(out.script.length === 22 && out.script[0] === 0x00 && out.script[1] === 0x14).toBe(true); // P2WPKH
      const sweepFee = closeOut[side] - BigInt(out.value);
      expect(sweepFee).toBeGreaterThan(0n);
      const node = side === "A" ? A : B;
      await net.waitFor(
        `${side}'s wallet credited`,
        async () => {
          const now = BigInt((await node.api.walletBalance()).confirmedSat);
          return now === walletBefore[side] + closeOut[side] - sweepFee || `confirmed ${now}`;
        },
        { mine: true, timeoutMs: 60_000, quiet: true },
      );
    }
  }, 300_000);

  it("no process logged a token, a seed key, a database password or a preimage", async () => {
    const { readdirSync, readFileSync } = await import("node:fs");
    const { join } = await import("node:path");
    const pg = (await import("pg")).default;
    // The preimages A learned (its payments) and B revealed (the same R): from A's own table.
    const admin = new pg.Client({ connectionString: net.pgInfra?.url });
    await admin.connect();
    const preimages = (
      await admin.query<{ preimage: string }>(
        `SELECT preimage FROM "${A.schemas.channel}".payments WHERE preimage IS NOT NULL`,
      )
    ).rows.map((r) => r.preimage);
    await admin.end();
    expect(preimages.length).toBeGreaterThan(0);
    const needles = [...A.secrets, ...B.secrets, ...preimages];
    const dir = join(net.dir, "logs");
    const files = readdirSync(dir);
    expect(files.length).toBeGreaterThanOrEqual(8); // four services per node
    for (const f of files) {
      const text = readFileSync(join(dir, f), "utf8");
      for (const secret of needles) {
        expect(text.includes(secret), `${f} contains a secret`).toBe(false);
        // Also not in base64 (a token could be logged encoded).
        expect(text.includes(Buffer.from(secret).toString("base64")), `${f} contains a secret`).toBe(false);
      }
    }
  });
});
