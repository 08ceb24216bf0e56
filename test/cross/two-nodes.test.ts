/**
 * Across services, in one process: two nodes, each a signer service (gRPC over mutual TLS, its own
 * Postgres schema), a channel service node (ChannelNode: store, runner, payee, leases), a peer
 * gateway (TCP, BOLT #8, authenticate, with the handshake ECDH and session signature done by the
 * signer) and a chain watcher on a regtest node, over real NATS and JetStream. A channel opens on
 * a real anchor, pays an invoice, loses its connection mid-payment and finishes after the
 * reconnect retransmits from the outbox, then closes on chain. The payee's preimages come from its
 * signer; every signature from the signers' policy. (test/cross/e2e.test.ts runs the same as
 * separate processes.)
 */
import { randomBytes } from "node:crypto";
import { msat, sat, sha256, type Sat } from "@ln/bitcoin";
import type { ChannelState } from "@ln/channel-core";
import type { ResolutionView } from "@ln/channel-service";
import { decodeSealedRecord } from "@ln/justice";
import type { Regtest } from "@ln/regtest";
import { decodePkt, encodePkt, peerSubjects } from "@ln/proto";
import { p2shOutput, toOtherScript } from "@ln/scripts";
import type { NatsConnection } from "nats";
import type pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHarness, type Harness, type Side } from "./harness.js";

let h: Harness | undefined;
let run: string;
let pool: pg.Pool;
let nc: NatsConnection;
let rt: Regtest;
let nodes: Harness["nodes"];
/** Txids each node broadcast. */
let broadcasts: Harness["broadcasts"];
let lower: Harness["lower"];
let gatewayFor: Harness["gatewayFor"];
let until: Harness["until"];
let channelOf: Harness["channelOf"];
let state: Harness["state"];
let openChannel: Harness["openChannel"];
let invoiceOf: Harness["invoiceOf"];

beforeAll(async () => {
  h = await startHarness();
  ({
    run,
    pool,
    nc,
    rt,
    nodes,
    broadcasts,
    lower,
    gatewayFor,
    until,
    channelOf,
    state,
    openChannel,
    invoiceOf,
  } = h);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

describe("signer + channel node + peer gateway + chain watcher, twice, over NATS", () => {
  it("opens on a real anchor, pays invoices, finishes a payment across a lost connection, and closes on chain", async () => {
    const port = await nodes.B.gateway.listen(0, "127.0.0.1");
    // Through A's node, which remembers the address and redials it after a drop.
    await nodes.A.node.connect({ host: "127.0.0.1", port, nodeId: nodes.B.nodeId.toString("hex") });
    const funding: Sat = sat(1_000_000);
    await nodes.A.node.open(nodes.B.nodeId.toString("hex"), funding);
    await until(
      "both anchors signed",
      async () =>
        (await nodes.B.store.rows()).length === 1 &&
        (await state("A")).opening.anchorSigned &&
        (await state("B")).opening.anchorSigned,
    );
    // Both chain watchers follow the anchor; a block confirms it, the watchers report the depth,
    // each channel sends open_complete.
    await until("both watches registered", async () => {
      const counts = await Promise.all(
        ["a", "b"].map(
          async (x) => (await pool.query(`SELECT 1 FROM "cross_${run}_tower_${x}".anchor_watches`)).rowCount,
        ),
      );
      return counts.every((c) => c === 1);
    });
    await rt.mine(1);
    await until("both open", async () => {
      for (const n of Object.values(nodes)) await n.watcher.syncOnce();
      return (await state("A")).phase === "normal" && (await state("B")).phase === "normal";
    });

    // B's invoices: their preimages stay in B's signer; B settles an HTLC paying one in full.
    const invoice = async (amount: number): Promise<string> =>
      (
        await nodes.B.ledger.addInvoice(
          async (index) => (await nodes.B.signer.call("InvoiceHash", { index })).r_hash.toString("hex"),
          msat(amount),
          "",
        )
      ).rHash;
    const pay = async (rHash: string, amount: number): Promise<void> => {
      await nodes.A.node.command(await channelOf("A"), {
        kind: "add_htlc",
        amountMsat: msat(amount),
        rHash,
        expiry: { blocks: rt.height() + 300 },
      });
    };
    const bBalance = async (): Promise<bigint> => (await state("B")).localCommit?.localMsat ?? 0n;
    const settled = async (): Promise<boolean> =>
      (await state("A")).localCommit?.htlcs.length === 0 &&
      (await state("B")).localCommit?.htlcs.length === 0;

    const first = await invoice(20_000_000);
    await pay(first, 20_000_000);
    await until(
      "first payment settled on both sides",
      async () => (await bBalance()) === 20_000_000n && (await settled()),
    );
    const [paid] = await nodes.A.ledger.payments();
    expect(paid?.status).toBe("succeeded");
    // The R A learned hashes to the invoice's r_hash (checked here independently of the core).
    const r = await pool.query<{ preimage: string }>(`SELECT preimage FROM "cross_${run}_a".payments`);
    expect(sha256(Buffer.from(r.rows[0]?.preimage ?? "", "hex")).toString("hex")).toBe(first);

    // A payment to a hash B never issued is failed by B.
    await pay(sha256(Buffer.alloc(32, 7)).toString("hex"), 1_000_000);
    await until("unknown hash failed", async () =>
      (await nodes.A.ledger.payments()).some((p) => p.status === "failed" && p.failureReason !== undefined),
    );

    // The gateway on A's side goes away; A offers an HTLC meanwhile (it is stored, not delivered).
    await nodes.A.gateway.close();
    const second = await invoice(5_000_000);
    await pay(second, 5_000_000);
    nodes.A.gateway = gatewayFor(nodes.A);
    await nodes.A.gateway.connect("127.0.0.1", port, nodes.B.nodeId); // authenticate acks -> retransmission
    await until(
      "second payment settled",
      async () => (await bBalance()) === 25_000_000n && (await settled()),
    );
    expect((await state("A")).phase).toBe("normal");
    expect((await state("B")).phase).toBe("normal");
    expect((await state("A")).localCommit?.remoteMsat).toBe(25_000_000n);
    expect((await nodes.B.ledger.invoice(second))?.status).toBe("settled");
    // Every commitment the peer revoked was kept with the state and recorded by our signer, and
    // its sealed record reached the tower's stream once, under its locator (DESIGN.md 7). The
    // peer's last revocation may still be on its way after the payment settled: counted together.
    for (const x of ["a", "b"]) {
      const side = x.toUpperCase() as Side;
      const jsm = await nc.jetstreamManager();
      const stream = `CROSS_${run}_${side}_RECORDS`;
      const q = `"cross_${run}_${x}"`;
      let seen = "";
      await until(`${x}'s revocations recorded and their records published, one message each`, async () => {
        const r = await pool.query<{ revs: number; unrecorded: number; unpublished: number }>(
          `SELECT (SELECT count(*)::int FROM ${q}.peer_revocations) AS revs,
                  (SELECT count(*)::int FROM ${q}.peer_revocations WHERE recorded_at IS NULL) AS unrecorded,
                  (SELECT count(*)::int FROM ${q}.tower_records WHERE published_at IS NULL) AS unpublished`,
        );
        const messages = (await jsm.streams.info(stream)).state.messages;
        const c = r.rows[0];
        seen = JSON.stringify({ ...c, messages });
        return (
          c !== undefined && c.revs > 0 && c.unrecorded === 0 && c.unpublished === 0 && messages === c.revs
        );
      }).catch((e: unknown) => {
        throw new Error(`${String(e)}; last seen ${seen}`);
      });
      const info = await jsm.streams.info(stream);
      for (let seq = 1; seq <= info.state.messages; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq });
        const sealed = decodeSealedRecord(m.data);
        expect(m.header.get("Nats-Msg-Id")).toBe(sealed.locator.toString("hex"));
      }
    }

    // Cooperative close (draft 4): clearing, fee negotiation by close_signature, the signer signs,
    // both broadcast the same close transaction; the node mines it.
    await nodes.A.node.command(await channelOf("A"), { kind: "close" });
    await until(
      "both closed and broadcast",
      async () =>
        (await state("A")).phase === "closed" &&
        (await state("B")).phase === "closed" &&
        broadcasts.A.length === 2 && // the anchor and the close
        broadcasts.B.length === 1,
    );
    const closeFee = (await state("A")).close.ourLastFee as bigint;
    expect(closeFee % 2n).toBe(0n);
    const closeTxid = broadcasts.B[0] as string;
    expect(broadcasts.A).toContain(closeTxid);
    await rt.mine(1);
    const closeTx = await rt.rpc.getRawTransaction(closeTxid, true);
    expect(typeof closeTx === "object" && (closeTx.confirmations ?? 0) >= 1).toBe(true);
    const finalKey = async (s: Side): Promise<Buffer> => Buffer.from((await state(s)).local.finalKey, "hex");
    const paidTo = (key: Buffer): bigint => {
      const script = p2shOutput(toOtherScript(key)).toString("hex");
      const out =
        typeof closeTx === "object" ? closeTx.vout.find((v) => v.scriptPubKey.hex === script) : undefined;
      return BigInt(Math.round((out?.value ?? 0) * 1e8));
    };
    // Each side's balance less half the close fee (draft 3.6's split), to its final key.
    expect(paidTo(await finalKey("A"))).toBe(975_000n - closeFee / 2n);
    expect(paidTo(await finalKey("B"))).toBe(25_000n - closeFee / 2n);
    // What both nodes record as broadcast for the channel is that close.
    expect(await nodes.A.ledger.isOurBroadcast(await channelOf("A"), closeTxid)).toBe(true);
  }, 90_000);

  it("fails the channel on a forged commitment signature, tells the peer, and keeps serving", async () => {
    await openChannel();
    const aId = await channelOf("A");
    const bId = await channelOf("B");
    // "B" (forged on A's inbound subject, as a compromised gateway or peer would) proposes a fee
    // and commits to it with a signature that signs nothing of A's.
    const aIn = peerSubjects(nodes.A.peerPrefix, nodes.B.nodeId.toString("hex")).in;
    const sentByA = (await state("A")).sentCount;
    nc.publish(aIn, encodePkt({ kind: "update_fee", feeRate: 12_000 }));
    nc.publish(aIn, encodePkt({ kind: "update_commit", sig: randomBytes(64), ack: BigInt(sentByA) }));
    await until("A failed the channel", async () => (await nodes.A.store.load(aId))?.phase === "failed");
    expect((await nodes.A.store.load(aId))?.failure).toMatchObject({
      code: "PROTOCOL_VIOLATION",
      problem: expect.stringMatching(/sig does not sign our commitment/),
    });
    // A sent B an `error` (its last message), and B's channel stopped too: failed on that error,
    // or first behind on A's update_commit, which acknowledged messages B never sent: to B that
    // looks like its own data loss (DESIGN.md 6), so B broadcasts nothing; A broadcast already.
    const outbox = await pool.query<{ pkt: Buffer }>(
      `SELECT pkt FROM "cross_${run}_a".outbox WHERE channel_id = $1 ORDER BY seq DESC LIMIT 1`,
      [aId],
    );
    expect(decodePkt(outbox.rows[0]?.pkt as Buffer)).toMatchObject({ kind: "error" });
    await until("B stopped", async () =>
      ["failed", "behind"].includes((await nodes.B.store.load(bId))?.phase ?? ""),
    );
    expect((await nodes.B.store.load(bId))?.failure?.problem).toMatch(/failed the channel|ack/);
    // Nothing else stopped: the same nodes open a new channel between them.
    await openChannel();
    expect(await channelOf("A")).not.toBe(aId);
  }, 90_000);

  it("fails the channel on a fulfill whose preimage does not hash to the HTLC's r_hash", async () => {
    // On the channel the previous test opened last.
    expect((await state("A")).phase).toBe("normal");
    expect((await state("B")).phase).toBe("normal");
    const aId = await channelOf("A");
    // B holds its decision back; A's HTLC paying B's invoice gets committed on both sides.
    let open: () => void = () => undefined;
    nodes.B.ledger.gate = new Promise<void>((r) => (open = r));
    const rHash = (
      await nodes.B.ledger.addInvoice(
        async (index) => (await nodes.B.signer.call("InvoiceHash", { index })).r_hash.toString("hex"),
        msat(2_000_000),
        "",
      )
    ).rHash;
    await nodes.A.node.command(aId, {
      kind: "add_htlc",
      amountMsat: msat(2_000_000),
      rHash,
      expiry: { blocks: rt.height() + 300 },
    });
    await until("the HTLC in A's commitment", async () => {
      const a = await state("A");
      return a.localCommit?.htlcs.length === 1 && a.remoteCommit?.htlcs.length === 1;
    });
    const id = (await state("A")).localCommit?.htlcs[0]?.id as bigint;
    // "B" fulfils it with a preimage that is not the invoice's.
    const aIn = peerSubjects(nodes.A.peerPrefix, nodes.B.nodeId.toString("hex")).in;
    nc.publish(aIn, encodePkt({ kind: "update_fulfill_htlc", id, r: randomBytes(32) }));
    await until("A failed the channel", async () => (await nodes.A.store.load(aId))?.phase === "failed");
    expect((await nodes.A.store.load(aId))?.failure).toMatchObject({
      code: "PROTOCOL_VIOLATION",
      problem: expect.stringMatching(/r does not hash/),
    });
    // The payment is not reported as paid.
    expect((await nodes.A.ledger.payments()).find((p) => p.rHash === rHash)?.status).not.toBe("succeeded");
    open();
  }, 90_000);

  it("resolves a unilateral close on chain: with HTLCs both ways, each output to its owner, R learned on chain", async () => {
    // The previous test failed its channel; a new one, where B first earns something to offer.
    await openChannel();
    const [aId, bId] = [await channelOf("A"), await channelOf("B")];
    const add = (side: Side, rHash: string, amountMsat: bigint, expiry: number): Promise<unknown> =>
      nodes[side].node.command(side === "A" ? aId : bId, {
        kind: "add_htlc",
        amountMsat: msat(amountMsat),
        rHash,
        expiry: { blocks: expiry },
      });
    const commitments = async (): Promise<ChannelState[]> => [await state("A"), await state("B")];
    await add("A", await invoiceOf("B", 200_000_000n), 200_000_000n, rt.height() + 300);
    await until(
      "B paid",
      async () =>
        (await commitments()).every(
          (s) => s.localCommit?.htlcs.length === 0 && s.remoteCommit?.htlcs.length === 0,
        ) && (await state("B")).localCommit?.localMsat === 200_000_000n,
    );

    // Both hold their payee decisions back: four HTLCs stay in every commitment. Amounts tell
    // them apart on chain: A→B 60k (B has R) and 30k (no one has R), B→A 40k (A has R) and 20k.
    const release: (() => void)[] = [];
    for (const side of ["A", "B"] as const)
      nodes[side].ledger.gate = new Promise<void>((r) => release.push(r));
    const expiry = rt.height() + 200;
    const bKnows = await invoiceOf("B", 60_000_000n);
    const aKnows = await invoiceOf("A", 40_000_000n);
    const nobody = (): string => sha256(randomBytes(32)).toString("hex");
    await add("A", bKnows, 60_000_000n, expiry);
    await add("A", nobody(), 30_000_000n, expiry);
    await add("B", aKnows, 40_000_000n, expiry);
    await add("B", nobody(), 20_000_000n, expiry);
    await until("four HTLCs in every commitment", async () =>
      (await commitments()).every(
        (s) => s.localCommit?.htlcs.length === 4 && s.remoteCommit?.htlcs.length === 4,
      ),
    );

    // A closes unilaterally: its latest commitment, signed by its signer, is broadcast and mined.
    const before = broadcasts.A.length;
    await nodes.A.node.command(aId, { kind: "force_close" });
    await until("A broadcast its commitment", async () => broadcasts.A.length > before);
    // The channel has failed: what happens now is on chain (and the resolution reads invoices).
    for (const r of release) r();
    const commitmentTxid = broadcasts.A.at(-1) as string;
    const views = async (): Promise<[ResolutionView | undefined, ResolutionView | undefined]> => [
      await nodes.A.resolution.view(aId),
      await nodes.B.resolution.view(bId),
    ];
    const settledStatuses = new Set(["swept", "lost", "wallet"]);
    // Mined a block at a time: the CSV delay (144) and the HTLCs' expiry pass, each node sweeps
    // what is its own as soon as it may, and learns of the other's spends.
    await until(
      "every claim of both nodes settled on chain",
      async () => {
        await rt.mine(1);
        for (const n of Object.values(nodes)) await n.watcher.syncOnce();
        const [a, b] = await views();
        return Boolean(a && b && [...a.claims, ...b.claims].every((c) => settledStatuses.has(c.status)));
      },
      180_000,
    );
    const [a, b] = (await views()) as [ResolutionView, ResolutionView];
    expect([a.kind, a.spendTxid, b.kind, b.spendTxid]).toEqual([
      "our_commitment",
      commitmentTxid,
      "their_commitment",
      commitmentTxid,
    ]);
    const bySat = (v: ResolutionView): Record<string, [string, string]> =>
      Object.fromEntries(v.claims.map((c) => [String(c.amountSat), [c.what, c.status]]));
    // Draft 6.2, output by output (HTLC amounts in sat; the balances are the rest).
    expect(bySat(a)).toMatchObject({
      "60000": ["htlc_timeout", "lost"], // B redeemed it with R at once
      "30000": ["htlc_timeout", "swept"], // no one had R: back to A after the expiry and the delay
      "40000": ["htlc_redeem", "swept"], // A had R: taken after the delay, before B's timeout
      "20000": ["watch", "lost"], // A had no R: B timed it out
    });
    expect(bySat(b)).toMatchObject({
      "60000": ["htlc_redeem", "swept"],
      "30000": ["watch", "lost"],
      "40000": ["htlc_timeout", "lost"],
      "20000": ["htlc_timeout", "swept"],
    });
    expect(a.claims.find((c) => c.what === "delayed")?.status).toBe("swept");
    expect(b.claims.find((c) => c.what === "to_us")?.status).toBe("wallet"); // the wallet's final-key sweep
    // Each sweep pays the sweeping node's own wallet keys, and is what spent the output.
    for (const [side, v] of [
      ["A", a],
      ["B", b],
    ] as const) {
      const keys = new Set(
        (
          await pool.query<{ script_hex: string }>(
            `SELECT script_hex FROM "cross_${run}_${lower(side)}".wallet_keys`,
          )
        ).rows.map((r) => r.script_hex),
      );
      for (const c of v.claims.filter((x) => x.status === "swept")) {
        expect(c.spentBy).toBe(c.sweepTxid);
        const raw = await rt.rpc.getRawTransaction(c.sweepTxid as string, true);
        const outs = typeof raw === "object" ? raw.vout : [];
        for (const o of outs) expect(keys.has(o.scriptPubKey.hex)).toBe(true);
      }
    }
    // R learned on chain settles the payer's payment; a timed-out HTLC fails it.
    const paymentOf = async (side: Side, amountMsat: bigint) =>
      (await nodes[side].ledger.payments()).find(
        (p) => p.channelId === (side === "A" ? aId : bId) && p.amountMsat === amountMsat,
      );
    const learned = await paymentOf("A", 60_000_000n);
    expect(learned?.status).toBe("succeeded");
    const r = await pool.query<{ preimage: string }>(
      `SELECT preimage FROM "cross_${run}_a".payments WHERE id = $1`,
      [learned?.id],
    );
    expect(sha256(Buffer.from(r.rows[0]?.preimage ?? "", "hex")).toString("hex")).toBe(bKnows);
    expect((await paymentOf("B", 40_000_000n))?.status).toBe("succeeded");
    expect((await paymentOf("A", 30_000_000n))?.status).toBe("failed");
    expect((await paymentOf("B", 20_000_000n))?.status).toBe("failed");

    // A reorg takes the last sweeps out of the chain (bcoin drops its mempool too): each node
    // opens those claims again, re-sends the same sweeps, and they confirm in the new branch.
    const lastSpend = Math.max(...[...a.claims, ...b.claims].map((c) => c.spentHeight ?? 0));
    const undone = [...a.claims, ...b.claims].filter(
      (c) => c.status === "swept" && c.spentHeight === lastSpend,
    );
    expect(undone.length).toBeGreaterThan(0);
    await rt.reorg(rt.height() - lastSpend + 1);
    await until(
      "the reorged sweeps confirmed again",
      async () => {
        for (const n of Object.values(nodes)) await n.watcher.syncOnce();
        await rt.mine(1);
        for (const n of Object.values(nodes)) await n.watcher.syncOnce();
        const [a2, b2] = await views();
        const again = [...(a2?.claims ?? []), ...(b2?.claims ?? [])];
        return undone.every((u) =>
          again.some(
            (c) => c.sweepTxid === u.sweepTxid && c.status === "swept" && (c.spentHeight ?? 0) > lastSpend,
          ),
        );
      },
      60_000,
    );
  }, 300_000);
});
