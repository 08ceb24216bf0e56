import { crashPoint } from "@ln/crash";
import {
  EXPIRY_TOO_SOON,
  htlcDeadlinePassed,
  htlcsToSettle,
  type ChannelState,
  type Command,
  type Htlc,
  type Input,
  type Output,
} from "@ln/channel-core";
import type { Failure } from "@ln/onion";
import type { SignerClient } from "@ln/signer-client";
import type { Report } from "../channels/errors.js";
import type { ChannelRegistry } from "../channels/registry.js";
import type { ChannelStore } from "../channels/store.js";
import type { ChainTip } from "../onchain/tip.js";
import type { Forwarder } from "../forwarding/forwarder.js";
import { invoicePaymentProblem } from "../forwarding/rules.js";
import type { InvoiceRow, Ledger } from "./ledger.js";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");
/** A failure reason as the core's fail_htlc wants it: the wire bytes in hex (UTF-8 text). */
const reasonHex = (text: string): string => Buffer.from(text, "utf8").toString("hex");

export interface PayeeOptions {
  store: ChannelStore;
  ledger: Ledger;
  signer: SignerClient;
  registry: ChannelRegistry;
  tip: ChainTip;
  /** Feeds one input to a channel (the node's input): the fulfil or fail command. */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  /** Incoming HTLCs with an onion: forwarded, or peeled for us (DESIGN.md 10). */
  forwarder: Forwarder;
  /** A settling that failed: retried by the retry round, whose resume settles again. */
  noteFailure: (channelId: string, e: unknown) => void;
  report: Report;
}

/** How long a decided HTLC is not decided again while states still show it unsettled. */
const DECIDED_KEEP_MS = 60_000;

/** The payee: settles the peer's HTLCs against our invoices. */
export class Payee {
  /**
   * Incoming HTLCs we decided (channel:id), so each is decided once: kept while a state shows it
   * unsettled (a later pass may read a state from before its fulfil's step), dropped when the
   * decision failed or was refused, or after DECIDED_KEEP_MS (a command deferred behind the signer
   * and refused later is not seen here), to be made again.
   */
  private readonly settling = new Map<string, number>();
  /** Channels being settled now, and the latest state given meanwhile (settled again after). */
  private readonly running = new Map<string, { again: boolean; state: ChannelState | undefined }>();

  constructor(private readonly o: PayeeOptions) {}

  /**
   * Settles the peer's HTLCs committed on both sides: fulfilled with R from the signer when they
   * pay one of our invoices in full with time to spare, failed otherwise. Calls while a channel
   * is being settled are folded into one more pass, with the latest state given.
   */
  async settleIncoming(id: string, stored?: ChannelState): Promise<void> {
    const run = this.running.get(id);
    if (run) {
      run.again = true;
      if (stored) run.state = stored;
      return;
    }
    const me = { again: false, state: stored };
    this.running.set(id, me);
    try {
      do {
        me.again = false;
        const state = me.state;
        me.state = undefined;
        await this.settleOnce(id, state);
      } while (me.again);
    } catch (e) {
      // Callers do not wait (node.ts): a failure (Postgres down) must not end the process as an
      // unhandled rejection. The retry round's resume settles again.
      this.o.report(`channel ${id}: settling incoming HTLCs`, e);
      this.o.noteFailure(id, e);
    } finally {
      this.running.delete(id);
    }
  }

  private async settleOnce(id: string, stored: ChannelState | undefined): Promise<void> {
    if (!this.o.registry.holds(id)) return;
    const state = stored ?? (await this.o.store.load(id));
    if (!state) return;
    const unsettled = htlcsToSettle(state);
    // States come in the order of their steps: an HTLC this one shows settled stays settled.
    const shown = new Set(unsettled.map((h) => `${id}:${h.id}`));
    const now = Date.now();
    for (const [key, at] of this.settling)
      if (key.startsWith(`${id}:`) && (!shown.has(key) || now - at > DECIDED_KEEP_MS))
        this.settling.delete(key);
    const htlcs = unsettled.filter((h) => !this.settling.has(`${id}:${h.id}`));
    if (htlcs.length === 0) return;
    let onions: Map<bigint, Buffer>;
    let invoices: Map<string, InvoiceRow>;
    try {
      [onions, invoices] = await Promise.all([
        this.o.forwarder.onions(
          id,
          htlcs.map((h) => h.id),
        ),
        this.o.ledger.invoicesByHash(htlcs.map((h) => h.rHash)),
      ]);
    } catch (e) {
      this.o.report(`channel ${id}: reading the onions and invoices of incoming HTLCs`, e);
      this.o.noteFailure(id, e);
      return;
    }
    // Each decided at once, so their fulfils and fails share the channel's next transaction.
    await Promise.all(htlcs.map((h) => this.settle(id, state, h, onions.get(h.id), invoices.get(h.rHash))));
  }

  private async settle(
    id: string,
    state: ChannelState,
    h: Htlc,
    onion: Buffer | undefined,
    invoice: InvoiceRow | undefined,
  ): Promise<void> {
    const key = `${id}:${h.id}`;
    if (this.settling.has(key)) return;
    this.settling.set(key, Date.now());
    try {
      // An HTLC with an onion is forwarded, unless the onion ends here (DESIGN.md 10).
      const hop = onion && (await this.o.forwarder.incoming(id, state, h, onion));
      if (onion && !hop) {
        this.settling.delete(key); // the forwarder decides it (or did)
        return;
      }
      // A plain HTLC fails with text; one with an onion with BOLT #4's error packet (by
      // default incorrect_or_unknown_payment_details, which tells a prober nothing more).
      const fail = (text: string, failure?: Failure): Command => ({
        kind: "fail_htlc",
        id: h.id,
        reason: hop
          ? this.o.forwarder.finalHopReason(hop, failure ?? this.o.forwarder.unknownPayment(hop))
          : reasonHex(text),
      });
      const hopFailure = hop && this.o.forwarder.finalHopFailure(hop);
      // A BOLT #11 invoice paid through an onion: BOLT #4's checks of the payment secret,
      // amount, expiries; a plain HTLC (no onion, no secret) is checked as before.
      const invoiceProblem =
        hop &&
        invoice?.bolt11 &&
        invoicePaymentProblem(
          h,
          hop.payload,
          { ...invoice.bolt11, amountMsat: invoice.amountMsat, status: invoice.status },
          { height: this.o.tip.later(state.chain).height, now: new Date() },
        );
      let command: Command;
      if (hop && hopFailure) command = fail(hopFailure.name, hopFailure);
      else if (!invoice) command = fail("unknown payment hash");
      // Without an onion there is no payment secret: a neighbour holding the payer's HTLC
      // could otherwise learn R of an any-amount invoice for 1 msat.
      else if (!hop && invoice.amountMsat === 0n)
        command = fail("an invoice of any amount is paid only through an onion, with its payment secret");
      else if (invoiceProblem) {
        this.o.report(
          `channel ${id}: refusing HTLC ${h.id} for invoice ${h.rHash}`,
          new Error(invoiceProblem),
        );
        command = fail(invoiceProblem);
      } else if (hop?.payload.paymentData && hop.payload.paymentData.totalMsat < invoice.amountMsat)
        command = fail("total below the invoice's amount");
      else if (h.amountMsat < invoice.amountMsat)
        command = fail(`amount below the invoice's ${invoice.amountMsat} msat`);
      // Draft 3.1: past its redemption deadline (the core's rule, at the later of its tip and
      // ours), R could no longer be claimed on chain before the peer's timeout.
      else if (htlcDeadlinePassed({ ...state, chain: this.o.tip.later(state.chain) }, h.expiry))
        command = fail(EXPIRY_TOO_SOON);
      else {
        const { r } = await this.o.signer.call("RevealInvoice", { index: invoice.signerIndex });
        crashPoint("channel.payee.revealed");
        command = { kind: "fulfill_htlc", id: h.id, r: hex(r) };
      }
      // The invoice is settled in this command's own step (payments/records.ts).
      const outputs = await this.o.feed(id, { type: "command", command });
      if (outputs.some((o) => o.type === "command_rejected")) this.settling.delete(key);
    } catch (e) {
      this.settling.delete(key);
      this.o.report(`channel ${id}: settling HTLC ${h.id}`, e);
      // Retried by the retry round: its resume settles again (e.g. the signer was down).
      this.o.noteFailure(id, e);
    }
  }
}
