/**
 * Forwarding (DESIGN.md 10), the shell around rules.ts: an incoming HTLC committed irrevocably on
 * both sides whose onion names a next channel gets a row in the forwarding table (the decision,
 * with the next onion); the holder of the outgoing channel's lease offers its HTLC, claiming the
 * row in that step; the downstream outcome moves the row in the step that resolves it
 * (forwarding/records.ts); the holder of the incoming channel answers upstream. The two channels
 * may be run by different replicas: the row is the hand-off, a NATS notice wakes every replica,
 * and a periodic round picks up whatever a notice missed (a start, a takeover, a lost message).
 */
import { isBlocks, msat, shortChannelIdToBigint, type Msat } from "@ln/bitcoin";
import { crashPoint } from "@ln/crash";
import { type ChannelState, type Command, type Htlc, type Input, type Output } from "@ln/channel-core";
import {
  encodeFailure,
  encodeMalformedReason,
  createErrorPacket,
  FAILURE_CODES,
  OnionError,
  peelOnion,
  type Failure,
  type HopPayload,
} from "@ln/onion";
import { quoteSchema } from "@ln/postgres";
import type { SignerClient } from "@ln/signer-client";
import type { NatsConnection, Subscription } from "nats";
import type pg from "pg";
import type { Report } from "../channels/errors.js";
import type { LogLine } from "../channels/ports.js";
import type { ChannelRegistry } from "../channels/registry.js";
import type { ChannelStore } from "../channels/store.js";
import type { ChainTip } from "../onchain/tip.js";
import type { ForwardingPolicies } from "./policy.js";
import { ownFailure } from "./records.js";
import { decideForward, finalHopFailure, type NextChannel } from "./rules.js";

/**
 * How long the next channel's peer may be gone before we refuse HTLCs for it: a restart of either
 * end's channel service drops the connection until the next redial (its resync).
 */
const RECONNECT_GRACE_MS = 15_000;

export interface ForwarderOptions {
  pool: pg.Pool;
  schema: string;
  store: ChannelStore;
  signer: SignerClient;
  registry: ChannelRegistry;
  tip: ChainTip;
  policies: ForwardingPolicies;
  nc: NatsConnection;
  /** The node's subject prefix: notices go to `<prefix>.forwards`. */
  prefix: string;
  /** Feeds one input to a channel this replica runs (the node's input). */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  /**
   * Gossip's view of the next channel (gossip/gossip.ts): whether its peer is connected, and our
   * latest channel_update of it for the failures that carry one. Without: connected, no update.
   */
  gossip?: {
    whenConnected(peer: string, ms: number): Promise<boolean>;
    latestUpdate(scid: bigint, peer: string): Promise<Buffer | undefined>;
  };
  /** How often pending rows are looked for without a notice (default 1000 ms). */
  roundMs?: number;
  log: LogLine;
  report: Report;
}

/** A row of the forwarding table, as the forwarder acts on it. */
interface PendingForward {
  id: string;
  in_channel: string;
  in_htlc_id: string;
  r_hash: string;
  in_amount_msat: string;
  in_expiry: number;
  out_channel: string | null;
  out_amount_msat: string | null;
  out_expiry: number | null;
  next_onion: Buffer | null;
  status: "offering" | "fulfilled" | "failed";
  preimage: string | null;
  upstream_reason: Buffer | null;
}

/** What the payee does with an HTLC whose onion ends here (the invoice checks are the payee's). */
export interface FinalHop {
  htlc: Htlc;
  payload: HopPayload;
  sharedSecret: Buffer;
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export class Forwarder {
  private readonly q: string;
  /** Incoming HTLCs being peeled and decided, and forwards being acted on: each once at a time. */
  private readonly busy = new Set<string>();
  private sub: Subscription | undefined;
  private timer: NodeJS.Timeout | undefined;
  private working = false;
  private again = false;

  constructor(private readonly o: ForwarderOptions) {
    this.q = quoteSchema(o.schema);
  }

  private get subject(): string {
    return `${this.o.prefix}.forwards`;
  }

  start(): void {
    this.sub = this.o.nc.subscribe(this.subject, { callback: () => this.wake() });
    this.timer = setInterval(() => this.wake(), this.o.roundMs ?? 1000);
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.sub?.unsubscribe();
    this.sub = undefined;
    while (this.working) await new Promise((r) => setTimeout(r, 10));
  }

  /** Tells every replica (this one too) that a forward moved. */
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
          await this.round();
        } while (this.again);
      } catch (e) {
        this.o.report("forwarding round", e);
      } finally {
        this.working = false;
      }
    })();
  }

  /** The onions of these incoming HTLCs of `channelId` (those without one are plain HTLCs). */
  async onions(channelId: string, htlcIds: bigint[]): Promise<Map<bigint, Buffer>> {
    if (htlcIds.length === 0) return new Map();
    const r = await this.o.pool.query<{ htlc_id: string; onion: Buffer }>(
      `SELECT htlc_id::text AS htlc_id, onion FROM ${this.q}.incoming_onions
        WHERE channel_id = $1 AND htlc_id = ANY($2::numeric[])`,
      [channelId, htlcIds.map(String)],
    );
    return new Map(r.rows.map((x) => [BigInt(x.htlc_id), x.onion]));
  }

  /**
   * An incoming HTLC with an onion, committed on both sides: peeled (the signer does the ECDH),
   * then failed back (an onion we cannot read), forwarded (a row in the table), or returned as a
   * final hop for the payee.
   */
  async incoming(
    channelId: string,
    state: ChannelState,
    htlc: Htlc,
    onion: Buffer,
  ): Promise<FinalHop | undefined> {
    const key = `in:${channelId}:${htlc.id}`;
    if (this.busy.has(key)) return undefined;
    this.busy.add(key);
    try {
      if (await this.decided(channelId, htlc.id)) return undefined;
      crashPoint("channel.forward.incoming_committed");
      let peeled;
      try {
        peeled = await peelOnion(onion, Buffer.from(htlc.rHash, "hex"), (point) =>
          this.o.signer.call("OnionEcdh", { point }).then((r) => Buffer.from(r.shared_secret)),
        );
      } catch (e) {
        if (!(e instanceof OnionError) || !e.failure) throw e;
        this.o.log.warn(`channel ${channelId}: HTLC ${htlc.id} has an onion we cannot read (${e.code})`, {
          channelId,
        });
        await this.failIncoming(channelId, htlc.id, peelFailureReason(e));
        return undefined;
      }
      if (peeled.kind === "final")
        return { htlc, payload: peeled.payload, sharedSecret: peeled.sharedSecret };
      await this.decide(channelId, state, htlc, peeled.payload, peeled.sharedSecret, peeled.next);
      return undefined;
    } finally {
      this.busy.delete(key);
    }
  }

  /** The payee's verdict on a final hop: what fails it before the invoice is looked at. */
  finalHopFailure(hop: FinalHop): Failure | undefined {
    return finalHopFailure(hop.htlc, hop.payload);
  }

  /** The error packet failing a final hop (the payee's failure, under the hop's shared secret). */
  finalHopReason(hop: FinalHop, failure: Failure): string {
    return hex(createErrorPacket(hop.sharedSecret, encodeFailure(failure)));
  }

  /** BOLT #4's failure of a payee that does not know the payment or was paid too little. */
  unknownPayment(hop: FinalHop): Failure {
    return {
      name: "incorrect_or_unknown_payment_details",
      htlcMsat: hop.htlc.amountMsat,
      height: this.o.tip.height,
    };
  }

  private async decided(channelId: string, htlcId: bigint): Promise<boolean> {
    const r = await this.o.pool.query(
      `SELECT 1 FROM ${this.q}.forwards WHERE in_channel = $1 AND in_htlc_id = $2`,
      [channelId, htlcId.toString()],
    );
    return (r.rowCount ?? 0) > 0;
  }

  /** The next channel as the onion names it, from our own records (any replica's channel). */
  private async nextChannel(
    scid: bigint | undefined,
  ): Promise<{ id: string; next: NextChannel } | undefined> {
    if (scid === undefined) return undefined;
    const row = await this.o.store.channelByShortId(scid);
    const state = row && (await this.o.store.load(row.id));
    if (!row || !state?.remote) return undefined;
    const g = this.o.gossip;
    const peer = row.peerNodeId;
    return {
      id: row.id,
      next: {
        phase: state.phase,
        delay: state.remote.delay,
        policy: await this.o.policies.get(row.id),
        peerConnected: !g || peer === undefined || (await g.whenConnected(peer, RECONNECT_GRACE_MS)),
        channelUpdate: (g && peer !== undefined && (await g.latestUpdate(scid, peer))) || Buffer.alloc(0),
      },
    };
  }

  /** Writes the forward's row: to offer downstream, or failed with our refusal. */
  private async decide(
    channelId: string,
    state: ChannelState,
    htlc: Htlc,
    payload: HopPayload,
    sharedSecret: Buffer,
    nextOnion: Buffer,
  ): Promise<void> {
    if (!state.remote) return;
    const next = await this.nextChannel(payload.shortChannelId);
    const margin = { blocks: state.policy.deadlineMarginBlocks, seconds: state.policy.deadlineMarginSeconds };
    const verdict = decideForward(htlc, payload, next?.next, {
      height: Math.max(this.o.tip.height, state.chain.height),
      incomingDelay: state.remote.delay,
      margin,
    });
    const refusal = verdict.ok ? undefined : ownFailure(sharedSecret, verdict.failure, verdict.problem);
    const r = await this.o.pool.query(
      `INSERT INTO ${this.q}.forwards
         (in_channel, in_htlc_id, r_hash, in_amount_msat, in_expiry, shared_secret, out_short_channel_id,
          out_channel, out_amount_msat, out_expiry, next_onion, status, failure, upstream_reason, resolved_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, NULL)
       ON CONFLICT (in_channel, in_htlc_id) DO NOTHING`,
      [
        channelId,
        htlc.id.toString(),
        htlc.rHash,
        htlc.amountMsat.toString(),
        isBlocks(htlc.expiry) ? htlc.expiry.blocks : 0,
        sharedSecret,
        // Signed in Postgres's bigint, as channels.short_channel_id.
        payload.shortChannelId === undefined ? null : BigInt.asIntN(64, payload.shortChannelId).toString(),
        next?.id ?? null,
        verdict.ok ? verdict.amountMsat.toString() : payload.amtToForwardMsat.toString(),
        verdict.ok ? verdict.expiry : payload.outgoingCltvValue,
        verdict.ok ? nextOnion : null,
        verdict.ok ? "offering" : "failed",
        refusal?.failure ?? null,
        refusal?.reason ?? null,
      ],
    );
    if (r.rowCount !== 1) return;
    crashPoint("channel.forward.row_written");
    if (verdict.ok)
      this.o.log.info(
        `channel ${channelId}: HTLC ${htlc.id} forwarded to channel ${next?.id}: ${verdict.amountMsat} msat, expiry ${verdict.expiry}`,
        { channelId },
      );
    else
      this.o.log.info(`channel ${channelId}: HTLC ${htlc.id} not forwarded: ${refusal?.failure}`, {
        channelId,
      });
    this.notify();
  }

  /** Fails an incoming HTLC with `reason` (its onion was unreadable: no forward row). */
  private async failIncoming(channelId: string, htlcId: bigint, reason: Buffer): Promise<void> {
    await this.command(channelId, { kind: "fail_htlc", id: htlcId, reason: hex(reason) });
  }

  private async command(channelId: string, command: Command): Promise<Output[]> {
    return this.o.feed(channelId, { type: "command", command });
  }

  // ------------------------------------------------------------ the round

  /** Every forward waiting for a channel this replica runs. */
  private async round(): Promise<void> {
    const held = this.o.registry.heldIds();
    if (held.length === 0) return;
    const r = await this.o.pool.query<PendingForward>(
      `SELECT id::text AS id, in_channel, in_htlc_id::text AS in_htlc_id, r_hash, in_amount_msat::text AS in_amount_msat,
              in_expiry, out_channel, out_amount_msat::text AS out_amount_msat, out_expiry, next_onion, status,
              preimage, upstream_reason
         FROM ${this.q}.forwards
        WHERE (status = 'offering' AND out_channel = ANY($1)) OR (status IN ('fulfilled', 'failed') AND in_channel = ANY($1))
        ORDER BY id`,
      [held],
    );
    for (const f of r.rows) {
      const key = `fwd:${f.id}`;
      if (this.busy.has(key)) continue;
      this.busy.add(key);
      try {
        if (f.status === "offering") await this.offer(f);
        else await this.answer(f);
      } catch (e) {
        this.o.report(`forward ${f.id}`, e);
      } finally {
        this.busy.delete(key);
      }
    }
  }

  /** Offers the outgoing HTLC of a forward on its channel; refused, the forward fails back. */
  private async offer(f: PendingForward): Promise<void> {
    const out = f.out_channel;
    if (!out || !f.next_onion || f.out_amount_msat === null || f.out_expiry === null) return;
    if (!this.o.registry.holds(out)) return;
    const state = await this.o.store.load(out);
    if (!state) return;
    // Queued behind a signer reply: the add runs (and claims the row) when the reply comes.
    if (
      state.deferred.some(
        (i) => i.type === "command" && i.command.kind === "add_htlc" && i.command.forward === BigInt(f.id),
      )
    )
      return;
    const amountMsat: Msat = msat(BigInt(f.out_amount_msat));
    const outputs = await this.command(out, {
      kind: "add_htlc",
      amountMsat,
      rHash: f.r_hash,
      expiry: { blocks: f.out_expiry },
      route: hex(f.next_onion),
      forward: BigInt(f.id),
    });
    const rejected = outputs.find((x) => x.type === "command_rejected");
    if (rejected?.type === "command_rejected") {
      const channelUpdate = await this.latestUpdateOf(out);
      const failure: Failure =
        rejected.code === "CHANNEL_CLOSED" || rejected.code === "CHANNEL_BEHIND"
          ? { name: "permanent_channel_failure" }
          : rejected.code === "EXPIRY_TOO_SOON"
            ? { name: "expiry_too_soon", channelUpdate }
            : { name: "temporary_channel_failure", channelUpdate };
      await this.refuseOffering(f.id, failure, `the next channel refused the HTLC: ${rejected.problem}`);
      return;
    }
    if (outputs.some((x) => x.type === "htlc_added" && x.forward === BigInt(f.id)))
      crashPoint("channel.forward.outgoing_added");
  }

  /** Our latest channel_update of one of our channels (empty without gossip or one). */
  private async latestUpdateOf(channelId: string): Promise<Buffer> {
    const row = await this.o.store.row(channelId);
    if (!this.o.gossip || row?.shortChannelId === undefined || row.peerNodeId === undefined)
      return Buffer.alloc(0);
    return (
      (await this.o.gossip.latestUpdate(shortChannelIdToBigint(row.shortChannelId), row.peerNodeId)) ??
      Buffer.alloc(0)
    );
  }

  /** A forward the outgoing channel would not take: failed with our error packet. */
  private async refuseOffering(id: string, failure: Failure, problem: string): Promise<void> {
    const secret = await this.o.pool.query<{ shared_secret: Buffer }>(
      `SELECT shared_secret FROM ${this.q}.forwards WHERE id = $1`,
      [id],
    );
    const row = secret.rows[0];
    if (!row) return;
    const own = ownFailure(row.shared_secret, failure, problem);
    const r = await this.o.pool.query(
      `UPDATE ${this.q}.forwards SET status = 'failed', failure = $2, upstream_reason = $3 WHERE id = $1 AND status = 'offering'`,
      [id, own.failure, own.reason],
    );
    if (r.rowCount === 1) {
      this.o.log.info(`forward ${id}: ${own.failure}`);
      this.notify();
    }
  }

  /** Answers upstream: our fulfil with R from downstream (draft 6.2), or our fail with our layer. */
  private async answer(f: PendingForward): Promise<void> {
    if (!this.o.registry.holds(f.in_channel)) return;
    const id = BigInt(f.in_htlc_id);
    if (f.status === "fulfilled" && f.preimage) {
      crashPoint("channel.forward.before_upstream_fulfil");
      await this.settleUpstream(f, { kind: "fulfill_htlc", id, r: f.preimage });
    } else if (f.status === "failed" && f.upstream_reason)
      await this.settleUpstream(f, { kind: "fail_htlc", id, reason: hex(f.upstream_reason) });
  }

  private async settleUpstream(f: PendingForward, command: Command): Promise<void> {
    const outputs = await this.command(f.in_channel, command);
    const rejected = outputs.find((x) => x.type === "command_rejected");
    if (rejected?.type !== "command_rejected") return;
    // The incoming HTLC is gone from the channel (closed: the chain settles it, resolution.ts).
    await this.o.pool.query(
      `UPDATE ${this.q}.forwards SET status = $2, failure = coalesce(failure, $3)
        WHERE id = $1 AND status IN ('fulfilled', 'failed')`,
      [
        f.id,
        f.status === "fulfilled" ? "fulfilled_onchain" : "failed_onchain",
        `the incoming channel refused our answer: ${rejected.code}`,
      ],
    );
    this.o.log.warn(
      `forward ${f.id}: the incoming channel ${f.in_channel} refused our ${command.kind} (${rejected.code}); left to the chain`,
      { channelId: f.in_channel },
    );
  }
}

/**
 * What goes back for an onion we could not peel: BOLT #4's update_fail_malformed_htlc as a short
 * reason (we may have no shared secret), or for a payload we could not read, our error packet.
 */
function peelFailureReason(e: OnionError): Buffer {
  const f = e.failure;
  if (f && "sha256OfOnion" in f) return encodeMalformedReason(FAILURE_CODES[f.name], f.sha256OfOnion);
  if (f && e.sharedSecret) return createErrorPacket(e.sharedSecret, encodeFailure(f));
  throw e;
}
