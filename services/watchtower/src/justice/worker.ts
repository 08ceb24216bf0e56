import { crashPoint } from "@ln/crash";
/*~ The justice worker: for each open breach, observes the chain, lets justice-core.ts decide, has
 * the signer sign what it asks for, and broadcasts. It works under a durable claim (claims.ts),
 * never a row lock: the node and the signer are called with no transaction open, the outcome
 * (new state and every signed version) is committed only if the claim still holds, and only a
 * committed version is ever sent. */
import { RpcError } from "@ln/chain-client";
import { finalizeJustice, JusticeError, openRecord, planJustice } from "@ln/justice";
import { commitmentParamsMsg } from "@ln/signer-client";
import { signedSize, type Spend } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import { asError, message, type Send, type TowerContext } from "../context.js";
import { shareCeiling, step, type JusticeAction, type JusticeEvent, type TxSeen } from "../justice-core.js";
import {
  claimBreach,
  recordOutcome,
  releaseClaim,
  renewClaim,
  type ClaimedBreach,
  type Outcome,
  type SignedVersion,
} from "./claims.js";

/** gRPC status codes the tower tells apart (@grpc/grpc-js `status`). */
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_UNAVAILABLE = 14;
const grpcCode = (e: unknown): number | undefined => {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "number" ? code : undefined;
};
const isUnreachable = (e: unknown): boolean => {
  const c = grpcCode(e);
  return c === GRPC_UNAVAILABLE || c === GRPC_DEADLINE_EXCEEDED;
};

/** What one justice transaction takes and its signed size: the signer bounds its fee's share of it. */
const justiceShare = (spend: Spend): { takenSat: bigint; size: number } => ({
  takenSat: spend.inputs.reduce<bigint>((sum, i) => sum + i.coin.amount, 0n),
  size: signedSize(spend.tx, spend.inputs),
});

/** What work under a claim came to: the outcome to record, then what to send. */
interface Worked {
  outcome: Outcome;
  sends: Send[];
  waitingForSigner: boolean;
  /** Logged once the outcome is recorded. */
  pruned?: string;
}

export class JusticeWorker {
  /** Breaches (ntxid hex) this replica could not get signed for want of the signer. */
  private readonly waiting = new Set<string>();
  private readonly retries = new Map<string, { attempt: number; timer: NodeJS.Timeout | undefined }>();
  private running = false;

  constructor(private readonly ctx: TowerContext) {}

  /** Checks every open breach (those another replica holds a claim on are skipped). */
  async checkAll(): Promise<void> {
    const r = await this.ctx.pool.query<{ ntxid: Buffer }>(
      `SELECT ntxid FROM ${this.ctx.table("tower_breaches")}`,
    );
    // One breach failing (the node or Postgres briefly gone) must not hold up the others or the
    // following of blocks: it is logged and looked at again at the next block.
    for (const { ntxid } of r.rows)
      await this.check(ntxid).catch((e: unknown) =>
        this.ctx.log.warn("checking a breach failed; trying again at the next block", { err: asError(e) }),
      );
  }

  /** What the node says of a transaction. */
  private async seen(txid: string, mempool: ReadonlySet<string>): Promise<TxSeen> {
    if (mempool.has(txid)) return { confirmations: 0, inMempool: true };
    try {
      const v = await this.ctx.rpc.getRawTransaction(txid, true);
      const confirmations = typeof v === "object" ? (v.confirmations ?? 0) : 0;
      return { confirmations, inMempool: false };
    } catch (e) {
      if (e instanceof RpcError) return { confirmations: 0, inMempool: false };
      throw e;
    }
  }

  /** The estimate in satoshi per 1000 bytes, else the fallback. */
  async feeRate(): Promise<number> {
    try {
      const est = await this.ctx.rpc.estimateSmartFee(this.ctx.settings.feeTargetBlocks);
      if (est.feerate !== undefined && est.feerate > 0) return Math.ceil(est.feerate * 1e8);
    } catch (e) {
      if (!(e instanceof RpcError)) throw e;
    }
    return this.ctx.settings.fallbackFeeRate;
  }

  /**
   * Observes one breach and acts, under a claim: the decisions and signatures are committed
   * together if the claim still holds, then the broadcasts follow. Nothing if another worker
   * holds the breach, or took it over meanwhile.
   */
  async check(ntxid: Buffer): Promise<void> {
    const claimed = await claimBreach(this.ctx, ntxid);
    if (claimed === undefined) return;
    let recorded = false;
    try {
      const worked = await this.work(claimed);
      if (worked !== undefined) recorded = await recordOutcome(this.ctx, claimed.claim, worked.outcome);
      if (worked === undefined || !recorded) {
        this.ctx.metrics?.claimsLost.inc();
        this.ctx.log.warn(
          "lost the claim on this breach while working on it (another replica took it over, or it was re-planned for another version): what was signed here is dropped, not sent",
          { breach: claimed.state.breachTxid },
        );
        return;
      }
      const key = ntxid.toString("hex");
      if (worked.pruned !== undefined) {
        this.forget(key);
        this.ctx.log.info(worked.pruned, { breach: claimed.state.breachTxid });
        return;
      }
      if (worked.waitingForSigner) {
        this.waiting.add(key);
        this.scheduleRetry(ntxid);
      } else this.forget(key);
      for (const send of worked.sends) {
        crashPoint("tower.justice.committed");
        await this.send(send);
        crashPoint("tower.justice.sent");
      }
    } finally {
      // A failed attempt gives the breach back at once rather than when the claim expires.
      if (!recorded)
        await releaseClaim(this.ctx, claimed.claim).catch((e: unknown) =>
          this.ctx.log.warn("could not release a breach claim; it expires by itself", { err: asError(e) }),
        );
      this.ctx.metrics?.waiting.set(this.waiting.size);
    }
  }

  private forget(key: string): void {
    this.waiting.delete(key);
    const r = this.retries.get(key);
    if (r?.timer !== undefined) clearTimeout(r.timer);
    this.retries.delete(key);
  }

  /**
   * The slow part, with no transaction open: the node's view, the core's decisions, the signer's
   * signatures. Undefined once the claim is found lost (before a signer call).
   */
  private async work(claimed: ClaimedBreach): Promise<Worked | undefined> {
    const { claim } = claimed;
    const record = openRecord(claimed.blob, claim.ntxid);
    const breach = Transaction.fromHex(claimed.breachHex);
    const breachTxid = breach.getId();
    const settings = this.ctx.settings;
    const rpc = this.ctx.rpc;
    const log = this.ctx.log;
    // Independent questions to the node: asked together, one round trip's wait instead of three.
    const [tip, feeRate, mempoolIds] = await Promise.all([
      rpc.getBlockCount(),
      this.feeRate(),
      rpc.getRawMempool(),
    ]);
    const mempool = new Set<string>(mempoolIds);
    const hexOf = new Map(claimed.versions);
    let state = claimed.state;
    const groups: (TxSeen | undefined)[] = [];
    for (const g of state.groups) {
      // The most confirmed of its versions: an older one may have won the race into a block.
      let best: TxSeen = { confirmations: 0, inMempool: false };
      for (const v of g.versions) {
        const s = await this.seen(v.txid, mempool);
        if (s.confirmations > best.confirmations || (best.confirmations === 0 && s.inMempool))
          best = { ...s, txid: v.txid };
      }
      groups[g.group] = best;
    }
    const queue: JusticeAction[] = [];
    const apply = (event: JusticeEvent): void => {
      const out = step(state, event, settings);
      state = out.state;
      queue.push(...out.actions);
    };
    apply({ kind: "observe", tip, feeRate, breach: await this.seen(breachTxid, mempool), groups });

    const sends: Send[] = [];
    const signed: SignedVersion[] = [];
    /** Why the breach is done with (its record and rows deleted), once it is. */
    let pruned: string | undefined;
    const ids = { breach: breachTxid, signerChannel: Number(record.signerChannel) };
    while (queue.length > 0) {
      const a = queue.shift()!;
      switch (a.kind) {
        case "sign": {
          let plan;
          let rate = a.feeRate;
          try {
            plan = planJustice(record, breach, rate);
            // Never more than the signer's share of what it takes (it would refuse): a lower rate.
            const ceiling = shareCeiling(plan.spends.map(justiceShare), settings.maxFeePercent);
            if (ceiling < rate) plan = planJustice(record, breach, (rate = ceiling));
          } catch (e) {
            // Only our own output on it (the cheater had nothing): the wallet takes that; done.
            if (e instanceof JusticeError && e.code === "NOTHING_TO_TAKE") {
              pruned = `breach ${breachTxid}: ${e.message}; record and breach pruned`;
              break;
            }
            log.error(`cannot build justice for ${breachTxid} at ${a.feeRate} sat/kB`, {
              ...ids,
              err: asError(e),
            });
            break;
          }
          if (state.groupCount === 0) apply({ kind: "planned", groupCount: plan.spends.length });
          const todo = a.groups === "all" ? plan.spends.map((_, i) => i) : a.groups;
          for (const group of todo) {
            const spend = plan.spends[group];
            if (spend === undefined) continue;
            // The signer may take seconds: the claim must outlast the call, or the work stops here.
            if (!(await renewClaim(this.ctx, claim))) return undefined;
            let tx: Transaction;
            try {
              const reply = await this.ctx.signer.call(
                "SignJustice",
                {
                  channel: record.signerChannel,
                  revoked_number: record.revokedNumber,
                  params: commitmentParamsMsg(record.params),
                  commitment_tx_hex: breach.toHex(),
                  justice_tx_hex: spend.tx.toHex(),
                  wallet_key_indexes: [],
                },
                this.ctx.signerTimeoutMs,
              );
              const sigs = [...reply.signatures]
                .sort((x, y) => x.input_index - y.input_index)
                .map((s) => Buffer.from(s.signature));
              tx = finalizeJustice(spend, sigs); // throws on a reply without one signature per input
            } catch (e) {
              if (isUnreachable(e)) {
                this.ctx.metrics?.signerWaits.inc();
                apply({ kind: "signer_unavailable", tip });
              } else {
                this.ctx.metrics?.refusals.inc();
                apply({ kind: "signer_refused", tip, reason: message(e) });
              }
              break;
            }
            const txid = tx.getId();
            signed.push({ txid, group, feeRate: rate, hex: tx.toHex() });
            hexOf.set(txid, tx.toHex());
            apply({ kind: "signed", group, txid, feeRate: rate, tip });
          }
          break;
        }
        case "broadcast_breach":
          sends.push({ kind: "breach", hex: claimed.breachHex, txid: breachTxid });
          break;
        case "broadcast": {
          const hex = hexOf.get(a.txid);
          if (hex !== undefined) sends.push({ kind: a.why, hex, txid: a.txid });
          break;
        }
        case "confirmed":
          this.ctx.metrics?.confirmed.inc();
          log.info(`justice ${a.txid ?? "(an earlier version)"} for breach ${breachTxid} confirmed`, {
            ...ids,
            ...(a.txid !== undefined ? { txid: a.txid } : {}),
          });
          break;
        case "alert":
          log.alert(
            `the signer is unreachable and justice for breach ${breachTxid} is unsigned since block ${a.waitingSince}; ` +
              (a.blocksLeft > 0
                ? `${a.blocksLeft} blocks remain before the revoked commitment's delay runs out and the peer can take its output. Bring the signer back (check SIGNER_ADDR and the tower's client certificate); retrying`
                : `the revoked commitment's delay has run out: the peer can take its own output now; its other outputs can still be claimed, bring the signer back; retrying`),
            { ...ids, waitingSince: a.waitingSince, blocksLeft: a.blocksLeft },
          );
          break;
        case "refused":
          log.alert(
            `the signer refused justice for breach ${breachTxid} (signer channel ${record.signerChannel}, revoked ${record.revokedNumber}): ${a.reason}. ` +
              `This is a bug or an attack (a record the signer does not back): investigate; retried at the next block`,
            ids,
          );
          break;
        case "fee_capped":
          this.ctx.metrics?.feeCapped.inc();
          log.warn(
            `justice for breach ${breachTxid} (group ${a.group}) is unconfirmed at the fee-rate ceiling ` +
              `${a.feeRate} sat per 1000 bytes (WATCHTOWER_MAX_FEE_RATE): no more bumps; still re-sent while missing from the mempool`,
            { ...ids, group: a.group, feeRate: a.feeRate },
          );
          break;
        case "prune":
          pruned = `justice for breach ${breachTxid} is ${settings.buryDepth} blocks deep: record and breach pruned`;
          break;
      }
    }
    if (pruned !== undefined)
      return { outcome: { kind: "prune" }, sends: [], waitingForSigner: false, pruned };
    return {
      outcome: { kind: "update", state, signed },
      sends,
      waitingForSigner: state.waitingForSignerSince !== undefined,
    };
  }

  /** Retries a breach waiting for the signer with backoff (1 s doubling to 30 s), besides every block. */
  private scheduleRetry(ntxid: Buffer): void {
    const key = ntxid.toString("hex");
    const r = this.retries.get(key) ?? { attempt: 0, timer: undefined };
    if (r.timer !== undefined || !this.running) return;
    const ms = Math.min(1000 * 2 ** Math.min(r.attempt, 5), 30_000);
    r.attempt++;
    r.timer = setTimeout(() => {
      r.timer = undefined;
      this.check(ntxid).catch((e: unknown) =>
        this.ctx.log.warn("retrying breach justice failed", { err: asError(e) }),
      );
    }, ms);
    this.retries.set(key, r);
  }

  private async send(s: Send): Promise<void> {
    const log = this.ctx.log;
    try {
      await this.ctx.rpc.sendRawTransaction(s.hex);
      if (s.kind !== "breach") log.info(`justice ${s.txid} sent (${s.kind})`, { txid: s.txid, kind: s.kind });
      else
        log.info(`breach ${s.txid} sent again (it had left the mempool and the chain)`, {
          breach: s.txid,
          txid: s.txid,
        });
    } catch (e) {
      if (!(e instanceof RpcError)) throw e;
      // -27: already in the chain. Else refused; the next block looks again.
      if (e.code !== -27) {
        this.ctx.metrics?.broadcastRejected.inc();
        log.warn(
          `the node refused ${s.kind === "breach" ? "breach" : "justice"} ${s.txid}: ${e.rpcMessage}`,
          {
            txid: s.txid,
            code: String(e.code),
          },
        );
      }
    }
    if (s.kind !== "breach") this.ctx.metrics?.broadcasts.inc({ kind: s.kind });
    this.ctx.onBroadcast?.(s);
  }

  /** Retries are scheduled only while running (between start and stop). */
  start(): void {
    this.running = true;
  }

  stop(): void {
    this.running = false;
    for (const r of this.retries.values()) if (r.timer) clearTimeout(r.timer);
    this.retries.clear();
  }
}
