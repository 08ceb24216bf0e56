import { randomBytes } from "node:crypto";
import { sat, txidFromHex } from "@ln/bitcoin";
import {
  ackFor,
  createChannel,
  DEFAULT_POLICY,
  step,
  type ChannelState,
  type Output,
  type Step,
} from "@ln/channel-core";
import { TestSigner } from "@ln/channel-core/testing";
import type { Pkt } from "@ln/proto";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import { ChannelRunner } from "../src/channels/runner.js";
import { ChannelStore } from "../src/channels/store.js";
import { testDatabaseUrl } from "@ln/testkit";

// Real Postgres (trust auth); own schema, dropped at the end.
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `chan_test_${randomBytes(6).toString("hex")}`;
afterAll(async () => {
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const sent = (st: Step): Pkt[] => st.outputs.flatMap((o) => (o.type === "send" ? [o.pkt] : []));

describe("messages deferred while the signer is down, through the store and runner", () => {
  it("keeps maxDeferredPkts of them durably, then hands the shell a disconnect and keeps no more", async () => {
    // The creator, run by hand with its own signer: its open_channel and open_anchor.
    const aSigner = new TestSigner(0x10);
    const bSigner = new TestSigner(0x20);
    const chain = { height: 100, time: 1_700_000_000 };
    let a = createChannel({
      role: "creator",
      local: aSigner.openTerms(),
      fundingSat: sat(1_000_000n),
      chain,
    });
    const aOpen = sent(a)[0] as Pkt;
    const bCreated = createChannel({ role: "acceptor", local: bSigner.openTerms(), chain });
    a = step(a.state, { type: "pkt", pkt: sent(bCreated)[0] as Pkt });
    a = step(a.state, {
      type: "anchor_built",
      outpoint: { txid: txidFromHex("ab".repeat(32)), vout: 0 },
      amount: sat(1_000_000n),
    });
    const request = a.outputs.find((o) => o.type === "signer");
    if (request?.type !== "signer") throw new Error("no signer request");
    a = step(a.state, { type: "signer", reply: aSigner.answer(request.request) });
    const openAnchor = sent(a)[0] as Pkt;
    expect(openAnchor.kind).toBe("open_anchor");

    // The acceptor in the store, run by the runner with its signer down.
    const store = new ChannelStore(pool, schema);
    await store.migrate();
    await store.create("b", bCreated, { peerNodeId: "a", owner: "r1", leaseMs: 60_000 });
    const effects: Output["type"][] = [];
    const runner = new ChannelRunner(
      store,
      "r1",
      { answer: () => Promise.reject(new Error("signer unreachable (test)")) },
      { send: () => Promise.resolve() },
      (_id, o) => Promise.resolve(void effects.push(o.type)),
    );
    await runner.input("b", { type: "pkt", pkt: aOpen });
    await expect(runner.input("b", { type: "pkt", pkt: openAnchor })).rejects.toThrow(/signer unreachable/);
    const waiting = (await store.load("b")) as ChannelState;
    expect(waiting.awaiting).toBe("sign_remote_commitment");

    const bound = DEFAULT_POLICY.maxDeferredPkts;
    for (let i = 0; i < bound; i++) await runner.input("b", { type: "pkt", pkt: { kind: "open_complete" } });
    const full = (await store.load("b")) as ChannelState;
    expect(full.deferred).toHaveLength(bound);
    expect(ackFor(full)).toBe(waiting.receivedCount + bound);
    expect(effects).toEqual([]);

    const over = await runner.input("b", { type: "pkt", pkt: { kind: "open_complete" } });
    expect(over.outputs.map((o) => o.type)).toEqual(["disconnect"]);
    expect(effects).toEqual(["disconnect"]);
    const after = (await store.load("b")) as ChannelState;
    expect(after.deferred).toHaveLength(bound);
    expect(after.shedding).toBe(true);
  }, 120_000);
});
