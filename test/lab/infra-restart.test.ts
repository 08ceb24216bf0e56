/**
 * restart() of the infrastructure a run starts itself (the chaos run's Postgres and NATS
 * restarts): same URL, same data — a table's row survives Postgres's, a JetStream stream and its
 * message survive nats-server's SIGKILL and respawn.
 */
import { connect } from "nats";
import pg from "pg";
import { describe, expect, it } from "vitest";
import { ensureNats, ensurePostgres, findNatsServer, pingNatsJetStream, pingPostgres } from "./infra.js";

const quiet = (): void => undefined;

describe("restart() of what the run started", () => {
  it("embedded Postgres: same URL, the data kept", async (ctx) => {
    let h;
    try {
      h = await ensurePostgres({ forceEmbedded: true, log: quiet });
    } catch (e) {
      console.warn(
        `skipping: the embedded Postgres cannot run here: ${e instanceof Error ? e.message : String(e)}`,
      );
      ctx.skip();
      return;
    }
    try {
      expect(h.restart).toBeDefined();
      const c1 = new pg.Client({ connectionString: h.url });
      await c1.connect();
      await c1.query("CREATE TABLE kept (v text)");
      await c1.query("INSERT INTO kept VALUES ('before the restart')");
      await c1.end();
      await h.restart?.();
      await pingPostgres(h.url);
      const c2 = new pg.Client({ connectionString: h.url });
      await c2.connect();
      const r = await c2.query<{ v: string }>("SELECT v FROM kept");
      await c2.end();
      expect(r.rows).toEqual([{ v: "before the restart" }]);
    } finally {
      await h.stop();
    }
    await expect(pingPostgres(h.url, 1000)).rejects.toThrow();
  }, 120_000);

  it("nats-server: same URL, JetStream streams kept", async (ctx) => {
    if (findNatsServer() === undefined) {
      console.warn("skipping: nats-server is not installed");
      ctx.skip();
      return;
    }
    const h = await ensureNats({ forceSpawn: true, log: quiet, allowInstall: false });
    try {
      expect(h.restart).toBeDefined();
      const nc1 = await connect({ servers: h.url, reconnect: false });
      const jsm1 = await nc1.jetstreamManager();
      await jsm1.streams.add({ name: "KEPT", subjects: ["kept.>"] });
      await nc1.jetstream().publish("kept.one", new TextEncoder().encode("before the restart"));
      await nc1.close();
      await h.restart?.();
      await pingNatsJetStream(h.url);
      const nc2 = await connect({ servers: h.url, reconnect: false });
      const jsm2 = await nc2.jetstreamManager();
      const msg = await jsm2.streams.getMessage("KEPT", { seq: 1 });
      await nc2.close();
      expect(new TextDecoder().decode(msg.data)).toBe("before the restart");
    } finally {
      await h.stop();
    }
    await expect(pingNatsJetStream(h.url, 1000)).rejects.toThrow();
  }, 60_000);
});
