/**
 * The lab (the README's main job): a regtest network of three nodes A, B, C, each its four
 * services (signer, watchtower, peer, channel) as separate processes, on an in-process regtest
 * node. It funds the nodes, opens A-B and C-B, pays A→B and C→B, closes A-B cooperatively,
 * prints a summary, then keeps running (printing each node's control API and admin token) until
 * Ctrl-C. `--exit`: exit after the scenario, non-zero with what failed.
 *
 *   pnpm run lab [-- --exit]
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test, else an embedded
 * Postgres), NATS_URL (default nats://127.0.0.1:4222, else a nats-server spawned for the run),
 * LAB_DIR (default a fresh directory under the OS temp dir).
 */
import { randomBytes, randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { sat } from "@ln/bitcoin";
import { startRegtest, type Regtest } from "@ln/regtest";
import { connect } from "nats";
import pg from "pg";
import { LabApi, type ChannelSummary, type Payment } from "./api.js";
import { makeDevPki, signerClientTlsEnv, signerServerTlsEnv, type DevPki } from "./certs.js";
import { ensureNats, ensurePostgres, redactUrl, type InfraHandle } from "./infra.js";
import { describeExit, REPO_ROOT, Supervisor, type ReadyInfo } from "./procs.js";

const NODES = ["A", "B", "C"] as const;
type NodeName = (typeof NODES)[number];

const ENTRIES = {
  signer: "services/signer/src/main.ts",
  watchtower: "services/watchtower/src/main.ts",
  peer: "services/peer/src/main.ts",
  channel: "services/channel/src/main.ts",
} as const;

const FUND_SAT = 10_000_000n; // 0.1 BTC per node
const CHANNEL_SAT = 4_000_000n; // 0.04 BTC per channel (the draft caps an anchor at 4 294 967 sat)
const PAY_A_MSAT = 25_000_000n; // 25 000 sat
const PAY_C_MSAT = 12_345_000n; // 12 345 sat
// Past the 144-block delay and the safety margin (draft 3.1), with room to spare.
const PAYMENT_EXPIRY_BLOCKS = 300;
const READY_TIMEOUT_MS = 120_000;

const log = (line: string): void => console.log(`[lab] ${line}`);
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e));
const short = (hex: string): string => `${hex.slice(0, 10)}…`;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Thrown by a waitFor check to stop waiting at once (a state that will not get better). */
class WaitAbort extends Error {
  override readonly name = "WaitAbort";
}

interface LabNode {
  readonly name: NodeName;
  readonly lower: string;
  readonly schemas: { signer: string; channel: string; tower: string };
  readonly prefix: string;
  readonly token: string;
  signerPort: number;
  nodeId: string;
  peerPort: number;
  apiUrl: string;
  api: LabApi;
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

class Lab {
  readonly runId = randomBytes(3).toString("hex");
  readonly dir: string;
  readonly sup: Supervisor;
  readonly nodes: LabNode[];
  rt: Regtest | undefined;
  pgInfra: InfraHandle | undefined;
  natsInfra: InfraHandle | undefined;
  pki: DevPki | undefined;
  /** Set when a ready process exits on its own: waits fail fast with it. */
  crashed: string | undefined;
  /** What the lab is doing, for the failure message. */
  step = "starting the infrastructure";
  readonly fundings: { node: NodeName; txid: string }[] = [];
  /** What the scenario got to, for the summary (also after a failure). */
  readonly channels: { from: NodeName; id: string }[] = [];
  readonly payments: { from: NodeName; payment: Payment }[] = [];
  #cleaned: Promise<void> | undefined;

  constructor() {
    const base = process.env["LAB_DIR"];
    if (base !== undefined && base !== "") {
      this.dir = join(base, `run-${this.runId}`);
      mkdirSync(this.dir, { recursive: true });
    } else this.dir = mkdtempSync(join(tmpdir(), `ln-lab-${this.runId}-`));
    this.sup = new Supervisor({
      logDir: join(this.dir, "logs"),
      log: (l) => log(l),
      onUnexpectedExit: (name, exit, lines) => {
        this.crashed ??= `${name} exited (${describeExit(exit)}); last lines:\n${lines.slice(-15).join("\n")}`;
        console.error(`[lab] !! ${name} exited unexpectedly (${describeExit(exit)})`);
      },
    });
    this.nodes = NODES.map((name) => {
      const lower = name.toLowerCase();
      const s = `lab_${this.runId}_${lower}`;
      return {
        name,
        lower,
        schemas: { signer: `${s}_signer`, channel: `${s}_channel`, tower: `${s}_tower` },
        prefix: `lab${this.runId}.${lower}`,
        token: randomBytes(24).toString("base64url"),
        signerPort: 0,
        nodeId: "",
        peerPort: 0,
        apiUrl: "",
        api: new LabApi("http://127.0.0.1:1", ""),
      };
    });
  }

  node(name: NodeName): LabNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name}`);
    return n;
  }

  get regtest(): Regtest {
    if (this.rt === undefined) throw new Error("regtest is not running");
    return this.rt;
  }

  async infra(): Promise<void> {
    log(`run ${this.runId}; lab directory ${this.dir}`);
    const missing = Object.values(ENTRIES).filter((e) => !existsSync(join(REPO_ROOT, e)));
    if (missing.length > 0)
      throw new Error(`service entry points missing (not written yet?): ${missing.join(", ")}`);
    log("regtest: starting the embedded bcoin regtest node");
    this.rt = await startRegtest({
      onProgress: (p) => log(`regtest: mining ${p.height}/${p.target}`),
    });
    log(`regtest: RPC ${this.rt.url} at height ${this.rt.height()}`);
    this.pgInfra = await ensurePostgres({ log });
    this.natsInfra = await ensureNats({ log });
    log("pki: making a dev CA, a server certificate (localhost, 127.0.0.1) and a client certificate");
    this.pki = makeDevPki(join(this.dir, "pki"));
    log(`pki: ${this.pki.dir}`);
  }

  async startNode(n: LabNode): Promise<void> {
    const pki = this.pki;
    const pgUrl = this.pgInfra?.url;
    const natsUrl = this.natsInfra?.url;
    if (pki === undefined || pgUrl === undefined || natsUrl === undefined)
      throw new Error("infrastructure is not up");
    const rt = this.regtest;
    const name = (svc: string): string => `${n.name}.${svc}`;
    const opts = { readyTimeoutMs: READY_TIMEOUT_MS };

    const signer = await this.sup.start(
      name("signer"),
      ENTRIES.signer,
      {
        SIGNER_DATABASE_URL: pgUrl,
        SIGNER_DATABASE_SCHEMA: n.schemas.signer,
        SIGNER_LISTEN: "127.0.0.1:0",
        ...signerServerTlsEnv(pki),
        SIGNER_SEED_FILE: join(this.dir, `${n.lower}-seed.enc`),
        SIGNER_SEED_KEY: randomBytes(32).toString("hex"),
      },
      { ...opts, service: "signer" },
    );
    n.signerPort = readyPort(name("signer"), signer, "port");
    n.nodeId = readyString(name("signer"), signer, "nodeId");
    log(`${n.name}: signer ready (node ${short(n.nodeId)}, port ${n.signerPort})`);

    const signerClient = {
      SIGNER_ADDR: `127.0.0.1:${n.signerPort}`,
      ...signerClientTlsEnv(pki),
    };
    const tower = await this.sup.start(
      name("watchtower"),
      ENTRIES.watchtower,
      {
        WATCHTOWER_DATABASE_URL: pgUrl,
        WATCHTOWER_DATABASE_SCHEMA: n.schemas.tower,
        BITCOIN_RPC_URL: rt.url,
        BITCOIN_RPC_USER: rt.user,
        BITCOIN_RPC_PASSWORD: rt.password,
        NATS_URL: natsUrl,
        LN_PREFIX: n.prefix,
        WATCHTOWER_POLL_MS: "250",
        WATCHTOWER_START_HEIGHT: String(rt.height()),
      },
      { ...opts, service: "watchtower" },
    );
    log(`${n.name}: watchtower ready (height ${String(tower["height"])}, stream ${String(tower["stream"])})`);

    const peer = await this.sup.start(
      name("peer"),
      ENTRIES.peer,
      { NATS_URL: natsUrl, LN_PREFIX: n.prefix, PEER_LISTEN: "127.0.0.1:0", ...signerClient },
      { ...opts, service: "peer" },
    );
    n.peerPort = readyPort(name("peer"), peer, "port");
    const peerId = readyString(name("peer"), peer, "nodeId");
    if (peerId !== n.nodeId)
      throw new Error(`${n.name}: peer reports node ${peerId}, the signer ${n.nodeId}`);
    log(`${n.name}: peer ready (port ${n.peerPort})`);

    const channel = await this.sup.start(
      name("channel"),
      ENTRIES.channel,
      {
        CHANNEL_DATABASE_URL: pgUrl,
        CHANNEL_DATABASE_SCHEMA: n.schemas.channel,
        NATS_URL: natsUrl,
        LN_PREFIX: n.prefix,
        ...signerClient,
        CHANNEL_API_LISTEN: "127.0.0.1:0",
        CHANNEL_ADMIN_TOKEN: n.token,
        CHANNEL_REPLICA_ID: `${n.lower}-1`,
      },
      { ...opts, service: "channel" },
    );
    n.apiUrl = readyString(name("channel"), channel, "api");
    const channelId = readyString(name("channel"), channel, "nodeId");
    if (channelId !== n.nodeId)
      throw new Error(`${n.name}: channel service reports node ${channelId}, the signer ${n.nodeId}`);
    n.api = new LabApi(n.apiUrl, n.token);
    log(`${n.name}: channel ready (API ${n.apiUrl})`);
  }

  /**
   * Polls `check` (true when done, else a description of what it sees) every second, mining one
   * block per poll when `mine` is set, until done or `timeoutMs`. Errors of `check` count as the
   * observed state; a crashed service fails the wait at once.
   */
  async waitFor(
    what: string,
    check: () => Promise<true | string>,
    opts: { mine?: boolean; timeoutMs?: number } = {},
  ): Promise<void> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
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
      await sleep(1000);
    }
  }

  async cleanup(): Promise<void> {
    return (this.#cleaned ??= (async () => {
      log("stopping the services");
      await this.sup.stopAll().catch((e: unknown) => log(`stopAll: ${errText(e)}`));
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
          log(`dropped schemas lab_${this.runId}_*`);
        } catch (e) {
          log(`could not drop the lab schemas: ${errText(e)}`);
        } finally {
          await client.end().catch(() => undefined);
        }
        await this.pgInfra.stop();
      }
      if (this.natsInfra !== undefined) {
        await this.dropStreams(this.natsInfra.url).catch((e: unknown) =>
          log(`could not delete the lab's JetStream streams: ${errText(e)}`),
        );
        await this.natsInfra.stop();
      }
    })());
  }

  /** Deletes the JetStream streams whose subjects are under this run's prefixes. */
  async dropStreams(url: string): Promise<void> {
    const nc = await connect({ servers: url, timeout: 2000, reconnect: false });
    try {
      const jsm = await nc.jetstreamManager();
      const mine = `lab${this.runId}.`;
      const doomed: string[] = [];
      for await (const s of jsm.streams.list())
        if ((s.config.subjects ?? []).some((subj) => subj.startsWith(mine))) doomed.push(s.config.name);
      for (const name of doomed) await jsm.streams.delete(name);
      if (doomed.length > 0) log(`deleted JetStream streams ${doomed.join(", ")}`);
    } finally {
      await nc.close();
    }
  }
}

/** Finds the channel of `n` with `peer`: by id when the id is shared, else by the peer's node id. */
async function channelOf(n: LabNode, id: string, peer: LabNode): Promise<ChannelSummary | undefined> {
  const list = await n.api.channels();
  return list.find((c) => c.id === id) ?? list.find((c) => c.peerNodeId === peer.nodeId);
}

async function scenario(lab: Lab): Promise<void> {
  const [A, B, C] = [lab.node("A"), lab.node("B"), lab.node("C")];
  const rt = lab.regtest;

  // 1. Fund each node's wallet.
  lab.step = "funding the nodes' wallets";
  for (const n of lab.nodes) {
    const address = await n.api.walletAddress();
    const f = await rt.fund(address, sat(FUND_SAT));
    lab.fundings.push({ node: n.name, txid: f.txid });
    log(`${n.name}: funded ${FUND_SAT} sat to ${address} (tx ${f.txid})`);
  }
  for (const n of lab.nodes)
    await lab.waitFor(
      `${n.name}'s wallet to show ${FUND_SAT} sat confirmed`,
      async () => {
        const b = await n.api.walletBalance();
        return (
          BigInt(b.confirmedSat) >= FUND_SAT || `confirmed ${b.confirmedSat}, unconfirmed ${b.unconfirmedSat}`
        );
      },
      { mine: true },
    );

  // 2. Connect A and C to B, open A-B and C-B.
  lab.step = "connecting A and C to B";
  for (const n of [A, C]) {
    const p = await n.api.connectPeer("127.0.0.1", B.peerPort, B.nodeId);
    log(`${n.name}: connected to B (${short(p.nodeId)}, connected=${p.connected})`);
  }
  lab.step = "opening A-B and C-B";
  const ab = await A.api.openChannel(B.nodeId, CHANNEL_SAT);
  lab.channels.push({ from: "A", id: ab.id });
  log(`A: opening channel ${ab.id} to B (${CHANNEL_SAT} sat)`);
  const cb = await C.api.openChannel(B.nodeId, CHANNEL_SAT);
  lab.channels.push({ from: "C", id: cb.id });
  log(`C: opening channel ${cb.id} to B (${CHANNEL_SAT} sat)`);
  const bothNormal = async (x: LabNode, id: string): Promise<true | string> => {
    const mineSide = await channelOf(x, id, B);
    const theirs = await channelOf(B, id, x);
    if (mineSide?.phase === "failed" || theirs?.phase === "failed")
      throw new WaitAbort(
        `${x.name}-B failed: ${x.name} ${mineSide?.phase ?? "absent"}, B ${theirs?.phase ?? "absent"}` +
          ` (GET /v1/channels/${id} on each end shows the failure)`,
      );
    if (mineSide?.phase === "normal" && theirs?.phase === "normal") return true;
    return `${x.name}: ${mineSide?.phase ?? "absent"}, B: ${theirs?.phase ?? "absent"}`;
  };
  await lab.waitFor(
    "A-B and C-B to be normal on both ends",
    async () => {
      const [a, c] = [await bothNormal(A, ab.id), await bothNormal(C, cb.id)];
      return (
        (a === true && c === true) || `A-B ${a === true ? "normal" : a}; C-B ${c === true ? "normal" : c}`
      );
    },
    { mine: true, timeoutMs: 180_000 },
  );

  // 3. B invoices, A and C pay.
  lab.step = "paying A→B and C→B";
  const payments = lab.payments;
  for (const [payer, channelId, amount] of [
    [A, ab.id, PAY_A_MSAT],
    [C, cb.id, PAY_C_MSAT],
  ] as const) {
    const inv = await B.api.createInvoice(amount, `lab ${lab.runId}: from ${payer.name}`);
    log(`B: invoice ${short(inv.rHash)} for ${inv.amountMsat} msat`);
    const p = await payer.api.pay(
      {
        channelId,
        rHash: inv.rHash,
        amountMsat: amount,
        expiry: { blocks: rt.height() + PAYMENT_EXPIRY_BLOCKS },
      },
      `lab-${lab.runId}-${randomUUID()}`,
    );
    log(`${payer.name}: payment ${p.id} ${p.status}`);
    payments.push({ from: payer.name, payment: p });
  }
  for (const entry of payments) {
    const payer = lab.node(entry.from);
    await lab.waitFor(`${entry.from}'s payment ${entry.payment.id} to succeed`, async () => {
      const p = (await payer.api.payments()).find((x) => x.id === entry.payment.id);
      if (p === undefined) return "not listed";
      entry.payment = p;
      if (p.status === "failed")
        throw new WaitAbort(`payment failed: ${p.failureReason ?? "no reason given"}`);
      return p.status === "succeeded" || p.status;
    });
    if (entry.payment.status === "failed")
      throw new Error(`${entry.from}'s payment failed: ${entry.payment.failureReason ?? "no reason"}`);
  }

  // 4. A closes A-B cooperatively.
  lab.step = "closing A-B cooperatively";
  const closing = await A.api.closeChannel(ab.id);
  log(`A: closing ${ab.id} (${closing.phase})`);
  await lab.waitFor(
    "A-B to be closed on both ends",
    async () => {
      const a = await channelOf(A, ab.id, B);
      const b = await channelOf(B, ab.id, A);
      if (a?.phase === "failed" || b?.phase === "failed")
        throw new WaitAbort(`A-B failed: A ${a?.phase ?? "absent"}, B ${b?.phase ?? "absent"}`);
      return (
        (a?.phase === "closed" && b?.phase === "closed") ||
        `A: ${a?.phase ?? "absent"}, B: ${b?.phase ?? "absent"}`
      );
    },
    { mine: true, timeoutMs: 180_000 },
  );
}

const pad = (s: string, n: number): string => (s.length >= n ? s : s + " ".repeat(n - s.length));
function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows.map((r) => "  " + r.map((c, i) => pad(c, widths[i] ?? 0)).join("  ")).join("\n");
}
const satOf = (msat: string): string => {
  const m = BigInt(msat);
  return m % 1000n === 0n ? `${m / 1000n}` : `${m / 1000n}.${(m % 1000n).toString().padStart(3, "0")}`;
};

async function summary(lab: Lab): Promise<void> {
  const out: string[] = ["", "==================== lab summary ===================="];
  out.push("nodes:");
  out.push(
    table([
      ["node", "node id", "peer port", "control API"],
      ...lab.nodes.map((n) => [
        n.name,
        n.nodeId ? short(n.nodeId) : "-",
        String(n.peerPort || "-"),
        n.apiUrl || "-",
      ]),
    ]),
  );
  const safe = async <T>(f: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await f();
    } catch {
      return undefined;
    }
  };
  const B = lab.node("B");
  if (lab.channels.length > 0) {
    out.push("channels (balances in sat, each end's own view):");
    const rows = [["channel", "ends", "capacity", "phase (creator/B)", "creator local", "B local"]];
    for (const { from, id } of lab.channels) {
      const x = lab.node(from);
      const mine = await safe(() => channelOf(x, id, B));
      const theirs = await safe(() => channelOf(B, id, x));
      rows.push([
        id,
        `${x.name}-B`,
        mine?.capacitySat ?? "?",
        `${mine?.phase ?? "?"}/${theirs?.phase ?? "?"}`,
        mine ? satOf(mine.localBalanceMsat) : "?",
        theirs ? satOf(theirs.localBalanceMsat) : "?",
      ]);
    }
    out.push(table(rows));
  }
  if (lab.payments.length > 0) {
    out.push("payments:");
    out.push(
      table([
        ["from", "to", "amount (msat)", "status", "payment id", "payment hash"],
        ...lab.payments.map((p) => [
          p.from,
          "B",
          p.payment.amountMsat,
          p.payment.status + (p.payment.failureReason ? ` (${p.payment.failureReason})` : ""),
          p.payment.id,
          short(p.payment.rHash),
        ]),
      ]),
    );
  }
  out.push("on-chain wallets (sat):");
  const walletRows = [["node", "confirmed", "unconfirmed"]];
  for (const n of lab.nodes) {
    const b = n.apiUrl ? await safe(() => n.api.walletBalance()) : undefined;
    walletRows.push([n.name, b?.confirmedSat ?? "?", b?.unconfirmedSat ?? "?"]);
  }
  out.push(table(walletRows));
  out.push("transactions:");
  out.push(
    lab.fundings.length > 0
      ? table(lab.fundings.map((f) => [`wallet funding of ${f.node}`, f.txid]))
      : "  (none)",
  );
  const channelTxs: string[][] = [];
  for (const { from, id } of lab.channels) {
    const d = await safe(() => lab.node(from).api.channel(id));
    if (d?.anchorTxid) channelTxs.push([`anchor of ${from}-B`, d.anchorTxid]);
    for (const t of d?.transactions ?? []) channelTxs.push([`${t.kind} of ${from}-B`, t.txid]);
  }
  if (channelTxs.length > 0) out.push(table(channelTxs));
  out.push(`regtest height ${lab.rt?.height() ?? "?"}; logs in ${join(lab.dir, "logs")}`);
  out.push("=====================================================");
  console.log(out.join("\n"));
}

function printAccess(lab: Lab): void {
  const lines = ["", "The lab is running. Control APIs (Authorization: Bearer <token>):"];
  for (const n of lab.nodes) lines.push(`  ${n.name}  ${n.apiUrl}  token ${n.token}`);
  lines.push(
    `  e.g. curl -H 'Authorization: Bearer ${lab.node("A").token}' ${lab.node("A").apiUrl}/v1/channels`,
  );
  lines.push(
    `Postgres ${redactUrl(lab.pgInfra?.url ?? "?")}, NATS ${lab.natsInfra?.url ?? "?"}, regtest RPC ${lab.rt?.url ?? "?"}`,
  );
  lines.push("Press Ctrl-C to stop everything.");
  console.log(lines.join("\n"));
}

async function main(): Promise<number> {
  const exitAfter = process.argv.includes("--exit");
  const lab = new Lab();
  let interrupted = false;
  let release: () => void = () => undefined;
  const stopped = new Promise<void>((r) => (release = r));
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) {
      console.error(`[lab] ${sig} again: exiting now`);
      process.exit(130);
    }
    interrupted = true;
    console.error(`[lab] ${sig}: stopping (again to force)`);
    release();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  let failure: unknown;
  const work = (async () => {
    await lab.infra();
    lab.step = "starting the nodes' services";
    await Promise.all(lab.nodes.map((n) => lab.startNode(n)));
    lab.step = "running the scenario";
    await scenario(lab);
  })();
  await Promise.race([work.catch((e: unknown) => (failure = e)), stopped]);
  if (interrupted) {
    await lab.cleanup();
    return 130;
  }
  if (failure === undefined || lab.nodes.every((n) => n.apiUrl !== "")) await summary(lab);
  if (failure !== undefined) {
    console.error(`\n[lab] FAILED while ${lab.step}: ${errText(failure)}`);
    for (const name of lab.sup.names().filter((n) => n.endsWith(".channel"))) {
      const lines = lab.sup.lastLines(name).slice(-6);
      if (lines.length > 0) console.error(`[lab] last lines of ${name}:\n    ${lines.join("\n    ")}`);
    }
    console.error(`[lab] logs are kept in ${join(lab.dir, "logs")}`);
    if (exitAfter) {
      await lab.cleanup();
      return 1;
    }
    console.error("[lab] the services that did start keep running for inspection; Ctrl-C to stop");
  } else log("scenario passed: funded, opened A-B and C-B, paid A→B and C→B, closed A-B cooperatively");
  if (exitAfter) {
    await lab.cleanup();
    rmSync(lab.dir, { recursive: true, force: true });
    return 0;
  }
  printAccess(lab);
  await stopped;
  await lab.cleanup();
  return failure === undefined ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[lab] ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
