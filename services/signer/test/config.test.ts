import { describe, expect, it } from "vitest";
import { loadConfig } from "../src/config.js";
import { SignerError } from "../src/errors.js";
import { signerCode } from "./helpers.js";

const full = {
  SIGNER_DATABASE_URL: "postgres://signer@db/signer",
  SIGNER_LISTEN: "0.0.0.0:50051",
  SIGNER_TLS_CA: "/tls/ca.crt",
  SIGNER_TLS_CERT: "/tls/tls.crt",
  SIGNER_TLS_KEY: "/tls/tls.key",
  SIGNER_SEED_FILE: "/data/seed.bin",
  SIGNER_SEED_KEY_FILE: "/etc/ln/seed-key/key",
  SIGNER_CLIENTS: "ln-channel=channel,ln-peer=gateway,ln-watchtower=tower",
};

describe("config", () => {
  it("reads every setting, with defaults for the schema and the fee bound", () => {
    const c = loadConfig(full);
    expect(c.databaseSchema).toBe("signer");
    expect(c.maxFeeSat).toBe(100000n);
    expect(c.maxWithdrawalSat).toBe(0n);
    expect(c.maxWithdrawalSatPerDay).toBeUndefined();
    expect(c.seedKeyFile).toBe("/etc/ln/seed-key/key");
    expect([...c.clients]).toEqual([
      ["ln-channel", "channel"],
      ["ln-peer", "gateway"],
      ["ln-watchtower", "tower"],
    ]);
    expect(c.tls).toEqual({ caFile: "/tls/ca.crt", certFile: "/tls/tls.crt", keyFile: "/tls/tls.key" });
  });

  it("reads the withdrawal limit, and refuses one that is not a whole number of satoshi", () => {
    const c = loadConfig({
      ...full,
      SIGNER_MAX_WITHDRAWAL_SAT: "250000",
      SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY: "1000000",
    });
    expect(c.maxWithdrawalSat).toBe(250000n);
    expect(c.maxWithdrawalSatPerDay).toBe(1000000n);
    expect(() => loadConfig({ ...full, SIGNER_MAX_WITHDRAWAL_SAT: "1.5" })).toThrow(
      /SIGNER_MAX_WITHDRAWAL_SAT must be a whole number of satoshi/,
    );
    expect(() => loadConfig({ ...full, SIGNER_MAX_WITHDRAWAL_SAT: "-1" })).toThrow(
      /SIGNER_MAX_WITHDRAWAL_SAT/,
    );
  });

  it("reads the channel bounds (fee rate, delays, payments per period), with defaults", () => {
    expect(loadConfig(full).channelPolicy).toEqual({
      maxFeeRate: 1_000_000,
      minDelayBlocks: 6,
      maxDelayBlocks: 2016,
      minDelaySeconds: 3600,
      maxDelaySeconds: 1_209_600,
      maxPaymentsSat: 10_000_000n,
      paymentsPeriodSeconds: 86_400,
    });
    const c = loadConfig({
      ...full,
      SIGNER_MAX_FEE_RATE: "50000",
      SIGNER_MIN_DELAY_BLOCKS: "20",
      SIGNER_MAX_PAYMENTS_SAT: "0",
      SIGNER_PAYMENTS_PERIOD_SECONDS: "3600",
    }).channelPolicy;
    expect(c).toMatchObject({
      maxFeeRate: 50000,
      minDelayBlocks: 20,
      maxPaymentsSat: 0n,
      paymentsPeriodSeconds: 3600,
    });
    expect(() => loadConfig({ ...full, SIGNER_MAX_PAYMENTS_SAT: "lots" })).toThrow(/SIGNER_MAX_PAYMENTS_SAT/);
  });

  it("withdrawals enabled need a daily limit of at least one spend's", async () => {
    const on = { ...full, SIGNER_MAX_WITHDRAWAL_SAT: "250000" };
    expect(await signerCode(() => loadConfig(on))).toBe("CONFIG");
    expect(() => loadConfig(on)).toThrow(/SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY/);
    expect(await signerCode(() => loadConfig({ ...on, SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY: "249999" }))).toBe(
      "CONFIG",
    );
    expect(loadConfig({ ...on, SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY: "250000" }).maxWithdrawalSatPerDay).toBe(
      250000n,
    );
    expect(await signerCode(() => loadConfig({ ...on, SIGNER_MAX_WITHDRAWAL_SAT_PER_DAY: "x" }))).toBe(
      "CONFIG",
    );
  });

  it("refuses SIGNER_SEED_KEY, even empty, and says to use SIGNER_SEED_KEY_FILE", async () => {
    for (const value of ["ab".repeat(32), ""]) {
      expect(await signerCode(() => loadConfig({ ...full, SIGNER_SEED_KEY: value }))).toBe("CONFIG");
      expect(() => loadConfig({ ...full, SIGNER_SEED_KEY: value })).toThrow(/SIGNER_SEED_KEY_FILE/);
    }
  });

  it("refuses SIGNER_CLIENTS with an unknown role or a malformed pair", async () => {
    expect(await signerCode(() => loadConfig({ ...full, SIGNER_CLIENTS: "ln-channel=admin" }))).toBe(
      "CONFIG",
    );
    expect(await signerCode(() => loadConfig({ ...full, SIGNER_CLIENTS: "ln-channel" }))).toBe("CONFIG");
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

  it("refuses a bad schema name", () => {
    expect(() => loadConfig({ ...full, SIGNER_DATABASE_SCHEMA: "x; drop" })).toThrow(
      /SIGNER_DATABASE_SCHEMA/,
    );
  });
});
