/**
 * A channel's short_channel_id (DESIGN.md 10) as the channel service keeps it: set from the chain
 * watcher's anchor_depth reports (onchain/chain-events.ts), cleared when a reorg takes the anchor
 * out, moved when it confirms elsewhere; found again by `channelByShortId`. Real Postgres.
 */
import { randomBytes } from "node:crypto";
import { sat, type ShortChannelId } from "@ln/bitcoin";
import { createChannel, type Input, type Step } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import type { ChainEvent } from "@ln/proto";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ChannelRegistry } from "../src/channels/registry.js";
import { ChannelStore } from "../src/channels/store.js";
import { ChainEvents, type ChainEventsOptions } from "../src/onchain/chain-events.js";
import { ChainTip } from "../src/onchain/tip.js";
import { testDatabaseUrl } from "@ln/testkit";

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_scid_test_${randomBytes(6).toString("hex")}`;
const store = new ChannelStore(pool, schema);
beforeAll(() => store.migrate());
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

function created(): Step {
  return createChannel({
    role: "creator",
    local: new TestSigner(0x10).openTerms(),
    fundingSat: sat(1_000_000n),
    chain: { height: 100, time: 1_700_000_000 },
  });
}

/** Parts anchor_depth events do not reach: a call to one is a bug in this test's premise. */
const unused = <T extends object>(): T =>
  new Proxy({} as T, {
    get: (_t, p) => {
      throw new Error(`not used by anchor_depth: ${String(p)}`);
    },
  });

const depth = (channelId: string, d: number, position?: ShortChannelId): ChainEvent => ({
  kind: "anchor_depth",
  channelId,
  depth: d,
  ...(position ? { position } : {}),
});

describe("short_channel_id from the chain watcher's anchor_depth", () => {
  const registry = new ChannelRegistry();
  const fed: { id: string; input: Input; scid: ShortChannelId | undefined }[] = [];
  const events = new ChainEvents({
    ledger: unused<ChainEventsOptions["ledger"]>(),
    store,
    registry,
    resolution: unused<ChainEventsOptions["resolution"]>(),
    tip: new ChainTip(),
    feed: async (id, input) => {
      // What the core's step sees stored by then.
      fed.push({ id, input, scid: (await store.row(id))?.shortChannelId });
      return [];
    },
    report: (what, e) => {
      throw new Error(`${what}: ${String(e)}`);
    },
  });

  it("stores the anchor's place, finds the channel by it, clears it on a reorg and moves it", async () => {
    const [a, b] = [`a-${randomBytes(3).toString("hex")}`, `b-${randomBytes(3).toString("hex")}`];
    await store.create(a, created(), { peerNodeId: `peer-${a}` });
    await store.create(b, created(), { peerNodeId: `peer-${b}` });
    registry.hold(a, { peer: `peer-${a}`, signerChannel: 1, awaitingConnection: false });
    expect((await store.row(a))?.shortChannelId).toBeUndefined();

    // 103x2x1: by hand, 103 = 0x000067, 2 = 0x000002, 1 = 0x0001.
    const first = { height: 103, txIndex: 2, outputIndex: 1 };
    await events.onChainEvent(depth(a, 1, first));
    expect((await store.row(a))?.shortChannelId).toEqual(first);
    expect((await store.channelByShortId(0x000067_000002_0001n))?.id).toBe(a);
    expect(await store.channelByShortId(0x000067_000002_0000n)).toBeUndefined();
    // The core is fed after the place is stored.
    expect(fed).toEqual([
      { id: a, input: { type: "chain", event: { kind: "anchor_depth", depth: 1 } }, scid: first },
    ]);

    // The same place again (next depth, a redelivery), and an older watcher's report without one.
    await events.onChainEvent(depth(a, 2, first));
    await events.onChainEvent(depth(a, 3));
    expect((await store.row(a))?.shortChannelId).toEqual(first);

    // A reorg takes the anchor out: no place; then it confirms one block later, elsewhere.
    await events.onChainEvent(depth(a, 0));
    expect((await store.row(a))?.shortChannelId).toBeUndefined();
    expect(await store.channelByShortId(0x000067_000002_0001n)).toBeUndefined();
    const moved = { height: 104, txIndex: 3, outputIndex: 1 };
    await events.onChainEvent(depth(a, 1, moved));
    expect((await store.channelByShortId(0x000068_000003_0001n))?.id).toBe(a);
    expect((await store.rows()).find((r) => r.id === a)?.shortChannelId).toEqual(moved);

    // Another channel reported at that place (a's depth-0 report not seen): the latest wins.
    await events.onChainEvent(depth(b, 1, moved));
    expect((await store.channelByShortId(0x000068_000003_0001n))?.id).toBe(b);
    expect((await store.row(a))?.shortChannelId).toBeUndefined();

    // Watches of claimed outputs ("<channel>#<vout>") are not channels: nothing changes.
    await events.onChainEvent(depth(`${b}#0`, 1, { height: 200, txIndex: 1, outputIndex: 0 }));
    expect((await store.row(b))?.shortChannelId).toEqual(moved);
  });

  it("keeps every 64-bit value, also those above Postgres's signed bigint", async () => {
    const c = `c-${randomBytes(3).toString("hex")}`;
    await store.create(c, created(), { peerNodeId: `peer-${c}` });
    const top = { height: 0xffffff, txIndex: 0xffffff, outputIndex: 0xffff };
    await events.onChainEvent(depth(c, 1, top));
    expect((await store.row(c))?.shortChannelId).toEqual(top);
    expect((await store.channelByShortId(0xffff_ffff_ffff_ffffn))?.id).toBe(c);
    const mid = { height: 0x800000, txIndex: 0, outputIndex: 0 }; // 2^63 exactly
    await events.onChainEvent(depth(c, 1, mid));
    expect((await store.channelByShortId(1n << 63n))?.id).toBe(c);
    expect(await store.channelByShortId(0xffff_ffff_ffff_ffffn)).toBeUndefined();
  });

  it("migration 18: short_channel_id is unique among channels that have one", async () => {
    const [d, e] = [`d-${randomBytes(3).toString("hex")}`, `e-${randomBytes(3).toString("hex")}`];
    await store.create(d, created(), { peerNodeId: `peer-${d}` });
    await store.create(e, created(), { peerNodeId: `peer-${e}` });
    const q = `"${schema}".channels`;
    await pool.query(`UPDATE ${q} SET short_channel_id = 42 WHERE id = $1`, [d]);
    await expect(
      pool.query(`UPDATE ${q} SET short_channel_id = 42 WHERE id = $1`, [e]),
    ).rejects.toMatchObject({
      code: "23505",
    });
    const versions = await pool.query<{ version: number }>(
      `SELECT version FROM "${schema}".schema_migrations`,
    );
    expect(versions.rows.map((r) => r.version)).toContain(18);
  });
});
