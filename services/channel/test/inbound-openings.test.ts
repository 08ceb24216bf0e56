import { randomBytes } from "node:crypto";
import { sat } from "@ln/bitcoin";
import { createChannel, step, type ChannelState, type Step } from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { checkInboundOpening, DEFAULT_INBOUND_OPENING_LIMITS } from "../src/peers/inbound-openings.js";
import { ChannelStore } from "../src/channels/store.js";
import { testDatabaseUrl } from "@ln/testkit";

describe("bounds on inbound openings", () => {
  it("has named defaults: 20 opening at once; 3 failed openings per peer and 60 in all per hour", () => {
    expect(DEFAULT_INBOUND_OPENING_LIMITS).toEqual({
      maxOpening: 20,
      perPeerFailures: 3,
      totalFailures: 60,
      windowMs: 3_600_000,
    });
  });

  it("refuses at each bound with its code", () => {
    const l = { maxOpening: 5, perPeerFailures: 2, totalFailures: 3, windowMs: 60_000 };
    const at = (opening: number, peerFailures: number, totalFailures: number) =>
      checkInboundOpening(l, { opening, peerFailures, totalFailures });
    expect(at(4, 1, 2)).toEqual({ ok: true });
    expect(at(5, 0, 0)).toMatchObject({ ok: false, code: "TOO_MANY_OPENING" });
    expect(at(0, 2, 2)).toMatchObject({ ok: false, code: "PEER_FAILURES" });
    expect(at(0, 0, 3)).toMatchObject({ ok: false, code: "TOTAL_FAILURES" });
  });
});

// Real Postgres (trust auth); own schema, dropped at the end.
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_test_${randomBytes(6).toString("hex")}`;
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

function created(role: "creator" | "acceptor"): Step {
  const s = new TestSigner(role === "creator" ? 0x10 : 0x20);
  return createChannel({
    role,
    local: s.openTerms(),
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

    const stats = (): ReturnType<ChannelStore["inboundOpeningStats"]> =>
      store.inboundOpeningStats(`peer-${failedEarly}`, 3_600_000);
    expect(await stats()).toEqual({ opening: 1, peerFailures: 0, totalFailures: 0 }); // `live`

    expect(await store.forgetFailedOpening(failedEarly, owner)).toBe(true);
    expect(await store.row(failedEarly)).toBeUndefined();
    expect(await store.outboxAfter(failedEarly, 0)).toEqual([]);
    expect((await store.rows()).map((r) => r.id).sort()).toEqual([signed, ours, live].sort());
    // Only that the peer's opening failed is kept, for the rate limit, and only for the window.
    expect(await stats()).toEqual({ opening: 1, peerFailures: 1, totalFailures: 1 });
    expect(await store.inboundOpeningStats("another peer", 3_600_000)).toEqual({
      opening: 1,
      peerFailures: 0,
      totalFailures: 1,
    });
    await pool.query(
      `UPDATE "${schema}".forgotten_openings SET forgotten_at = now() - interval '3601 seconds'`,
    );
    expect(await stats()).toEqual({ opening: 1, peerFailures: 0, totalFailures: 0 });
    expect((await pool.query(`SELECT 1 FROM "${schema}".forgotten_openings`)).rowCount).toBe(0);
  });
});
