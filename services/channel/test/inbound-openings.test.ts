import { randomBytes } from "node:crypto";
import { sat } from "@ln/bitcoin";
import { createChannel, step, type ChannelState, type Step } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { DEFAULT_INBOUND_OPENING_LIMITS, InboundOpenings } from "../src/inbound-openings.js";
import { ChannelStore } from "../src/store.js";

describe("bounds on inbound openings", () => {
  it("has named defaults: 20 opening at once, 3 per peer and 60 in all per hour", () => {
    expect(DEFAULT_INBOUND_OPENING_LIMITS).toEqual({
      maxOpening: 20,
      perPeer: 3,
      total: 60,
      windowMs: 3_600_000,
    });
  });

  it("refuses beyond each bound with its code, and admits again once the window has passed", () => {
    let now = 1_000_000;
    const limits = { maxOpening: 5, perPeer: 2, total: 3, windowMs: 60_000 };
    const o = new InboundOpenings(limits, () => now);
    expect(o.admit("p1", 0)).toEqual({ ok: true });
    expect(o.admit("p1", 1)).toEqual({ ok: true });
    expect(o.admit("p1", 2)).toMatchObject({ ok: false, code: "PEER_RATE" });
    expect(o.admit("p2", 5)).toMatchObject({ ok: false, code: "TOO_MANY_OPENING" });
    expect(o.admit("p2", 2)).toEqual({ ok: true });
    expect(o.admit("p3", 2)).toMatchObject({ ok: false, code: "TOTAL_RATE" });
    // A refusal is not counted: p3 is admitted as soon as the window frees room.
    now += 59_999;
    expect(o.admit("p3", 0)).toMatchObject({ ok: false, code: "TOTAL_RATE" });
    now += 1;
    expect(o.admit("p3", 0)).toEqual({ ok: true });
    expect(o.admit("p1", 0)).toEqual({ ok: true });
  });
});

// Real Postgres (trust auth); own schema, dropped at the end.
const pool = new pg.Pool({ connectionString: "postgres://postgres@127.0.0.1:5432/test", max: 4 });
const schema = `chan_test_${randomBytes(6).toString("hex")}`;
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

function created(role: "creator" | "acceptor"): Step {
  const s = new TestSigner(role === "creator" ? 0x10 : 0x20);
  return createChannel({
    role,
    local: {
      delay: { blocks: 144 },
      minDepth: 1,
      initialFeeRate: 10_000,
      commitKey: s.commitKey,
      finalKey: s.finalKey,
      revocationHash: s.revocationHash(0n),
      nextRevocationHash: s.revocationHash(1n),
    },
    ...(role === "creator" ? { fundingSat: sat(1_000_000n) } : {}),
    chain: { height: 100, time: 1_700_000_000 },
  });
}

describe("ChannelStore.forgetFailedOpening", () => {
  it("deletes only a peer's opening that failed before we signed its anchor, under our lease", async () => {
    const store = new ChannelStore(pool, schema);
    await store.migrate();
    const owner = "replica-1";
    let n = 0;
    /** A stored channel: its creation, then `change` applied as one transition. */
    const stored = async (
      role: "creator" | "acceptor",
      change: (s: ChannelState) => void,
    ): Promise<string> => {
      const id = `c${n++}`;
      await store.create(id, created(role), { peerNodeId: `peer-${id}`, owner, leaseMs: 60_000 });
      await store.transition(id, owner, (s) => {
        const failed = step(s, { type: "pkt", pkt: { kind: "error", problem: "bye" } }).state;
        change(failed);
        return { state: failed, outputs: [] };
      });
      return id;
    };
    const failedEarly = await stored("acceptor", () => undefined);
    const signed = await stored("acceptor", (s) => void (s.opening.anchorSigned = true));
    const ours = await stored("creator", () => undefined);
    const live = await stored("acceptor", (s) => void (s.phase = "opening"));
    expect((await store.row(failedEarly))?.phase).toBe("failed");

    expect(await store.forgetFailedOpening(failedEarly, "replica-2")).toBe(false); // not its lease
    expect(await store.forgetFailedOpening(signed, owner)).toBe(false); // the anchor may be out
    expect(await store.forgetFailedOpening(ours, owner)).toBe(false); // ours: the operator's to see
    expect(await store.forgetFailedOpening(live, owner)).toBe(false);
    for (const id of [failedEarly, signed, ours, live]) expect(await store.row(id)).toBeDefined();
    expect((await store.outboxAfter(failedEarly, 0)).length).toBe(1); // our open_channel

    expect(await store.forgetFailedOpening(failedEarly, owner)).toBe(true);
    expect(await store.row(failedEarly)).toBeUndefined();
    expect(await store.outboxAfter(failedEarly, 0)).toEqual([]);
    expect((await store.rows()).map((r) => r.id).sort()).toEqual([signed, ours, live].sort());
  });
});
