import { randomBytes } from "node:crypto";
import { msat, sat, sha256, txidFromHex } from "@ln/bitcoin";
import { ackFor, createChannel, step, type ChannelState, type Input } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import { decodePkt } from "@ln/proto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { ChannelRunner, type EffectSink } from "../src/channels/runner.js";
import { ChannelStore, StoreError, type OutboxMessage } from "../src/channels/store.js";
import { testDatabaseUrl } from "@ln/testkit";

// Real Postgres (trust auth); every run gets its own schemas, dropped at the end.
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schemas: string[] = [];
const schema = (): string => {
  const s = `chan_test_${randomBytes(6).toString("hex")}`;
  schemas.push(s);
  return s;
};
afterAll(async () => {
  for (const s of schemas) await pool.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
  await pool.end();
});

const CHANNEL = "chan-1";
type Side = "A" | "B";

/** Two nodes, each with its own store and runner, joined by an in-order network in each direction. */
class TwoNodes {
  readonly stores: Record<Side, ChannelStore>;
  readonly runners: Record<Side, ChannelRunner>;
  readonly signers: Record<Side, TestSigner> = { A: new TestSigner(0x10), B: new TestSigner(0x20) };
  /** Messages in flight, and inputs the shells feed back (anchor built...). */
  readonly queue: { to: Side; input: Input }[] = [];
  /** Every send, with whether its outbox row was already committed when it went out. */
  readonly sendLog: { from: Side; seq: number; durable: boolean }[] = [];
  drop: ((from: Side, m: OutboxMessage) => boolean) | undefined;
  failEffect: ((type: string) => boolean) | undefined;
  signerDown = false;
  /** Inputs whose processing ended in an error (after the state was stored). */
  readonly failures: unknown[] = [];

  constructor(owner = "replica-1") {
    this.stores = { A: new ChannelStore(pool, schema()), B: new ChannelStore(pool, schema()) };
    const make = (side: Side): ChannelRunner => {
      const other: Side = side === "A" ? "B" : "A";
      const effects: EffectSink = async (_id, o) => {
        if (this.failEffect?.(o.type)) throw new Error(`${o.type} failed (test)`);
        if (o.type === "build_anchor")
          this.queue.push({
            to: side,
            input: {
              type: "anchor_built",
              outpoint: { txid: txidFromHex("ab".repeat(32)), vout: 0 },
              amount: o.amount,
            },
          });
      };
      return new ChannelRunner(
        this.stores[side],
        owner,
        {
          answer: async (_id, r) => {
            if (this.signerDown) throw new Error("signer unreachable (test)");
            return this.signers[side].answer(r);
          },
        },
        {
          send: async (id, m) => {
            const row = await pool.query(
              `SELECT 1 FROM "${this.stores[side].schema}".outbox WHERE channel_id = $1 AND seq = $2`,
              [id, m.seq],
            );
            this.sendLog.push({ from: side, seq: m.seq, durable: row.rowCount === 1 });
            if (this.drop?.(side, m)) return;
            this.queue.push({ to: other, input: { type: "pkt", pkt: decodePkt(m.bytes) } });
          },
        },
        effects,
      );
    };
    this.runners = { A: make("A"), B: make("B") };
  }

  async start(): Promise<void> {
    for (const side of ["A", "B"] as const) {
      const s = this.signers[side];
      await this.stores[side].migrate();
      const created = createChannel({
        role: side === "A" ? "creator" : "acceptor",
        local: {
          delay: { blocks: 144 },
          minDepth: 1,
          initialFeeRate: 10_000,
          commitKey: s.commitKey,
          finalKey: s.finalKey,
          revocationHash: s.revocationHash(0n),
          nextRevocationHash: s.revocationHash(1n),
        },
        ...(side === "A" ? { fundingSat: sat(1_000_000) } : {}),
        policy: { autoCommit: true },
        chain: { height: 1000, time: 1_700_000_000 },
      });
      // Every channel has its signer channel (named in its watchtower records).
      const t = await this.stores[side].create(CHANNEL, created, { signerChannel: 0 });
      expect(await this.stores[side].acquireLease(CHANNEL, "replica-1", 60_000)).toBe(true);
      for (const m of t.sends)
        this.queue.push({ to: side === "A" ? "B" : "A", input: { type: "pkt", pkt: decodePkt(m.bytes) } });
    }
  }

  async drain(): Promise<void> {
    for (let next = this.queue.shift(); next; next = this.queue.shift())
      await this.runners[next.to].input(CHANNEL, next.input).catch((e: unknown) => this.failures.push(e));
  }

  async state(side: Side): Promise<ChannelState> {
    return (await this.stores[side].load(CHANNEL)) as ChannelState;
  }
}

async function opened(): Promise<TwoNodes> {
  const n = new TwoNodes();
  await n.start();
  await n.drain();
  for (const side of ["A", "B"] as const)
    n.queue.push({ to: side, input: { type: "chain", event: { kind: "anchor_depth", depth: 1 } } });
  await n.drain();
  expect((await n.state("A")).phase).toBe("normal");
  expect((await n.state("B")).phase).toBe("normal");
  return n;
}

describe("the channel service's shell over real Postgres", () => {
  it("opens and pays, sending each message only after its transition committed", async () => {
    const n = await opened();
    const rHash = sha256(Buffer.alloc(32, 7)).toString("hex");
    await n.runners.A.input(CHANNEL, {
      type: "command",
      command: { kind: "add_htlc", amountMsat: msat(50_000_000), rHash, expiry: { blocks: 5000 } },
    });
    await n.drain();
    const id = (await n.state("B")).localCommit?.htlcs[0]?.id as bigint;
    await n.runners.B.input(CHANNEL, {
      type: "command",
      command: { kind: "fulfill_htlc", id, r: Buffer.alloc(32, 7).toString("hex") },
    });
    await n.drain();
    const a = await n.state("A");
    const b = await n.state("B");
    expect(a.localCommit?.htlcs).toEqual([]);
    expect(b.localCommit?.localMsat).toBe(50_000_000n);
    expect(a.localCommit?.remoteMsat).toBe(50_000_000n);
    expect(n.sendLog.length).toBeGreaterThan(10);
    expect(n.sendLog.every((s) => s.durable)).toBe(true);
  });

  it("takes the inputs waiting into one transaction: one commitment for many adds, each add's writes and answer its own", async () => {
    const n = await opened();
    // Ten adds at once: each is answered with its own HTLC, and its `within` sees only its own
    // outputs, though nine share a transaction.
    const add = (i: number): Input => ({
      type: "command",
      command: {
        kind: "add_htlc",
        amountMsat: msat(1_000_000 + i),
        rHash: sha256(Buffer.alloc(32, 100 + i)).toString("hex"),
        expiry: { blocks: 5000 },
      },
    });
    const seen = new Map<number, bigint[]>();
    const number0 = (await n.state("A")).remoteCommit?.number ?? -1n;
    const answers = await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        n.runners.A.input(CHANNEL, add(i), async (_c, t) => {
          seen.set(
            i,
            t.outputs.flatMap((o) =>
              o.type === "htlc_added" && o.offerer === "local" ? [o.htlc.amountMsat] : [],
            ),
          );
        }),
      ),
    );
    answers.forEach((a, i) => {
      expect(seen.get(i)).toEqual([1_000_000n + BigInt(i)]);
      const own = a.outputs.find((o) => o.type === "htlc_added" && o.offerer === "local");
      expect(own?.type === "htlc_added" && own.htlc.amountMsat).toBe(1_000_000n + BigInt(i));
    });
    // The first add ran alone (its lane was empty) and was committed at once; the nine others
    // were staged together while A awaited B's revocation, then committed in one: two
    // commitments for ten adds.
    const toB = n.queue.flatMap((q) => (q.to === "B" && q.input.type === "pkt" ? [q.input.pkt.kind] : []));
    expect(toB.filter((k) => k === "update_add_htlc")).toHaveLength(10);
    expect(toB.filter((k) => k === "update_commit")).toHaveLength(1);
    await n.drain();
    expect((await n.state("A")).remoteCommit?.number).toBe(number0 + 2n);
    expect((await n.state("B")).localCommit?.htlcs).toHaveLength(10);
    expect((await n.state("A")).localCommit?.htlcs).toHaveLength(10);
  });

  it("keeps a channel moving when an effect fails, and reports the failure", async () => {
    const n = await opened();
    n.failEffect = (type) => type === "revoked"; // e.g. the watchtower record could not be written
    const rHash = sha256(Buffer.alloc(32, 9)).toString("hex");
    await n.runners.A.input(CHANNEL, {
      type: "command",
      command: { kind: "add_htlc", amountMsat: msat(10_000_000), rHash, expiry: { blocks: 5000 } },
    });
    await n.drain();
    // The signer's answers came before the failed effects: both commitments hold the HTLC.
    expect((await n.state("A")).remoteCommit?.htlcs).toHaveLength(1);
    expect((await n.state("B")).remoteCommit?.htlcs).toHaveLength(1);
    expect((await n.state("A")).awaiting).toBeUndefined();
    expect(n.failures.length).toBeGreaterThan(0);
    expect(n.failures.every((e) => e instanceof AggregateError)).toBe(true);
  });

  it("asks the signer again after a failed call: resume finishes what the stored state awaits", async () => {
    const n = await opened();
    n.signerDown = true;
    const rHash = sha256(Buffer.alloc(32, 10)).toString("hex");
    await expect(
      n.runners.A.input(CHANNEL, {
        type: "command",
        command: { kind: "add_htlc", amountMsat: msat(10_000_000), rHash, expiry: { blocks: 5000 } },
      }),
    ).rejects.toThrow(/signer unreachable/);
    expect((await n.state("A")).awaiting).toBe("sign_remote_commitment");
    n.signerDown = false;
    await n.runners.A.resume(CHANNEL);
    await n.drain();
    expect((await n.state("A")).awaiting).toBeUndefined();
    expect((await n.state("B")).localCommit?.htlcs.map((h) => h.rHash)).toEqual([rHash]);
  });

  it("heals a message lost after commit: the reconnect retransmits it from the outbox", async () => {
    const n = await opened();
    let dropped = 0;
    n.drop = (from, m) => from === "A" && decodePkt(m.bytes).kind === "update_add_htlc" && dropped++ === 0;
    const rHash = sha256(Buffer.alloc(32, 8)).toString("hex");
    await n.runners.A.input(CHANNEL, {
      type: "command",
      command: { kind: "add_htlc", amountMsat: msat(10_000_000), rHash, expiry: { blocks: 5000 } },
    });
    // The add is lost; the commit that follows refers to it, so B must not accept the commit alone.
    n.queue.length = 0;
    expect(dropped).toBe(1);
    // New connection: each side's authenticate carries its ack; each resends from its outbox.
    const [a, b] = [await n.state("A"), await n.state("B")];
    await n.runners.A.input(CHANNEL, { type: "reconnected", theirAck: ackFor(b) });
    await n.runners.B.input(CHANNEL, { type: "reconnected", theirAck: ackFor(a) });
    await n.drain();
    expect((await n.state("B")).localCommit?.htlcs.map((h) => h.rHash)).toEqual([rHash]);
    expect((await n.state("A")).phase).toBe("normal");
  });

  it("runs a channel only under its lease; another replica takes over once it expires", async () => {
    const store = new ChannelStore(pool, schema());
    await store.migrate();
    await store.migrate(); // idempotent
    const s = new TestSigner(0x30);
    const created = createChannel({
      role: "acceptor",
      local: {
        delay: { blocks: 144 },
        minDepth: 1,
        initialFeeRate: 10_000,
        commitKey: s.commitKey,
        finalKey: s.finalKey,
        revocationHash: s.revocationHash(0n),
        nextRevocationHash: s.revocationHash(1n),
      },
      chain: { height: 1000, time: 1_700_000_000 },
    });
    await store.create("c", created);
    await expect(store.create("c", created)).rejects.toMatchObject({ code: "CHANNEL_EXISTS" });
    expect(await store.acquireLease("c", "one", 300)).toBe(true);
    expect(await store.acquireLease("c", "two", 300)).toBe(false);
    const tick: Input = { type: "chain", event: { kind: "block", height: 1001, time: 1_700_000_600 } };
    await expect(store.transition("c", "two", (st) => step(st, tick))).rejects.toBeInstanceOf(StoreError);
    await store.transition("c", "one", (st) => step(st, tick));
    await new Promise((r) => setTimeout(r, 400));
    expect(await store.acquireLease("c", "two", 60_000)).toBe(true);
    await expect(store.transition("c", "one", (st) => step(st, tick))).rejects.toMatchObject({
      code: "LEASE_NOT_HELD",
    });
    await store.transition("c", "two", (st) =>
      step(st, { ...tick, event: { kind: "block", height: 1002, time: 1_700_001_200 } }),
    );
    expect((await store.load("c"))?.chain.height).toBe(1002);
  });
});
