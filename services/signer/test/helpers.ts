/** Test fixtures: certificates by the openssl CLI, a signer on a throwaway Postgres schema, a peer. */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { recordingLog } from "@ln/log";
import { msat, sat, sha256, txidFromInternal, type Locktime } from "@ln/bitcoin";
import { commitmentIndex, generateFromSeed } from "@ln/shachain";
import type { CommitmentHtlc, CommitmentParams } from "@ln/tx";
import pg from "pg";
import * as ecc from "tiny-secp256k1";
import { afterAll, beforeAll } from "vitest";
import { SignerClient } from "@ln/signer-client";
import { SignerError } from "../src/errors.js";
import { KeyRing } from "../src/keys.js";
import { parseClients, type Clients } from "../src/permissions.js";
import { REFUSAL_METADATA_KEY, startServer, type RunningServer } from "../src/server.js";
import { SignerService } from "../src/service.js";
import { SignerStore } from "../src/store.js";
import { testDatabaseUrl } from "@ln/testkit";

/** The server certificate names localhost; we dial 127.0.0.1 (an IP is no TLS server name). */
export const CLIENT_OPTIONS = { "grpc.ssl_target_name_override": "localhost" };

export const DATABASE_URL = testDatabaseUrl();

export interface Pems {
  dir: string;
  ca: Buffer;
  serverCert: Buffer;
  serverKey: Buffer;
  /** The channel service's client certificate (CN ln-channel). */
  clientCert: Buffer;
  clientKey: Buffer;
  /** The peer gateway's (CN ln-peer). */
  gatewayCert: Buffer;
  gatewayKey: Buffer;
  /** The watchtower's (CN ln-watchtower). */
  towerCert: Buffer;
  towerKey: Buffer;
  /** A client certificate of the CA whose CN SIGNER_CLIENTS does not name (CN ln-other). */
  otherCert: Buffer;
  otherKey: Buffer;
  /** A client certificate from another CA. */
  strangerCert: Buffer;
  strangerKey: Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("/usr/bin/openssl", args, { cwd: dir, stdio: "pipe" });
}

function newCa(dir: string, name: string): void {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-subj",
    `/CN=${name}`,
    "-days",
    "2",
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

function newLeaf(dir: string, ca: string, name: string, ext: string, cn = name): void {
  writeFileSync(join(dir, `${name}.ext`), ext);
  openssl(dir, [
    "req",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${cn}`,
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
}

export function makePems(): Pems {
  const dir = mkdtempSync(join(tmpdir(), "signer-tls-"));
  newCa(dir, "ca");
  newCa(dir, "other-ca");
  newLeaf(dir, "ca", "server", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
  newLeaf(dir, "ca", "client", "extendedKeyUsage=clientAuth\n", "ln-channel");
  newLeaf(dir, "ca", "gateway", "extendedKeyUsage=clientAuth\n", "ln-peer");
  newLeaf(dir, "ca", "tower", "extendedKeyUsage=clientAuth\n", "ln-watchtower");
  newLeaf(dir, "ca", "other", "extendedKeyUsage=clientAuth\n", "ln-other");
  newLeaf(dir, "other-ca", "stranger", "extendedKeyUsage=clientAuth\n");
  const r = (f: string): Buffer => readFileSync(join(dir, f));
  return {
    dir,
    ca: r("ca.crt"),
    serverCert: r("server.crt"),
    serverKey: r("server.key"),
    clientCert: r("client.crt"),
    clientKey: r("client.key"),
    gatewayCert: r("gateway.crt"),
    gatewayKey: r("gateway.key"),
    towerCert: r("tower.crt"),
    towerKey: r("tower.key"),
    otherCert: r("other.crt"),
    otherKey: r("other.key"),
    strangerCert: r("stranger.crt"),
    strangerKey: r("stranger.key"),
  };
}

/** The CNs of makePems's client certificates and their roles, as SIGNER_CLIENTS gives them. */
export const TEST_CLIENTS_ENV = "ln-channel=channel,ln-peer=gateway,ln-watchtower=tower";
export const TEST_CLIENTS: Clients = parseClients(TEST_CLIENTS_ENV).clients;

export const TEST_SEED = Buffer.from("7e57".repeat(16), "hex");

export interface TestSigner {
  pems: Pems;
  keys: KeyRing;
  store: SignerStore;
  running: RunningServer;
  address: string;
  /** Calls as the channel service (the role of most RPCs). */
  client: SignerClient;
  /** Calls as the peer gateway (NodeInfo, Ecdh, SignSession). */
  gateway: SignerClient;
  /** Calls as the watchtower (SignJustice). */
  tower: SignerClient;
  logs: string[];
  schema: string;
  close(): Promise<void>;
}

export async function startTestSigner(maxFeeSat = 5000n, maxWithdrawalSat = 0n): Promise<TestSigner> {
  const pems = makePems();
  const schema = `signer_test_${randomBytes(6).toString("hex")}`;
  const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 10 });
  const store = new SignerStore(pool, schema);
  await store.migrate();
  const keys = new KeyRing(TEST_SEED);
  const logs: string[] = [];
  const running = await startServer({
    service: new SignerService(keys, store, { maxFeeSat, maxWithdrawalSat }),
    listen: "127.0.0.1:0",
    tls: { ca: pems.ca, cert: pems.serverCert, key: pems.serverKey },
    clients: TEST_CLIENTS,
    log: recordingLog((r) => logs.push(`${r.level} ${r.msg} ${JSON.stringify(r.fields)}`)),
  });
  const address = `127.0.0.1:${running.port}`;
  const as = (cert: Buffer, key: Buffer): SignerClient =>
    new SignerClient(address, { ca: pems.ca, cert, key }, CLIENT_OPTIONS);
  const client = as(pems.clientCert, pems.clientKey);
  const gateway = as(pems.gatewayCert, pems.gatewayKey);
  const tower = as(pems.towerCert, pems.towerKey);
  return {
    pems,
    keys,
    store,
    running,
    address,
    client,
    gateway,
    tower,
    logs,
    schema,
    async close() {
      for (const c of [client, gateway, tower]) c.close();
      await running.shutdown(1000);
      await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await store.close();
      rmSync(pems.dir, { recursive: true, force: true });
    },
  };
}

/**
 * A test signer for the file's tests: started in beforeAll, closed in afterAll. The object
 * returned is filled in when the signer starts, so use it only inside hooks and tests.
 */
export function useTestSigner(maxFeeSat?: bigint, maxWithdrawalSat?: bigint): TestSigner {
  const t = {} as TestSigner;
  beforeAll(async () => {
    Object.assign(t, await startTestSigner(maxFeeSat, maxWithdrawalSat));
  });
  afterAll(async () => {
    await t.close?.();
  });
  return t;
}

/** Expects a refusal: the gRPC status, and the reason code in the message and in the metadata. */
export async function refusal(
  p: Promise<unknown>,
): Promise<{ grpcCode: number; code: string; details: string }> {
  try {
    await p;
  } catch (e) {
    const err = e as grpc.ServiceError;
    const code = String(err.metadata?.get(REFUSAL_METADATA_KEY)[0] ?? "");
    if (!err.details.startsWith(`${code}: `))
      throw new Error(`details do not start with the code: ${err.details}`);
    return { grpcCode: err.code, code, details: err.details };
  }
  throw new Error("expected a refusal, the call succeeded");
}

const keyPair = (label: string): { priv: Buffer; pub: Buffer } => {
  const priv = sha256(Buffer.from(label));
  return { priv, pub: Buffer.from(ecc.pointFromScalar(priv, true)!) };
};

/** The other node: its keys held here, as it would hold them. */
export function makePeer(label: string) {
  const shachainSeed = sha256(Buffer.from(`${label} shachain`));
  const preimage = (n: bigint): Buffer => generateFromSeed(shachainSeed, commitmentIndex(n));
  return {
    commit: keyPair(`${label} commit`),
    final: keyPair(`${label} final`),
    preimage,
    revocationHash: (n: bigint): Buffer => sha256(preimage(n)),
  };
}
export type Peer = ReturnType<typeof makePeer>;

export interface Ours {
  channel: number;
  commitPub: Buffer;
  finalPub: Buffer;
}

export interface AnchorFixture {
  txid: ReturnType<typeof txidFromInternal>;
  vout: number;
  amount: bigint;
}

export const randomAnchor = (amount = 1_000_000n): AnchorFixture => ({
  txid: txidFromInternal(randomBytes(32)),
  vout: 1,
  amount,
});

export interface StateFixture {
  ownerMsat?: bigint;
  otherMsat?: bigint;
  htlcs?: CommitmentHtlc[];
  feeRate?: number;
  delay?: Locktime;
}

function anchorOf(ours: Ours, peer: Peer, anchor: AnchorFixture): CommitmentParams["anchor"] {
  return {
    outpoint: { txid: anchor.txid, vout: anchor.vout },
    amount: sat(anchor.amount),
    commitKeys: [ours.commitPub, peer.commit.pub],
  };
}

/** The peer's commitment (owner = peer). */
export function remoteParams(
  ours: Ours,
  peer: Peer,
  anchor: AnchorFixture,
  number: bigint,
  s: StateFixture = {},
): CommitmentParams {
  return {
    anchor: anchorOf(ours, peer, anchor),
    ownerFinal: peer.final.pub,
    otherFinal: ours.finalPub,
    revocationHash: peer.revocationHash(number),
    delay: s.delay ?? { blocks: 144 },
    ownerMsat: msat(s.ownerMsat ?? 400_000_000n),
    otherMsat: msat(s.otherMsat ?? 600_000_000n),
    htlcs: s.htlcs ?? [],
    feeRate: s.feeRate ?? 1112,
  };
}

/** Our commitment (owner = us) with our revocation hash for it. */
export function localParams(
  ours: Ours,
  peer: Peer,
  anchor: AnchorFixture,
  revocationHash: Buffer,
  s: StateFixture = {},
): CommitmentParams {
  return {
    anchor: anchorOf(ours, peer, anchor),
    ownerFinal: ours.finalPub,
    otherFinal: peer.final.pub,
    revocationHash,
    delay: s.delay ?? { blocks: 144 },
    ownerMsat: msat(s.ownerMsat ?? 600_000_000n),
    otherMsat: msat(s.otherMsat ?? 400_000_000n),
    htlcs: s.htlcs ?? [],
    feeRate: s.feeRate ?? 1112,
  };
}

/** The code of the SignerError that `f` throws or rejects with; undefined if it succeeds. */
export async function signerCode(f: () => unknown): Promise<string | undefined> {
  try {
    await f();
  } catch (e) {
    return e instanceof SignerError ? e.code : `not a SignerError: ${String(e)}`;
  }
  return undefined;
}
