/**
 * The payee's settling is started without waiting (node.ts: `void settleIncoming(...)`): when it
 * cannot read the channel (Postgres restarting) it reports the failure and notes it for the retry
 * round, and never rejects — an unhandled rejection ended the channel service in the chaos run
 * (seed 1, a Postgres restart: "the database system is shutting down" from ChannelStore.load).
 */
import { expect, it } from "vitest";
import type { ChannelRegistry } from "../src/channels/registry.js";
import type { ChannelStore } from "../src/channels/store.js";
import { Payee, type PayeeOptions } from "../src/payments/payee.js";

it("a channel that cannot be read is reported and noted, and settleIncoming resolves", async () => {
  const down = new Error("the database system is shutting down");
  const reported: [string, unknown][] = [];
  const noted: [string, unknown][] = [];
  const store = {
    load: (): Promise<never> => Promise.reject(down),
  } as unknown as ChannelStore;
  const registry = { holds: (): boolean => true } as unknown as ChannelRegistry;
  const payee = new Payee({
    store,
    registry,
    report: (what: string, e: unknown) => reported.push([what, e]),
    noteFailure: (id: string, e: unknown) => noted.push([id, e]),
  } as unknown as PayeeOptions);

  await expect(payee.settleIncoming("chan-1")).resolves.toBeUndefined();
  expect(noted).toEqual([["chan-1", down]]);
  expect(reported).toHaveLength(1);
  expect(reported[0]?.[1]).toBe(down);
  expect(reported[0]?.[0]).toContain("chan-1");
});
