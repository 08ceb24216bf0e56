import type { ChannelState, Input, Output } from "@ln/channel-core";
import type { SignerClient } from "@ln/signer-client";
import { Transaction } from "bitcoinjs-lib";
import { signedBroadcast } from "../onchain/broadcast.js";
import { ChainRequestError } from "../onchain/chain-requests.js";
import type { Revocations } from "../onchain/revocations.js";
import type { Ledger } from "../payments/ledger.js";
import { NodeError, type Report } from "./errors.js";
import type { ChainPort, LogLine, PeerControl, WalletPort } from "./ports.js";
import type { ChannelRegistry } from "./registry.js";
import type { EffectSink } from "./runner.js";
import { fulfilledPreimages } from "./signer-adapter.js";
import type { ChannelStore } from "./store.js";

/** The node's reasons for refusing a transaction whose input another one spent already. */
const ANCHOR_TAKEN = /txn-mempool-conflict|missingorspent|inputs-spent|missing-inputs/;

export interface EffectsOptions {
  store: ChannelStore;
  ledger: Ledger;
  signer: SignerClient;
  registry: ChannelRegistry;
  chain: ChainPort;
  wallet: WalletPort;
  peers: PeerControl;
  revocations: Revocations;
  replicaId: string;
  /** Feeds one input to a channel (the node's input): the anchor, once built. */
  feed: (channelId: string, input: Input) => Promise<Output[]>;
  /** Stops running a channel here (a forgotten opening). */
  unhold: (channelId: string) => void;
  log: LogLine;
  report: Report;
}

/**
 * The core's effects other than sends and signer requests, carried out after their transition
 * committed (the runner's EffectSink): anchor funding, broadcasts, watches, payment outcomes,
 * the peer's revocations to the signer and the tower.
 */
export class ChannelEffects {
  constructor(private readonly o: EffectsOptions) {}

  readonly sink: EffectSink = (id, out, state) => this.effect(id, out, state);

  private async effect(id: string, out: Parameters<EffectSink>[1], state: ChannelState): Promise<void> {
    const m = this.o.registry.metaOf(id);
    if (!m) throw new NodeError("NOT_FOUND", `channel ${id} is not run here`);
    switch (out.type) {
      case "build_anchor": {
        const funded = await this.o.wallet.fundAnchor({
          channelId: id,
          signerChannel: m.signerChannel,
          amount: out.amount,
          commitKeys: out.commitKeys,
        });
        this.o.log.info(`channel ${id}: anchor ${funded.txid} built (not yet broadcast)`, {
          channelId: id,
          txid: funded.txid,
        });
        // Not awaited: this runs inside the channel's current input.
        setImmediate(
          () =>
            void this.o
              .feed(id, {
                type: "anchor_built",
                outpoint: funded.outpoint,
                amount: funded.amount,
              })
              .catch((e: unknown) => this.o.report(`channel ${id}`, e)),
        );
        return;
      }
      case "broadcast_anchor": {
        const txHex = await this.o.wallet.anchorTx(id);
        if (!txHex) throw new Error(`channel ${id}: no stored anchor transaction to broadcast`);
        const txid = await this.o.chain.broadcast(txHex);
        this.o.log.info(`channel ${id}: anchor ${txid} broadcast`, { channelId: id, txid });
        return;
      }
      case "watch_anchor":
        this.o.chain.watchAnchor(id, out);
        return;
      case "broadcast":
      case "closed": {
        const txHex = await signedBroadcast(
          this.o.signer,
          m.signerChannel,
          out.broadcast,
          fulfilledPreimages(state),
        );
        if (txHex === undefined) return;
        const txid = Transaction.fromHex(txHex).getId();
        await this.o.ledger.recordBroadcast(id, out.broadcast.tx, txid, txHex);
        try {
          await this.o.chain.broadcast(txHex);
        } catch (e) {
          // Something else spent the anchor first (the peer's commitment, or a close): retrying
          // cannot help; the spend that won is resolved on chain (resolution.ts).
          if (!(e instanceof ChainRequestError && e.code === "REJECTED" && ANCHOR_TAKEN.test(e.reason ?? "")))
            throw e;
          this.o.log.warn(
            `channel ${id}: our ${out.broadcast.tx} ${txid} lost the anchor to another spend (${e.reason})`,
            { channelId: id, txid },
          );
          return;
        }
        this.o.log.info(`channel ${id}: ${out.broadcast.tx} ${txid} broadcast`, { channelId: id, txid });
        return;
      }
      case "htlc_added":
      case "htlc_result":
        // Their money records were written with the step (payments/records.ts, DESIGN.md 11).
        return;
      case "revoked":
        await this.o.revocations.recordRevocations(id);
        void this.o.revocations.publishTowerRecords();
        return;
      case "opened":
        this.o.log.info(`channel ${id}: open`, { channelId: id });
        return;
      case "behind":
        this.o.log.alert(
          `ALERT channel ${id}: data loss suspected, our state is behind (${out.problem}). The channel is stopped and will never broadcast our commitment; the peer was asked to close with its latest one, and the wallet sweeps our output from it. See deploy/README.md, "Restoring from backups".`,
          { channelId: id },
        );
        return;
      case "failed":
        this.o.log.warn(`channel ${id}: failed (${out.code}): ${out.problem}`, {
          channelId: id,
          code: out.code,
        });
        if (await this.o.wallet.releaseAnchor(id))
          this.o.log.info(`channel ${id}: its unbroadcast anchor's coins are free again`, { channelId: id });
        // A peer's opening that failed before we signed its anchor: nothing of ours is at stake,
        // and nothing is kept (its error is sent already: sends go before effects).
        if (await this.o.store.forgetFailedOpening(id, this.o.replicaId)) {
          this.o.unhold(id);
          this.o.log.info(`channel ${id}: forgotten (a peer's opening that failed before its anchor)`, {
            channelId: id,
          });
        }
        return;
      case "disconnect":
        // The channel takes no more of the peer's messages for now: a new connection resends them.
        this.o.log.warn(`channel ${id}: dropping the connection (${out.problem})`, { channelId: id });
        this.o.peers.resync(m.peer);
        return;
      case "command_rejected":
        return;
      case "pkt_refused":
        this.o.log.warn(`channel ${id}: ${out.problem}`, { channelId: id });
        return;
    }
  }
}
