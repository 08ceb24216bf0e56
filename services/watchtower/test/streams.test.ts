import { randomBytes } from "node:crypto";
import { connect, type JetStreamManager, type NatsConnection } from "nats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  CHAIN_DUPLICATE_WINDOW_NS,
  chainEventSubjects,
  ensureChainStream,
  ensureRecordsStream,
} from "../src/streams.js";
import { testNatsUrl } from "@ln/testkit";

const run = randomBytes(4).toString("hex");
const PREFIX = `streams_${run}.chain`;
const STREAM = `STREAMS_${run}`;
let nc: NatsConnection;
let jsm: JetStreamManager;

beforeAll(async () => {
  nc = await connect({ servers: testNatsUrl() });
  jsm = await nc.jetstreamManager();
});
afterAll(async () => {
  await jsm?.streams.delete(STREAM).catch(() => undefined);
  await jsm?.streams.delete(`${STREAM}_TOWER`).catch(() => undefined);
  await nc?.close();
});

describe("chain event stream", () => {
  it("lists exactly the event subjects, none of the request subjects", () => {
    expect(chainEventSubjects("lab.a.chain")).toEqual([
      "lab.a.chain.block_connected",
      "lab.a.chain.block_disconnected",
      "lab.a.chain.anchor_depth",
      "lab.a.chain.anchor_spent",
      "lab.a.chain.wallet_output",
    ]);
  });

  it("creates the stream, is idempotent, and corrects an existing stream's subjects", async () => {
    const created = await ensureChainStream(jsm, STREAM, PREFIX);
    expect(created.config.subjects).toEqual(chainEventSubjects(PREFIX));
    expect(created.config.duplicate_window).toBe(CHAIN_DUPLICATE_WINDOW_NS);
    const again = await ensureChainStream(jsm, STREAM, PREFIX);
    expect(again.config).toEqual(created.config);

    // An older stream that took every subject under the prefix, requests too: narrowed, data kept.
    await jsm.streams.update(STREAM, { ...again.config, subjects: [`${PREFIX}.>`], duplicate_window: 120e9 });
    const js = nc.jetstream();
    await js.publish(`${PREFIX}.block_connected`, new Uint8Array([1]), { msgID: "m1" });
    const fixed = await ensureChainStream(jsm, STREAM, PREFIX);
    expect(fixed.config.subjects).toEqual(chainEventSubjects(PREFIX));
    expect(fixed.config.duplicate_window).toBe(CHAIN_DUPLICATE_WINDOW_NS);
    expect(fixed.state.messages).toBe(1);
    // Duplicates by message id are dropped; a request subject is not captured (core request/reply).
    const dup = await js.publish(`${PREFIX}.block_connected`, new Uint8Array([1]), { msgID: "m1" });
    expect(dup.duplicate).toBe(true);
    await expect(nc.request(`${PREFIX}.tip`, new Uint8Array(0), { timeout: 500 })).rejects.toThrow();
    expect((await jsm.streams.info(STREAM)).state.messages).toBe(1);
  });
});

describe("revocation records stream", () => {
  it("captures the records subject and drops a re-published record (same locator) for a day", async () => {
    const subject = `streams_${run}.tower.records`;
    const created = await ensureRecordsStream(jsm, `${STREAM}_TOWER`, subject);
    expect(created.config.subjects).toEqual([subject]);
    expect(created.config.duplicate_window).toBe(24 * 60 * 60 * 1e9);
    expect((await ensureRecordsStream(jsm, `${STREAM}_TOWER`, subject)).config).toEqual(created.config);
    const js = nc.jetstream();
    const locator = randomBytes(16).toString("hex");
    expect((await js.publish(subject, new Uint8Array([1]), { msgID: locator })).duplicate).toBe(false);
    expect((await js.publish(subject, new Uint8Array([1]), { msgID: locator })).duplicate).toBe(true);
  });
});
