import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig, parseHostPort } from "../src/config.js";

const full = {
  LN_PREFIX: "ln1",
  PEER_LISTEN: "0.0.0.0:9735",
  SIGNER_ADDR: "signer:50051",
  SIGNER_CLIENT_CA: "/etc/ln/ca.crt",
  SIGNER_CLIENT_CERT: "/etc/ln/peer.crt",
  SIGNER_CLIENT_KEY: "/etc/ln/peer.key",
};

function problems(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as ConfigError).problems;
  }
  throw new Error("expected a ConfigError");
}

describe("peer gateway configuration", () => {
  it("reads a full environment, with defaults", () => {
    expect(loadConfig(full)).toEqual({
      nats: { servers: "nats://127.0.0.1:4222", auth: { kind: "none" } },
      prefix: "ln1.peer",
      listen: { host: "0.0.0.0", port: 9735 },
      handshakeTimeoutMs: 10_000,
      maxPendingHandshakes: 256,
      signer: {
        address: "signer:50051",
        caFile: "/etc/ln/ca.crt",
        certFile: "/etc/ln/peer.crt",
        keyFile: "/etc/ln/peer.key",
      },
      crash: { at: undefined, traceFile: undefined },
    });
    const c = loadConfig({
      ...full,
      NATS_URL: "nats://nats:4222",
      LN_PREFIX: "prod.node-2",
      PEER_LISTEN: "[::]:0",
      PEER_HANDSHAKE_TIMEOUT_MS: "2500",
      PEER_MAX_PENDING: " 16 ",
      SIGNER_SERVERNAME: "signer.internal",
    });
    expect(c.nats.servers).toBe("nats://nats:4222");
    expect(c.prefix).toBe("prod.node-2.peer");
    expect(c.listen).toEqual({ host: "::", port: 0 });
    expect(c.handshakeTimeoutMs).toBe(2500);
    expect(c.maxPendingHandshakes).toBe(16);
    expect(c.signer.serverName).toBe("signer.internal");
  });

  it("reports every missing variable at once, one line each, saying what to set", () => {
    const p = problems({});
    expect(p).toHaveLength(6);
    for (const name of [
      "LN_PREFIX",
      "PEER_LISTEN",
      "SIGNER_ADDR",
      "SIGNER_CLIENT_CA",
      "SIGNER_CLIENT_CERT",
      "SIGNER_CLIENT_KEY",
    ])
      expect(p.some((l) => l.startsWith(`${name} is not set (`))).toBe(true);
    for (const l of p) expect(l).not.toContain("\n");
    expect(problems({ ...full, LN_PREFIX: "  " })).toEqual([expect.stringMatching(/^LN_PREFIX is not set/)]);
  });

  it("arms a crash point of the gateway only (LN_CRASH_AT), and refuses any other at start", () => {
    expect(loadConfig({ ...full, LN_CRASH_AT: "peer.out.taken:3", LN_CRASH_TRACE: "/tmp/t" }).crash).toEqual({
      at: { point: "peer.out.taken", nth: 3 },
      traceFile: "/tmp/t",
    });
    for (const wrong of ["peer.out.take", "channel.transition.committed", "peer.out.taken:0"])
      expect(problems({ ...full, LN_CRASH_AT: wrong })).toEqual([expect.stringMatching(/^LN_CRASH_AT/)]);
  });

  it("reports every malformed value at once", () => {
    const p = problems({
      ...full,
      LN_PREFIX: "ln 1.*",
      PEER_LISTEN: "9735",
      PEER_HANDSHAKE_TIMEOUT_MS: "fast",
      PEER_MAX_PENDING: "0",
      SIGNER_ADDR: "signer:0",
      SIGNER_SERVERNAME: "bad name",
    });
    expect(p.map((l) => l.split(" ")[0])).toEqual([
      "LN_PREFIX",
      "PEER_LISTEN",
      "PEER_HANDSHAKE_TIMEOUT_MS",
      "PEER_MAX_PENDING",
      "SIGNER_ADDR",
      "SIGNER_SERVERNAME",
    ]);
    expect(p[1]).toContain('got "9735"');
    const e = (() => {
      try {
        loadConfig({});
      } catch (err) {
        return err as Error;
      }
      return undefined;
    })();
    expect(e?.message.split("\n")[0]).toBe("peer configuration:");
  });

  it("parses host:port", () => {
    expect(parseHostPort("127.0.0.1:0", true)).toEqual({ host: "127.0.0.1", port: 0 });
    expect(parseHostPort("127.0.0.1:0", false)).toBeUndefined();
    expect(parseHostPort("[::1]:9735", false)).toEqual({ host: "::1", port: 9735 });
    expect(parseHostPort("localhost:65535", false)).toEqual({ host: "localhost", port: 65535 });
    for (const bad of ["", ":1", "h:", "h:65536", "::1:9735", "h :1", "h:1:2", "[h]:1"])
      expect(parseHostPort(bad, true)).toBeUndefined();
  });
});
