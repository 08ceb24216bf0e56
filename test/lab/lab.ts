/**
 * The lab (the README's main job): a regtest network of three nodes A, B, C, each its four
 * services (signer, watchtower, peer, channel) as separate processes, on an in-process regtest
 * node. It funds the nodes, opens A-B (funded by A) and B-C (funded by B), pays A→B, then pays an
 * invoice of C from A through B over an explicit route (DESIGN.md 10), shows one payment failing
 * at C (an unknown hash) and one refused by B (a fee below its policy), each failure decrypted at
 * A, pays C→B, closes A-B cooperatively, prints a summary (with B's forwards and fees earned),
 * then keeps running (printing each node's control API and admin token) until Ctrl-C. `--exit`:
 * exit after the scenario, non-zero with what failed. `--breach`: C also keeps a copy of its B-C
 * commitment before paying B again, then broadcasts that revoked commitment re-signed (DESIGN.md
 * 7); B's watchtower punishes it, and the summary shows the breach and the justice.
 *
 *   pnpm run lab [-- --exit] [-- --breach]
 *
 * Environment: DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test, else an embedded
 * Postgres), NATS_URL (default nats://127.0.0.1:4222, else a nats-server spawned for the run),
 * LAB_DIR (default a fresh directory under the OS temp dir).
 */
import { randomBytes } from "node:crypto";
import { rmSync } from "node:fs";
import { join } from "node:path";
import { type ForwardList, type Payment } from "./api.js";
import { defaultSweepScript } from "@ln/justice";
import { buildCommitment } from "@ln/tx";
import type { StaleCommitment } from "./breach.js";
import { confirmedAt, confirmedSpenders } from "./chain.js";
import { redactUrl } from "./infra.js";
import { channelWith, errText, Network, short, WaitAbort, type NetNode } from "./network.js";

const NODES = ["A", "B", "C"] as const;
type NodeName = (typeof NODES)[number];

const FUND_SAT = 10_000_000n; // 0.1 BTC per node
const CHANNEL_SAT = 4_000_000n; // 0.04 BTC per channel (the draft caps an anchor at 4 294 967 sat)
const PAY_A_MSAT = 25_000_000n; // 25 000 sat
const PAY_FORWARD_MSAT = 50_000_000n; // 50 000 sat, A→C through B
const PAY_C_MSAT = 12_345_000n; // 12 345 sat, C→B (out of what C got through B)
/** B's policy on B-C: what it charges to forward there. */
const B_FEE_BASE_MSAT = 1_000n;
const B_FEE_PPM = 1_000;
const BREACH_PAY_MSAT = 1_000_000n; // --breach: C's payment that revokes the commitment it kept

const log = (line: string): void => console.log(`[lab] ${line}`);

/** The network plus what the scenario got to, for the summary (also after a failure). */
class Lab {
  readonly net = new Network({ nodes: NODES, log });
  /** What the lab is doing, for the failure message. */
  step = "starting the infrastructure";
  readonly fundings: { node: string; txid: string }[] = [];
  /** Each channel by its funder's id; `to` the other end. */
  readonly channels: { from: NodeName; to: NodeName; id: string }[] = [];
  readonly payments: { from: NodeName; to: NodeName; via?: string; payment: Payment }[] = [];
  /** B's forwards and fees at the end. */
  forwards: ForwardList | undefined;
  /** --breach: C's revoked commitment on chain and the justice that took its outputs. */
  breach: { txid: string; justice: { txid: string; outputsSat: bigint }[]; outputsSat: bigint } | undefined;

  constructor(readonly stageBreach: boolean) {}

  get nodes(): NetNode[] {
    return this.net.nodes;
  }
  node(name: NodeName): NetNode {
    return this.net.node(name);
  }
}

async function scenario(lab: Lab): Promise<void> {
  const net = lab.net;
  const [A, B, C] = [lab.node("A"), lab.node("B"), lab.node("C")];

  // 1. Fund each node's wallet.
  lab.step = "funding the nodes' wallets";
  lab.fundings.push(...(await net.fund(lab.nodes, FUND_SAT)));

  // 2. Connect A and C to B, open A-B (A funds it) and B-C (B funds it: B forwards to C over it).
  lab.step = "connecting A and C to B";
  await net.connect(A, B);
  await net.connect(B, C);
  lab.step = "opening A-B and B-C";
  const ab = await net.openStart(A, B, CHANNEL_SAT);
  lab.channels.push({ from: "A", to: "B", id: ab.id });
  const bc = await net.openStart(B, C, CHANNEL_SAT);
  lab.channels.push({ from: "B", to: "C", id: bc.id });
  const [abNormal, bcNormal] = [net.bothNormal(A, B, ab.id), net.bothNormal(B, C, bc.id)];
  await net.waitFor(
    "A-B and B-C to be normal on both ends",
    async () => {
      const [a, c] = [await abNormal(), await bcNormal()];
      return (
        (a === true && c === true) || `A-B ${a === true ? "normal" : a}; B-C ${c === true ? "normal" : c}`
      );
    },
    { mine: true, timeoutMs: 180_000 },
  );
  await net.waitShortChannelIds(A, [ab.id]);
  await net.waitShortChannelIds(B, [bc.id]);
  const cb = await channelWith(C, B);
  if (cb === undefined) throw new Error("C does not list its channel with B");

  // 3. B invoices, A pays it directly.
  lab.step = "paying A→B";
  const direct = {
    from: "A" as const,
    to: "B" as const,
    payment: await net.pay(A, B, PAY_A_MSAT, { channelId: ab.id, wait: false }),
  };
  lab.payments.push(direct);
  await settle(lab, direct);

  // 4. C invoices, A pays through B; then an unknown hash (fails at C) and a fee below B's (B refuses).
  lab.step = "setting B's forwarding policy on B-C";
  await net.setPolicy(B, bc.id, { feeBaseMsat: B_FEE_BASE_MSAT, feeProportionalMillionths: B_FEE_PPM });
  const route = await net.route([A, B, C], [ab.id, bc.id]);
  log(`route A→B→C: ${route.hops.map((h) => `${short(h.nodeId)} over ${h.shortChannelId}`).join(", ")}`);
  lab.step = "paying A→C through B";
  const inv = await C.api.createInvoice(PAY_FORWARD_MSAT, `lab ${net.runId}: from A through B`);
  const through = {
    from: "A" as const,
    to: "C" as const,
    via: "B",
    payment: await net.payRoute(A, route, PAY_FORWARD_MSAT, inv.rHash, { wait: false }),
  };
  lab.payments.push(through);
  await settle(lab, through);

  lab.step = "paying C an unknown hash through B (C fails it)";
  const unknown = {
    from: "A" as const,
    to: "C" as const,
    via: "B",
    payment: await net.payRoute(A, route, PAY_FORWARD_MSAT, randomBytes(32).toString("hex")),
  };
  lab.payments.push(unknown);
  expectFailed(unknown.payment, C, "incorrect_or_unknown_payment_details");

  lab.step = "paying through B with no fee (B refuses)";
  const cheap = route.hops.map((h, i) =>
    i === 1 ? { ...h, feeBaseMsat: 0n, feeProportionalMillionths: 0 } : h,
  );
  const inv2 = await C.api.createInvoice(PAY_FORWARD_MSAT, `lab ${net.runId}: too cheap`);
  const refused = {
    from: "A" as const,
    to: "C" as const,
    via: "B",
    payment: await net.payRoute(A, cheap, PAY_FORWARD_MSAT, inv2.rHash),
  };
  lab.payments.push(refused);
  expectFailed(refused.payment, B, "fee_insufficient");

  // 5. C pays B directly, out of what it got through B.
  lab.step = "paying C→B";
  const back = {
    from: "C" as const,
    to: "B" as const,
    payment: await net.pay(C, B, PAY_C_MSAT, { channelId: cb.id, wait: false }),
  };
  lab.payments.push(back);
  await settle(lab, back);

  // With --breach, C keeps its commitment (both balances on it), then pays again: that revokes it.
  let stale: StaleCommitment | undefined;
  if (lab.stageBreach) {
    lab.step = "C keeping a commitment, then paying B again";
    stale = await net.keepCommitment(C, cb.id);
    const again = await net.pay(C, B, BREACH_PAY_MSAT, { channelId: cb.id });
    lab.payments.push({ from: "C", to: "B", payment: again });
  }
  lab.forwards = await B.api.forwards();

  // 4. A closes A-B cooperatively.
  lab.step = "closing A-B cooperatively";
  const closing = await A.api.closeChannel(ab.id);
  log(`A: closing ${ab.id} (${closing.phase})`);
  await net.waitFor(
    "A-B to be closed on both ends",
    async () => {
      const a = await channelWith(A, B, ab.id);
      const b = await channelWith(B, A);
      if (a?.phase === "failed" || b?.phase === "failed")
        throw new WaitAbort(`A-B failed: A ${a?.phase ?? "absent"}, B ${b?.phase ?? "absent"}`);
      return (
        (a?.phase === "closed" && b?.phase === "closed") ||
        `A: ${a?.phase ?? "absent"}, B: ${b?.phase ?? "absent"}`
      );
    },
    { mine: true, timeoutMs: 180_000 },
  );

  // 5. --breach: C broadcasts its revoked commitment; B's watchtower takes every output.
  if (stale !== undefined) await breach(lab, stale);
}

/** Waits until a payment is final; a failure rejects. Keeps the last view for the summary. */
async function settle(lab: Lab, entry: Lab["payments"][number]): Promise<void> {
  const payer = lab.node(entry.from);
  try {
    entry.payment = await lab.net.waitPayment(payer, entry.payment.id);
  } finally {
    const seen = await payer.api.payment(entry.payment.id).catch(() => undefined);
    if (seen !== undefined) entry.payment = seen;
  }
}

/** A payment meant to fail: failed, its failure decrypted at the payer naming `node` and `name`. */
function expectFailed(p: Payment, node: NetNode, name: string): void {
  const f = p.failure;
  if (p.status !== "failed" || f === null)
    throw new Error(
      `payment ${p.id} should have failed at ${node.name} with ${name}: ${p.status}, ${p.failureReason ?? "no failure"}`,
    );
  const who = f.nodeId === node.nodeId ? node.name : short(f.nodeId);
  log(
    `A: payment ${p.id} failed at hop ${f.hop} (${who}): ${f.name} (0x${f.code.toString(16)}) ${f.description}`,
  );
  if (f.nodeId !== node.nodeId || f.name !== name)
    throw new Error(`payment ${p.id} failed at ${who} with ${f.name}, expected ${node.name} with ${name}`);
}

async function breach(lab: Lab, stale: StaleCommitment): Promise<void> {
  const net = lab.net;
  const [B, C] = [lab.node("B"), lab.node("C")];
  lab.step = "waiting for B's watchtower to hold C-B's revocation records";
  await net.waitFor(
    "B to have handed its revocation records to its watchtower",
    async () => {
      const pending = await net.towerRecordsPending(B);
      return pending === 0 || `${pending} record(s) not yet with the tower`;
    },
    { timeoutMs: 30_000 },
  );
  lab.step = "staging C's breach";
  const tx = await net.breach(C, stale);
  const txid = tx.getId();
  log(`C: broadcast its revoked commitment ${stale.number} as ${txid} (re-signed: a txid B never saw)`);
  // Justice takes the cheater's outputs; B's own output (to its final key) is its wallet's.
  const sweepScript = defaultSweepScript(stale.params);
  const revocable = buildCommitment(stale.params)
    .outputs.filter((o) => o.kind !== "to_other")
    .map((o) => o.vout);
  const outputsSat = revocable.reduce((a, v) => a + BigInt(tx.outs[v]?.value ?? 0n), 0n);
  lab.breach = { txid, justice: [], outputsSat };
  let from = net.regtest.height();
  await net.waitFor(
    "B's watchtower to punish the breach: every output of C's spent in a block",
    async () => {
      from = (await confirmedAt(net.regtest.rpc, txid)) ?? from;
      const justice = (await confirmedSpenders(net.regtest.rpc, txid, from)).filter((s) =>
        s.tx.outs.every((o) => Buffer.from(o.script).equals(sweepScript)),
      );
      const spent = new Set(justice.flatMap((s) => s.vouts));
      if (lab.breach)
        lab.breach.justice = justice.map((s) => ({
          txid: s.tx.getId(),
          outputsSat: s.tx.outs.reduce((a, o) => a + BigInt(o.value), 0n),
        }));
      return revocable.every((v) => spent.has(v)) || `${spent.size}/${revocable.length} of C's outputs taken`;
    },
    { mine: true, timeoutMs: 120_000 },
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
  if (lab.channels.length > 0) {
    out.push("channels (balances in sat, each end's own view):");
    const rows = [
      [
        "channel",
        "ends",
        "short_channel_id",
        "capacity",
        "phase (funder/other)",
        "funder local",
        "other local",
      ],
    ];
    for (const { from, to, id } of lab.channels) {
      const [x, y] = [lab.node(from), lab.node(to)];
      const mine = await safe(() => channelWith(x, y, id));
      const theirs = await safe(() => channelWith(y, x));
      rows.push([
        id,
        `${x.name}-${y.name}`,
        mine?.shortChannelId ?? "-",
        mine?.capacitySat ?? "?",
        `${mine?.phase ?? "?"}/${theirs?.phase ?? "?"}`,
        mine ? satOf(mine.localBalanceMsat) : "?",
        theirs ? satOf(theirs.localBalanceMsat) : "?",
      ]);
    }
    out.push(table(rows));
  }
  if (lab.payments.length > 0) {
    out.push("payments (a failure as decrypted at the payer: hop, node, BOLT #4 name):");
    const nameOf = (nodeId: string): string =>
      lab.nodes.find((n) => n.nodeId === nodeId)?.name ?? short(nodeId);
    out.push(
      table([
        ["from", "to", "via", "amount (msat)", "status", "payment id", "payment hash"],
        ...lab.payments.map((p) => {
          const f = p.payment.failure;
          const why = f
            ? ` (hop ${f.hop}, ${nameOf(f.nodeId)}: ${f.name})`
            : p.payment.failureReason
              ? ` (${p.payment.failureReason})`
              : "";
          return [
            p.from,
            p.to,
            p.via ?? "-",
            p.payment.amountMsat,
            p.payment.status + why,
            p.payment.id,
            short(p.payment.rHash),
          ];
        }),
      ]),
    );
  }
  if (lab.forwards) {
    const fw = lab.forwards;
    out.push(
      `B's forwards: ${fw.totals.settled} settled, fees earned ${fw.totals.feesEarnedMsat} msat (GET /v1/forwards):`,
    );
    out.push(
      table([
        ["status", "in (msat)", "out (msat)", "fee (msat)", "payment hash", "failure"],
        ...fw.forwards.map((f) => [
          f.status,
          f.inAmountMsat,
          f.outAmountMsat ?? "-",
          f.feeMsat,
          short(f.rHash),
          f.failure ?? "",
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
  for (const { from, to, id } of lab.channels) {
    const d = await safe(() => lab.node(from).api.channel(id));
    if (d?.anchorTxid) channelTxs.push([`anchor of ${from}-${to}`, d.anchorTxid]);
    for (const t of d?.transactions ?? []) channelTxs.push([`${t.kind} of ${from}-${to}`, t.txid]);
  }
  if (channelTxs.length > 0) out.push(table(channelTxs));
  if (lab.breach) {
    const justiceSat = lab.breach.justice.reduce((a, j) => a + j.outputsSat, 0n);
    out.push(
      `breach (--breach): C's revoked commitment ${lab.breach.txid} put ${lab.breach.outputsSat} sat of C's on chain;`,
      `  B's watchtower took all of it back in ${lab.breach.justice.length} justice transaction(s), ${justiceSat} sat to B's final key (fees ${lab.breach.outputsSat - justiceSat} sat):`,
      ...lab.breach.justice.map((j) => `  justice ${j.txid}  ${j.outputsSat} sat`),
    );
  }
  out.push(`regtest height ${lab.net.rt?.height() ?? "?"}; logs in ${join(lab.net.dir, "logs")}`);
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
    `Postgres ${redactUrl(lab.net.pgInfra?.url ?? "?")}, NATS ${lab.net.natsInfra?.url ?? "?"}, regtest RPC ${lab.net.rt?.url ?? "?"}`,
  );
  lines.push("Press Ctrl-C to stop everything.");
  console.log(lines.join("\n"));
}

async function main(): Promise<number> {
  const exitAfter = process.argv.includes("--exit");
  const lab = new Lab(process.argv.includes("--breach"));
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
    await lab.net.infra();
    lab.step = "starting the nodes' services";
    await Promise.all(lab.nodes.map((n) => lab.net.startNode(n)));
    lab.step = "running the scenario";
    await scenario(lab);
  })();
  await Promise.race([work.catch((e: unknown) => (failure = e)), stopped]);
  if (interrupted) {
    await lab.net.cleanup();
    return 130;
  }
  if (failure === undefined || lab.nodes.every((n) => n.apiUrl !== "")) await summary(lab);
  if (failure !== undefined) {
    console.error(`\n[lab] FAILED while ${lab.step}: ${errText(failure)}`);
    for (const name of lab.net.supervisor.names().filter((n) => n.endsWith(".channel"))) {
      const lines = lab.net.supervisor.lastLines(name).slice(-6);
      if (lines.length > 0) console.error(`[lab] last lines of ${name}:\n    ${lines.join("\n    ")}`);
    }
    console.error(`[lab] logs are kept in ${join(lab.net.dir, "logs")}`);
    if (exitAfter) {
      await lab.net.cleanup();
      return 1;
    }
    console.error("[lab] the services that did start keep running for inspection; Ctrl-C to stop");
  } else
    log(
      `scenario passed: funded, opened A-B and B-C, paid A→B, A→C through B (fees earned by B ${lab.forwards?.totals.feesEarnedMsat ?? "?"} msat), failed at C and refused by B as meant, paid C→B, closed A-B cooperatively${lab.breach ? ", C's breach punished by B's watchtower" : ""}`,
    );
  if (exitAfter) {
    await lab.net.cleanup();
    rmSync(lab.net.dir, { recursive: true, force: true });
    return 0;
  }
  printAccess(lab);
  await stopped;
  await lab.net.cleanup();
  return failure === undefined ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(`[lab] ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
    process.exit(1);
  },
);
