/**
 * Draft 3.1 on the regtest node (issue 13, "A malicious peer takes back an HTLC we already
 * fulfilled"): A pays B's invoice with an HTLC expiring at block E; B reveals R; A never signs the
 * commitment that removes it from B's, goes silent, and waits for E. On B's own commitment B's R
 * path waits the 144-block delay A asked for, A's timeout path only E: had B waited for A's
 * `error` at E - 1, A would take the HTLC back at E + 1 while holding R. B fails the channel at
 * its deadline instead, E - 144 - 6, broadcasts its commitment, and claims the HTLC with R 144
 * blocks after it confirms, before A's timeout is valid.
 *
 * A is the harness's real node, made to cheat as its operator could: it signs nothing more once
 * the HTLC is committed, ignores its own deadlines (so it never goes on chain first), and drops
 * the connection. Its chain watcher and resolution keep running, so it tries its timeout for real.
 */
import { msat, sat } from "@ln/bitcoin";
import type { ChannelState } from "@ln/channel-core";
import type { ResolutionView } from "@ln/channel-service";
import { encodePkt, peerSubjects } from "@ln/proto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness } from "./harness.js";

let h: Harness;

beforeAll(async () => {
  h = await startHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe("redemption deadline on chain: the payer withholds the removal of a fulfilled HTLC", () => {
  it("B fails the channel at E - 150, broadcasts, and sweeps the HTLC with R; A's timeout never wins", async () => {
    const { nodes, rt, until, state, channelOf, broadcasts } = h;
    const port = await nodes.B.gateway.listen(0, "127.0.0.1");
    // Dialled by the gateway alone: A's node has no address to redial once A goes silent.
    await nodes.A.gateway.connect("127.0.0.1", port, nodes.B.nodeId);
    // A's node must take that connection's `connected` event before the channel exists, or it
    // would retransmit open_channel after sending it. Its answer to an ack request queues behind it.
    await h.nc.request(
      peerSubjects(nodes.A.peerPrefix, nodes.B.nodeId.toString("hex")).ack,
      new Uint8Array(),
      {
        timeout: 20_000,
      },
    );
    await h.openChannel();
    const [aId, bId] = [await channelOf("A"), await channelOf("B")];
    const processed = async (height: number): Promise<boolean> =>
      (await state("A")).chain.height >= height && (await state("B")).chain.height >= height;
    const mine = async (n: number): Promise<void> => {
      await rt.mine(n);
      for (const x of Object.values(nodes)) await x.watcher.syncOnce();
      const height = rt.height();
      await until(`both nodes at height ${height}`, () => processed(height));
    };
    await mine(1);

    // B holds its payee decision back until A is set to cheat.
    let release: () => void = () => undefined;
    nodes.B.ledger.gate = new Promise<void>((r) => (release = r));
    const amountMsat = 60_000_000n; // 60,000 sat
    const rHash = await h.invoiceOf("B", amountMsat);
    const h0 = rt.height();
    const E = h0 + 200;
    // B's deadline: E - 144 (the delay A asked for, on B's commitment) - 6 (the margin).
    const deadline = E - 144 - 6;
    await nodes.A.node.command(aId, {
      kind: "add_htlc",
      amountMsat: msat(amountMsat),
      rHash,
      expiry: { blocks: E },
    });
    const settledBoth = (s: ChannelState): boolean =>
      s.localCommit?.htlcs.length === 1 && s.remoteCommit?.htlcs.length === 1 && !s.remotePending;
    await until(
      "the HTLC committed on both sides",
      async () => settledBoth(await state("A")) && settledBoth(await state("B")),
    );

    // A cheats from here on: it signs no commitment of B's any more, and its own deadlines are off.
    await nodes.A.store.transition(aId, "replica-1", (s) => ({
      state: { ...s, policy: { ...s.policy, autoCommit: false, deadlineMarginBlocks: -1_000_000 } },
      outputs: [],
    }));
    release();
    // B fulfils (R from its signer) and signs A's new commitment; A takes R and revokes, and
    // never signs the commitment that would take the HTLC out of B's.
    await until("A holds R; the HTLC is out of A's commitment and still in B's", async () => {
      const b = await state("B");
      const paid = (await nodes.A.ledger.payments()).find((p) => p.rHash === rHash);
      return (
        paid?.status === "succeeded" &&
        b.localCommit?.htlcs.length === 1 &&
        b.remoteCommit?.htlcs.length === 0 &&
        !b.remotePending
      );
    });
    await nodes.A.gateway.close();
    nodes.A.gateway = h.gatewayFor(nodes.A);

    // Up to the block before B's deadline, B waits for A.
    await mine(deadline - 1 - rt.height());
    expect((await state("B")).phase).toBe("normal");
    // The attack: block by block towards E; at E - 1 A fails the channel with `error`.
    const bIn = peerSubjects(nodes.B.peerPrefix, nodes.A.nodeId.toString("hex")).in;
    let failedAt: number | undefined;
    while (failedAt === undefined && rt.height() < E - 1) {
      await mine(1);
      if ((await state("B")).phase === "failed") failedAt = rt.height();
    }
    if (failedAt === undefined) {
      h.nc.publish(bIn, encodePkt({ kind: "error", problem: "going away" }));
      await until("B failed on A's error", async () => (await state("B")).phase === "failed");
      failedAt = rt.height();
    }
    const failure = (await state("B")).failure;

    // B broadcast its latest commitment, holding the HTLC; a block confirms it.
    await until("B broadcast its commitment", async () => broadcasts.B.length > 0);
    const commitmentTxid = broadcasts.B.at(-1) as string;
    await mine(1);
    const confirmedAt = rt.height();
    const redeemOf = async (): Promise<ResolutionView["claims"][number] | undefined> =>
      (await nodes.B.resolution.view(bId))?.claims.find((c) => c.amountSat === sat(60_000n));
    await until("B's claim with R recorded", async () => (await redeemOf()) !== undefined);
    const resolution = (await nodes.B.resolution.view(bId)) as ResolutionView;
    expect([resolution.kind, resolution.spendTxid]).toEqual(["our_commitment", commitmentTxid]);
    const claim = (await redeemOf()) as NonNullable<Awaited<ReturnType<typeof redeemOf>>>;
    expect(claim.what).toBe("htlc_redeem");
    expect(claim.readyHeight).toBe(confirmedAt + 144);

    // The race on chain: B's R path from 144 blocks after the confirmation, A's timeout from
    // E + 1 (A's resolution sweeps it as soon as it may). Mined in one go up to two blocks before
    // the first of them; then a block at a time, each waiting for B's sweep to be in the mempool
    // once the next block may hold it.
    const first = Math.min(confirmedAt + 144, E + 1);
    await mine(Math.max(0, first - 2 - rt.height()));
    while (!["swept", "lost"].includes((await redeemOf())?.status ?? "")) {
      if (rt.height() + 1 >= (claim.readyHeight ?? 0))
        await until("B's sweep sent", async () => (await redeemOf())?.status !== "waiting");
      await mine(1);
    }
    // B won: it went on chain at its deadline (E - 144 - 6), so its R path
    // opened at deadline + 1 + 144 = E - 5, before A's timeout.
    expect((await redeemOf())?.status).toBe("swept");
    expect(failure?.code).toBe("HTLC_DEADLINE");
    expect(failedAt).toBe(deadline);
    expect(confirmedAt + 144).toBe(E - 5);
    const swept = (await redeemOf()) as typeof claim;
    expect(swept.status).toBe("swept");
    expect(swept.spentBy).toBe(swept.sweepTxid);

    // The sweep pays B's own wallet keys the HTLC's 60,000 sat, less its fee.
    const keys = new Set(
      (
        await h.pool.query<{ script_hex: string }>(`SELECT script_hex FROM "cross_${h.run}_b".wallet_keys`)
      ).rows.map((r) => r.script_hex),
    );
    const raw = await rt.rpc.getRawTransaction(swept.sweepTxid as string, true);
    if (typeof raw !== "object") throw new Error("no sweep transaction");
    expect(raw.vout.length).toBeGreaterThan(0);
    for (const o of raw.vout) expect(keys.has(o.scriptPubKey.hex)).toBe(true);
    const paid = raw.vout.reduce((sum, o) => sum + BigInt(Math.round(o.value * 1e8)), 0n);
    const fee = 60_000n - paid;
    expect(fee).toBeGreaterThan(0n);
    // At 10,000 sat per 1000 bytes, a one-input sweep of a few hundred bytes costs a few thousand.
    expect(fee).toBeLessThan(6_000n);

    // A, which kept following the chain, saw its timeout claim on B's commitment lost to B's R.
    await until("A saw B's sweep", async () => {
      await mine(1);
      const a = (await nodes.A.resolution.view(aId))?.claims.find((c) => c.amountSat === sat(60_000n));
      return a?.what === "htlc_timeout" && a.status === "lost" && a.spentBy === swept.sweepTxid;
    });
  }, 300_000);
});
