/**
 * The lab (the README's main job): a regtest network of five nodes A, B, C, D, E, each its four
 * services (signer, watchtower, peer, channel) as separate processes, on an in-process regtest
 * node, in this shape (each channel funded by the node on its left, so money flows towards E):
 *
 *          C
 *        /   \
 *   A - B     E        A-B, B-C, B-D, C-E, D-E; B forwards at the same price on B-C and B-D,
 *        \   /         D charges far less than C on its way to E: A→E is cheapest through D.
 *          D
 *
 * It funds the nodes, opens the five channels, waits for gossip to converge (each node's graph
 * size printed), pays A→B, pays an invoice of C from A through B over an explicit route, shows one
 * payment failing at C (an unknown hash) and one refused by B (a fee below its policy), each
 * failure decrypted at A; then A pays E's BOLT #11 invoice (POST /v1/payments {invoice}): A's node
 * routes it over the graph, three hops through B and D. Then D stops and A pays E's next invoice:
 * the attempt through D fails at B (temporary_channel_failure: its peer is gone; B announces B-D
 * disabled only after GOSSIP_DISABLE_AFTER_S) and A's node retries through C. It pays C→B, closes
 * A-B cooperatively, prints a summary (each payment's attempts with their route, scids, fee and
 * outcome, B's forwards and fees earned, each wallet with its close outputs not yet swept), then
 * keeps running (printing each node's control API and admin token) until Ctrl-C. `--exit`: exit
 * after the scenario, non-zero with what failed. `--breach`: C also keeps a copy of its B-C
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
import { type ForwardList, type InvoicePayment, type Payment, type WalletBalance } from "./api.js";
import { defaultSweepScript } from "@ln/justice";
import { buildCommitment } from "@ln/tx";
import type { StaleCommitment } from "./breach.js";
import { confirmedAt, confirmedSpenders } from "./chain.js";
import { FIVE_NODE_SHAPE, FIVE_NODES, openFiveNodeShape, type FiveNodeName } from "./five-nodes.js";
import { redactUrl } from "./infra.js";
import {
  channelWith,
  errText,
  Network,
  short,
  WaitAbort,
  type NetNode,
  type OpenedChannel,
} from "./network.js";

const NODES = FIVE_NODES;
type NodeName = FiveNodeName;

const PAY_A_MSAT = 25_000_000n; // 25 000 sat
const PAY_FORWARD_MSAT = 50_000_000n; // 50 000 sat, A→C through B
const PAY_E_MSAT = 30_000_000n; // 30 000 sat, A→E across three hops
const PAY_C_MSAT = 12_345_000n; // 12 345 sat, C→B (out of what C got through B)
const BREACH_PAY_MSAT = 1_000_000n; // --breach: C's payment that revokes the commitment it kept

/** The lab's shape (five-nodes.ts); each channel funded by `from`. */
const SHAPE = FIVE_NODE_SHAPE;

const log = (line: string): void => console.log(`[lab] ${line}`);

/** One try of a payment: the route it took and how it ended. */
interface AttemptView {
  /** e.g. "A -[109x1x0]-> B -[109x3x0]-> D"; "-" without a route. */
  route: string;
  feeMsat: string;
  outcome: string;
}

/** A payment as the summary shows it: what was paid, and each attempt. */
interface PaymentEntry {
  from: NodeName;
  to: NodeName;
  what: string;
  /** What the payee gets. */
  amountMsat: bigint;
  status: string;
  rHash: string;
  attempts: AttemptView[];
}

/** The network plus what the scenario got to, for the summary (also after a failure). */
class Lab {
  readonly net = new Network({
    nodes: NODES,
    log,
    // B keeps announcing B-D for a while after D is gone (as nodes do for a brief absence): a
    // payer learns of it from B's refusal, and retries around it.
    channelEnv: { GOSSIP_DISABLE_AFTER_S: "600" },
    nodeChannelEnv: Object.fromEntries(NODES.map((n) => [n, { GOSSIP_ALIAS: `lab-${n}` }])),
  });
  /** What the lab is doing, for the failure message. */
  step = "starting the infrastructure";
  readonly fundings: { node: string; txid: string }[] = [];
  /** Each channel by its funder's id; `to` the other end. */
  readonly channels: { from: NodeName; to: NodeName; id: string }[] = [];
  /** The shape's channels as opened (both ends' ids, short_channel_id, policies). */
  readonly opened: OpenedChannel[] = [];
  readonly payments: PaymentEntry[] = [];
  /** Nodes the scenario stopped. */
  readonly stopped = new Set<string>();
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
  /** A node's name from its id (a short id for a node not in the lab). */
  nameOf(nodeId: string): string {
    return this.nodes.find((n) => n.nodeId === nodeId)?.name ?? short(nodeId);
  }
}

/** A payment made over an explicit route, as an attempt: its route, fee and outcome. */
function attemptOf(lab: Lab, payer: NetNode, p: Payment): AttemptView {
  const hops = p.route?.hops ?? [];
  // A direct payment has no route: its channel's other end and short_channel_id.
  const direct = lab.opened.find((c) => c.fromId === p.channelId || c.toId === p.channelId);
  const peer = direct === undefined ? "?" : direct.fromId === p.channelId ? direct.to.name : direct.from.name;
  const route =
    hops.length === 0
      ? `${payer.name} -[${direct?.shortChannelId ?? p.channelId}]-> ${peer}`
      : [payer.name, ...hops.map((h) => `-[${h.shortChannelId}]-> ${lab.nameOf(h.nodeId)}`)].join(" ");
  const last = hops.at(-1);
  const feeMsat = last === undefined ? "0" : (BigInt(p.amountMsat) - BigInt(last.amountMsat)).toString();
  const f = p.failure;
  const outcome =
    p.status === "failed"
      ? `failed${f ? ` at hop ${f.hop} (${lab.nameOf(f.nodeId)}): ${f.name}` : ` (${p.failureReason ?? "no reason"})`}`
      : p.status;
  return { route, feeMsat, outcome };
}

/** `payee` invoices `amountMsat`; `payer` pays the BOLT #11 string and waits until it is final. */
async function payInvoice(
  lab: Lab,
  payer: NetNode,
  payee: NetNode,
  amountMsat: bigint,
  what: string,
): Promise<InvoicePayment> {
  const inv = await payee.api.createInvoice(amountMsat, `lab ${lab.net.runId}: ${what}`);
  if (inv.bolt11 === null) throw new Error(`${payee.name}'s invoice has no BOLT #11 string`);
  log(`${payee.name}: invoice ${inv.bolt11.slice(0, 24)}… for ${inv.amountMsat} msat`);
  const { payment } = await payer.api.payInvoice({ invoice: inv.bolt11 });
  let p = payment;
  try {
    await lab.net.waitFor(
      `${payer.name}'s payment of ${payee.name}'s invoice to be final`,
      async () => {
        p = await payer.api.invoicePayment(payment.id);
        return p.status !== "pending" || `${p.status}, ${p.attempts.length} attempt(s)`;
      },
      { intervalMs: 250, timeoutMs: 120_000 },
    );
  } finally {
    const entry: PaymentEntry = {
      from: payer.name as NodeName,
      to: payee.name as NodeName,
      what,
      amountMsat,
      status: `${p.status}${p.feeMsat !== null ? `, fee ${p.feeMsat} msat` : ""}${p.failure !== null ? ` (${p.failure})` : ""}`,
      rHash: p.rHash,
      attempts: p.attempts.map((a) => ({
        route: [payer.name, ...a.route.map((h) => `-[${h.shortChannelId}]-> ${lab.nameOf(h.nodeId)}`)].join(
          " ",
        ),
        feeMsat: a.feeMsat,
        outcome:
          a.status === "failed" && a.failure !== null
            ? `failed${a.failure.hop !== null ? ` at hop ${a.failure.hop}` : ""}${a.failure.nodeId !== null ? ` (${lab.nameOf(a.failure.nodeId)})` : ""}: ${a.failure.name}`
            : a.status,
      })),
    };
    lab.payments.push(entry);
    for (const [i, a] of entry.attempts.entries())
      log(
        `${entry.from}→${entry.to} ${what}: attempt ${i + 1}: ${a.route}, fee ${a.feeMsat} msat: ${a.outcome}`,
      );
  }
  return p;
}

/** Records a payment of explicit routes (one Payment per attempt) for the summary. */
function record(
  lab: Lab,
  e: Omit<PaymentEntry, "attempts" | "status" | "rHash">,
  tries: readonly Payment[],
): PaymentEntry {
  const payer = lab.node(e.from);
  const last = tries.at(-1);
  const entry: PaymentEntry = {
    ...e,
    status: last?.status ?? "not sent",
    rHash: last?.rHash ?? "",
    attempts: tries.map((p) => attemptOf(lab, payer, p)),
  };
  lab.payments.push(entry);
  for (const [i, a] of entry.attempts.entries())
    log(`${e.from}→${e.to} ${e.what}: attempt ${i + 1}: ${a.route}, fee ${a.feeMsat} msat: ${a.outcome}`);
  return entry;
}

async function scenario(lab: Lab): Promise<void> {
  const net = lab.net;
  const [A, B, C, D, E] = [lab.node("A"), lab.node("B"), lab.node("C"), lab.node("D"), lab.node("E")];

  // 1-2. Fund the nodes (a coin per channel each funds), open the shape, wait until every channel
  // is normal on both ends with its short_channel_id.
  lab.step = `funding the nodes and opening ${SHAPE.map((c) => `${c.from}-${c.to}`).join(", ")}`;
  const { fundings, opened } = await openFiveNodeShape(net);
  lab.fundings.push(...fundings);
  lab.opened.push(...opened);
  for (const c of opened)
    lab.channels.push({ from: c.from.name as NodeName, to: c.to.name as NodeName, id: c.fromId });
  // Gossip: each channel announced once its anchor is 6 blocks deep; every node learns all.
  lab.step = "waiting for gossip to converge";
  await waitGossip(lab);

  const ch = (from: NodeName, to: NodeName): OpenedChannel => {
    const c = opened.find((x) => x.from.name === from && x.to.name === to);
    if (c === undefined) throw new Error(`no channel ${from}-${to} in the shape`);
    return c;
  };
  const [ab, cb] = [ch("A", "B"), ch("B", "C")];

  // 3. B invoices, A pays it directly.
  lab.step = "paying A→B";
  const direct = await net.pay(A, B, PAY_A_MSAT, { channelId: ab.fromId });
  record(lab, { from: "A", to: "B", what: "direct", amountMsat: PAY_A_MSAT }, [direct]);

  // 4. C invoices, A pays through B; then an unknown hash (fails at C) and a fee below B's (B refuses).
  const toC = await net.route([A, B, C], [ab.fromId, cb.fromId]);
  lab.step = "paying A→C through B";
  const inv = await C.api.createInvoice(PAY_FORWARD_MSAT, `lab ${net.runId}: from A through B`);
  const through = await net.payRoute(A, toC, PAY_FORWARD_MSAT, inv.rHash);
  record(lab, { from: "A", to: "C", what: "invoice, explicit route", amountMsat: PAY_FORWARD_MSAT }, [
    through,
  ]);
  expectSucceeded(through);

  lab.step = "paying C an unknown hash through B (C fails it)";
  const unknown = await net.payRoute(A, toC, PAY_FORWARD_MSAT, randomBytes(32).toString("hex"));
  record(lab, { from: "A", to: "C", what: "unknown hash", amountMsat: PAY_FORWARD_MSAT }, [unknown]);
  expectFailed(lab, unknown, C, "incorrect_or_unknown_payment_details");

  lab.step = "paying through B with no fee (B refuses)";
  const cheap = toC.hops.map((h, i) =>
    i === 1 ? { ...h, feeBaseMsat: 0n, feeProportionalMillionths: 0 } : h,
  );
  const inv2 = await C.api.createInvoice(PAY_FORWARD_MSAT, `lab ${net.runId}: too cheap`);
  const refused = await net.payRoute(A, cheap, PAY_FORWARD_MSAT, inv2.rHash);
  record(lab, { from: "A", to: "C", what: "fee below B's policy", amountMsat: PAY_FORWARD_MSAT }, [refused]);
  expectFailed(lab, refused, B, "fee_insufficient");

  // 5. E invoices; A pays the BOLT #11 string (POST /v1/payments {invoice}): A's node finds the
  // route over the graph gossip gave it, three hops through B and D (the cheapest way).
  lab.step = "paying E's invoice from A (the node routes it)";
  const three = await payInvoice(lab, A, E, PAY_E_MSAT, "by invoice, routed by A");
  if (three.status !== "succeeded")
    throw new Error(`A's payment of E's invoice ${three.status}: ${three.failure}`);

  // 6. D stops; A pays E's next invoice: B refuses the hop to D (its peer is gone), A's node
  // retries around D, through C.
  lab.step = "stopping D";
  await net.stopNode(D);
  lab.stopped.add("D");
  lab.step = "paying E's invoice from A with D down (retries around D)";
  const around = await payInvoice(lab, A, E, PAY_E_MSAT, "by invoice, D down");
  if (around.status !== "succeeded")
    throw new Error(`A's payment around D ${around.status}: ${around.failure}`);
  if (around.attempts.length < 2)
    throw new Error(`A's payment around D took ${around.attempts.length} attempt(s), not a retry`);

  // 7. C pays B directly, out of what it got through B.
  lab.step = "paying C→B";
  const back = await net.pay(C, B, PAY_C_MSAT, { channelId: cb.toId });
  record(lab, { from: "C", to: "B", what: "direct", amountMsat: PAY_C_MSAT }, [back]);

  // With --breach, C keeps its commitment (both balances on it), then pays again: that revokes it.
  let stale: StaleCommitment | undefined;
  if (lab.stageBreach) {
    lab.step = "C keeping a commitment, then paying B again";
    stale = await net.keepCommitment(C, cb.toId);
    const again = await net.pay(C, B, BREACH_PAY_MSAT, { channelId: cb.toId });
    record(
      lab,
      { from: "C", to: "B", what: "direct (revokes C's kept commitment)", amountMsat: BREACH_PAY_MSAT },
      [again],
    );
  }
  lab.forwards = await B.api.forwards();

  await closeAB(lab, ab);

  // --breach: C broadcasts its revoked commitment; B's watchtower takes every output.
  if (stale !== undefined) await breach(lab, stale);
}

/** A closes A-B cooperatively; waits until both ends are closed and A's wallet knows its output. */
async function closeAB(lab: Lab, ab: OpenedChannel): Promise<void> {
  const net = lab.net;
  const [A, B] = [lab.node("A"), lab.node("B")];
  lab.step = "closing A-B cooperatively";
  const closing = await A.api.closeChannel(ab.fromId);
  log(`A: closing ${ab.fromId} (${closing.phase})`);
  const local = BigInt((await A.api.channel(ab.fromId)).localBalanceMsat) / 1000n;
  await net.waitFor(
    "A-B to be closed on both ends and A's wallet to hold its close output",
    async () => {
      const a = await channelWith(A, B, ab.fromId);
      const b = await channelWith(B, A, ab.toId);
      if (a?.phase === "failed" || b?.phase === "failed")
        throw new WaitAbort(`A-B failed: A ${a?.phase ?? "absent"}, B ${b?.phase ?? "absent"}`);
      if (a?.phase !== "closed" || b?.phase !== "closed")
        return `A: ${a?.phase ?? "absent"}, B: ${b?.phase ?? "absent"}`;
      // The close pays A its balance less its share of the fee: listed, or already a wallet coin.
      const w = await A.api.walletBalance();
      return (
        w.closeOutputs.some((o) => o.channelId === ab.fromId) ||
        (await swept(lab, ab.fromId)) ||
        `A's close output (about ${local} sat) not seen yet`
      );
    },
    { mine: true, timeoutMs: 180_000 },
  );
}

/** Each node's graph: channels, policies (one per direction) and nodes, from its own tables. */
async function graphSizes(
  lab: Lab,
): Promise<{ node: string; channels: number; policies: number; nodes: number }[]> {
  const out = [];
  for (const n of lab.nodes) {
    const s = `"${n.schemas.channel}"`;
    const [r] = await lab.net.query<{ c: string; p: string; n: string }>(
      `SELECT (SELECT count(*) FROM ${s}.graph_channels)::text AS c,
              (SELECT count(*) FROM ${s}.graph_policies WHERE NOT disabled)::text AS p,
              (SELECT count(*) FROM ${s}.graph_nodes)::text AS n`,
    );
    out.push({ node: n.name, channels: Number(r?.c), policies: Number(r?.p), nodes: Number(r?.n) });
  }
  return out;
}

/** Mines until every node's graph has every channel of the shape, both policies, every node. */
async function waitGossip(lab: Lab): Promise<void> {
  const want = { channels: SHAPE.length, policies: 2 * SHAPE.length, nodes: NODES.length };
  let last = "";
  await lab.net.waitFor(
    `every node's graph to hold ${want.channels} channels, ${want.policies} policies and ${want.nodes} nodes`,
    async () => {
      const sizes = await graphSizes(lab);
      const line = sizes.map((g) => `${g.node} ${g.channels}/${g.policies}/${g.nodes}`).join(", ");
      if (line !== last) log(`graph sizes (channels/policies/nodes): ${line}`);
      last = line;
      return (
        sizes.every(
          (g) => g.channels === want.channels && g.policies === want.policies && g.nodes === want.nodes,
        ) || line
      );
    },
    { mine: true, timeoutMs: 180_000 },
  );
}

/** Whether A's close output of `channelId` is already a wallet coin (its sweep confirmed). */
async function swept(lab: Lab, channelId: string): Promise<boolean> {
  const A = lab.node("A");
  const rows = await lab.net.query<{ n: string }>(
    `SELECT count(*)::text AS n FROM "${A.schemas.channel}".wallet_spends
      WHERE channel_id = '${channelId}' AND purpose = 'sweep' AND confirmed_height IS NOT NULL`,
  );
  return rows[0]?.n !== "0";
}

function expectSucceeded(p: Payment): void {
  if (p.status !== "succeeded")
    throw new Error(`payment ${p.id} ${p.status}: ${p.failure?.name ?? p.failureReason ?? "no reason"}`);
}

/** A payment meant to fail: failed, its failure decrypted at the payer naming `node` and `name`. */
function expectFailed(lab: Lab, p: Payment, node: NetNode, name: string): void {
  const f = p.failure;
  if (p.status !== "failed" || f === null)
    throw new Error(
      `payment ${p.id} should have failed at ${node.name} with ${name}: ${p.status}, ${p.failureReason ?? "no failure"}`,
    );
  const who = lab.nameOf(f.nodeId);
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
/** "close output X sat (matures at height H / sweeping / swept at the next block)", each. */
const closeOutputs = (b: WalletBalance): string =>
  b.closeOutputs.length === 0
    ? "-"
    : b.closeOutputs
        .map((o) => {
          const state =
            o.status === "waiting"
              ? `matures at height ${o.maturesAtHeight ?? "?"}`
              : o.status === "sweeping"
                ? `sweeping in ${short(o.sweepTxid ?? "?")}`
                : "swept at the next block";
          return `close output ${o.amountSat} sat of ${short(o.channelId)} (${state})`;
        })
        .join("; ");
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
        mine?.shortChannelId ?? theirs?.shortChannelId ?? "-",
        mine?.capacitySat ?? theirs?.capacitySat ?? "?",
        `${mine?.phase ?? "?"}/${theirs?.phase ?? "?"}`,
        mine ? satOf(mine.localBalanceMsat) : "?",
        theirs ? satOf(theirs.localBalanceMsat) : "?",
      ]);
    }
    out.push(table(rows));
  }
  if (lab.payments.length > 0) {
    out.push("payments (each attempt: its route with each channel's short_channel_id, its fee, its outcome;");
    out.push("  a failure as decrypted at the payer: hop, node, BOLT #4 name):");
    for (const [i, p] of lab.payments.entries()) {
      out.push(
        `  ${i + 1}. ${p.from}→${p.to} ${satOf(p.amountMsat.toString())} sat, ${p.what}: ${p.status} (hash ${short(p.rHash)})`,
      );
      for (const [j, a] of p.attempts.entries())
        out.push(`       attempt ${j + 1}: ${a.route}  fee ${a.feeMsat} msat  ${a.outcome}`);
    }
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
  out.push("on-chain wallets (sat; close outputs: paying us, not yet a confirmed wallet coin):");
  const walletRows = [["node", "confirmed", "unconfirmed", "close outputs not yet swept"]];
  for (const n of lab.nodes) {
    if (lab.stopped.has(n.name)) {
      walletRows.push([n.name, "(stopped)", "", ""]);
      continue;
    }
    const b = n.apiUrl ? await safe(() => n.api.walletBalance()) : undefined;
    walletRows.push([n.name, b?.confirmedSat ?? "?", b?.unconfirmedSat ?? "?", b ? closeOutputs(b) : "?"]);
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
  for (const n of lab.nodes)
    lines.push(
      `  ${n.name}  ${n.apiUrl}  token ${n.token}${lab.stopped.has(n.name) ? "  (stopped by the scenario)" : ""}`,
    );
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
      `scenario passed: funded, opened ${SHAPE.map((c) => `${c.from}-${c.to}`).join(", ")}, paid A→B, A→C through B, E's invoices from A routed by A's node (through B and D, then around D once D was down) (fees earned by B ${lab.forwards?.totals.feesEarnedMsat ?? "?"} msat), failed at C and refused by B as meant, paid C→B, closed A-B cooperatively${lab.breach ? ", C's breach punished by B's watchtower" : ""}`,
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
