import { crashPoint } from "@ln/crash";
import {
  EXPIRY_TOO_SOON,
  htlcDeadlinePassed,
  htlcsToSettle,
  type ChannelState,
  type Command,
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
import type { Ledger } from "./ledger.js";

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

/** The payee: settles the peer's HTLCs against our invoices. */
export class Payee {
  /** Incoming HTLCs we are settling (channel:id), so each is decided once. */
  private readonly settling = new Set<string>();

  constructor(private readonly o: PayeeOptions) {}

  /**
   * Settles the peer's HTLCs committed on both sides: fulfilled with R from the signer when they
   * pay one of our invoices in full with time to spare, failed otherwise.
   */
  async settleIncoming(id: string, stored?: ChannelState): Promise<void> {
    if (!this.o.registry.holds(id)) return;
    const state = stored ?? (await this.o.store.load(id));
    if (!state) return;
    const htlcs = htlcsToSettle(state);
    let onions: Map<bigint, Buffer>;
    try {
      onions = await this.o.forwarder.onions(
        id,
        htlcs.map((h) => h.id),
      );
    } catch (e) {
      this.o.report(`channel ${id}: reading the onions of incoming HTLCs`, e);
      this.o.noteFailure(id, e);
      return;
    }
    for (const h of htlcs) {
      const key = `${id}:${h.id}`;
      if (this.settling.has(key)) continue;
      this.settling.add(key);
      try {
        const onion = onions.get(h.id);
        // An HTLC with an onion is forwarded, unless the onion ends here (DESIGN.md 10).
        const hop = onion && (await this.o.forwarder.incoming(id, state, h, onion));
        if (onion && !hop) continue;
        const invoice = await this.o.ledger.invoice(h.rHash);
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
        await this.o.feed(id, { type: "command", command });
      } catch (e) {
        this.o.report(`channel ${id}: settling HTLC ${h.id}`, e);
        // Retried by the retry round: its resume settles again (e.g. the signer was down).
        this.o.noteFailure(id, e);
      } finally {
        this.settling.delete(key);
      }
    }
  }
}
