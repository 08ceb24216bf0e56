import { describe, expect, it } from "vitest";
import { defaultStreamName, loadConfig, WatchtowerConfigError } from "../src/config.js";

const full = {
  WATCHTOWER_DATABASE_URL: "postgres://watchtower@db/ln",
  BITCOIN_RPC_URL: "http://127.0.0.1:8332",
  LN_PREFIX: "lab.a",
};

function problems(env: Record<string, string | undefined>): string {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(WatchtowerConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a configuration error");
}

describe("watchtower config", () => {
  it("reads the required settings and fills in the defaults", () => {
    expect(loadConfig(full)).toEqual({
      databaseUrl: "postgres://watchtower@db/ln",
      databaseSchema: "watchtower",
      rpc: { url: "http://127.0.0.1:8332" },
      nats: { servers: "nats://127.0.0.1:4222", auth: { kind: "none" } },
      lnPrefix: "lab.a",
      chainPrefix: "lab.a.chain",
      stream: "LAB_A_CHAIN",
      pollMs: 1000,
      startHeight: undefined,
      crash: { at: undefined, traceFile: undefined },
    });
  });

  it("reads every optional setting", () => {
    const c = loadConfig({
      ...full,
      WATCHTOWER_DATABASE_SCHEMA: "tower_a",
      BITCOIN_RPC_USER: "rpc",
      BITCOIN_RPC_PASSWORD: "s3cret",
      NATS_URL: "nats://nats:4222",
      WATCHTOWER_STREAM: "MY_STREAM",
      WATCHTOWER_POLL_MS: "250",
      WATCHTOWER_START_HEIGHT: "0",
    });
    expect(c.databaseSchema).toBe("tower_a");
    expect(c.rpc).toEqual({ url: "http://127.0.0.1:8332", user: "rpc", password: "s3cret" });
    expect(c.nats.servers).toBe("nats://nats:4222");
    expect(c.stream).toBe("MY_STREAM");
    expect(c.pollMs).toBe(250);
    expect(c.startHeight).toBe(0);
  });

  it("derives the stream name from the prefix", () => {
    expect(defaultStreamName("lab.a")).toBe("LAB_A_CHAIN");
    expect(defaultStreamName("prod-1.node")).toBe("PROD_1_NODE_CHAIN");
  });

  it("names every missing setting at once, one line each, saying what to set", () => {
    const msg = problems({});
    const lines = msg.split("\n");
    expect(lines[0]).toBe("watchtower configuration:");
    expect(lines.slice(1).map((l) => l.trim().split(" ")[0])).toEqual([
      "WATCHTOWER_DATABASE_URL",
      "BITCOIN_RPC_URL",
      "LN_PREFIX",
    ]);
    expect(msg).toContain("LN_PREFIX is not set (this node's NATS subject prefix, e.g. lab.a)");
  });

  it("refuses bad values, all reported together", () => {
    const msg = problems({
      ...full,
      BITCOIN_RPC_URL: "ftp://node",
      LN_PREFIX: "lab.*",
      WATCHTOWER_DATABASE_SCHEMA: "x; drop",
      WATCHTOWER_STREAM: "a.b",
      WATCHTOWER_POLL_MS: "fast",
      WATCHTOWER_START_HEIGHT: "-5",
    });
    for (const name of [
      "BITCOIN_RPC_URL",
      "LN_PREFIX",
      "WATCHTOWER_DATABASE_SCHEMA",
      "WATCHTOWER_STREAM",
      "WATCHTOWER_POLL_MS",
      "WATCHTOWER_START_HEIGHT",
    ])
      expect(msg).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(problems({ ...full, BITCOIN_RPC_URL: "not a url" })).toContain("BITCOIN_RPC_URL is not a URL");
    expect(problems({ ...full, WATCHTOWER_DATABASE_SCHEMA: "pg_x" })).toContain("WATCHTOWER_DATABASE_SCHEMA");
  });

  it("never puts the RPC password in an error", () => {
    const msg = problems({ ...full, BITCOIN_RPC_PASSWORD: "hunter2", WATCHTOWER_POLL_MS: "x" });
    expect(msg).not.toContain("hunter2");
  });
});

describe("watchtower config: the justice half", () => {
  const signer = {
    SIGNER_ADDR: "signer:50051",
    SIGNER_CLIENT_CA: "/certs/ca.crt",
    SIGNER_CLIENT_CERT: "/certs/tower.crt",
    SIGNER_CLIENT_KEY: "/certs/tower.key",
  };

  it("is off without SIGNER_ADDR", () => {
    expect(loadConfig(full).justice).toBeUndefined();
  });

  it("reads the signer and fills in the defaults, deriving subject and stream from the prefix", () => {
    expect(loadConfig({ ...full, ...signer }).justice).toEqual({
      signer: {
        addr: "signer:50051",
        caFile: "/certs/ca.crt",
        certFile: "/certs/tower.crt",
        keyFile: "/certs/tower.key",
        serverName: undefined,
      },
      recordsSubject: "lab.a.tower.records",
      recordsStream: "LAB_A_TOWER",
      recordsConsumer: "tower",
      bumpBlocks: 2,
      buryDepth: 6,
      feeTargetBlocks: 2,
      fallbackFeeRate: 20_000,
      maxFeeRate: 500_000,
      maxFeePercent: 50,
      mempoolPollMs: 1000,
    });
  });

  it("reads every optional setting", () => {
    const j = loadConfig({
      ...full,
      ...signer,
      SIGNER_SERVERNAME: "signer.internal",
      WATCHTOWER_RECORDS_SUBJECT: "x.records",
      WATCHTOWER_RECORDS_STREAM: "X_RECORDS",
      WATCHTOWER_RECORDS_CONSUMER: "tower-b",
      WATCHTOWER_BUMP_BLOCKS: "3",
      WATCHTOWER_BURY_DEPTH: "100",
      WATCHTOWER_FEE_TARGET_BLOCKS: "6",
      WATCHTOWER_FALLBACK_FEE_RATE: "5000",
      WATCHTOWER_MAX_FEE_RATE: "100000",
      WATCHTOWER_MAX_FEE_PERCENT: "30",
      WATCHTOWER_MEMPOOL_POLL_MS: "250",
    }).justice;
    expect(j).toMatchObject({
      signer: { serverName: "signer.internal" },
      recordsSubject: "x.records",
      recordsStream: "X_RECORDS",
      recordsConsumer: "tower-b",
      bumpBlocks: 3,
      buryDepth: 100,
      feeTargetBlocks: 6,
      fallbackFeeRate: 5000,
      maxFeeRate: 100_000,
      maxFeePercent: 30,
      mempoolPollMs: 250,
    });
  });

  it("names every missing certificate and bad value at once", () => {
    const msg = problems({
      ...full,
      SIGNER_ADDR: "signer:50051",
      WATCHTOWER_RECORDS_SUBJECT: "x.*",
      WATCHTOWER_RECORDS_STREAM: "a.b",
      WATCHTOWER_BURY_DEPTH: "101",
      WATCHTOWER_BUMP_BLOCKS: "0",
      WATCHTOWER_FALLBACK_FEE_RATE: "cheap",
    });
    for (const name of [
      "SIGNER_CLIENT_CA",
      "SIGNER_CLIENT_CERT",
      "SIGNER_CLIENT_KEY",
      "WATCHTOWER_RECORDS_SUBJECT",
      "WATCHTOWER_RECORDS_STREAM",
      "WATCHTOWER_BURY_DEPTH",
      "WATCHTOWER_BUMP_BLOCKS",
      "WATCHTOWER_FALLBACK_FEE_RATE",
    ])
      expect(msg).toMatch(new RegExp(`^  ${name} `, "m"));
    expect(msg).toContain("WATCHTOWER_BURY_DEPTH must be a whole number from 1 to 100");
  });
});
