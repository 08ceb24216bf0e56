import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../src/config.js";

const full = {
  CHANNEL_DATABASE_URL: "postgres://channel@db/node",
  LN_PREFIX: "ln.node1",
  SIGNER_ADDR: "signer:50051",
  SIGNER_CLIENT_CA: "/tls/ca.crt",
  SIGNER_CLIENT_CERT: "/tls/tls.crt",
  SIGNER_CLIENT_KEY: "/tls/tls.key",
  CHANNEL_API_LISTEN: "0.0.0.0:8080",
};

describe("channel service config", () => {
  it("reads every setting, with defaults", () => {
    const c = loadConfig(full);
    expect(c.databaseSchema).toBe("channel");
    expect(c.nats).toEqual({ servers: "nats://127.0.0.1:4222", auth: { kind: "none" } });
    expect(c.apiListen).toEqual({ host: "0.0.0.0", port: 8080 });
    expect(c.opsListen).toBeUndefined();
    expect(c.leaseMs).toBe(15_000);
    expect(c.network).toBe("regtest");
    expect(c.terms).toEqual({ delayBlocks: 144, minDepth: 1, feeRate: 10_000 });
    expect(c.inboundOpenings).toEqual({
      maxOpening: 20,
      perPeerFailures: 3,
      totalFailures: 60,
      windowMs: 3_600_000,
    });
    expect(
      loadConfig({
        ...full,
        CHANNEL_MAX_INBOUND_OPENING: "5",
        CHANNEL_INBOUND_FAILURES_PER_PEER: "1",
        CHANNEL_INBOUND_FAILURES_TOTAL: "10",
        CHANNEL_INBOUND_WINDOW_S: "600",
      }).inboundOpenings,
    ).toEqual({ maxOpening: 5, perPeerFailures: 1, totalFailures: 10, windowMs: 600_000 });
    expect(c.adminToken).toBeUndefined();
    expect(c.signer.serverName).toBeUndefined();
    expect(c.reconnectMs).toBe(5_000);
    expect(loadConfig({ ...full, CHANNEL_RECONNECT_S: "60" }).reconnectMs).toBe(60_000);
    expect(() => loadConfig({ ...full, CHANNEL_RECONNECT_S: "0" })).toThrow(/CHANNEL_RECONNECT_S/);
  });

  it("reads the default forwarding policy; the cltv delta follows CHANNEL_DELAY_BLOCKS", () => {
    expect(loadConfig(full).forwarding).toEqual({
      feeBaseMsat: 1000n,
      feeProportionalMillionths: 1n,
      cltvExpiryDelta: 144 + 40,
      htlcMinimumMsat: 1000n,
    });
    expect(loadConfig({ ...full, CHANNEL_DELAY_BLOCKS: "10" }).forwarding.cltvExpiryDelta).toBe(50);
    expect(
      loadConfig({
        ...full,
        FORWARD_FEE_BASE_MSAT: "0",
        FORWARD_FEE_PROPORTIONAL_MILLIONTHS: "2500",
        FORWARD_CLTV_EXPIRY_DELTA: "300",
        FORWARD_HTLC_MINIMUM_MSAT: "1",
      }).forwarding,
    ).toEqual({
      feeBaseMsat: 0n,
      feeProportionalMillionths: 2500n,
      cltvExpiryDelta: 300,
      htlcMinimumMsat: 1n,
    });
    expect(() => loadConfig({ ...full, FORWARD_CLTV_EXPIRY_DELTA: "0" })).toThrow(
      /FORWARD_CLTV_EXPIRY_DELTA/,
    );
    expect(() => loadConfig({ ...full, FORWARD_FEE_BASE_MSAT: "-1" })).toThrow(/FORWARD_FEE_BASE_MSAT/);
  });

  it("reads the status events' settings, with defaults and the stream named after LN_PREFIX", () => {
    expect(loadConfig(full).events).toEqual({
      maxStreams: 100,
      heartbeatMs: 15_000,
      stallMs: 60_000,
      tokenCheckMs: 30_000,
      pollMs: 5000,
      stream: "LN_NODE1_EVENTS",
    });
    expect(
      loadConfig({
        ...full,
        LN_PREFIX: "lab.a-b",
        CHANNEL_EVENT_STREAMS_MAX: "3",
        CHANNEL_EVENT_HEARTBEAT_S: "2",
        CHANNEL_EVENT_STALL_S: "7",
        CHANNEL_EVENT_TOKEN_CHECK_S: "1",
        CHANNEL_EVENT_POLL_MS: "250",
      }).events,
    ).toEqual({
      maxStreams: 3,
      heartbeatMs: 2000,
      stallMs: 7000,
      tokenCheckMs: 1000,
      pollMs: 250,
      stream: "LAB_A_B_EVENTS",
    });
    expect(loadConfig({ ...full, CHANNEL_EVENTS_STREAM: "MY-EVENTS" }).events.stream).toBe("MY-EVENTS");
    let error: unknown;
    try {
      loadConfig({
        ...full,
        CHANNEL_EVENTS_STREAM: "a.b",
        CHANNEL_EVENT_HEARTBEAT_S: "0",
        CHANNEL_EVENT_POLL_MS: "fast",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as Error).message.split("\n");
    for (const name of ["CHANNEL_EVENTS_STREAM", "CHANNEL_EVENT_HEARTBEAT_S", "CHANNEL_EVENT_POLL_MS"])
      expect(
        lines.filter((l) => l.includes(name)),
        name,
      ).toHaveLength(1);
  });

  it("reports every problem at once, one line each, naming the variable", () => {
    let error: unknown;
    try {
      loadConfig({
        ...full,
        CHANNEL_DATABASE_URL: "",
        SIGNER_ADDR: undefined,
        CHANNEL_API_LISTEN: "8080",
        CHANNEL_OPS_LISTEN: "9090",
        CHANNEL_LEASE_MS: "5s",
        CHANNEL_ADMIN_TOKEN: "short",
        CHANNEL_NETWORK: "mainnet",
        LN_PREFIX: "a..b",
      });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const lines = (error as Error).message.split("\n").slice(1);
    expect(lines.map((l) => l.trim().split(" ")[0])).toEqual([
      "CHANNEL_DATABASE_URL",
      "LN_PREFIX",
      "SIGNER_ADDR",
      "CHANNEL_API_LISTEN",
      "CHANNEL_OPS_LISTEN",
      "CHANNEL_ADMIN_TOKEN",
      "CHANNEL_NETWORK",
      "CHANNEL_LEASE_MS",
    ]);
  });

  it("reads the gossip settings: defaults, then GOSSIP_*", () => {
    expect(loadConfig(full).gossip).toEqual({
      announceDepth: 6,
      alias: undefined,
      addresses: [],
      refreshSeconds: 86_400,
      rateBurst: 200,
      ratePerSecond: 20,
      recheckPerBlock: 50,
      syncMax: 20_000,
    });
    const c = loadConfig({
      ...full,
      GOSSIP_ANNOUNCE_DEPTH: "3",
      GOSSIP_ALIAS: "carol",
      GOSSIP_ADDRESSES: "node.example:9735, [::1]:9736",
      GOSSIP_REFRESH_S: "3600",
      GOSSIP_DISABLE_AFTER_S: "600",
    });
    expect(c.gossip).toMatchObject({
      disableAfterSeconds: 600,
      announceDepth: 3,
      alias: "carol",
      addresses: ["node.example:9735", "[::1]:9736"],
      refreshSeconds: 3600,
    });
    expect(() => loadConfig({ ...full, GOSSIP_ALIAS: "x".repeat(33) })).toThrow(/GOSSIP_ALIAS/);
    expect(() => loadConfig({ ...full, GOSSIP_ADDRESSES: "a:1,b:2,c:3,d:4,e:5" })).toThrow(/at most 4/);
    expect(() => loadConfig({ ...full, GOSSIP_ADDRESSES: "no-port" })).toThrow(/not host:port/);
  });

  it("accepts an operator's admin token of 24 printable characters or more", () => {
    expect(loadConfig({ ...full, CHANNEL_ADMIN_TOKEN: "x".repeat(24) }).adminToken).toBe("x".repeat(24));
  });

  it("CHANNEL_OPS_LISTEN: where /metrics, /healthz and /readyz are served, apart from the API", () => {
    expect(loadConfig({ ...full, CHANNEL_OPS_LISTEN: "0.0.0.0:9090" }).opsListen).toEqual({
      host: "0.0.0.0",
      port: 9090,
    });
    expect(loadConfig({ ...full, CHANNEL_OPS_LISTEN: "127.0.0.1:0" }).opsListen).toEqual({
      host: "127.0.0.1",
      port: 0,
    });
  });
});
