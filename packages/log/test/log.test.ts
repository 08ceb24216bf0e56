import { describe, expect, it } from "vitest";
import {
  createLogger,
  fieldsOf,
  levelFromEnv,
  lineLogger,
  LogConfigError,
  parseLevel,
  scrub,
  type Logger,
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

describe("lineLogger", () => {
  it("lifts channel ids, peers, txids and signer channels into fields", () => {
    expect(fieldsOf(`channel ${UUID}: open`)).toEqual({ level: "info", channelId: UUID });
    expect(fieldsOf(`channel ${UUID} : open`)).toMatchObject({ channelId: UUID });
    expect(fieldsOf(`channel ${UUID}: created as funder with 02abcdef01234567…`)).toEqual({
      level: "info",
      channelId: UUID,
      peer: "02abcdef01234567",
    });
    expect(fieldsOf("peer 03aabbccddeeff0011: handshake failed")).toMatchObject({
      level: "warn",
      peer: "03aabbccddeeff0011",
    });
    expect(
      fieldsOf(
        `BREACH: transaction ${HEX} (block) is the revoked commitment 2 of signer channel 12; making justice`,
      ),
    ).toEqual({ level: "warn", alert: true, txid: HEX, signerChannel: 12 });
    expect(fieldsOf("synced to 120/120")).toEqual({ level: "info" });
  });

  it("flags ALERT lines", () => {
    expect(
      fieldsOf(`ALERT channel ${UUID}: peer gone (attempt 3, failing for 40 s); retrying in 8 s`),
    ).toEqual({ level: "error", alert: true, channelId: UUID });
    expect(fieldsOf(`ALERT: the signer is unreachable and justice for breach ${HEX} is unsigned`)).toEqual({
      level: "error",
      alert: true,
      breach: HEX,
    });
    expect(fieldsOf("SIGNER REFUSED justice for breach x")).toMatchObject({ level: "error", alert: true });
    expect(fieldsOf("an ALERT in the middle is not one")).toEqual({ level: "info" });
  });

  it("writes each line as one record with the text in msg", () => {
    const c = capture();
    const log = lineLogger(c.logger.child({ replica: "r1" }));
    log(`ALERT channel ${UUID}: recording the peer's revocations with the signer: preimage ${HEX}`);
    log("multi\nline");
    const [a, b] = c.records();
    expect(a).toMatchObject({
      service: "testsvc",
      replica: "r1",
      level: "error",
      alert: true,
      channelId: UUID,
      msg: `ALERT channel ${UUID}: recording the peer's revocations with the signer: preimage [REDACTED]`,
    });
    expect(b).toMatchObject({ level: "info", msg: "multi\nline" });
    expect(c.raw.join("")).not.toContain(HEX);
  });
});
