/**
 * Paying an invoice (DESIGN.md 10, "Paying"): the shell around retry.ts and @ln/pathfinding. Each
 * pending invoice payment with no attempt in flight gets its next attempt: the lessons of every
 * failed attempt so far (recomputed from the durable rows, so a restart continues), a route over
 * the graph plus our own channels plus the invoice's hints, and the HTLC offered through the
 * ordinary pay path (the attempt row is written in the step that adds it, records.ts). No route
 * left, a payee's refusal, or the deadline passed with nothing in flight: failed, with each
 * attempt's reason on its row.
 *
 * Several replicas may run this: a transaction-scoped advisory lock per invoice payment makes one
 * act at a time, and only the replica that holds the first hop's channel lease sends. A NATS
 * notice (ours, and the forwarder's, published when an HTLC we offered is resolved) wakes every
 * replica; a periodic round picks up what a notice missed (a start, a takeover, a lost message).
 */
import { createHash } from "node:crypto";
import { msat, parseShortChannelId, shortChannelIdToBigint, type Msat } from "@ln/bitcoin";
import type { ChannelState, Input } from "@ln/channel-core";
import { edgeKey, findRoute, hintEdges, type Edge, type PathHop, type RouteHintHop } from "@ln/pathfinding";
import { inTransaction, quoteSchema } from "@ln/postgres";
import type { NatsConnection, Subscription } from "nats";
import type pg from "pg";
import type { Report } from "../channels/errors.js";
import type { LogLine } from "../channels/ports.js";
import type { ChannelStore } from "../channels/store.js";
import { appendEvents, inEventTransaction, type StatusChange } from "../events/event-log.js";
import { loadEdges } from "../gossip/graph-reads.js";
import type { PaymentRoute } from "./ledger.js";
import { onionHash } from "./records.js";
import { exclusionsOf, lessonOf, type FailedAttempt } from "./retry.js";

/**
 * The gossip side's hook (contracts "Invoice payments"): applies a channel_update carried in a
 * failure if it is valid and newer than what the graph has; true if the graph changed.
 */
export interface ChannelUpdateSink {
  apply(update: Buffer): Promise<boolean>;
}

/** Until gossip is wired: nothing is applied (the edge is excluded on its second failure). */
export const NO_CHANNEL_UPDATES: ChannelUpdateSink = { apply: () => Promise.resolve(false) };

/** What the payer needs of an invoice (decoded again from its bolt11 each round). */
export interface PayableInvoice {
  payee: string;
  paymentSecret: Buffer;
  minFinalCltvExpiryDelta: number;
  routeHints: RouteHintHop[][];
}

/** One attempt to send: the route from pathfinding over our channel `channelId`. */
export interface AttemptRequest {
  invoicePaymentId: string;
  channelId: string;
  hops: PathHop[];
  /** What the payee gets. */
  amountMsat: Msat;
  /** The payee's HTLC's expiry (block height). */
  finalExpiry: number;
  rHash: string;
  paymentSecret: Buffer;
}

/** Our channel refused the attempt before any HTLC existed (the channel core's code and words). */
export class AttemptRefused extends Error {
  override readonly name = "AttemptRefused";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface PayerOptions {
  pool: pg.Pool;
  schema: string;
  /** Our channels (their states: which can carry a payment, a command queued behind the signer). */
  store: Pick<ChannelStore, "rowsWithState" | "load">;
  nc: Pick<NatsConnection, "subscribe" | "publish" | "isClosed">;
  /** The node's subject prefix: notices go to `<prefix>.payments`. */
  prefix: string;
  /** Our node id, hex. */
  nodeId: string;
  /** Whether this replica runs the channel (holds its lease). */
  holds: (channelId: string) => boolean;
  /** The chain's height as the node last saw it. */
  height: () => number;
  decode: (bolt11: string) => PayableInvoice;
  /** Offers the attempt's HTLC (the pay path); throws AttemptRefused when our channel refuses. */
  send: (a: AttemptRequest) => Promise<void>;
  updates?: ChannelUpdateSink;
  /** How often pending payments are looked at without a notice (default 1000 ms). */
  roundMs?: number;
  /** Clock (ms), for the deadline. */
  now?: () => number;
  log: LogLine;
  report: Report;
}

/** Blocks added to the invoice's min_final_cltv_expiry_delta: blocks found while the HTLC travels. */
export const FINAL_EXPIRY_MARGIN_BLOCKS = 3;
/** The most the route's expiry may add up to (BOLT #4's customary 2016 blocks, two weeks). */
export const MAX_TOTAL_CLTV_DELTA = 2016;

interface InvoicePaymentDbRow {
  id: string;
  bolt11: string;
  r_hash: string;
  payee: string;
  amount_msat: string;
  max_fee_msat: string;
  deadline: Date;
  local_failures: LocalFailure[];
}

/** An attempt our own channel refused (kept on the invoice payment: it has no payments row). */
export interface LocalFailure {
  channelId: string;
  /** The route's first hop: our peer and our channel's short_channel_id (decimal). */
  nodeId: string;
  shortChannelId: string;
  code: string;
  reason: string;
  at: string;
}

interface AttemptDbRow {
  id: string;
  status: "pending" | "succeeded" | "failed";
  route: PaymentRoute | null;
  failure_hop: number | null;
  failure_code: number | null;
  failure_channel_update: Buffer | null;
}

/** Advisory lock class of invoice payments: "LNIP". */
const LOCK_CLASS = 0x4c4e4950;
const lockObject = (id: string): number =>
  createHash("sha256").update(id).digest().readUInt32BE(0) & 0x7fffffff;

/** HEIGHTxINDEXxOUTPUT (as a stored route has it) to its BOLT #7 number. */
export const scidFromText = (text: string): bigint => shortChannelIdToBigint(parseShortChannelId(text));

/** An attempt row as retry.ts reads it. */
export function failedAttempt(a: AttemptDbRow): FailedAttempt {
  const hops = (a.route?.hops ?? []).map((h) => ({
    nodeId: h.nodeId,
    shortChannelId: scidFromText(h.shortChannelId),
  }));
  return {
    hops,
    failure:
      a.failure_hop !== null && a.failure_code !== null
        ? { hop: a.failure_hop, code: a.failure_code, channelUpdate: a.failure_channel_update ?? undefined }
        : undefined,
  };
}

export class Payer {
  private readonly q: string;
  private readonly busy = new Set<string>();
  private subs: Subscription[] = [];
  private timer: NodeJS.Timeout | undefined;
  private working = false;
  private again = false;

  constructor(private readonly o: PayerOptions) {
    this.q = quoteSchema(o.schema);
  }

  private get subject(): string {
    return `${this.o.prefix}.payments`;
  }

  start(): void {
    // The forwarder's notice comes after every step that resolves an HTLC we offered (node.ts).
    for (const s of [this.subject, `${this.o.prefix}.forwards`])
      this.subs.push(this.o.nc.subscribe(s, { callback: () => this.wake() }));
    this.timer = setInterval(() => this.wake(), this.o.roundMs ?? 1000);
    this.wake();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    for (const s of this.subs) s.unsubscribe();
    this.subs = [];
    while (this.working) await new Promise((r) => setTimeout(r, 10));
  }

  /** Tells every replica (this one too) that an invoice payment may have something to do. */
  notify(): void {
    if (!this.o.nc.isClosed()) this.o.nc.publish(this.subject);
  }

  /** Runs a round now, or once more after the running one. */
  wake(): void {
    if (this.working) {
      this.again = true;
      return;
    }
    this.working = true;
    void (async () => {
      try {
        do {
          this.again = false;
          await this.runRound();
        } while (this.again);
      } catch (e) {
        this.o.report("payer round", e);
      } finally {
        this.working = false;
      }
    })();
  }

  /** One round over every pending invoice payment (wake() runs them; a test may call it). */
  async runRound(): Promise<void> {
    const r = await this.o.pool.query<{ id: string }>(
      `SELECT id FROM ${this.q}.invoice_payments WHERE status = 'pending' ORDER BY created_at, id`,
    );
    for (const { id } of r.rows) {
      if (this.busy.has(id)) continue;
      this.busy.add(id);
      try {
        await this.underLock(id);
      } catch (e) {
        this.o.report(`invoice payment ${id}`, e);
      } finally {
        this.busy.delete(id);
      }
    }
  }

  /** One replica at a time acts on a payment: the lock lasts until its attempt is offered. */
  private async underLock(id: string): Promise<void> {
    // inTransaction (withClient): the lock's connection, idle while next() runs, may be ended by
    // Postgres; its error rejects the next query on it instead of ending the process.
    await inTransaction(this.o.pool, async (c) => {
      const got = await c.query<{ ok: boolean }>(`SELECT pg_try_advisory_xact_lock($1, $2) AS ok`, [
        LOCK_CLASS,
        lockObject(id),
      ]);
      // Asked just before an attempt is sent: a lost connection took the lock with it, and another
      // replica may be acting on the payment now.
      const stillLocked = async (): Promise<void> => {
        await c.query("SELECT 1");
      };
      if (got.rows[0]?.ok === true) await this.next(id, stillLocked);
    });
  }

  /** The next step of one invoice payment: wait, fail, or send the next attempt. */
  private async next(id: string, stillLocked: () => Promise<void>): Promise<void> {
    const r = await this.o.pool.query<InvoicePaymentDbRow>(
      `SELECT id, bolt11, r_hash, payee, amount_msat::text AS amount_msat, max_fee_msat::text AS max_fee_msat,
              deadline, local_failures
         FROM ${this.q}.invoice_payments WHERE id = $1 AND status = 'pending'`,
      [id],
    );
    const p = r.rows[0];
    if (!p) return;
    // An attempt still queued (its onion kept, its add deferred) first: the add step moves it onto
    // a payments row atomically, so asked in this order one of the two reads sees it.
    if (await this.offerInFlight(id)) return;
    const attempts = await this.o.pool.query<AttemptDbRow>(
      `SELECT id, status, route, failure_hop, failure_code, failure_channel_update
         FROM ${this.q}.payments WHERE invoice_payment_id = $1 ORDER BY created_at, id`,
      [id],
    );
    // Succeeded or in flight: the step that resolves it moves the payment (records.ts).
    if (attempts.rows.some((a) => a.status !== "failed")) return;

    const failed: FailedAttempt[] = [
      ...p.local_failures.map((l) => ({
        hops: [{ nodeId: l.nodeId, shortChannelId: BigInt(l.shortChannelId) }],
        failure: undefined,
        refusedLocally: true,
      })),
      ...attempts.rows.map(failedAttempt),
    ];
    const ex = exclusionsOf(this.o.nodeId, failed);
    if (ex.stop !== undefined) return this.fail(p, ex.stop, attempts.rows.length + p.local_failures.length);
    if ((this.o.now?.() ?? Date.now()) >= p.deadline.getTime())
      return this.fail(p, "the payment's timeout passed", attempts.rows.length + p.local_failures.length);
    // The latest failure's channel_update goes to the graph before the next route is found.
    const latest = attempts.rows.at(-1);
    if (latest) {
      const l = lessonOf(this.o.nodeId, failedAttempt(latest));
      if (l.kind === "apply_update" && !ex.excludedEdges.has(l.edge))
        await (this.o.updates ?? NO_CHANNEL_UPDATES).apply(l.update).catch((e: unknown) => {
          this.o.report(`invoice payment ${id}: applying a channel_update`, e);
          return false;
        });
    }

    let invoice: PayableInvoice;
    try {
      invoice = this.o.decode(p.bolt11);
    } catch (e) {
      return this.fail(p, `the invoice no longer decodes: ${e instanceof Error ? e.message : String(e)}`, 0);
    }
    const own = await this.ownChannels();
    const known: Edge[] = [
      ...(await loadEdges(this.o.pool, this.o.schema)).filter((e) => e.from !== this.o.nodeId),
      ...own.map((x) => x.edge),
    ];
    // A hint for a channel direction we know already adds nothing: the forwarder's own
    // channel_update (gossip) or our channel's state is the better word on it.
    const knownKeys = new Set(known.map((e) => edgeKey(e.shortChannelId, e.from)));
    const edges: Edge[] = [
      ...known,
      ...invoice.routeHints
        .flatMap((h) => hintEdges(h, invoice.payee))
        .filter((e) => !knownKeys.has(edgeKey(e.shortChannelId, e.from))),
    ];
    const finalCltvDelta = invoice.minFinalCltvExpiryDelta + FINAL_EXPIRY_MARGIN_BLOCKS;
    const amountMsat = msat(BigInt(p.amount_msat));
    const route = findRoute(edges, {
      source: this.o.nodeId,
      destination: p.payee,
      amountMsat,
      finalCltvDelta,
      maxFeeMsat: msat(BigInt(p.max_fee_msat)),
      maxTotalCltvDelta: MAX_TOTAL_CLTV_DELTA,
      excludedEdges: ex.excludedEdges,
      excludedNodes: ex.excludedNodes,
    });
    const tried = attempts.rows.length + p.local_failures.length;
    if (!route.ok)
      return this.fail(
        p,
        tried === 0 ? `no route: ${route.reason}` : `no route left: ${route.reason}`,
        tried,
      );
    const first = route.hops[0] as PathHop;
    const channel = own.find(
      (x) => x.edge.shortChannelId === first.shortChannelId && x.edge.to === first.nodeId,
    );
    if (!channel) return this.fail(p, "the route's first hop is not one of our channels", tried);
    // The replica that runs the first channel sends (it sees the same rows and finds the same route).
    if (!this.o.holds(channel.id)) return;
    await stillLocked();
    try {
      await this.o.send({
        invoicePaymentId: id,
        channelId: channel.id,
        hops: route.hops,
        amountMsat,
        finalExpiry: this.o.height() + finalCltvDelta,
        rHash: p.r_hash,
        paymentSecret: invoice.paymentSecret,
      });
      this.o.log.info(
        `invoice payment ${id}: attempt ${tried + 1} over ${route.hops.map((h) => h.nodeId.slice(0, 8)).join(" → ")}, fee ${route.feeMsat} msat`,
      );
    } catch (e) {
      if (!(e instanceof AttemptRefused)) throw e;
      await this.refusedLocally(id, {
        channelId: channel.id,
        nodeId: first.nodeId,
        shortChannelId: first.shortChannelId.toString(),
        code: e.code,
        reason: e.message,
        at: new Date().toISOString(),
      });
      this.again = true;
    }
  }

  /** An attempt kept for its add step (records.ts) that is still queued behind the signer. */
  private async offerInFlight(id: string): Promise<boolean> {
    const kept = await this.o.pool.query<{ onion_hash: string; channel_id: string | null }>(
      `SELECT onion_hash, channel_id FROM ${this.q}.payment_onions WHERE invoice_payment_id = $1`,
      [id],
    );
    let inFlight = false;
    for (const k of kept.rows) {
      const state = k.channel_id === null ? undefined : await this.o.store.load(k.channel_id);
      const queued = state?.deferred.some(
        (i: Input) =>
          i.type === "command" &&
          i.command.kind === "add_htlc" &&
          i.command.route !== undefined &&
          onionHash(i.command.route) === k.onion_hash,
      );
      if (queued === true) inFlight = true;
      // Never offered (refused, or a crash before the command): it can never be sent now.
      else
        await this.o.pool.query(`DELETE FROM ${this.q}.payment_onions WHERE onion_hash = $1`, [k.onion_hash]);
    }
    return inFlight;
  }

  /** Our channels that can carry a payment now, as edges from us: capacity our spendable balance. */
  private async ownChannels(): Promise<{ id: string; edge: Edge }[]> {
    const out: { id: string; edge: Edge }[] = [];
    for (const { row, state } of await this.o.store.rowsWithState()) {
      if (state.phase !== "normal" || row.shortChannelId === undefined || row.peerNodeId === undefined)
        continue;
      const capacityMsat = spendable(state);
      if (capacityMsat <= 0n) continue;
      out.push({
        id: row.id,
        edge: {
          shortChannelId: shortChannelIdToBigint(row.shortChannelId),
          from: this.o.nodeId,
          to: row.peerNodeId,
          capacityMsat,
          // Our own channel charges us nothing (route.ts: hops[0] has no fee or delta).
          policy: {
            feeBaseMsat: msat(0n),
            feeProportionalMillionths: 0n,
            cltvExpiryDelta: 0,
            htlcMinimumMsat: msat(1n),
            htlcMaximumMsat: capacityMsat,
          },
        },
      });
    }
    return out;
  }

  private async refusedLocally(id: string, f: LocalFailure): Promise<void> {
    await inEventTransaction(this.o.pool, this.o.schema, async (c) => {
      const r = await c.query(
        `UPDATE ${this.q}.invoice_payments SET local_failures = local_failures || $2::jsonb
          WHERE id = $1 AND status = 'pending'`,
        [id, JSON.stringify([f])],
      );
      if (r.rowCount === 1)
        await appendEvents(c, this.o.schema, [
          {
            kind: "payment",
            subject: id,
            status: "attempt_refused",
            detail: { kind: "invoice", channelId: f.channelId, code: f.code, reason: f.reason },
          },
        ]);
    });
    this.o.log.info(`invoice payment ${id}: our channel ${f.channelId} refused the attempt (${f.code})`);
  }

  private async fail(p: InvoicePaymentDbRow, reason: string, attempts: number): Promise<void> {
    const changes: StatusChange[] = [
      {
        kind: "payment",
        subject: p.id,
        status: "failed",
        detail: { kind: "invoice", rHash: p.r_hash, amountMsat: p.amount_msat, failure: reason, attempts },
      },
    ];
    const done = await inEventTransaction(this.o.pool, this.o.schema, async (c) => {
      // Only with nothing in flight: an attempt that appeared meanwhile keeps it pending.
      const r = await c.query(
        `UPDATE ${this.q}.invoice_payments SET status = 'failed', failure = $2, finished_at = now()
          WHERE id = $1 AND status = 'pending'
            AND NOT EXISTS (SELECT 1 FROM ${this.q}.payments WHERE invoice_payment_id = $1 AND status <> 'failed')`,
        [p.id, reason],
      );
      if (r.rowCount === 1) await appendEvents(c, this.o.schema, changes);
      return r.rowCount === 1;
    });
    if (done) this.o.log.info(`invoice payment ${p.id} failed after ${attempts} attempt(s): ${reason}`);
  }
}

/** What we can offer on a channel now: our balance as both commitments show it, at most. */
export function spendable(s: Pick<ChannelState, "localCommit" | "remoteCommit">): Msat {
  const a = s.localCommit?.localMsat ?? 0n;
  const b = s.remoteCommit?.localMsat ?? a;
  return msat(a < b ? a : b);
}
