/**
 * Leases at scale (channels/leases.ts): a replica starting with many stored channels takes every
 * lease in one round, compares each channel with the signer's records (SignerStatuses, batched)
 * before anything is fed to it, stops the ones behind the signer, resumes only the ones with work
 * left, and asks each peer once to reconnect; renewal, loss and takeover between two replicas.
 * Real Postgres; the signer's records and the node's input are recorded stand-ins.
 */
import { randomBytes } from "node:crypto";
import {
  serializeState,
  step,
  type ChannelState,
  type Input,
  type SignerChannelStatus,
} from "@ln/channel-core";
import { msat } from "@ln/bitcoin";
import { recordingLog, type LogRecord } from "@ln/log";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Leases } from "../src/channels/leases.js";
import { ChannelRegistry } from "../src/channels/registry.js";
import { ChannelStore } from "../src/channels/store.js";
import { rHash } from "../../../packages/channel-core/test/harness.js";
import {
  addHtlc,
  fundedPair,
  settleCommitted,
} from "../../../packages/channel-core/test/conformance-helpers.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 8 });
const schema = `chan_test_${randomBytes(6).toString("hex")}`;
const store = new ChannelStore(pool, schema);

/** The store, telling `onStates` of every batched state read. */
class SpyStore extends ChannelStore {
  constructor(private readonly onStates: (ids: readonly string[]) => void) {
    super(pool, schema);
  }
  override states(ids: readonly string[]): ReturnType<ChannelStore["states"]> {
    this.onStates(ids);
    return super.states(ids);
  }
}
/** Channels per slice of a takeover here: 500 channels make three slices. */
const SLICE = 200;
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const COUNT = 500;
const AWAITING = new Set([3, 77, 250]); // states that await the signer
const TO_SETTLE = new Set([5, 400]); // states with an incoming HTLC for the payee to settle
const BEHIND = new Set([10, 123, 499]); // the signer's records are ahead of these states
const id = (i: number): string => `chan-${String(i).padStart(4, "0")}`;
const peer = (i: number): string => `02${i.toString(16).padStart(64, "0")}`;
const signerChannel = (i: number): number => 1000 + i;

/** Real states: a channel in normal operation after a payment, then one awaiting the signer. */
function states(): { idle: ChannelState; awaiting: ChannelState; toSettle: ChannelState } {
  const p = fundedPair();
  const idle = structuredClone(p.a.state);
  // A offers an HTLC and commits: its state now awaits the signer's signature of B's commitment.
  let s = step(structuredClone(idle), {
    type: "command",
    command: { kind: "add_htlc", amountMsat: msat(5_000_000n), rHash: rHash(7), expiry: { blocks: 2000 } },
  }).state;
  s = step(s, { type: "command", command: { kind: "commit" } }).state;
  // B holds an HTLC of A's, committed both ways: the payee's to fulfil or fail.
  addHtlc(p, p.a, 8, 3_000_000);
  settleCommitted(p);
  return { idle, awaiting: s, toSettle: structuredClone(p.b.state) };
}

/** What the signer records of a state it is not ahead of: at most the one step the shell allows. */
const inStep = (s: ChannelState): SignerChannelStatus => {
  const lc = s.localCommit?.number ?? 0n;
  return {
    highestRevealed: lc > 0n ? lc - 1n : undefined,
    highestLocalSigned: lc,
    highestRemoteSigned: s.remoteCommit?.number,
  };
};

class Replica {
  readonly registry = new ChannelRegistry();
  /** Every SignerStatuses call, and every input fed, in order. */
  readonly events: (
    | { kind: "statuses"; channels: number[] }
    | { kind: "states"; ids: string[] }
    | { kind: "checked"; id: string }
    | { kind: "feed"; id: string; input: Input }
  )[] = [];
  readonly resyncs: string[] = [];
  readonly logs: LogRecord[] = [];
  readonly reports: string[] = [];
  readonly leases: Leases;
  /** The signer does not answer (SignerStatuses fails). */
  signerDown = false;

  constructor(
    readonly replicaId: string,
    records: Map<number, SignerChannelStatus>,
    leaseMs = 60_000,
  ) {
    this.leases = new Leases({
      store: new SpyStore((ids) => void this.events.push({ kind: "states", ids: [...ids] })),
      adoptSlice: SLICE,
      registry: this.registry,
      peers: {
        connect: () => Promise.resolve(undefined),
        list: () => Promise.resolve([]),
        resync: (nodeId) => void this.resyncs.push(nodeId),
      },
      replicaId,
      leaseMs,
      feed: (channelId, input) => {
        this.events.push({ kind: "feed", id: channelId, input });
        return Promise.resolve([]);
      },
      signerStatuses: (channels) => {
        if (this.signerDown) return Promise.reject(new Error("signer unreachable (test)"));
        this.events.push({ kind: "statuses", channels: [...channels] });
        return Promise.resolve(
          new Map(channels.flatMap((c) => (records.has(c) ? [[c, records.get(c)!] as const] : []))),
        );
      },
      signerChecked: (channelId) => void this.events.push({ kind: "checked", id: channelId }),
      log: recordingLog((r) => this.logs.push(r)),
      report: (what) => void this.reports.push(what),
    });
  }

  feeds(): { id: string; type: Input["type"] }[] {
    return this.events.flatMap((e) => (e.kind === "feed" ? [{ id: e.id, type: e.input.type }] : []));
  }
}

const leaseOwners = async (): Promise<Map<string, { owner: string | null; held: boolean }>> => {
  const r = await pool.query<{ id: string; lease_owner: string | null; held: boolean | null }>(
    `SELECT id, lease_owner, (lease_expires > now()) AS held FROM "${schema}".channels`,
  );
  return new Map(r.rows.map((x) => [x.id, { owner: x.lease_owner, held: x.held === true }]));
};

/** Lets the queued resumes (background, a few at a time) run. */
const settleResumes = async (r: Replica): Promise<void> => {
  for (let i = 0; i < 1000 && r.leases.pendingResumes > 0; i++) await new Promise((x) => setImmediate(x));
};

const records = new Map<number, SignerChannelStatus>();
let stored: Map<string, ChannelState>;

beforeAll(async () => {
  await store.migrate();
  const { idle, awaiting, toSettle } = states();
  expect(awaiting.awaiting).toBe("sign_remote_commitment");
  stored = new Map();
  for (let i = 0; i < COUNT; i++) {
    const s = AWAITING.has(i) ? awaiting : TO_SETTLE.has(i) ? toSettle : idle;
    stored.set(id(i), s);
    const own = inStep(s);
    records.set(
      signerChannel(i),
      // Behind: the signer revealed the preimage of the state's current commitment.
      BEHIND.has(i) ? { ...own, highestRevealed: s.localCommit?.number } : own,
    );
  }
  const ids = [...Array(COUNT).keys()];
  await pool.query(
    `INSERT INTO "${schema}".channels (id, state, phase, peer_node_id, signer_channel)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::integer[])`,
    [
      ids.map(id),
      ids.map((i) => serializeState(stored.get(id(i))!)),
      ids.map((i) => stored.get(id(i))!.phase),
      ids.map(peer),
      ids.map(signerChannel),
    ],
  );
});

describe("a replica starting with 500 stored channels", () => {
  const one = new Replica("replica-1", records);

  it("holds every lease after one round, each channel compared with the signer before any input", async () => {
    await one.leases.leaseRound();
    await settleResumes(one);
    const owners = await leaseOwners();
    expect(owners.size).toBe(COUNT);
    for (const [, o] of owners) expect(o).toEqual({ owner: "replica-1", held: true });
    for (let i = 0; i < COUNT; i++) expect(one.registry.holds(id(i))).toBe(true);

    // One SignerStatuses call per slice, together asking for every channel once.
    const calls = one.events.flatMap((e) => (e.kind === "statuses" ? [e.channels] : []));
    expect(calls).toHaveLength(Math.ceil(COUNT / SLICE));
    expect(calls.flat().sort()).toEqual([...Array(COUNT).keys()].map(signerChannel).sort());

    // For every channel: the signer's records asked, then its state read, then marked compared
    // (held), before its first input.
    const at = (pred: (e: (typeof one.events)[number]) => boolean): number => one.events.findIndex(pred);
    for (let i = 0; i < COUNT; i++) {
      const asked = at((e) => e.kind === "statuses" && e.channels.includes(signerChannel(i)));
      const read = at((e) => e.kind === "states" && e.ids.includes(id(i)));
      const checked = at((e) => e.kind === "checked" && e.id === id(i));
      const fed = at((e) => e.kind === "feed" && e.id === id(i));
      expect(asked).toBeGreaterThanOrEqual(0);
      expect(read).toBeGreaterThan(asked);
      expect(checked).toBeGreaterThan(read);
      if (fed >= 0) expect(fed).toBeGreaterThan(checked);
    }
  });

  it("stops the channels behind the signer, and resumes only those with work left", () => {
    const feeds = one.feeds();
    const behind = feeds.filter((f) => f.type === "behind").map((f) => f.id);
    const resumed = feeds.filter((f) => f.type === "resume").map((f) => f.id);
    expect(new Set(behind)).toEqual(new Set([...BEHIND].map(id)));
    expect(new Set(resumed)).toEqual(new Set([...AWAITING, ...TO_SETTLE].map(id)));
    expect(feeds).toHaveLength(BEHIND.size + AWAITING.size + TO_SETTLE.size);
    const problem = one.events.find((e) => e.kind === "feed" && e.input.type === "behind");
    expect(problem?.kind === "feed" && problem.input.type === "behind" && problem.input.problem).toMatch(
      /the signer revealed the revocation preimage of our commitment/,
    );
    // Each peer asked once to reconnect.
    expect(one.resyncs).toHaveLength(COUNT);
    expect(new Set(one.resyncs)).toEqual(new Set([...Array(COUNT).keys()].map(peer)));
    expect(one.reports).toEqual([]);
  });

  it("renews every lease in the next round without comparing or feeding again", async () => {
    const before = one.events.length;
    const expiry = async (): Promise<number> =>
      Number(
        (
          await pool.query<{ e: string }>(
            `SELECT extract(epoch FROM min(lease_expires))::text AS e FROM "${schema}".channels`,
          )
        ).rows[0]?.e,
      );
    const first = await expiry();
    await one.leases.leaseRound();
    expect(await expiry()).toBeGreaterThan(first);
    expect(one.events.length).toBe(before); // no statuses asked, no states read, nothing fed
    expect(one.registry.heldIds()).toHaveLength(COUNT);
  });

  it("a lease lost to another replica is released here; a second replica takes all once the first stops", async () => {
    const two = new Replica("replica-2", records);
    await two.leases.leaseRound();
    expect(two.registry.heldIds()).toEqual([]); // every lease is replica-1's, unexpired
    expect(two.events).toEqual([]);

    // replica-1's lease on one channel expired and replica-2 took it.
    await pool.query(
      `UPDATE "${schema}".channels SET lease_owner = 'replica-2', lease_expires = now() + interval '1 minute' WHERE id = $1`,
      [id(42)],
    );
    await one.leases.leaseRound();
    expect(one.registry.holds(id(42))).toBe(false);
    expect(one.registry.heldIds()).toHaveLength(COUNT - 1);
    expect(one.logs.some((l) => l.msg === `channel ${id(42)}: lease lost to another replica`)).toBe(true);
    expect((await leaseOwners()).get(id(42))?.owner).toBe("replica-2");

    await one.leases.releaseAll();
    expect(one.registry.heldIds()).toEqual([]);
    await two.leases.leaseRound();
    await settleResumes(two);
    for (const [, o] of await leaseOwners()) expect(o).toEqual({ owner: "replica-2", held: true });
    // id(42)'s lease was already replica-2's, yet not run there: it is adopted with the others.
    expect(two.registry.heldIds()).toHaveLength(COUNT);
    const calls = two.events.flatMap((e) => (e.kind === "statuses" ? [e.channels] : []));
    expect(calls.flat()).toHaveLength(COUNT);
    expect(
      new Set(
        two
          .feeds()
          .filter((f) => f.type === "behind")
          .map((f) => f.id),
      ),
    ).toEqual(new Set([...BEHIND].map(id)));
  });

  it("a channel whose signer channel the signer does not know is not run, and is reported", async () => {
    const missing = new Map(records);
    missing.delete(signerChannel(7));
    const three = new Replica("replica-3", missing);
    await pool.query(`UPDATE "${schema}".channels SET lease_owner = NULL, lease_expires = NULL`);
    await three.leases.leaseRound();
    await settleResumes(three);
    expect(three.registry.holds(id(7))).toBe(false);
    expect(three.registry.heldIds()).toHaveLength(COUNT - 1);
    expect(three.reports).toEqual([`channel ${id(7)}`]);
    expect(three.feeds().some((f) => f.id === id(7))).toBe(false);
  });

  it("with the signer unreachable nothing is run (the leases are kept); the next round takes them in", async () => {
    const four = new Replica("replica-4", records);
    await pool.query(`UPDATE "${schema}".channels SET lease_owner = NULL, lease_expires = NULL`);
    four.signerDown = true;
    await four.leases.leaseRound();
    expect(four.registry.heldIds()).toEqual([]);
    expect(four.feeds()).toEqual([]);
    expect(four.resyncs).toEqual([]);
    expect(four.reports).toHaveLength(1); // one report for the round, not one per channel
    for (const [, o] of await leaseOwners()) expect(o).toEqual({ owner: "replica-4", held: true });

    four.signerDown = false;
    await four.leases.leaseRound();
    await settleResumes(four);
    expect(four.registry.heldIds()).toHaveLength(COUNT);
    expect(
      new Set(
        four
          .feeds()
          .filter((f) => f.type === "behind")
          .map((f) => f.id),
      ),
    ).toEqual(new Set([...BEHIND].map(id)));
  });
});
