import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignerClient } from "@ln/signer-client";
import pg from "pg";
import { afterAll, describe, expect, it } from "vitest";
import {
  makeDevPki,
  OpensslMissingError,
  signerClientTlsEnv,
  signerServerTlsEnv,
  type SignerClientName,
} from "./certs.js";
import { testDatabaseUrl } from "@ln/testkit";
import { Supervisor } from "./procs.js";

describe("makeDevPki", () => {
  const dir = mkdtempSync(join(tmpdir(), "dev-pki-test-"));
  const schema = `lab_certs_test_${randomBytes(4).toString("hex")}`;
  const sup = new Supervisor({ logDir: join(dir, "logs") });
  afterAll(async () => {
    await sup.stopAll(2000);
    const c = new pg.Client(testDatabaseUrl());
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await c.end();
    rmSync(dir, { recursive: true, force: true });
  });

  it("names a missing openssl", () => {
    expect(() => makeDevPki(join(dir, "none"), { openssl: "/nonexistent/openssl" })).toThrow(
      OpensslMissingError,
    );
  });

  it("makes certificates the signer serves and a SignerClient accepts, one per client", async () => {
    const pki = makeDevPki(join(dir, "pki"));
    writeFileSync(join(dir, "seed.key"), randomBytes(32).toString("hex"), { mode: 0o600 });
    const ready = await sup.start("signer", "services/signer/src/main.ts", {
      SIGNER_DATABASE_URL: testDatabaseUrl(),
      SIGNER_DATABASE_SCHEMA: schema,
      SIGNER_LISTEN: "127.0.0.1:0",
      ...signerServerTlsEnv(pki),
      SIGNER_SEED_FILE: join(dir, "seed.enc"),
      SIGNER_SEED_KEY_FILE: join(dir, "seed.key"),
    });
    expect(ready["nodeId"]).toMatch(/^0[23][0-9a-f]{64}$/);
    const as = (client: SignerClientName): SignerClient => {
      const env = signerClientTlsEnv(pki, client);
      return new SignerClient(
        `127.0.0.1:${String(ready["port"])}`,
        {
          ca: readFileSync(env["SIGNER_CLIENT_CA"]!),
          cert: readFileSync(env["SIGNER_CLIENT_CERT"]!),
          key: readFileSync(env["SIGNER_CLIENT_KEY"]!),
        },
        { "grpc.ssl_target_name_override": pki.serverName },
      );
    };
    const [channel, gateway, tower] = [as("channel"), as("gateway"), as("tower")];
    try {
      // The channel service and the gateway may ask for the node id; the tower only for justice.
      for (const c of [channel, gateway]) {
        const info = await c.call("NodeInfo", {});
        expect(info.node_pubkey.toString("hex")).toBe(ready["nodeId"]);
      }
      const denied = (await tower.call("NodeInfo", {}).catch((e: unknown) => e)) as {
        code: number;
        metadata: { get(key: string): unknown[] };
      };
      expect(denied.code).toBe(7); // gRPC PERMISSION_DENIED
      expect(denied.metadata.get("signer-refusal")).toEqual(["NOT_PERMITTED"]);
    } finally {
      for (const c of [channel, gateway, tower]) c.close();
    }
  });
});
