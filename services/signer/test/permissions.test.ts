/**
 * Per-client permissions (DESIGN.md 4): each client certificate's subject CN has a role from
 * SIGNER_CLIENTS, each RPC the roles that may call it; anything else is PERMISSION_DENIED with
 * the code NOT_PERMITTED, counted under signer_refusals_total{client,method,reason}.
 */
import { silentLog } from "@ln/log";
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { newRegistry, type Registry } from "@ln/metrics";
import { SignerClient, type SignerMethod, type SignerRequestOf } from "@ln/signer-client";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyRing } from "../src/keys.js";
import { authorizeClient, METHOD_ROLES, parseClients } from "../src/permissions.js";
import { signerMetrics, startServer, type RunningServer } from "../src/server.js";
import { SignerService } from "../src/service.js";
import { SignerStore } from "../src/store.js";
import {
  CLIENT_OPTIONS,
  DATABASE_URL,
  makePems,
  refusal,
  signerCode,
  TEST_CLIENTS,
  TEST_SEED,
  type Pems,
} from "./helpers.js";

let pems: Pems;
let pool: pg.Pool;
let store: SignerStore;
let running: RunningServer;
let registry: Registry;
const schema = `signer_perm_${randomBytes(6).toString("hex")}`;
const clients: Record<"channel" | "gateway" | "tower" | "other", SignerClient> = {} as never;

beforeAll(async () => {
  pems = makePems();
  pool = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
  store = new SignerStore(pool, schema);
  await store.migrate();
  registry = newRegistry("signer");
  running = await startServer({
    service: new SignerService(new KeyRing(TEST_SEED), store, { maxFeeSat: 5000n }),
    listen: "127.0.0.1:0",
    tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
    clients: TEST_CLIENTS,
    log: silentLog,
    metrics: signerMetrics(registry),
  });
  const as = (cert: Buffer, key: Buffer): SignerClient =>
    new SignerClient(`127.0.0.1:${running.port}`, { ca: pems.ca, cert, key }, CLIENT_OPTIONS);
  clients.channel = as(pems.clientCert, pems.clientKey);
  clients.gateway = as(pems.gatewayCert, pems.gatewayKey);
  clients.tower = as(pems.towerCert, pems.towerKey);
  clients.other = as(pems.otherCert, pems.otherKey);
});

afterAll(async () => {
  for (const c of Object.values(clients)) c.close();
  await running?.shutdown(1000);
  await pool?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await store?.close();
  if (pems) rmSync(pems.dir, { recursive: true, force: true });
});

const refusals = async (client: string, method: string): Promise<number> => {
  const text = await registry.getSingleMetricAsString("signer_refusals_total");
  const line = text
    .split("\n")
    .find(
      (l) =>
        l.includes(`client="${client}"`) &&
        l.includes(`method="${method}"`) &&
        l.includes('reason="NOT_PERMITTED"'),
    );
  return line === undefined ? 0 : Number(line.split(" ").pop());
};

/** A forbidden call: PERMISSION_DENIED, NOT_PERMITTED, counted once under the client's label. */
async function expectDenied<M extends SignerMethod>(
  who: keyof typeof clients,
  label: string,
  method: M,
  request: SignerRequestOf<M>,
): Promise<void> {
  const before = await refusals(label, method);
  const r = await refusal(clients[who].call(method, request));
  expect(r).toMatchObject({ grpcCode: grpc.status.PERMISSION_DENIED, code: "NOT_PERMITTED" });
  expect(await refusals(label, method)).toBe(before + 1);
}

const justice = { channel: 12345, revoked_number: 0n, commitment_tx_hex: "", justice_tx_hex: "" };

describe("each client calls only its own RPCs", () => {
  it("the peer gateway: its handshake and NodeInfo, and not a justice, a channel or an invoice preimage", async () => {
    const info = await clients.gateway.call("NodeInfo", {});
    expect(info.node_pubkey.length).toBe(33);
    expect(
      (await clients.gateway.call("SignSession", { handshake_hash: randomBytes(32) })).signature.length,
    ).toBe(64);
    await expectDenied("gateway", "ln-peer", "OnionEcdh", { point: Buffer.alloc(33) });
    await expectDenied("gateway", "ln-peer", "NewChannel", {});
    await expectDenied("gateway", "ln-peer", "RevealInvoice", { index: 1 });
    await expectDenied("gateway", "ln-peer", "SignWalletSpend", { tx_hex: "", inputs: [], outputs: [] });
    await expectDenied("gateway", "ln-peer", "SignJustice", justice);
  });

  it("the watchtower: SignJustice only (its policy refusal, not a permission one), nothing else", async () => {
    expect((await refusal(clients.tower.call("SignJustice", justice))).code).not.toBe("NOT_PERMITTED");
    await expectDenied("tower", "ln-watchtower", "SignSession", { handshake_hash: randomBytes(32) });
    await expectDenied("tower", "ln-watchtower", "NewChannel", {});
    await expectDenied("tower", "ln-watchtower", "OnionEcdh", { point: Buffer.alloc(33) });
    await expectDenied("tower", "ln-watchtower", "RevealInvoice", { index: 1 });
  });

  it("the channel service: the rest, but not the node key's handshake or justice", async () => {
    expect((await clients.channel.call("InvoiceHash", { index: 1 })).r_hash.length).toBe(32);
    expect(
      (await clients.channel.call("OnionEcdh", { point: ecc.pointFromScalar(Buffer.alloc(32, 7))! }))
        .shared_secret.length,
    ).toBe(32);
    await expectDenied("channel", "ln-channel", "Ecdh", { point: Buffer.alloc(33) });
    await expectDenied("channel", "ln-channel", "SignSession", { handshake_hash: randomBytes(32) });
    await expectDenied("channel", "ln-channel", "SignJustice", justice);
  });

  it("a certificate of the CA whose CN SIGNER_CLIENTS does not name may call nothing", async () => {
    await expectDenied("other", "unknown", "NodeInfo", {});
    await expectDenied("other", "unknown", "InvoiceHash", { index: 1 });
  });
});

describe("the permission table", () => {
  it("gives the gateway NodeInfo, Ecdh and SignSession, the tower SignJustice, the channel service the rest", () => {
    const of = (role: string): string[] =>
      Object.entries(METHOD_ROLES)
        .filter(([, roles]) => (roles as readonly string[]).includes(role))
        .map(([m]) => m)
        .sort();
    expect(of("gateway")).toEqual(["Ecdh", "NodeInfo", "SignSession"]);
    expect(of("tower")).toEqual(["SignJustice"]);
    expect(of("channel")).toEqual(
      [
        "NodeInfo",
        "OnionEcdh",
        "NewChannel",
        "RevocationHash",
        "RevealRevocation",
        "SignRemoteCommitment",
        "SignLocalCommitment",
        "SignClose",
        "RecordPeerRevocation",
        "WalletKey",
        "InvoiceHash",
        "RevealInvoice",
        "SignInvoice",
        "SignSweep",
        "SignWalletSpend",
        "ChannelStatus",
        "SignerStatuses",
        "SignChannelAnnouncement",
        "SignChannelUpdate",
        "SignNodeAnnouncement",
      ].sort(),
    );
  });

  it("SIGNER_CLIENTS: CN=role pairs; an unknown role, a bad pair or a CN given twice is a problem", async () => {
    const ok = parseClients("a=channel, b.x-1=gateway,c=tower");
    expect(ok.problems).toEqual([]);
    expect([...ok.clients]).toEqual([
      ["a", "channel"],
      ["b.x-1", "gateway"],
      ["c", "tower"],
    ]);
    expect(parseClients("a=admin").problems).toHaveLength(1);
    expect(parseClients("a").problems).toHaveLength(1);
    expect(parseClients("a=channel=x").problems).toHaveLength(1);
    expect(parseClients("a=channel,a=tower").problems).toHaveLength(1);
    expect(await signerCode(() => authorizeClient(ok.clients, undefined, "NodeInfo"))).toBe("NOT_PERMITTED");
    expect(await signerCode(() => authorizeClient(ok.clients, "c", "NodeInfo"))).toBe("NOT_PERMITTED");
    expect(authorizeClient(ok.clients, "c", "SignJustice")).toBe("tower");
  });
});
