import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { SignerError } from "../src/errors.js";

const full = {
  SIGNER_DATABASE_URL: "postgres://signer@db/signer",
  SIGNER_LISTEN: "0.0.0.0:50051",
  SIGNER_TLS_CA: "/tls/ca.crt",
  SIGNER_TLS_CERT: "/tls/tls.crt",
  SIGNER_TLS_KEY: "/tls/tls.key",
  SIGNER_SEED_FILE: "/data/seed.bin",
  SIGNER_SEED_KEY: "ab".repeat(32),
};

describe("config", () => {
  it("reads every setting, with defaults for the schema and the fee bound", () => {
    const c = loadConfig(full);
    expect(c.databaseSchema).toBe("signer");
    expect(c.maxFeeSat).toBe(100000n);
    expect(c.maxWithdrawalSat).toBe(0n);
    expect(c.seedKey.equals(Buffer.alloc(32, 0xab))).toBe(true);
    expect(c.tls).toEqual({ caFile: "/tls/ca.crt", certFile: "/tls/tls.crt", keyFile: "/tls/tls.key" });
  });

  it("reads the withdrawal limit, and refuses one that is not a whole number of satoshi", () => {
    expect(loadConfig({ ...full, SIGNER_MAX_WITHDRAWAL_SAT: "250000" }).maxWithdrawalSat).toBe(250000n);
    expect(() => loadConfig({ ...full, SIGNER_MAX_WITHDRAWAL_SAT: "1.5" })).toThrow(
      /SIGNER_MAX_WITHDRAWAL_SAT must be a whole number of satoshi/,
    );
    expect(() => loadConfig({ ...full, SIGNER_MAX_WITHDRAWAL_SAT: "-1" })).toThrow(
      /SIGNER_MAX_WITHDRAWAL_SAT/,
    );
  });

  it("reads the justice fee bounds, 500000 per 1000 bytes and 50 % by default, and refuses bad ones", () => {
    expect(loadConfig(full)).toMatchObject({ maxJusticeFeeRate: 500_000, maxJusticeFeePercent: 50 });
    const c = loadConfig({
      ...full,
      SIGNER_MAX_JUSTICE_FEE_RATE: "200000",
      SIGNER_MAX_JUSTICE_FEE_PERCENT: "20",
    });
    expect(c).toMatchObject({ maxJusticeFeeRate: 200_000, maxJusticeFeePercent: 20 });
    expect(() => loadConfig({ ...full, SIGNER_MAX_JUSTICE_FEE_PERCENT: "101" })).toThrow(
      /SIGNER_MAX_JUSTICE_FEE_PERCENT must be a whole number from 1 to 100/,
    );
    expect(() => loadConfig({ ...full, SIGNER_MAX_JUSTICE_FEE_RATE: "fast" })).toThrow(
      /SIGNER_MAX_JUSTICE_FEE_RATE/,
    );
  });

  it("names every missing setting", () => {
    let err: unknown;
    try {
      loadConfig({ SIGNER_LISTEN: "0.0.0.0:1" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SignerError);
    expect((err as SignerError).code).toBe("CONFIG");
    for (const name of Object.keys(full).filter((k) => k !== "SIGNER_LISTEN"))
      expect((err as SignerError).message).toContain(`${name} is not set`);
  });

  it("refuses a seed key that is not 32 bytes of hex, and a bad schema name", () => {
    expect(() => loadConfig({ ...full, SIGNER_SEED_KEY: "abcd" })).toThrow(/SIGNER_SEED_KEY must be 64 hex/);
    expect(() => loadConfig({ ...full, SIGNER_DATABASE_SCHEMA: "x; drop" })).toThrow(
      /SIGNER_DATABASE_SCHEMA/,
    );
  });
});
