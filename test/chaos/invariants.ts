/**
 * The invariants a chaos run must end with (issue 18), checked once everything is back up and
 * nothing is in flight (`waitQuiescent`): each printed with its figure (`formatInvariants`).
 *
 * Everything is read from the nodes' own records (their control APIs and their channel schemas),
 * from the regtest chain, and from the processes' log files; the storm's record (storm.ts) only
 * says what was asked for. A violated invariant is a result with ok: false, never a throw; a throw
 * means the checker could not read something (a node down, Postgres unreachable).
 *
 * Money (`conservation`), per node, in millisatoshi:
 *
 *   Σ channel local balances + wallet on chain
 *     = funded − on-chain fees paid + forward fees earned + payments received − payments sent
 *
 * - Channel balances are the API's localBalanceMsat: the node's to-final balance of its current
 *   commitment *before* the commitment fee (channel-core views.ts, CommitmentView). The draft
 *   (3.6) splits the commitment fee evenly between the two nodes, but it is paid only if a
 *   commitment transaction reaches the chain; with no force close (an invariant of its own) it is
 *   never paid, so no fee is taken from the balances here. The draft has no channel reserve, so
 *   nothing else is held back either. HTLCs in flight are not counted: there must be none.
 * - The wallet is computed from the chain alone: the unspent outputs, in every block from the
 *   genesis to the tip, paying a script of the node's wallet (its wallet_keys and final_scripts
 *   tables say which scripts are its own). The API's confirmed balance must equal it.
 * - On-chain fees are computed from the chain too: for every transaction spending a coin of the
 *   node's (its anchors, funded by the creator's wallet alone, and any withdrawal or sweep), the
 *   inputs minus the outputs. Funding coins come from the regtest wallet, which pays their fee.
 * - Forward fees earned: Σ (in − out) over the node's settled forwards (its forwards table).
 * - Received: Σ amount of the node's settled invoices (the payee settles an HTLC only for the full
 *   invoice amount; the storm never overpays, and an overpayment would show here as a surplus).
 * - Sent: Σ amount of the node's succeeded payments rows (each the HTLC it offered, route fees
 *   included; an invoice payment's attempts are payments rows too).
 * The sums of sent and received are cross-checked against the storm's succeeded requests.
 */
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { msat, sat, satToMsat, type Msat, type Sat } from "@ln/bitcoin";
import { Transaction } from "bitcoinjs-lib";
import type { ChannelDetail, WalletBalance } from "../lab/api.js";
import { spentTxid } from "../lab/chain.js";
import { errText, sleep, type NetNode, type Network } from "../lab/network.js";
import type { InvariantResult, MemoryPeak, StormRecord, StormRequest } from "./storm.js";

export interface InvariantOptions {
  /** Every process's peak resident memory must stay under this. */
  memoryBoundBytes: number;
  /** waitQuiescent's limit (default 180 000 ms). */
  quiescenceTimeoutMs?: number;
  log?: (l: string) => void;
}

/** The invariants' names, in the order checkInvariants returns them. */
export const INVARIANTS = [
  "payments exactly once",
  "invoice paid iff payment succeeded",
  "forwards resolved both ways",
  "channel ends agree",
  "no force close",
  "money conserved",
  "no uncaught exception",
  "memory bounded",
] as const;
export type InvariantName = (typeof INVARIANTS)[number];

/** At most this many violation lines per invariant (the rest counted). */
const MAX_VIOLATIONS = 40;
const FINAL_FORWARD = new Set(["settled", "failed_back"]);

// ---------------------------------------------------------------------------------------------
// What the nodes record

interface PaymentRow {
  id: string;
  channelId: string;
  htlcId: string;
  rHash: string;
  /** The HTLC offered: what the payee gets plus the route's fees. */
  amountMsat: Msat;
  status: string;
  /** What the payee gets: the last hop's HTLC, else the HTLC itself (over our own channel). */
  payeeMsat: Msat;
  /** The first hop's node, when over a route. */
  firstHop: string | undefined;
  hops: number;
  invoicePaymentId: string | null;
}

interface InvoicePaymentRow {
  id: string;
  rHash: string;
  status: string;
  amountMsat: Msat;
}

interface ForwardRow {
  id: string;
  inChannel: string;
  inHtlcId: string;
  rHash: string;
  inMsat: Msat;
  outChannel: string | null;
  outHtlcId: string | null;
  outMsat: Msat | null;
  status: string;
  preimage: string | null;
}

interface NodeRecords {
  node: NetNode;
  channels: ChannelDetail[];
  payments: PaymentRow[];
  invoicePayments: InvoicePaymentRow[];
  invoices: Map<string, { status: string; amountMsat: Msat }>;
  forwards: ForwardRow[];
  /** Idempotency key → the payment id its stored answer names (undefined: an error was stored). */
  keys: Map<string, (string | undefined)[]>;
  walletScripts: Set<string>;
  wallet: WalletBalance;
  /** Lookups, by id and by "<channel id>/<HTLC id>" (a storm has thousands of rows). */
  byId: Map<string, PaymentRow>;
  invoicePaymentById: Map<string, InvoicePaymentRow>;
  paymentsByHtlc: Map<string, PaymentRow[]>;
  forwardsByIn: Map<string, ForwardRow[]>;
  forwardsByOut: Map<string, ForwardRow[]>;
}

function groupBy<T>(xs: readonly T[], key: (x: T) => string | undefined): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const x of xs) {
    const k = key(x);
    if (k === undefined) continue;
    const list = m.get(k);
    if (list === undefined) m.set(k, [x]);
    else list.push(x);
  }
  return m;
}

interface RouteJson {
  hops?: { nodeId?: string; amountMsat?: string }[];
}

async function readNode(net: Network, n: NetNode, keys: readonly string[]): Promise<NodeRecords> {
  const s = `"${n.schemas.channel}"`;
  const summaries = await n.api.channels();
  const channels = await Promise.all(summaries.map((c) => n.api.channel(c.id)));
  const payments = (
    await net.query<{
      id: string;
      channel_id: string;
      htlc_id: string;
      r_hash: string;
      amount_msat: string;
      status: string;
      route: RouteJson | null;
      invoice_payment_id: string | null;
    }>(
      `SELECT id, channel_id, htlc_id::text, r_hash, amount_msat::text, status, route, invoice_payment_id
         FROM ${s}.payments`,
    )
  ).map((r): PaymentRow => {
    const hops = r.route?.hops ?? [];
    const last = hops[hops.length - 1]?.amountMsat;
    return {
      id: r.id,
      channelId: r.channel_id,
      htlcId: r.htlc_id,
      rHash: r.r_hash,
      amountMsat: msat(BigInt(r.amount_msat)),
      status: r.status,
      payeeMsat: msat(BigInt(last ?? r.amount_msat)),
      firstHop: hops.length > 1 ? hops[0]?.nodeId : undefined,
      hops: hops.length,
      invoicePaymentId: r.invoice_payment_id,
    };
  });
  const invoicePayments = (
    await net.query<{ id: string; r_hash: string; status: string; amount_msat: string }>(
      `SELECT id, r_hash, status, amount_msat::text FROM ${s}.invoice_payments`,
    )
  ).map((r) => ({ id: r.id, rHash: r.r_hash, status: r.status, amountMsat: msat(BigInt(r.amount_msat)) }));
  const invoices = new Map(
    (
      await net.query<{ r_hash: string; status: string; amount_msat: string }>(
        `SELECT r_hash, status, amount_msat::text FROM ${s}.invoices`,
      )
    ).map((r) => [r.r_hash, { status: r.status, amountMsat: msat(BigInt(r.amount_msat)) }] as const),
  );
  const forwards = (
    await net.query<{
      id: string;
      in_channel: string;
      in_htlc_id: string;
      r_hash: string;
      in_amount_msat: string;
      out_channel: string | null;
      out_htlc_id: string | null;
      out_amount_msat: string | null;
      status: string;
      preimage: string | null;
    }>(
      `SELECT id::text, in_channel, in_htlc_id::text, r_hash, in_amount_msat::text, out_channel,
              out_htlc_id::text, out_amount_msat::text, status, preimage FROM ${s}.forwards`,
    )
  ).map((r): ForwardRow => ({
    id: r.id,
    inChannel: r.in_channel,
    inHtlcId: r.in_htlc_id,
    rHash: r.r_hash,
    inMsat: msat(BigInt(r.in_amount_msat)),
    outChannel: r.out_channel,
    outHtlcId: r.out_htlc_id,
    outMsat: r.out_amount_msat === null ? null : msat(BigInt(r.out_amount_msat)),
    status: r.status,
    preimage: r.preimage,
  }));
  const keyRows =
    keys.length === 0
      ? []
      : await net.query<{ key: string; response: unknown }>(
          `SELECT key, response FROM ${s}.api_idempotency
            WHERE key IN (${keys.map((k) => `'${k.replaceAll("'", "''")}'`).join(", ")})`,
        );
  const keyMap = new Map<string, (string | undefined)[]>();
  for (const r of keyRows) {
    const id =
      typeof r.response === "object" && r.response !== null && "id" in r.response
        ? String((r.response as { id: unknown }).id)
        : undefined;
    keyMap.set(r.key, [...(keyMap.get(r.key) ?? []), id]);
  }
  const walletScripts = new Set(
    (
      await net.query<{ script_hex: string }>(
        `SELECT script_hex FROM ${s}.wallet_keys UNION SELECT script_hex FROM ${s}.final_scripts`,
      )
    ).map((r) => r.script_hex.toLowerCase()),
  );
  const wallet = await n.api.walletBalance();
  return {
    node: n,
    channels,
    payments,
    invoicePayments,
    invoices,
    forwards,
    keys: keyMap,
    walletScripts,
    wallet,
    byId: new Map(payments.map((p) => [p.id, p])),
    invoicePaymentById: new Map(invoicePayments.map((p) => [p.id, p])),
    paymentsByHtlc: groupBy(payments, (p) => `${p.channelId}/${p.htlcId}`),
    forwardsByIn: groupBy(forwards, (f) => `${f.inChannel}/${f.inHtlcId}`),
    forwardsByOut: groupBy(forwards, (f) =>
      f.outChannel === null || f.outHtlcId === null ? undefined : `${f.outChannel}/${f.outHtlcId}`,
    ),
  };
}

// ---------------------------------------------------------------------------------------------
// The chain

interface ChainView {
  /** Confirmed transactions by txid, and the mempool's. */
  txs: Map<string, Transaction>;
  mempool: Map<string, Transaction>;
  /** "txid:vout" of every output spent by a confirmed or mempool transaction → the spender. */
  spentBy: Map<string, string>;
  tip: number;
}

async function readChain(net: Network): Promise<ChainView> {
  const rpc = net.regtest.rpc;
  const tip = await rpc.getBlockCount();
  const txs = new Map<string, Transaction>();
  const heights = Array.from({ length: tip }, (_, i) => i + 1);
  // A few blocks at a time: the regtest node is in this process, the RPC is cheap.
  for (let i = 0; i < heights.length; i += 16) {
    const blocks = await Promise.all(
      heights.slice(i, i + 16).map(async (h) => rpc.getBlock(await rpc.getBlockHash(h), 2)),
    );
    for (const block of blocks)
      for (const t of typeof block === "object" && "tx" in block ? block.tx : []) {
        if (typeof t !== "object") continue;
        const tx = Transaction.fromHex(t.hex);
        txs.set(tx.getId(), tx);
      }
  }
  const mempool = new Map<string, Transaction>();
  for (const txid of await rpc.getRawMempool()) {
    const hex = await rpc.getRawTransaction(txid, false);
    if (typeof hex === "string") mempool.set(txid, Transaction.fromHex(hex));
  }
  const spentBy = new Map<string, string>();
  for (const [txid, tx] of [...txs, ...mempool])
    if (!tx.isCoinbase()) tx.ins.forEach((inp, i) => spentBy.set(`${spentTxid(tx, i)}:${inp.index}`, txid));
  return { txs, mempool, spentBy, tip };
}

interface OnChain {
  walletSat: Sat;
  feesSat: Sat;
  /** Coins paid to the node by transactions spending none of its coins (the funding). */
  depositsSat: Sat;
  /** Its transactions still in the mempool. */
  unconfirmed: string[];
}

function onChainOf(chain: ChainView, scripts: ReadonlySet<string>): OnChain {
  const own = (tx: Transaction, vout: number): boolean =>
    scripts.has(Buffer.from(tx.outs[vout]?.script ?? []).toString("hex"));
  const valueOf = (txid: string, vout: number): bigint => {
    const out = chain.txs.get(txid)?.outs[vout];
    if (out === undefined) throw new Error(`the chain has no output ${txid}:${vout}`);
    return BigInt(out.value);
  };
  let wallet = 0n;
  let fees = 0n;
  let deposits = 0n;
  for (const [txid, tx] of chain.txs) {
    const spendsOurs =
      !tx.isCoinbase() &&
      tx.ins.some((inp, i) => {
        const prev = chain.txs.get(spentTxid(tx, i));
        return prev !== undefined && own(prev, inp.index);
      });
    tx.outs.forEach((out, vout) => {
      if (!own(tx, vout)) return;
      if (!chain.spentBy.has(`${txid}:${vout}`)) wallet += BigInt(out.value);
      if (!spendsOurs) deposits += BigInt(out.value);
    });
    if (spendsOurs) {
      const inputs = tx.ins.reduce((a, inp, i) => a + valueOf(spentTxid(tx, i), inp.index), 0n);
      const outputs = tx.outs.reduce((a, o) => a + BigInt(o.value), 0n);
      fees += inputs - outputs;
    }
  }
  const unconfirmed = [...chain.mempool]
    .filter(
      ([, tx]) =>
        tx.outs.some((_, v) => own(tx, v)) ||
        tx.ins.some((inp, i) => {
          const prev = chain.txs.get(spentTxid(tx, i));
          return prev !== undefined && own(prev, inp.index);
        }),
    )
    .map(([id]) => id);
  return { walletSat: sat(wallet), feesSat: sat(fees), depositsSat: sat(deposits), unconfirmed };
}

// ---------------------------------------------------------------------------------------------
// Helpers

const short = (hex: string): string => `${hex.slice(0, 10)}…`;
const sumMsat = (xs: readonly bigint[]): Msat => msat(xs.reduce((a, b) => a + b, 0n));
/** Signed: a difference of millisatoshi amounts may be negative. */
const signed = (x: bigint): string => (x > 0n ? `+${x}` : String(x));

class Violations {
  readonly lines: string[] = [];
  #more = 0;
  add(line: string): void {
    if (this.lines.length < MAX_VIOLATIONS) this.lines.push(line);
    else this.#more++;
  }
  done(): string[] {
    return this.#more > 0 ? [...this.lines, `… and ${this.#more} more`] : this.lines;
  }
  get ok(): boolean {
    return this.lines.length === 0;
  }
}

const result = (name: InvariantName, figure: string, v: Violations): InvariantResult => ({
  name,
  ok: v.ok,
  figure,
  violations: v.done(),
});

/** The vout of the anchor, from its short_channel_id (HEIGHTxINDEXxOUTPUT). */
const anchorOutpoint = (c: ChannelDetail): string | undefined => {
  if (c.anchorTxid === null) return undefined;
  const vout = c.shortChannelId?.split("x")[2];
  return vout === undefined ? undefined : `${c.anchorTxid}:${vout}`;
};

/** Each channel's two ends, by anchor txid. */
interface Ends {
  byNodeChannel: Map<string, { anchor: string }>;
  byAnchor: Map<string, { rec: NodeRecords; ch: ChannelDetail }[]>;
}
function channelEnds(recs: readonly NodeRecords[]): Ends {
  const byNodeChannel = new Map<string, { anchor: string }>();
  const byAnchor = new Map<string, { rec: NodeRecords; ch: ChannelDetail }[]>();
  for (const rec of recs)
    for (const ch of rec.channels) {
      const anchor = ch.anchorTxid ?? `no-anchor:${rec.node.name}:${ch.id}`;
      byNodeChannel.set(`${rec.node.name}/${ch.id}`, { anchor });
      byAnchor.set(anchor, [...(byAnchor.get(anchor) ?? []), { rec, ch }]);
    }
  return { byNodeChannel, byAnchor };
}
/** The other end of `node`'s channel `channelId`. */
function otherEnd(
  ends: Ends,
  node: NetNode,
  channelId: string,
): { rec: NodeRecords; ch: ChannelDetail } | undefined {
  const a = ends.byNodeChannel.get(`${node.name}/${channelId}`);
  if (a === undefined) return undefined;
  return ends.byAnchor.get(a.anchor)?.find((e) => e.rec.node !== node);
}

const sha256Hex = (hex: string): string => createHash("sha256").update(Buffer.from(hex, "hex")).digest("hex");

// ---------------------------------------------------------------------------------------------
// Quiescence

/** What is still in flight, or undefined when nothing is. */
async function inFlight(net: Network): Promise<{ what: string | undefined; mine: boolean }> {
  const pending: string[] = [];
  let mine = false;
  for (const n of net.nodes) {
    const s = `"${n.schemas.channel}"`;
    const [p] = await net.query<{ payments: string; invoice_payments: string; forwards: string }>(
      `SELECT (SELECT count(*) FROM ${s}.payments WHERE status NOT IN ('succeeded', 'failed'))::text AS payments,
              (SELECT count(*) FROM ${s}.invoice_payments WHERE status NOT IN ('succeeded', 'failed'))::text AS invoice_payments,
              (SELECT count(*) FROM ${s}.forwards WHERE status NOT IN ('settled', 'failed_back'))::text AS forwards`,
    );
    if (p !== undefined) {
      if (p.payments !== "0") pending.push(`${n.name}: ${p.payments} payments pending`);
      if (p.invoice_payments !== "0")
        pending.push(`${n.name}: ${p.invoice_payments} invoice payments pending`);
      if (p.forwards !== "0") pending.push(`${n.name}: ${p.forwards} forwards pending`);
    }
    const w = await n.api.walletBalance();
    if (w.unconfirmedSat !== "0") {
      pending.push(`${n.name}: ${w.unconfirmedSat} sat unconfirmed`);
      mine = true;
    }
  }
  const byAnchor = new Map<string, { n: NetNode; ch: ChannelDetail }[]>();
  for (const n of net.nodes)
    for (const c of await n.api.channels()) {
      const ch = await n.api.channel(c.id);
      if (ch.htlcs.length > 0) pending.push(`${n.name}: ${ch.htlcs.length} HTLCs on ${c.id}`);
      if (ch.phase === "opening") pending.push(`${n.name}: ${c.id} opening`);
      if (ch.anchorTxid !== null)
        byAnchor.set(ch.anchorTxid, [...(byAnchor.get(ch.anchorTxid) ?? []), { n, ch }]);
    }
  // Both ends must have committed the same state: one end may still be a step behind.
  for (const [anchor, ends] of byAnchor) {
    const [x, y] = ends;
    if (x !== undefined && y !== undefined && x.ch.localBalanceMsat !== y.ch.remoteBalanceMsat)
      pending.push(`${short(anchor)}: ${x.n.name} and ${y.n.name} differ`);
  }
  const mempool = await net.regtest.rpc.getRawMempool();
  if (mempool.length > 0) {
    pending.push(`${mempool.length} transactions in the mempool`);
    mine = true;
  }
  return { what: pending.length === 0 ? undefined : pending.join("; "), mine };
}

/** Waits until nothing is in flight (every payment final, no HTLC in any channel, no forward pending), mining blocks if needed. */
export async function waitQuiescent(net: Network, storm: StormRecord, opts: InvariantOptions): Promise<void> {
  const timeoutMs = opts.quiescenceTimeoutMs ?? 180_000;
  const log = opts.log ?? ((): void => undefined);
  const deadline = Date.now() + timeoutMs;
  const answered = storm.requests.filter((r) => r.paymentId !== undefined).length;
  log(`quiescence: waiting (${storm.requests.length} requests, ${answered} answered)`);
  let last = "not checked yet";
  let mined = 0;
  for (;;) {
    try {
      const s = await inFlight(net);
      if (s.what === undefined) {
        log(`quiescence: reached${mined > 0 ? ` (${mined} blocks mined)` : ""}`);
        return;
      }
      last = s.what;
      // Only a wallet spend or a transaction waiting for a block needs one: mining for nothing
      // would bring HTLC deadlines closer.
      if (s.mine) {
        await net.regtest.mine(1);
        mined++;
      }
    } catch (e) {
      last = `error: ${errText(e)}`;
    }
    if (Date.now() > deadline)
      throw new Error(`no quiescence after ${timeoutMs / 1000} s; still in flight: ${last}`);
    await sleep(1000);
  }
}

// ---------------------------------------------------------------------------------------------
// The invariants

/** The payment a request made, at its payer: a payments row or an invoice payment. */
type Made = { kind: "payment"; row: PaymentRow } | { kind: "invoice"; row: InvoicePaymentRow };

function findPayment(rec: NodeRecords, id: string): Made | undefined {
  const p = rec.byId.get(id);
  if (p !== undefined) return { kind: "payment", row: p };
  const ip = rec.invoicePaymentById.get(id);
  return ip === undefined ? undefined : { kind: "invoice", row: ip };
}

/** The payments (not attempts of an invoice payment) and invoice payments of `rec` to `rHash`. */
const madeByHash = new WeakMap<NodeRecords, Map<string, Made[]>>();
function paymentsTo(rec: NodeRecords, rHash: string): Made[] {
  let m = madeByHash.get(rec);
  if (m === undefined) {
    m = groupBy(
      [
        ...rec.payments
          .filter((p) => p.invoicePaymentId === null)
          .map((row): Made => ({ kind: "payment", row })),
        ...rec.invoicePayments.map((row): Made => ({ kind: "invoice", row })),
      ],
      (x) => x.row.rHash,
    );
    madeByHash.set(rec, m);
  }
  return m.get(rHash) ?? [];
}

/** What the payee gets from a payment made (an invoice payment: its invoice amount). */
const payeeMsat = (m: Made): Msat => (m.kind === "payment" ? m.row.payeeMsat : m.row.amountMsat);

/**
 * Each request's payment, as the payer records it: exactly one per answered request (and the one
 * answered), at most one per unanswered one, never one per idempotency key more; every one final.
 */
function exactlyOnce(
  storm: StormRecord,
  recOf: (name: string) => NodeRecords,
  recs: readonly NodeRecords[],
): { res: InvariantResult; outcome: Map<StormRequest, Made | undefined> } {
  const v = new Violations();
  const outcome = new Map<StormRequest, Made | undefined>();
  const byHash = new Map<string, StormRequest[]>();
  for (const r of storm.requests) {
    const k = `${r.payer}/${r.rHash}`;
    byHash.set(k, [...(byHash.get(k) ?? []), r]);
  }
  const keysSeen = new Map<string, number>();
  for (const r of storm.requests)
    keysSeen.set(`${r.payer}/${r.idempotencyKey}`, (keysSeen.get(`${r.payer}/${r.idempotencyKey}`) ?? 0) + 1);
  for (const [k, count] of keysSeen)
    if (count > 1) v.add(`idempotency key ${k} used by ${count} requests of the storm`);

  let unansweredMade = 0;
  for (const r of storm.requests) {
    const payer = recOf(r.payer);
    const bound = payer.keys.get(r.idempotencyKey) ?? [];
    const boundIds = bound.filter((x): x is string => x !== undefined);
    if (bound.length > 1) v.add(`${r.payer}: key ${r.idempotencyKey} stored ${bound.length} times`);
    const sameHash = paymentsTo(payer, r.rHash);
    const requestsOfHash = byHash.get(`${r.payer}/${r.rHash}`)?.length ?? 0;
    if (sameHash.length > requestsOfHash)
      v.add(`${r.payer}: ${sameHash.length} payments to ${short(r.rHash)} for ${requestsOfHash} request(s)`);
    let made: Made | undefined;
    if (r.paymentId !== undefined) {
      made = findPayment(payer, r.paymentId);
      if (made === undefined)
        v.add(
          `${r.payer}: request ${r.idempotencyKey} answered payment ${r.paymentId}, which does not exist`,
        );
      if (boundIds.length > 0 && !boundIds.includes(r.paymentId))
        v.add(
          `${r.payer}: key ${r.idempotencyKey} stores payment ${boundIds.join(", ")}, the answer was ${r.paymentId}`,
        );
    } else {
      // No answer came: the key's stored answer (if any) names it, else one to this hash if unique.
      const id = boundIds[0];
      made = id !== undefined ? findPayment(payer, id) : requestsOfHash === 1 ? sameHash[0] : undefined;
      if (id !== undefined && made === undefined)
        v.add(`${r.payer}: key ${r.idempotencyKey} stores payment ${id}, which does not exist`);
      if (made !== undefined) unansweredMade++;
    }
    if (made !== undefined) {
      if (made.row.rHash !== r.rHash)
        v.add(
          `${r.payer}: payment ${made.row.id} pays ${short(made.row.rHash)}, the request ${short(r.rHash)}`,
        );
      if (payeeMsat(made) !== r.amountMsat)
        v.add(
          `${r.payer}: payment ${made.row.id} gives the payee ${payeeMsat(made)} msat, the request ${r.amountMsat}`,
        );
      if (made.row.status !== "succeeded" && made.row.status !== "failed")
        v.add(`${r.payer}: payment ${made.row.id} is ${made.row.status}, not final`);
    }
    outcome.set(r, made);
  }
  // Every payment of a node was asked for by the storm (else the record misses one, or a payment
  // was made twice under two keys).
  const asked = new Set(storm.requests.map((r) => `${r.payer}/${r.rHash}`));
  let total = 0;
  for (const rec of recs)
    for (const m of [
      ...rec.payments
        .filter((p) => p.invoicePaymentId === null)
        .map((row): Made => ({ kind: "payment", row })),
      ...rec.invoicePayments.map((row): Made => ({ kind: "invoice", row })),
    ]) {
      total++;
      if (!asked.has(`${rec.node.name}/${m.row.rHash}`))
        v.add(
          `${rec.node.name}: payment ${m.row.id} to ${short(m.row.rHash)} was not asked for by the storm`,
        );
      if (m.row.status !== "succeeded" && m.row.status !== "failed")
        v.add(`${rec.node.name}: payment ${m.row.id} is ${m.row.status}, not final`);
    }
  const made = [...outcome.values()].filter((m): m is Made => m !== undefined);
  const ok = made.filter((m) => m.row.status === "succeeded").length;
  const failed = made.filter((m) => m.row.status === "failed").length;
  const unanswered = storm.requests.filter((r) => r.paymentId === undefined).length;
  return {
    res: result(
      "payments exactly once",
      `${storm.requests.length} requests, ${total} payments: ${ok} succeeded, ${failed} failed; ` +
        `${unanswered} unanswered (${unansweredMade} of them made a payment)`,
      v,
    ),
    outcome,
  };
}

/** The payee's invoice is settled iff the request's payment succeeded; no invoice settled without one. */
function invoicePaidIff(
  storm: StormRecord,
  outcome: ReadonlyMap<StormRequest, Made | undefined>,
  recOf: (name: string) => NodeRecords,
  recs: readonly NodeRecords[],
): InvariantResult {
  const v = new Violations();
  let paid = 0;
  let open = 0;
  let unknown = 0;
  for (const r of storm.requests) {
    const made = outcome.get(r);
    const succeeded = made?.row.status === "succeeded";
    const inv = recOf(r.payee).invoices.get(r.rHash);
    if (inv === undefined) {
      unknown++;
      if (succeeded)
        v.add(
          `${r.payer}→${r.payee}: payment ${made?.row.id ?? "?"} succeeded without an invoice of ${short(r.rHash)}`,
        );
      continue;
    }
    if (succeeded !== (inv.status === "settled"))
      v.add(
        `${r.payer}→${r.payee}: invoice ${short(r.rHash)} ${inv.status}, payment ${made?.row.id ?? "(none)"} ${made?.row.status ?? "absent"}`,
      );
    if (inv.status === "settled") paid++;
    else open++;
  }
  // No invoice settled that no payment of the network paid.
  const succeeded = new Set(
    recs.flatMap((rec) => [
      ...rec.payments.filter((p) => p.status === "succeeded").map((p) => p.rHash),
      ...rec.invoicePayments.filter((p) => p.status === "succeeded").map((p) => p.rHash),
    ]),
  );
  let settledTotal = 0;
  for (const rec of recs)
    for (const [rHash, inv] of rec.invoices)
      if (inv.status === "settled") {
        settledTotal++;
        if (!succeeded.has(rHash))
          v.add(`${rec.node.name}: invoice ${short(rHash)} settled, no payment of it succeeded`);
      }
  return result(
    "invoice paid iff payment succeeded",
    `${settledTotal} invoices settled (${paid} of the storm's), ${open} open after a failed or absent payment, ${unknown} requests to an unknown hash`,
    v,
  );
}

/** Every forward final, with one upstream outcome matching its downstream one. */
function forwardsResolved(recs: readonly NodeRecords[], ends: Ends): InvariantResult {
  const v = new Violations();
  let settled = 0;
  let failedBack = 0;
  let fees = 0n;
  for (const rec of recs)
    for (const f of rec.forwards) {
      const where = `${rec.node.name}: forward ${f.id} (${short(f.rHash)})`;
      if (!FINAL_FORWARD.has(f.status)) {
        v.add(`${where} is ${f.status}`);
        continue;
      }
      const done = f.status === "settled";
      if (done) {
        settled++;
        if (f.preimage === null || sha256Hex(f.preimage) !== f.rHash)
          v.add(`${where} settled without its preimage`);
        if (f.outMsat === null) v.add(`${where} settled with no outgoing HTLC`);
        else if (f.inMsat < f.outMsat)
          v.add(`${where} settled paying ${f.outMsat - f.inMsat} msat of its own`);
        else fees += f.inMsat - f.outMsat;
      } else failedBack++;
      // Upstream: the HTLC it answered, a payment of the previous node or its forward.
      const up = otherEnd(ends, rec.node, f.inChannel);
      if (up === undefined) v.add(`${where}: no other end of its incoming channel ${f.inChannel}`);
      else {
        const pays = up.rec.paymentsByHtlc.get(`${up.ch.id}/${f.inHtlcId}`) ?? [];
        const fwds = up.rec.forwardsByOut.get(`${up.ch.id}/${f.inHtlcId}`) ?? [];
        const upstream = [...pays.map((p) => p.status), ...fwds.map((g) => g.status)];
        if (upstream.length !== 1)
          v.add(`${where}: ${upstream.length} upstream records at ${up.rec.node.name} (HTLC ${f.inHtlcId})`);
        else if ((upstream[0] === "succeeded" || upstream[0] === "settled") !== done)
          v.add(`${where} ${f.status}, upstream at ${up.rec.node.name} ${upstream[0] ?? "?"}`);
      }
      // Downstream: the next node's forward of the HTLC we offered, else the payee's invoice.
      if (f.outChannel !== null && f.outHtlcId !== null) {
        const down = otherEnd(ends, rec.node, f.outChannel);
        if (down === undefined) v.add(`${where}: no other end of its outgoing channel ${f.outChannel}`);
        else {
          const next = down.rec.forwardsByIn.get(`${down.ch.id}/${f.outHtlcId}`) ?? [];
          if (next.length > 1)
            v.add(`${where}: ${next.length} forwards of its HTLC at ${down.rec.node.name}`);
          const g = next[0];
          if (g !== undefined) {
            if ((g.status === "settled") !== done)
              v.add(`${where} ${f.status}, downstream at ${down.rec.node.name} ${g.status}`);
          } else if (done && down.rec.invoices.get(f.rHash)?.status !== "settled")
            v.add(
              `${where} settled, ${down.rec.node.name}'s invoice is ${down.rec.invoices.get(f.rHash)?.status ?? "absent"}`,
            );
        }
      } else if (done) v.add(`${where} settled without offering downstream`);
    }
  // Every routed payment that reached its first hop has exactly one forward there.
  for (const rec of recs)
    for (const p of rec.payments) {
      if (p.firstHop === undefined) continue;
      const next = otherEnd(ends, rec.node, p.channelId);
      if (next === undefined) continue; // reported by the forwards' own check or channel ends
      const fwds = next.rec.forwardsByIn.get(`${next.ch.id}/${p.htlcId}`) ?? [];
      if (p.status === "succeeded" ? fwds.length !== 1 : fwds.length > 1)
        v.add(
          `${rec.node.name}: payment ${p.id} ${p.status} has ${fwds.length} forwards at ${next.rec.node.name}`,
        );
    }
  const total = recs.reduce((a, r) => a + r.forwards.length, 0);
  return result(
    "forwards resolved both ways",
    `${total} forwards: ${settled} settled (fees ${fees} msat), ${failedBack} failed back, ${total - settled - failedBack} pending`,
    v,
  );
}

/** Both ends of every channel agree on both balances and every HTLC; none in flight. */
function endsAgree(ends: Ends): InvariantResult {
  const v = new Violations();
  let pairs = 0;
  let htlcs = 0;
  let total = 0n;
  for (const [anchor, list] of ends.byAnchor) {
    const [x, y] = list;
    if (x === undefined || y === undefined || list.length !== 2) {
      v.add(
        `channel ${short(anchor)}: ${list.length} end(s) (${list.map((e) => e.rec.node.name).join(", ")})`,
      );
      continue;
    }
    pairs++;
    const name = `${x.rec.node.name}-${y.rec.node.name} (${short(anchor)})`;
    if (x.ch.capacitySat !== y.ch.capacitySat)
      v.add(`${name}: capacity ${x.ch.capacitySat} vs ${y.ch.capacitySat} sat`);
    if (x.ch.localBalanceMsat !== y.ch.remoteBalanceMsat || x.ch.remoteBalanceMsat !== y.ch.localBalanceMsat)
      v.add(
        `${name}: ${x.rec.node.name} says ${x.ch.localBalanceMsat}/${x.ch.remoteBalanceMsat}, ` +
          `${y.rec.node.name} says ${y.ch.remoteBalanceMsat}/${y.ch.localBalanceMsat} msat (${x.rec.node.name}/${y.rec.node.name})`,
      );
    const key = (h: ChannelDetail["htlcs"][number], flip: boolean): string =>
      `${(h.direction === "offered") !== flip ? "x→y" : "y→x"} ${h.id} ${h.amountMsat} ${h.rHash}`;
    const xs = x.ch.htlcs.map((h) => key(h, false)).sort();
    const ys = y.ch.htlcs.map((h) => key(h, true)).sort();
    if (xs.join("|") !== ys.join("|"))
      v.add(`${name}: HTLCs differ: [${xs.join(", ")}] vs [${ys.join(", ")}]`);
    htlcs += x.ch.htlcs.length + y.ch.htlcs.length;
    if (x.ch.htlcs.length + y.ch.htlcs.length > 0)
      v.add(`${name}: ${x.ch.htlcs.length} + ${y.ch.htlcs.length} HTLCs in flight`);
    else if (
      BigInt(x.ch.localBalanceMsat) + BigInt(x.ch.remoteBalanceMsat) !==
      satToMsat(sat(BigInt(x.ch.capacitySat)))
    )
      v.add(
        `${name}: balances ${x.ch.localBalanceMsat} + ${x.ch.remoteBalanceMsat} msat ≠ capacity ${x.ch.capacitySat} sat`,
      );
    total += BigInt(x.ch.capacitySat);
  }
  return result(
    "channel ends agree",
    `${pairs} channels (${total} sat): both ends agree on both balances; ${htlcs} HTLCs in flight`,
    v,
  );
}

/** Every channel normal, nothing broadcast for it, its anchor unspent on chain and in the mempool. */
function noForceClose(recs: readonly NodeRecords[], chain: ChainView): InvariantResult {
  const v = new Violations();
  let count = 0;
  for (const rec of recs)
    for (const ch of rec.channels) {
      count++;
      const where = `${rec.node.name}: channel ${ch.id}`;
      if (ch.phase !== "normal")
        v.add(`${where} is ${ch.phase}${ch.failure ? ` (${ch.failure.code}: ${ch.failure.problem})` : ""}`);
      if (ch.transactions.length > 0)
        v.add(`${where}: broadcast ${ch.transactions.map((t) => `${t.kind} ${short(t.txid)}`).join(", ")}`);
      if (ch.onchain !== null)
        v.add(`${where}: anchor spent by ${ch.onchain.kind} ${short(ch.onchain.spendTxid)}`);
      const outpoint = anchorOutpoint(ch);
      if (outpoint === undefined) v.add(`${where} has no anchor in a block`);
      else if (!chain.txs.has(outpoint.split(":")[0] ?? ""))
        v.add(`${where}: anchor ${outpoint} is not on the chain`);
      else {
        const by = chain.spentBy.get(outpoint);
        if (by !== undefined)
          v.add(`${where}: anchor ${outpoint} spent by ${by}${chain.mempool.has(by) ? " (mempool)" : ""}`);
      }
    }
  return result(
    "no force close",
    `${count} channel ends normal; no anchor spent (${chain.tip} blocks and ${chain.mempool.size} mempool txs read)`,
    v,
  );
}

interface Books {
  node: string;
  channelsMsat: Msat;
  walletSat: Sat;
  fundedSat: Sat;
  feesSat: Sat;
  earnedMsat: Msat;
  receivedMsat: Msat;
  sentMsat: Msat;
  /** left − right: must be 0. */
  differenceMsat: bigint;
}

/** Money conserved per node, to the millisatoshi (see the file's comment). */
function conservation(
  storm: StormRecord,
  outcome: ReadonlyMap<StormRequest, Made | undefined>,
  recs: readonly NodeRecords[],
  chain: ChainView,
): { res: InvariantResult; books: Books[] } {
  const v = new Violations();
  const books: Books[] = [];
  // What the payee got for each hash, from its payer's succeeded payment: an invoice of any amount
  // (amount 0) records none of its own.
  const paidFor = new Map<string, Msat>();
  for (const rec of recs)
    for (const p of rec.payments) if (p.status === "succeeded") paidFor.set(p.rHash, p.payeeMsat);
  for (const rec of recs) {
    const name = rec.node.name;
    const oc = onChainOf(chain, rec.walletScripts);
    const funded = storm.funded.get(name) ?? sat(0n);
    const b: Omit<Books, "differenceMsat"> = {
      node: name,
      // Only channels whose anchor is in a block and unspent hold the node's money: before, it is
      // still the wallet's; after, it is on chain (both reported by "no force close").
      channelsMsat: sumMsat(
        rec.channels
          .filter((c) => {
            const o = anchorOutpoint(c);
            return o !== undefined && chain.txs.has(c.anchorTxid ?? "") && !chain.spentBy.has(o);
          })
          .map((c) => BigInt(c.localBalanceMsat)),
      ),
      walletSat: oc.walletSat,
      fundedSat: sat(funded),
      feesSat: oc.feesSat,
      earnedMsat: sumMsat(
        rec.forwards
          .filter((f) => f.status === "settled" && f.outMsat !== null)
          .map((f) => f.inMsat - (f.outMsat ?? 0n)),
      ),
      receivedMsat: sumMsat(
        [...rec.invoices]
          .filter(([, i]) => i.status === "settled")
          .map(([rHash, i]) => {
            if (i.amountMsat > 0n) return i.amountMsat;
            const got = paidFor.get(rHash);
            if (got === undefined)
              v.add(`${rec.node.name}: invoice ${short(rHash)} of any amount, paid by no one here`);
            return got ?? 0n;
          }),
      ),
      sentMsat: sumMsat(rec.payments.filter((p) => p.status === "succeeded").map((p) => p.amountMsat)),
    };
    const left = b.channelsMsat + satToMsat(b.walletSat);
    const right = satToMsat(b.fundedSat) - satToMsat(b.feesSat) + b.earnedMsat + b.receivedMsat - b.sentMsat;
    const book: Books = { ...b, differenceMsat: left - right };
    books.push(book);
    if (book.differenceMsat !== 0n)
      v.add(
        `${name}: channels + wallet − (funded − fees + earned + received − sent) = ${signed(book.differenceMsat)} msat`,
      );
    // The wallet the node reports is the chain's, every coin confirmed.
    if (BigInt(rec.wallet.confirmedSat) !== oc.walletSat)
      v.add(
        `${name}: the API's confirmed wallet ${rec.wallet.confirmedSat} sat, the chain's ${oc.walletSat} sat`,
      );
    if (rec.wallet.unconfirmedSat !== "0" || rec.wallet.closeOutputs.length > 0)
      v.add(
        `${name}: ${rec.wallet.unconfirmedSat} sat unconfirmed, ${rec.wallet.closeOutputs.length} close outputs`,
      );
    if (oc.unconfirmed.length > 0)
      v.add(`${name}: ${oc.unconfirmed.length} of its transactions still in the mempool`);
    if (oc.depositsSat !== b.fundedSat)
      v.add(`${name}: the chain shows ${oc.depositsSat} sat deposited, the storm funded ${b.fundedSat}`);
    // Cross-check with the storm: what its succeeded requests say each node sent and received.
    const succeeded = storm.requests.filter((r) => outcome.get(r)?.row.status === "succeeded");
    const stormSent = sumMsat(succeeded.filter((r) => r.payer === name).map((r) => r.amountMsat));
    const stormReceived = sumMsat(succeeded.filter((r) => r.payee === name).map((r) => r.amountMsat));
    const ownSent = sumMsat(
      rec.payments
        .filter((p) => p.status === "succeeded" && p.invoicePaymentId === null)
        .map((p) => p.payeeMsat),
    );
    const ownInvoiceSent = sumMsat(
      rec.invoicePayments.filter((p) => p.status === "succeeded").map((p) => p.amountMsat),
    );
    if (ownSent + ownInvoiceSent !== stormSent)
      v.add(
        `${name}: its payments gave payees ${ownSent + ownInvoiceSent} msat, the storm's succeeded requests ${stormSent}`,
      );
    if (b.receivedMsat !== stormReceived)
      v.add(
        `${name}: received ${b.receivedMsat} msat by its invoices, the storm's succeeded requests ${stormReceived}`,
      );
  }
  // Route fees paid are fees earned by the forwarders.
  const paidFees = sumMsat(
    recs.flatMap((r) =>
      r.payments.filter((p) => p.status === "succeeded").map((p) => p.amountMsat - p.payeeMsat),
    ),
  );
  const earned = sumMsat(books.map((b) => b.earnedMsat));
  if (paidFees !== earned) v.add(`route fees paid ${paidFees} msat, forward fees earned ${earned} msat`);
  const figure = books
    .map(
      (b) =>
        `${b.node}: ${b.channelsMsat} + ${b.walletSat}s = ${b.fundedSat}s − ${b.feesSat}s + ${b.earnedMsat} + ${b.receivedMsat} − ${b.sentMsat} (${signed(b.differenceMsat)})`,
    )
    .join("; ");
  return { res: result("money conserved", `msat unless s(at): ${figure}`, v), books };
}

/** A log line that tells of an uncaught exception or an unhandled rejection. */
const FATAL_TEXT = [
  // Node's own report of an uncaught exception or unhandled rejection ends with its version.
  /^Node\.js v\d+\.\d+\.\d+$/,
  /ERR_UNHANDLED_REJECTION|UnhandledPromiseRejection/,
  /\buncaught ?exception\b|\bunhandled ?rejection\b/i,
];
const EXIT_LINE = /^--- \S+ exit (code (\S+)|signal (\S+)) ---$/;
/**
 * A service's own, logged refusal to start because Postgres or NATS did not answer (restarted
 * by the run): it exits 1 and is started again, as Kubernetes would. Not a crash; counted apart.
 */
const FAILED_START =
  /^failed to start: .*(the database system is (shutting down|starting up)|ECONNREFUSED|Connection terminated|CONNECTION_REFUSED|TIMEOUT)/s;

/** No process logged an uncaught exception, none exited on its own with an error. */
export function logsClean(net: Pick<Network, "dir" | "crashed">): InvariantResult {
  const v = new Violations();
  const dir = join(net.dir, "logs");
  const files = existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith(".log"))
        .sort()
    : [];
  let lines = 0;
  let killed = 0;
  let starts = 0;
  let refusedStarts = 0;
  for (const f of files) {
    const text = readFileSync(join(dir, f), "utf8");
    let dependencyDown = false; // the line before was a logged refusal to start (FAILED_START)
    text.split("\n").forEach((line, i) => {
      if (line === "") return;
      lines++;
      const at = `${f}:${i + 1}`;
      const afterRefusal = dependencyDown;
      dependencyDown = false;
      if (line.startsWith("--- ")) {
        if (/^--- \S+ start /.test(line)) starts++;
        const m = EXIT_LINE.exec(line);
        // SIGKILL: the run killed it; SIGTERM/SIGINT: stopped before its handler was set. Any
        // other signal (SIGABRT: out of memory, a native abort) or a non-zero code is its own doing.
        if (m?.[3] === "SIGKILL") killed++;
        else if (m?.[3] !== undefined && m[3] !== "SIGTERM" && m[3] !== "SIGINT")
          v.add(`${at}: exited on its own: ${m[1] ?? ""}`);
        else if (m?.[2] === "1" && afterRefusal) refusedStarts++;
        else if (m?.[2] !== undefined && m[2] !== "0") v.add(`${at}: exited on its own: ${m[1] ?? ""}`);
        return;
      }
      if (line.startsWith("{")) {
        let rec: unknown;
        try {
          rec = JSON.parse(line);
        } catch {
          rec = undefined;
        }
        if (typeof rec === "object" && rec !== null) {
          const { level, msg } = rec as { level?: unknown; msg?: unknown };
          if (level === "fatal") v.add(`${at}: fatal: ${String(msg)}`);
          else if (level === "error" && typeof msg === "string" && FAILED_START.test(msg))
            dependencyDown = true;
          else if (typeof msg === "string" && FATAL_TEXT[2]?.test(msg)) v.add(`${at}: ${msg.slice(0, 200)}`);
          return;
        }
      }
      if (FATAL_TEXT.some((re) => re.test(line))) v.add(`${at}: ${line.slice(0, 200)}`);
    });
  }
  if (net.crashed !== undefined) v.add(`the network saw a crash: ${net.crashed.split("\n")[0] ?? ""}`);
  return result(
    "no uncaught exception",
    `${files.length} log files, ${lines} lines, ${starts} process starts, ${killed} SIGKILLed, ` +
      `${refusedStarts} refused to start while Postgres or NATS was down`,
    v,
  );
}

/** Every process's peak under the bound; every process of the network sampled. */
function memoryBounded(net: Network, peaks: readonly MemoryPeak[], boundBytes: number): InvariantResult {
  const v = new Violations();
  const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
  for (const p of peaks)
    if (!(p.peakBytes < boundBytes))
      v.add(`${p.process}: peak ${mib(p.peakBytes)} ≥ bound ${mib(boundBytes)}`);
  const sampled = new Set(peaks.map((p) => p.process));
  for (const name of net.supervisor.names()) if (!sampled.has(name)) v.add(`${name}: no memory sample`);
  const top = [...peaks].sort((a, b) => b.peakBytes - a.peakBytes)[0];
  return result(
    "memory bounded",
    `${peaks.length} processes, highest ${top === undefined ? "none" : `${top.process} ${mib(top.peakBytes)}`}, bound ${mib(boundBytes)}`,
    v,
  );
}

/** Every invariant, each with its figure; never throws for a violated invariant (ok: false with violations). */
export async function checkInvariants(
  net: Network,
  storm: StormRecord,
  opts: InvariantOptions,
): Promise<InvariantResult[]> {
  const keysOf = (n: NetNode): string[] =>
    storm.requests.filter((r) => r.payer === n.name).map((r) => r.idempotencyKey);
  const recs = await Promise.all(net.nodes.map((n) => readNode(net, n, keysOf(n))));
  const recOf = (name: string): NodeRecords => {
    const r = recs.find((x) => x.node.name === name);
    if (r === undefined) throw new Error(`the storm names node ${name}, not in the network`);
    return r;
  };
  const chain = await readChain(net);
  const ends = channelEnds(recs);
  const once = exactlyOnce(storm, recOf, recs);
  const results = [
    once.res,
    invoicePaidIff(storm, once.outcome, recOf, recs),
    forwardsResolved(recs, ends),
    endsAgree(ends),
    noForceClose(recs, chain),
    conservation(storm, once.outcome, recs, chain).res,
    logsClean(net),
    memoryBounded(net, storm.memory, opts.memoryBoundBytes),
  ];
  opts.log?.(formatInvariants(results));
  return results;
}

/** Each node's books, as `money conserved` computes them (for a test's or a report's own figures). */
export async function nodeBooks(net: Network, storm: StormRecord): Promise<Books[]> {
  const recs = await Promise.all(
    net.nodes.map((n) =>
      readNode(
        net,
        n,
        storm.requests.filter((r) => r.payer === n.name).map((r) => r.idempotencyKey),
      ),
    ),
  );
  const recOf = (name: string): NodeRecords => {
    const r = recs.find((x) => x.node.name === name);
    if (r === undefined) throw new Error(`no node ${name}`);
    return r;
  };
  const once = exactlyOnce(storm, recOf, recs);
  return conservation(storm, once.outcome, recs, await readChain(net)).books;
}
export type { Books };

/** A printable table: one line per invariant (OK/FAIL, name, figure), its violations under it. */
export function formatInvariants(results: readonly InvariantResult[]): string {
  const width = Math.max(...results.map((r) => r.name.length), 4);
  const out: string[] = [];
  for (const r of results) {
    out.push(`${r.ok ? "OK  " : "FAIL"}  ${r.name.padEnd(width)}  ${r.figure}`);
    for (const line of r.violations) out.push(`        - ${line}`);
  }
  const failed = results.filter((r) => !r.ok).length;
  out.push(
    failed === 0
      ? `all ${results.length} invariants hold`
      : `${failed} of ${results.length} invariants violated`,
  );
  return out.join("\n");
}

/**
 * Each running process's peak resident memory so far (VmHWM of /proc/<pid>/status: the kernel's
 * high-water mark, so a sample now covers the whole incarnation). Linux only; a process not running
 * has none. For runners: keep the maximum per process across samples and restarts.
 */
export function memoryPeaksNow(net: Network): MemoryPeak[] {
  const out: MemoryPeak[] = [];
  for (const name of net.supervisor.names()) {
    const pid = net.supervisor.pid(name);
    if (pid === undefined) continue;
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, "utf8");
    } catch {
      continue; // it exited between the two reads
    }
    const kb = /^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1];
    if (kb !== undefined) out.push({ process: name, peakBytes: Number(kb) * 1024 });
  }
  return out;
}

/** The maximum of two sample lists, per process. */
export function mergePeaks(a: readonly MemoryPeak[], b: readonly MemoryPeak[]): MemoryPeak[] {
  const m = new Map<string, number>();
  for (const p of [...a, ...b]) m.set(p.process, Math.max(m.get(p.process) ?? 0, p.peakBytes));
  return [...m].map(([process, peakBytes]) => ({ process, peakBytes }));
}
