import { describe, expect, it } from "vitest";
import {
  createLogger,
  levelFromEnv,
  LogConfigError,
  parseLevel,
  recordingLog,
  scrub,
  silentLog,
  structuredLog,
  type Logger,
  type LogRecord,
} from "../src/index.js";

const HEX = "ab".repeat(32);
const UUID = "0b8e7c1a-4f2d-4c3b-9a8e-1f2e3d4c5b6a";

/** A logger writing into an array of raw lines. */
function capture(level = "trace"): {
  logger: Logger;
  raw: string[];
  records: () => Record<string, unknown>[];
} {
  const raw: string[] = [];
  const logger = createLogger("testsvc", { level, destination: { write: (s: string) => void raw.push(s) } });
  return {
    logger,
    raw,
    records: () => raw.map((s) => JSON.parse(s) as Record<string, unknown>),
  };
}

describe("createLogger", () => {
  it("writes one JSON object per line with service, level, time and msg", () => {
    const c = capture();
    c.logger.info("hello");
    c.logger.child({ reqId: "r1" }).warn({ n: 3 }, "with context\nand a second line");
    expect(c.raw).toHaveLength(2);
    for (const s of c.raw) {
      expect(s.endsWith("\n")).toBe(true);
      expect(s.slice(0, -1)).not.toContain("\n");
    }
    const [a, b] = c.records();
    expect(a).toMatchObject({ level: "info", service: "testsvc", msg: "hello" });
    expect(new Date(a?.["time"] as string).toISOString()).toBe(a?.["time"]);
    expect(b).toMatchObject({ level: "warn", service: "testsvc", reqId: "r1", n: 3 });
    expect(b?.["msg"]).toBe("with context\nand a second line");
    expect(Object.keys(a ?? {})).not.toContain("pid");
  });

  it("redacts secret fields, top level, one level down and request headers", () => {
    const c = capture();
    c.logger.info(
      {
        token: "tok-secret-1",
        seedKey: "seedkey-secret",
        preimage: HEX,
        r: HEX,
        password: "pw-secret",
        nested: { privateKey: "pk-secret", authorization: "Bearer abc", fine: "kept" },
        req: { headers: { authorization: "Bearer hdr-secret" } },
      },
      "fields",
    );
    const out = c.raw.join("");
    for (const s of ["tok-secret-1", "seedkey-secret", HEX, "pw-secret", "pk-secret", "hdr-secret", "abc"])
      expect(out).not.toContain(s);
    expect(c.records()[0]).toMatchObject({ token: "[REDACTED]", nested: { fine: "kept" } });
  });

  it("scrubs secrets out of messages, string fields and errors, whichever logger writes", () => {
    const c = capture();
    c.logger.info(`payment preimage ${HEX} learned`);
    c.logger
      .child({ reqId: "x" })
      .info({ note: `seed key: ${HEX}` }, "Authorization: Bearer s3cr3t-T0ken.value");
    c.logger.error({ err: new Error(`bad preimage=${HEX}`) }, "failed");
    c.logger.info("postgres://app:hunter2@db:5432/ln and token=abcdefghijklmnop");
    const out = c.raw.join("");
    expect(out).not.toContain(HEX);
    expect(out).not.toContain("s3cr3t-T0ken");
    expect(out).not.toContain("hunter2");
    expect(out).not.toContain("abcdefghijklmnop");
    expect(c.records()[0]?.["msg"]).toBe("payment preimage [REDACTED] learned");
    expect(c.records()[3]?.["msg"]).toBe("postgres://app:[REDACTED]@db:5432/ln and token=[REDACTED]");
  });

  it("leaves txids, public keys and token hashes alone", () => {
    const pub = `02${HEX}`;
    for (const s of [
      `channel ${UUID}: anchor ${HEX} broadcast`,
      `BREACH: transaction ${HEX} (mempool) is the revoked commitment 3 of signer channel 7`,
      `justice ${HEX} sent (justice)`,
      `listening on 0.0.0.0:50051 (port 50051), node key ${pub}`,
      "admin token configured (sha256 0123456789ab…)",
    ])
      expect(scrub(s)).toBe(s);
  });

  it("filters by level", () => {
    const c = capture("warn");
    c.logger.info("quiet");
    c.logger.warn("loud");
    expect(c.records().map((r) => r["msg"])).toEqual(["loud"]);
  });
});

describe("LOG_LEVEL", () => {
  it("defaults to info and accepts pino's level names in any case", () => {
    expect(parseLevel(undefined)).toBe("info");
    expect(parseLevel("")).toBe("info");
    expect(parseLevel("DEBUG")).toBe("debug");
    expect(parseLevel(" warn ")).toBe("warn");
    expect(parseLevel("silent")).toBe("silent");
  });

  it("rejects anything else, naming the variable", () => {
    expect(() => parseLevel("verbose")).toThrow(LogConfigError);
    expect(() => parseLevel("30")).toThrow(/LOG_LEVEL must be one of/);
    expect(() => createLogger("x", { level: "loud" })).toThrow(LogConfigError);
    expect(levelFromEnv({ LOG_LEVEL: "error" })).toBe("error");
    expect(levelFromEnv({})).toBe("info");
    expect(() => levelFromEnv({ LOG_LEVEL: "noisy" })).toThrow(/LOG_LEVEL must be one of/);
  });
});

describe("structuredLog", () => {
  it("the level is the method called and the fields are as given, whatever the text says", () => {
    const c = capture();
    const log = structuredLog(c.logger.child({ replica: "r1" }));
    log.info(`ALERT channel ${UUID}: failed, refused, unreachable`, { channelId: UUID });
    log.warn("synced to 120/120");
    log.error("multi\nline", { code: "SIGNER_REFUSED" });
    const [a, b, e] = c.records();
    expect(a).toMatchObject({ service: "testsvc", replica: "r1", level: "info", channelId: UUID });
    expect(a).not.toHaveProperty("alert");
    expect(b).toMatchObject({ level: "warn", msg: "synced to 120/120" });
    expect(b).not.toHaveProperty("channelId");
    expect(e).toMatchObject({ level: "error", msg: "multi\nline", code: "SIGNER_REFUSED" });
  });

  it("alert sets alert: true, at level error unless warn is asked", () => {
    const c = capture();
    const log = structuredLog(c.logger);
    log.alert("the signer is unreachable and justice is unsigned", { breach: HEX });
    log.alert("breach seen; making justice", { txid: HEX, level: "warn" });
    const [a, b] = c.records();
    expect(a).toMatchObject({ level: "error", alert: true, breach: HEX });
    expect(b).toMatchObject({ level: "warn", alert: true, txid: HEX });
    expect(b).not.toHaveProperty("level", "error");
  });

  it("scrubs secrets from the text and from string fields", () => {
    const c = capture();
    structuredLog(c.logger).error(`recording the revocations: preimage ${HEX}`, {
      channelId: UUID,
      detail: `seed=${HEX}`,
      token: "lnch_abcdefgh12345678",
    });
    const [r] = c.records();
    expect(r).toMatchObject({ msg: "recording the revocations: preimage [REDACTED]", token: "[REDACTED]" });
    expect(c.raw.join("")).not.toContain(HEX);
    expect(c.raw.join("")).not.toContain("lnch_abcdefgh12345678");
  });
});

describe("recordingLog and silentLog", () => {
  it("recordingLog hands each record to the sink with its level, alert and fields", () => {
    const got: LogRecord[] = [];
    const log = recordingLog((r) => got.push(r));
    log.info("a", { channelId: UUID });
    log.warn("b");
    log.alert("c", { level: "warn", peer: "02ab" });
    log.alert("d");
    expect(got).toEqual([
      { level: "info", alert: false, msg: "a", fields: { channelId: UUID } },
      { level: "warn", alert: false, msg: "b", fields: {} },
      { level: "warn", alert: true, msg: "c", fields: { peer: "02ab" } },
      { level: "error", alert: true, msg: "d", fields: {} },
    ]);
  });

  it("silentLog takes every call and writes nothing", () => {
    expect(() => {
      silentLog.info("x");
      silentLog.alert("y", { level: "warn" });
    }).not.toThrow();
  });
});
