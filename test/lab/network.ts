/**
 * A regtest network of Lightning nodes for the lab, the cross-service tests and benchmarks: an
 * in-process regtest node, Postgres and NATS (see infra.ts), a dev PKI, and per node its four
 * services as separate processes (signer → watchtower → peer → channel, the channel service
 * possibly as several replicas), with helpers to fund, connect, open channels and pay.
 *
 *   const net = await startNetwork({ nodes: ["A", "B"] });
 *   try {
 *     await net.fund([net.node("A")], 10_000_000n);
 *     await net.connect(net.node("A"), net.node("B"));
 *     const ch = await net.open(net.node("A"), net.node("B"), 4_000_000n);
 *     await net.pay(net.node("A"), net.node("B"), 1_000_000n);
 *   } finally {
 *     await net.cleanup();
 *   }
 *
 * Process names are `<node>.signer`, `<node>.watchtower`, `<node>.peer`, `<node>.channel` (the
 * first channel replica) and `<node>.channel-<i>` for replica i ≥ 2 (replica ids `<node>-<i>`).
 * `restart()` keeps each service's port, so the other services and peers find it again.
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sat } from "@ln/bitcoin";
import { decodeInvoice } from "@ln/invoice";
import { startRegtest, type Regtest } from "@ln/regtest";
import type { Transaction } from "bitcoinjs-lib";
import { connect as natsConnect } from "nats";
import pg from "pg";
import {
  ApiError,
  INVOICES_MADE,
  LabApi,
  type ChannelSummary,
  type Forward,
  type ForwardingPolicy,
  type ForwardList,
  type Payment,
  type PeerInfo,
  type RouteHop,
} from "./api.js";
import { keepCommitment, resignCommitment, type StaleCommitment } from "./breach.js";
import {
  makeDevPki,
  signerClientTlsEnv,
  signerServerTlsEnv,
  type DevPki,
  type SignerClientName,
} from "./certs.js";
import { ensureNats, ensurePostgres, type InfraHandle } from "./infra.js";
import { describeExit, REPO_ROOT, Supervisor, type ReadyInfo } from "./procs.js";

export const ENTRIES = {
  signer: "services/signer/src/main.ts",
  watchtower: "services/watchtower/src/main.ts",
  peer: "services/peer/src/main.ts",
  channel: "services/channel/src/main.ts",
} as const;

export type Service = keyof typeof ENTRIES;

/** Past the 144-block delay and the safety margin (draft 3.1), with room to spare. */
export const PAYMENT_EXPIRY_BLOCKS = 300;
const READY_TIMEOUT_MS = 120_000;

export const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
export const short = (hex: string): string => `${hex.slice(0, 10)}…`;
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Thrown by a waitFor check to stop waiting at once (a state that will not get better). */
export class WaitAbort extends Error {
  override readonly name = "WaitAbort";
}

export interface ChannelReplica {
  /** 1-based. */
  readonly index: number;
  /** The supervisor's process name. */
  readonly process: string;
  /** CHANNEL_REPLICA_ID. */
  readonly replicaId: string;
  apiUrl: string;
  api: LabApi;
  /** Its /metrics, /healthz and /readyz (set when CHANNEL_OPS_LISTEN is). */
  opsUrl?: string | undefined;
}

export interface NetNode {
  readonly name: string;
  readonly lower: string;
  readonly schemas: { signer: string; channel: string; tower: string };
  /** LN_PREFIX of the node's services. */
  readonly prefix: string;
  /** The admin token (CHANNEL_ADMIN_TOKEN). */
  readonly token: string;
  /** The signer's seed-file key (written to the file SIGNER_SEED_KEY_FILE names). */
  readonly seedKey: string;
  /** Every secret handed to the node's processes (token, seed key, database passwords): for log checks. */
  readonly secrets: string[];
  /** Supervisor process names. */
  readonly processes: { signer: string; watchtower: string; peer: string; channel: string[] };
  readonly replicas: ChannelReplica[];
  signerPort: number;
  nodeId: string;
  peerPort: number;
  /** The control API of the first running channel replica (of the first replica before start). */
  readonly apiUrl: string;
  readonly api: LabApi;
}

export interface NetworkOptions {
  readonly nodes: readonly string[];
  /** Channel-service replicas per node name (default 1). */
  readonly channelReplicas?: Readonly<Record<string, number>>;
  /** Extra environment of every channel-service process (e.g. CHANNEL_LEASE_MS). */
  readonly channelEnv?: Readonly<Record<string, string>>;
  /** Extra environment of one node's channel-service processes, by node name (over channelEnv). */
  readonly nodeChannelEnv?: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /**
   * Node.js options of single processes, by supervisor process name ("A.channel", "A.signer"),
   * e.g. `--cpu-prof` (the payments bench's BENCH_PROFILE); kept across restarts.
   */
  readonly nodeArgs?: Readonly<Record<string, readonly string[]>>;
  /** Progress lines. Default: none. */
  readonly log?: (line: string) => void;
  /** Working directory (logs, PKI, seeds). Default: LAB_DIR/run-<id>, else a fresh temp dir. */
  readonly dir?: string;
  /** Schema and subject name part. Default: 6 random hex digits. */
  readonly runId?: string;
  /** Blocks mined by startRegtest (default: its own minimum). */
  readonly regtestHeight?: number;
  /**
   * Start the run's own Postgres (embedded) and nats-server even when shared ones answer, so the
   * run can restart them (restartPostgres, restartNats). Default false.
   */
  readonly ownInfra?: boolean;
}

export interface WaitOptions {
  /** Mine one block per poll. */
  readonly mine?: boolean;
  /** Default 120 000 ms. */
  readonly timeoutMs?: number;
  /** Poll interval, default 1000 ms. */
  readonly intervalMs?: number;
  /** Log the start and end of the wait (default true). */
  readonly quiet?: boolean;
}

export interface PayOptions {
  /** The payer's channel id (default: its live channel with the payee). */
  readonly channelId?: string;
  /** The payer's API to pay through (default: the payer's `api`). */
  readonly via?: LabApi;
  /** The payee's API to invoice through (default: the payee's `api`). */
  readonly invoiceVia?: LabApi;
  /** Wait until the payment succeeded (default true); a failure rejects. */
  readonly wait?: boolean;
  readonly expiryBlocks?: number;
  readonly idempotencyKey?: string;
  readonly description?: string;
  readonly timeoutMs?: number;
}

export interface PayRouteOptions {
  /** The payer's API to pay through (default: the payer's `api`). */
  readonly via?: LabApi;
  /** The payer's channel (default: the one with the route's first hop). */
  readonly channelId?: string;
  /** The payee's HTLC expiry, blocks from now (default PAYMENT_EXPIRY_BLOCKS). */
  readonly finalExpiryBlocks?: number;
  /** An onion built elsewhere, hex (sent as is). */
  readonly onion?: string;
  /**
   * The invoice's payment secret (hex); default: the one in the payee's invoice for the hash, if
   * the route's last hop is a node of this network that has one (none: 32 zero bytes).
   */
  readonly paymentSecret?: string;
  /** Wait until the payment is final (default true). */
  readonly wait?: boolean;
  readonly idempotencyKey?: string;
  readonly timeoutMs?: number;
  /** Mine a block per poll while waiting (on-chain outcomes). */
  readonly mine?: boolean;
}

/** A route and, per forwarding hop, the channel it forwards over (the sending node's view). */
export interface BuiltRoute {
  readonly hops: RouteHop[];
  /** channels[i]: nodes[i]'s channel id with nodes[i+1]. */
  readonly channels: string[];
  /** policies[i]: nodes[i]'s policy on channels[i] (what it charges to forward over it). */
  readonly policies: ForwardingPolicy[];
}

/** The fields of a forwarding policy a test or the lab sets (POST /v1/channels/:id/policy). */
export interface PolicyFields {
  feeBaseMsat?: bigint;
  feeProportionalMillionths?: number;
  cltvExpiryDelta?: number;
  htlcMinimumMsat?: bigint;
}

/** One channel of a network's shape: `from` connects to `to` and funds it with `amountSat`. */
export interface ChannelSpec {
  readonly from: string;
  readonly to: string;
  readonly amountSat: bigint;
  /** `from`'s policy on it: what `from` charges to forward toward `to`. */
  readonly fromPolicy?: PolicyFields;
  /** `to`'s policy on it: what `to` charges to forward toward `from`. */
  readonly toPolicy?: PolicyFields;
}

/** A channel of the shape once open: each end's id, its short_channel_id and each end's policy. */
export interface OpenedChannel {
  readonly spec: ChannelSpec;
  readonly from: NetNode;
  readonly to: NetNode;
  readonly fromId: string;
  readonly toId: string;
  /** HEIGHTxINDEXxOUTPUT (BOLT #7). */
  readonly shortChannelId: string;
  readonly fromPolicy: ForwardingPolicy;
  readonly toPolicy: ForwardingPolicy;
}

const LIVE_PHASES = new Set(["opening", "normal", "clearing"]);

/** The channel of `n` with `peer`: by `id` if given and found, else the live one (else the newest). */
export async function channelWith(
  n: NetNode,
  peer: NetNode,
  id?: string,
  api: LabApi = n.api,
): Promise<ChannelSummary | undefined> {
  const list = await api.channels();
  if (id !== undefined) {
    const byId = list.find((c) => c.id === id);
    if (byId !== undefined) return byId;
  }
  const withPeer = list.filter((c) => c.peerNodeId === peer.nodeId);
  return withPeer.find((c) => LIVE_PHASES.has(c.phase)) ?? withPeer[0];
}

function readyString(name: string, info: ReadyInfo, key: string): string {
  const v = info[key];
  if (typeof v !== "string" || v === "")
    throw new Error(`${name}'s ready line has no string "${key}": ${JSON.stringify(info)}`);
  return v;
}
function readyPort(name: string, info: ReadyInfo, key: string): number {
  const v = info[key];
  if (typeof v !== "number" || !Number.isInteger(v) || v <= 0 || v > 65535)
    throw new Error(`${name}'s ready line has no port "${key}": ${JSON.stringify(info)}`);
  return v;
}
const portOf = (url: string): number => Number(new URL(url).port);

export class Network {
  readonly runId: string;
  readonly dir: string;
  readonly supervisor: Supervisor;
  readonly nodes: NetNode[];
  readonly log: (line: string) => void;
  rt: Regtest | undefined;
  pgInfra: InfraHandle | undefined;
  natsInfra: InfraHandle | undefined;
  pki: DevPki | undefined;
  /** Set when a ready process exits on its own: waits fail fast with it. */
  crashed: string | undefined;
  readonly #opts: NetworkOptions;
  #cleaned: Promise<void> | undefined;

  constructor(opts: NetworkOptions) {
    this.#opts = opts;
    this.log = opts.log ?? (() => undefined);
    this.runId = opts.runId ?? randomBytes(3).toString("hex");
    if (opts.dir !== undefined) {
      this.dir = opts.dir;
      mkdirSync(this.dir, { recursive: true });
    } else {
      const base = process.env["LAB_DIR"];
      if (base !== undefined && base !== "") {
        this.dir = join(base, `run-${this.runId}`);
        mkdirSync(this.dir, { recursive: true });
      } else this.dir = mkdtempSync(join(tmpdir(), `ln-lab-${this.runId}-`));
    }
    this.supervisor = new Supervisor({
      logDir: join(this.dir, "logs"),
      log: (l) => this.log(l),
      onUnexpectedExit: (name, exit, lines) => {
        this.crashed ??= `${name} exited (${describeExit(exit)}); last lines:\n${lines.slice(-15).join("\n")}`;
        this.log(`!! ${name} exited unexpectedly (${describeExit(exit)})`);
      },
    });
    const names = new Set<string>();
    this.nodes = opts.nodes.map((name) => {
      if (!/^[A-Za-z0-9]+$/.test(name) || names.has(name.toLowerCase()))
        throw new Error(`node names must be distinct and alphanumeric, got ${JSON.stringify(name)}`);
      names.add(name.toLowerCase());
      const lower = name.toLowerCase();
      const s = `lab_${this.runId}_${lower}`;
      const count = opts.channelReplicas?.[name] ?? 1;
      if (!Number.isInteger(count) || count < 1) throw new Error(`${name}: channel replicas must be ≥ 1`);
      const replicas: ChannelReplica[] = Array.from({ length: count }, (_, i) => ({
        index: i + 1,
        process: i === 0 ? `${name}.channel` : `${name}.channel-${i + 1}`,
        replicaId: `${lower}-${i + 1}`,
        apiUrl: "",
        api: new LabApi("http://127.0.0.1:1", ""),
      }));
      const sup = this.supervisor;
      const node: NetNode = {
        name,
        lower,
        schemas: { signer: `${s}_signer`, channel: `${s}_channel`, tower: `${s}_tower` },
        prefix: `lab${this.runId}.${lower}`,
        token: randomBytes(24).toString("base64url"),
        seedKey: randomBytes(32).toString("hex"),
        secrets: [],
        processes: {
          signer: `${name}.signer`,
          watchtower: `${name}.watchtower`,
          peer: `${name}.peer`,
          channel: replicas.map((r) => r.process),
        },
        replicas,
        signerPort: 0,
        nodeId: "",
        peerPort: 0,
        get apiUrl(): string {
          return (replicas.find((r) => sup.isRunning(r.process)) ?? replicas[0])?.apiUrl ?? "";
        },
        get api(): LabApi {
          const r = replicas.find((x) => sup.isRunning(x.process)) ?? replicas[0];
          if (r === undefined) throw new Error(`${name} has no channel replica`);
          return r.api;
        },
      };
      return node;
    });
  }

  node(name: string): NetNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  get regtest(): Regtest {
    if (this.rt === undefined) throw new Error("regtest is not running");
    return this.rt;
  }

  /** Starts regtest, makes sure Postgres and NATS run, and makes the dev PKI. */
  async infra(): Promise<void> {
    const log = this.log;
    log(`run ${this.runId}; lab directory ${this.dir}`);
    const missing = Object.values(ENTRIES).filter((e) => !existsSync(join(REPO_ROOT, e)));
    if (missing.length > 0)
      throw new Error(`service entry points missing (not written yet?): ${missing.join(", ")}`);
    log("regtest: starting the embedded bcoin regtest node");
    this.rt = await startRegtest({
      ...(this.#opts.regtestHeight !== undefined ? { height: this.#opts.regtestHeight } : {}),
      onProgress: (p) => log(`regtest: mining ${p.height}/${p.target}`),
    });
    log(`regtest: RPC ${this.rt.url} at height ${this.rt.height()}`);
    const own = this.#opts.ownInfra === true;
    this.pgInfra = await ensurePostgres({ log, ...(own ? { forceEmbedded: true } : {}) });
    this.natsInfra = await ensureNats({ log, ...(own ? { forceSpawn: true } : {}) });
    log("pki: making a dev CA, a server certificate (localhost, 127.0.0.1) and a client certificate");
    this.pki = makeDevPki(join(this.dir, "pki"));
    log(`pki: ${this.pki.dir}`);
  }

  /** infra(), then every node's services (the nodes in parallel). */
  async start(): Promise<void> {
    await this.infra();
    await Promise.all(this.nodes.map((n) => this.startNode(n)));
  }

  #infra(): { pki: DevPki; pgUrl: string; natsUrl: string; rt: Regtest } {
    const pki = this.pki;
    const pgUrl = this.pgInfra?.url;
    const natsUrl = this.natsInfra?.url;
    if (pki === undefined || pgUrl === undefined || natsUrl === undefined)
      throw new Error("infrastructure is not up");
    return { pki, pgUrl, natsUrl, rt: this.regtest };
  }

  /** Restarts the run's own Postgres (same port, same data); needs `ownInfra`. */
  async restartPostgres(): Promise<void> {
    const h = this.pgInfra;
    if (h?.restart === undefined) throw new Error("Postgres was not started by this run (ownInfra)");
    await h.restart();
    this.log("postgres: restarted");
  }

  /** Restarts the run's own nats-server (same port, same JetStream store); needs `ownInfra`. */
  async restartNats(): Promise<void> {
    const h = this.natsInfra;
    if (h?.restart === undefined) throw new Error("nats-server was not started by this run (ownInfra)");
    await h.restart();
    this.log("nats: restarted");
  }

  /** `n`'s current commitment of a channel, kept to stage a breach with later (breach.ts). */
  async keepCommitment(n: NetNode, channelId: string): Promise<StaleCommitment> {
    return keepCommitment(this.#infra().pgUrl, n.schemas.channel, channelId);
  }

  /** `n` cheats: broadcasts a kept (by now revoked) commitment, re-signed with a fresh nonce. */
  async breach(n: NetNode, stale: StaleCommitment): Promise<Transaction> {
    const tx = resignCommitment(stale, this.#seedFile(n), n.seedKey);
    await this.regtest.submit(tx.toHex());
    return tx;
  }

  /** Revocation records `n`'s channel service has not handed to its watchtower yet. */
  async towerRecordsPending(n: NetNode): Promise<number> {
    const rows = await this.query(
      `SELECT 1 FROM "${n.schemas.channel}".tower_records WHERE published_at IS NULL`,
    );
    return rows.length;
  }

  /** One statement on the network's Postgres as its administrator (a test's look at the tables). */
  async query<T extends pg.QueryResultRow>(sql: string): Promise<T[]> {
    const client = new pg.Client({ connectionString: this.#infra().pgUrl });
    await client.connect();
    try {
      return (await client.query<T>(sql)).rows;
    } finally {
      await client.end();
    }
  }

  #seedFile(n: NetNode): string {
    return join(this.dir, `${n.lower}-seed.enc`);
  }

  /** The seed file's key, in a file only its owner reads (SIGNER_SEED_KEY_FILE); written once. */
  #seedKeyFile(n: NetNode): string {
    const path = join(this.dir, `${n.lower}-seed.key`);
    if (!existsSync(path)) writeFileSync(path, n.seedKey, { mode: 0o600 });
    return path;
  }

  /**
   * Each service of a node gets its own Postgres role owning its own schema, as in production:
   * a role may touch only its service's tables. Returns each service's database URL.
   */
  async #databaseRoles(n: NetNode, adminUrl: string): Promise<Record<keyof NetNode["schemas"], string>> {
    const client = new pg.Client({ connectionString: adminUrl, connectionTimeoutMillis: 5000 });
    await client.connect();
    try {
      const urls = {} as Record<keyof NetNode["schemas"], string>;
      for (const [svc, schema] of Object.entries(n.schemas) as [keyof NetNode["schemas"], string][]) {
        const password = randomBytes(18).toString("hex");
        n.secrets.push(password);
        await client.query(`CREATE ROLE "${schema}" LOGIN PASSWORD '${password}'`);
        await client.query(`CREATE SCHEMA "${schema}" AUTHORIZATION "${schema}"`);
        const url = new URL(adminUrl);
        url.username = schema;
        url.password = password;
        urls[svc] = url.toString();
      }
      return urls;
    } finally {
      await client.end();
    }
  }

  /** Starts a node's signer, watchtower, peer and channel replicas, in that order. */
  async startNode(n: NetNode): Promise<void> {
    const { pki, pgUrl: adminUrl, natsUrl, rt } = this.#infra();
    n.secrets.push(n.token, n.seedKey);
    const db = await this.#databaseRoles(n, adminUrl);
    const log = this.log;
    const nodeArgs = this.#opts.nodeArgs ?? {};
    const opts = (name: string): { readyTimeoutMs: number; nodeArgs?: readonly string[] } => ({
      readyTimeoutMs: READY_TIMEOUT_MS,
      ...(nodeArgs[name] !== undefined ? { nodeArgs: nodeArgs[name] } : {}),
    });

    const signer = await this.supervisor.start(
      n.processes.signer,
      ENTRIES.signer,
      {
        SIGNER_DATABASE_URL: db.signer,
        SIGNER_DATABASE_SCHEMA: n.schemas.signer,
        SIGNER_LISTEN: "127.0.0.1:0",
        ...signerServerTlsEnv(pki),
        SIGNER_SEED_FILE: this.#seedFile(n),
        SIGNER_SEED_KEY_FILE: this.#seedKeyFile(n),
      },
      { ...opts(n.processes.signer), service: "signer" },
    );
    this.#signerReady(n, signer);
    log(`${n.name}: signer ready (node ${short(n.nodeId)}, port ${n.signerPort})`);

    // Each client with its own certificate: the signer lets each call only its own RPCs.
    const signerClient = (client: SignerClientName): Record<string, string> => ({
      SIGNER_ADDR: `127.0.0.1:${n.signerPort}`,
      ...signerClientTlsEnv(pki, client),
    });
    const tower = await this.supervisor.start(
      n.processes.watchtower,
      ENTRIES.watchtower,
      {
        WATCHTOWER_DATABASE_URL: db.tower,
        WATCHTOWER_DATABASE_SCHEMA: n.schemas.tower,
        BITCOIN_RPC_URL: rt.url,
        BITCOIN_RPC_USER: rt.user,
        BITCOIN_RPC_PASSWORD: rt.password,
        NATS_URL: natsUrl,
        LN_PREFIX: n.prefix,
        WATCHTOWER_POLL_MS: "250",
        WATCHTOWER_START_HEIGHT: String(rt.height()),
        // The tower has the signer sign justice (DESIGN.md 7); it holds no key itself.
        ...signerClient("tower"),
      },
      { ...opts(n.processes.watchtower), service: "watchtower" },
    );
    log(`${n.name}: watchtower ready (height ${String(tower["height"])}, stream ${String(tower["stream"])})`);

    const peer = await this.supervisor.start(
      n.processes.peer,
      ENTRIES.peer,
      { NATS_URL: natsUrl, LN_PREFIX: n.prefix, PEER_LISTEN: "127.0.0.1:0", ...signerClient("gateway") },
      { ...opts(n.processes.peer), service: "peer" },
    );
    this.#peerReady(n, peer);
    log(`${n.name}: peer ready (port ${n.peerPort})`);

    for (const r of n.replicas) {
      const channel = await this.supervisor.start(
        r.process,
        ENTRIES.channel,
        {
          CHANNEL_DATABASE_URL: db.channel,
          CHANNEL_DATABASE_SCHEMA: n.schemas.channel,
          NATS_URL: natsUrl,
          LN_PREFIX: n.prefix,
          ...signerClient("channel"),
          CHANNEL_API_LISTEN: "127.0.0.1:0",
          CHANNEL_ADMIN_TOKEN: n.token,
          CHANNEL_REPLICA_ID: r.replicaId,
          ...this.#opts.channelEnv,
          ...this.#opts.nodeChannelEnv?.[n.name],
        },
        { ...opts(r.process), service: "channel" },
      );
      this.#channelReady(n, r, channel);
      log(
        `${n.name}: channel ready (API ${r.apiUrl}${n.replicas.length > 1 ? `, replica ${r.replicaId}` : ""})`,
      );
    }
  }

  #signerReady(n: NetNode, info: ReadyInfo): void {
    const name = n.processes.signer;
    n.signerPort = readyPort(name, info, "port");
    const id = readyString(name, info, "nodeId");
    if (n.nodeId !== "" && id !== n.nodeId)
      throw new Error(`${n.name}: the restarted signer reports node ${id}, before ${n.nodeId}`);
    n.nodeId = id;
  }
  #peerReady(n: NetNode, info: ReadyInfo): void {
    n.peerPort = readyPort(n.processes.peer, info, "port");
    const peerId = readyString(n.processes.peer, info, "nodeId");
    if (peerId !== n.nodeId)
      throw new Error(`${n.name}: peer reports node ${peerId}, the signer ${n.nodeId}`);
  }
  #channelReady(n: NetNode, r: ChannelReplica, info: ReadyInfo): void {
    r.apiUrl = readyString(r.process, info, "api");
    r.opsUrl = typeof info["ops"] === "string" ? info["ops"] : undefined;
    const id = readyString(r.process, info, "nodeId");
    if (id !== n.nodeId)
      throw new Error(`${n.name}: channel service reports node ${id}, the signer ${n.nodeId}`);
    r.api = new LabApi(r.apiUrl, n.token);
  }

  #processOf(n: NetNode, svc: Service, replica = 1): string {
    if (svc !== "channel") return n.processes[svc];
    const p = n.processes.channel[replica - 1];
    if (p === undefined) throw new Error(`${n.name} has no channel replica ${replica}`);
    return p;
  }

  /** SIGKILLs (or sends `signal` to) one service of a node and waits for its exit. */
  async kill(
    n: NetNode,
    svc: Service,
    opts: { replica?: number; signal?: NodeJS.Signals } = {},
  ): Promise<void> {
    const name = this.#processOf(n, svc, opts.replica);
    const exit = await this.supervisor.kill(name, opts.signal ?? "SIGKILL");
    this.log(`${name}: killed (${describeExit(exit)})`);
  }

  /**
   * Restarts one service of a node (stopping it first if it runs) on the port it had, so the
   * node's other services (signer address) and peers (peer port) still find it. `env` is laid
   * over its environment from now on (e.g. LN_CRASH_AT; "" unsets one for the service).
   */
  async restart(
    n: NetNode,
    svc: Service,
    replica = 1,
    env: Readonly<Record<string, string>> = {},
  ): Promise<ReadyInfo> {
    const name = this.#processOf(n, svc, replica);
    const overrides: Record<string, string> = { ...env };
    if (svc === "signer") overrides["SIGNER_LISTEN"] = `127.0.0.1:${n.signerPort}`;
    if (svc === "peer") overrides["PEER_LISTEN"] = `127.0.0.1:${n.peerPort}`;
    const r = svc === "channel" ? n.replicas[replica - 1] : undefined;
    if (r !== undefined) overrides["CHANNEL_API_LISTEN"] = `127.0.0.1:${portOf(r.apiUrl)}`;
    const info = await this.supervisor.restart(name, overrides);
    if (svc === "signer") this.#signerReady(n, info);
    if (svc === "peer") this.#peerReady(n, info);
    if (r !== undefined) this.#channelReady(n, r, info);
    this.log(`${name}: restarted`);
    return info;
  }

  /**
   * Polls `check` (true when done, else a description of what it sees) every second, mining one
   * block per poll when `mine` is set, until done or `timeoutMs`. Errors of `check` count as the
   * observed state; a WaitAbort or a crashed service fails the wait at once.
   */
  async waitFor(what: string, check: () => Promise<true | string>, opts: WaitOptions = {}): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    const log = opts.quiet === true ? (): void => undefined : this.log;
    let last = "not checked yet";
    let mined = 0;
    log(`waiting for ${what}${opts.mine === true ? " (mining a block a second)" : ""}`);
    for (;;) {
      if (this.crashed !== undefined) throw new Error(`while waiting for ${what}: ${this.crashed}`);
      try {
        const r = await check();
        if (r === true) {
          log(`ok: ${what}${mined > 0 ? ` (${mined} blocks mined)` : ""}`);
          return;
        }
        last = r;
      } catch (e) {
        if (e instanceof WaitAbort) throw new Error(`while waiting for ${what}: ${e.message}`);
        last = `error: ${errText(e)}`;
      }
      if (Date.now() > deadline)
        throw new Error(`timed out after ${timeoutMs / 1000} s waiting for ${what}; last seen: ${last}`);
      if (opts.mine === true) {
        await this.regtest.mine(1);
        mined++;
      }
      await sleep(opts.intervalMs ?? 1000);
    }
  }

  /** Funds each node's wallet with `amountSat` and waits until every one shows it confirmed. */
  async fund(
    nodes: NetNode | readonly NetNode[],
    amountSat: bigint,
  ): Promise<{ node: string; txid: string }[]> {
    const list = Array.isArray(nodes) ? (nodes as readonly NetNode[]) : [nodes as NetNode];
    const out: { node: string; txid: string }[] = [];
    // A node listed k times gets k coins (one per channel it funds before they confirm).
    const totals = new Map<NetNode, bigint>();
    for (const n of list) {
      const address = await n.api.walletAddress();
      const f = await this.regtest.fund(address, sat(amountSat));
      out.push({ node: n.name, txid: f.txid });
      totals.set(n, (totals.get(n) ?? 0n) + amountSat);
      this.log(`${n.name}: funded ${amountSat} sat to ${address} (tx ${f.txid})`);
    }
    for (const [n, total] of totals)
      await this.waitFor(
        `${n.name}'s wallet to show ${total} sat confirmed`,
        async () => {
          const b = await n.api.walletBalance();
          return (
            BigInt(b.confirmedSat) >= total || `confirmed ${b.confirmedSat}, unconfirmed ${b.unconfirmedSat}`
          );
        },
        { mine: true },
      );
    return out;
  }

  /** `a` connects to `b` (POST /v1/peers on a); also to reconnect after a restart. */
  async connect(a: NetNode, b: NetNode, via: LabApi = a.api): Promise<PeerInfo> {
    const p = await via.connectPeer("127.0.0.1", b.peerPort, b.nodeId);
    this.log(`${a.name}: connected to ${b.name} (${short(p.nodeId)}, connected=${p.connected})`);
    return p;
  }

  /** Asks `a` to open a channel of `amountSat` to `b`; returns a's channel. */
  async openStart(a: NetNode, b: NetNode, amountSat: bigint, via: LabApi = a.api): Promise<ChannelSummary> {
    const c = await via.openChannel(b.nodeId, amountSat);
    this.log(`${a.name}: opening channel ${c.id} to ${b.name} (${amountSat} sat)`);
    return c;
  }

  /** A check for waitFor: both ends of a-b (a's id `aId`) are normal; a failed end aborts. */
  bothNormal(a: NetNode, b: NetNode, aId: string): () => Promise<true | string> {
    return async () => {
      const mine = await channelWith(a, b, aId);
      const theirs = await channelWith(b, a);
      if (mine?.phase === "failed" || theirs?.phase === "failed")
        throw new WaitAbort(
          `${a.name}-${b.name} failed: ${a.name} ${mine?.phase ?? "absent"}, ${b.name} ${theirs?.phase ?? "absent"}` +
            ` (GET /v1/channels/{id} on each end shows the failure)`,
        );
      if (mine?.phase === "normal" && theirs?.phase === "normal") return true;
      return `${a.name}: ${mine?.phase ?? "absent"}, ${b.name}: ${theirs?.phase ?? "absent"}`;
    };
  }

  /**
   * Opens a channel a→b of `amountSat` (a must be connected to b), mines until both ends are
   * normal, and returns each side's channel id.
   */
  async open(
    a: NetNode,
    b: NetNode,
    amountSat: bigint,
    opts: { via?: LabApi; timeoutMs?: number } = {},
  ): Promise<{ a: string; b: string }> {
    const c = await this.openStart(a, b, amountSat, opts.via);
    await this.waitFor(`${a.name}-${b.name} to be normal on both ends`, this.bothNormal(a, b, c.id), {
      mine: true,
      timeoutMs: opts.timeoutMs ?? 180_000,
    });
    const theirs = await channelWith(b, a);
    if (theirs === undefined) throw new Error(`${b.name} does not list the channel with ${a.name}`);
    return { a: c.id, b: theirs.id };
  }

  /**
   * Opens the channels of a shape (each funder needs one confirmed coin per channel it funds:
   * `fund` with the node listed that many times): connects each pair, opens them all at once,
   * mines until every one is normal on both ends and has its short_channel_id on both, then sets
   * the policies given. Returns the channels in the order of `specs`.
   */
  async openChannels(
    specs: readonly ChannelSpec[],
    opts: { timeoutMs?: number } = {},
  ): Promise<OpenedChannel[]> {
    const ends = specs.map((c) => ({ spec: c, from: this.node(c.from), to: this.node(c.to) }));
    for (const { from, to } of ends) await this.connect(from, to);
    const started: { spec: ChannelSpec; from: NetNode; to: NetNode; fromId: string }[] = [];
    for (const e of ends)
      started.push({ ...e, fromId: (await this.openStart(e.from, e.to, e.spec.amountSat)).id });
    const checks = started.map((c) => ({
      name: `${c.from.name}-${c.to.name}`,
      check: this.bothNormal(c.from, c.to, c.fromId),
    }));
    await this.waitFor(
      `${checks.map((c) => c.name).join(", ")} to be normal on both ends`,
      async () => {
        const seen = await Promise.all(checks.map(async (c) => ({ name: c.name, r: await c.check() })));
        const pending = seen.filter((x) => x.r !== true);
        return pending.length === 0 || pending.map((x) => `${x.name}: ${String(x.r)}`).join("; ");
      },
      { mine: true, timeoutMs: opts.timeoutMs ?? 240_000 },
    );
    const opened: OpenedChannel[] = [];
    for (const c of started) {
      const theirs = await channelWith(c.to, c.from);
      if (theirs === undefined) throw new Error(`${c.to.name} does not list its channel with ${c.from.name}`);
      await this.waitShortChannelIds(c.from, [c.fromId]);
      await this.waitShortChannelIds(c.to, [theirs.id]);
      const mine = await c.from.api.channel(c.fromId);
      if (mine.shortChannelId === undefined) throw new Error(`${c.fromId} has no short_channel_id`);
      const fromPolicy =
        c.spec.fromPolicy !== undefined
          ? await this.setPolicy(c.from, c.fromId, c.spec.fromPolicy)
          : await c.from.api.policy(c.fromId);
      const toPolicy =
        c.spec.toPolicy !== undefined
          ? await this.setPolicy(c.to, theirs.id, c.spec.toPolicy)
          : await c.to.api.policy(theirs.id);
      opened.push({ ...c, toId: theirs.id, shortChannelId: mine.shortChannelId, fromPolicy, toPolicy });
    }
    return opened;
  }

  /** Stops every service of a node (SIGTERM, then SIGKILL after the grace): the node is down. */
  async stopNode(n: NetNode): Promise<void> {
    const names = [...n.processes.channel, n.processes.peer, n.processes.watchtower, n.processes.signer];
    for (const name of names) if (this.supervisor.isRunning(name)) await this.supervisor.stop(name);
    this.log(`${n.name}: stopped (${names.join(", ")})`);
  }

  /** Waits until payment `id` of `payer` succeeded; a failure rejects with its reason. */
  async waitPayment(
    payer: NetNode,
    id: string,
    opts: { via?: LabApi; timeoutMs?: number; quiet?: boolean } = {},
  ): Promise<Payment> {
    let last: Payment | undefined;
    await this.waitFor(
      `${payer.name}'s payment ${id} to succeed`,
      async () => {
        const p = await (opts.via ?? payer.api).payment(id);
        last = p;
        if (p.status === "failed")
          throw new WaitAbort(`payment failed: ${p.failureReason ?? "no reason given"}`);
        return p.status === "succeeded" || p.status;
      },
      {
        intervalMs: 250,
        ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
        ...(opts.quiet !== undefined ? { quiet: opts.quiet } : {}),
      },
    );
    if (last === undefined) throw new Error(`payment ${id} not seen`);
    return last;
  }

  /** `payee` invoices `amountMsat`, `payer` pays it over their channel; by default waits for success. */
  async pay(payer: NetNode, payee: NetNode, amountMsat: bigint, opts: PayOptions = {}): Promise<Payment> {
    const inv = await (opts.invoiceVia ?? payee.api).createInvoice(
      amountMsat,
      opts.description ?? `lab ${this.runId}: from ${payer.name}`,
    );
    this.log(`${payee.name}: invoice ${short(inv.rHash)} for ${inv.amountMsat} msat`);
    const via = opts.via ?? payer.api;
    let channelId = opts.channelId;
    if (channelId === undefined) {
      const c = await channelWith(payer, payee, undefined, via);
      if (c === undefined) throw new Error(`${payer.name} has no channel with ${payee.name}`);
      channelId = c.id;
    }
    const p = await via.pay(
      {
        channelId,
        rHash: inv.rHash,
        amountMsat,
        expiry: { blocks: this.regtest.height() + (opts.expiryBlocks ?? PAYMENT_EXPIRY_BLOCKS) },
      },
      opts.idempotencyKey ?? `lab-${this.runId}-${randomUUID()}`,
    );
    this.log(`${payer.name}: payment ${p.id} ${p.status}`);
    if (opts.wait === false) return p;
    return this.waitPayment(payer, p.id, {
      via,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
    });
  }

  /**
   * An explicit route through `nodes` (payer first, payee last), from each node's own API: the
   * short_channel_id of nodes[i]'s channel with nodes[i+1] (its live one, or `channels[i]` when
   * given) and nodes[i]'s forwarding policy on it. hops[0] is the payer's peer, no fee or delta.
   */
  async route(
    nodes: readonly NetNode[],
    channels: readonly (string | undefined)[] = [],
  ): Promise<BuiltRoute> {
    if (nodes.length < 2) throw new Error("a route needs a payer and a payee");
    const hops: RouteHop[] = [];
    const ids: string[] = [];
    const policies: ForwardingPolicy[] = [];
    for (let i = 0; i + 1 < nodes.length; i++) {
      const [from, to] = [nodes[i] as NetNode, nodes[i + 1] as NetNode];
      const c = await channelWith(from, to, channels[i]);
      if (c === undefined) throw new Error(`${from.name} has no channel with ${to.name}`);
      if (c.shortChannelId === undefined)
        throw new Error(`${from.name}'s channel ${c.id} with ${to.name} has no short_channel_id yet`);
      const policy = await from.api.policy(c.id);
      ids.push(c.id);
      policies.push(policy);
      hops.push({
        nodeId: to.nodeId,
        shortChannelId: c.shortChannelId,
        // Our own channel charges us nothing; a forwarder charges its policy.
        feeBaseMsat: i === 0 ? 0n : BigInt(policy.feeBaseMsat),
        feeProportionalMillionths: i === 0 ? 0 : policy.feeProportionalMillionths,
        cltvExpiryDelta: i === 0 ? 0 : policy.cltvExpiryDelta,
      });
    }
    return { hops, channels: ids, policies };
  }

  /** Waits until `n`'s channels (ids) all have a short_channel_id (set once the anchor is in a block). */
  async waitShortChannelIds(n: NetNode, ids: readonly string[]): Promise<void> {
    await this.waitFor(
      `${n.name}'s channels ${ids.join(", ")} to have a short_channel_id`,
      async () => {
        const list = await n.api.channels();
        const missing = ids.filter((id) => list.find((c) => c.id === id)?.shortChannelId === undefined);
        return missing.length === 0 || `none yet for ${missing.join(", ")}`;
      },
      { intervalMs: 250, timeoutMs: 60_000 },
    );
  }

  /**
   * `payer` pays `amountMsat` (what the payee gets) over `route` to hash `rHash`; by default waits
   * until the payment is final (succeeded or failed) and returns it as it ended.
   */
  async payRoute(
    payer: NetNode,
    route: BuiltRoute | readonly RouteHop[],
    amountMsat: bigint,
    rHash: string,
    opts: PayRouteOptions = {},
  ): Promise<Payment> {
    const hops = "hops" in route ? route.hops : route;
    const via = opts.via ?? payer.api;
    const paymentSecret =
      opts.paymentSecret ?? (await this.invoiceSecret(hops[hops.length - 1]?.nodeId, rHash));
    const p = await via.pay(
      {
        ...(opts.channelId !== undefined ? { channelId: opts.channelId } : {}),
        rHash,
        amountMsat,
        expiry: { blocks: this.regtest.height() + (opts.finalExpiryBlocks ?? PAYMENT_EXPIRY_BLOCKS) },
        route: hops,
        ...(opts.onion !== undefined ? { onion: opts.onion } : {}),
        ...(paymentSecret !== undefined ? { paymentSecret } : {}),
      },
      opts.idempotencyKey ?? `lab-${this.runId}-${randomUUID()}`,
    );
    this.log(`${payer.name}: payment ${p.id} over ${hops.length} hop(s) ${p.status}`);
    if (opts.wait === false) return p;
    return this.waitPaymentFinal(payer, p.id, {
      via,
      ...(opts.timeoutMs !== undefined ? { timeoutMs: opts.timeoutMs } : {}),
      ...(opts.mine !== undefined ? { mine: opts.mine } : {}),
    });
  }

  /**
   * The payment secret of the BOLT #11 invoice for `rHash`: one made through a LabApi here, else
   * `nodeId`'s if it is a node of this network and has one.
   */
  async invoiceSecret(nodeId: string | undefined, rHash: string): Promise<string | undefined> {
    let bolt11 = INVOICES_MADE.get(rHash);
    const payee = this.nodes.find((n) => n.nodeId === nodeId);
    if (bolt11 === undefined && payee !== undefined) {
      const inv = await payee.api.invoice(rHash).catch((e: unknown) => {
        if (e instanceof ApiError && e.status === 404) return undefined; // an unknown hash: no secret
        throw e;
      });
      bolt11 = inv?.bolt11 ?? undefined;
    }
    return bolt11 === undefined ? undefined : decodeInvoice(bolt11).paymentSecret.toString("hex");
  }

  /** Waits until payment `id` of `payer` is final (succeeded or failed) and returns it. */
  async waitPaymentFinal(
    payer: NetNode,
    id: string,
    opts: { via?: LabApi; timeoutMs?: number; mine?: boolean } = {},
  ): Promise<Payment> {
    let last: Payment | undefined;
    await this.waitFor(
      `${payer.name}'s payment ${id} to be final`,
      async () => {
        last = await (opts.via ?? payer.api).payment(id);
        return last.status !== "pending" || last.status;
      },
      {
        intervalMs: opts.mine === true ? 500 : 250,
        timeoutMs: opts.timeoutMs ?? 120_000,
        ...(opts.mine !== undefined ? { mine: opts.mine } : {}),
      },
    );
    if (last === undefined) throw new Error(`payment ${id} not seen`);
    return last;
  }

  /** `n`'s forwards and totals (GET /v1/forwards). */
  forwards(n: NetNode, q: { status?: string; limit?: number } = {}): Promise<ForwardList> {
    return n.api.forwards(q);
  }

  /** `n`'s forwards of payment hash `rHash`. */
  forwardsOf(n: NetNode, rHash: string): Promise<Forward[]> {
    return n.api.forwardsOf(rHash);
  }

  /** Sets `n`'s forwarding policy on its channel `channelId` (the fields given). */
  async setPolicy(n: NetNode, channelId: string, p: PolicyFields): Promise<ForwardingPolicy> {
    const got = await n.api.setPolicy(channelId, p);
    this.log(
      `${n.name}: policy of ${channelId}: base ${got.feeBaseMsat} msat, ${got.feeProportionalMillionths} ppm, delta ${got.cltvExpiryDelta}, minimum ${got.htlcMinimumMsat} msat`,
    );
    return got;
  }

  /** Stops the services and regtest, drops the run's schemas and JetStream streams. Idempotent. */
  async cleanup(opts: { removeDir?: boolean } = {}): Promise<void> {
    const log = this.log;
    await (this.#cleaned ??= (async () => {
      log("stopping the services");
      await this.supervisor.stopAll().catch((e: unknown) => log(`stopAll: ${errText(e)}`));
      if (this.rt !== undefined) {
        log("stopping regtest");
        await this.rt.stop().catch((e: unknown) => log(`regtest stop: ${errText(e)}`));
      }
      if (this.pgInfra !== undefined) {
        const client = new pg.Client({ connectionString: this.pgInfra.url, connectionTimeoutMillis: 3000 });
        try {
          await client.connect();
          const schemas = this.nodes.flatMap((n) => Object.values(n.schemas));
          for (const s of schemas) await client.query(`DROP SCHEMA IF EXISTS "${s}" CASCADE`);
          for (const s of schemas) await client.query(`DROP ROLE IF EXISTS "${s}"`);
          log(`dropped schemas and roles lab_${this.runId}_*`);
        } catch (e) {
          log(`could not drop the lab schemas: ${errText(e)}`);
        } finally {
          await client.end().catch(() => undefined);
        }
        await this.pgInfra.stop();
      }
      if (this.natsInfra !== undefined) {
        await this.#dropStreams(this.natsInfra.url).catch((e: unknown) =>
          log(`could not delete the lab's JetStream streams: ${errText(e)}`),
        );
        await this.natsInfra.stop();
      }
    })());
    if (opts.removeDir === true) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Deletes the JetStream streams whose subjects are under this run's prefixes. */
  async #dropStreams(url: string): Promise<void> {
    const nc = await natsConnect({ servers: url, timeout: 2000, reconnect: false });
    try {
      const jsm = await nc.jetstreamManager();
      const mine = `lab${this.runId}.`;
      const doomed: string[] = [];
      for await (const s of jsm.streams.list())
        if ((s.config.subjects ?? []).some((subj) => subj.startsWith(mine))) doomed.push(s.config.name);
      for (const name of doomed) await jsm.streams.delete(name);
      if (doomed.length > 0) this.log(`deleted JetStream streams ${doomed.join(", ")}`);
    } finally {
      await nc.close();
    }
  }
}

/** Creates a Network and starts it (infra and every node); cleans up if the start fails. */
export async function startNetwork(opts: NetworkOptions): Promise<Network> {
  const net = new Network(opts);
  try {
    await net.start();
  } catch (e) {
    await net.cleanup().catch(() => undefined);
    throw e;
  }
  return net;
}
