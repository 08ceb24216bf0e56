import { randomUUID } from "node:crypto";
import { MAX_ANCHOR_SAT, type Sat } from "@ln/bitcoin";
import { createChannel, type ChannelPolicy } from "@ln/channel-core";
import type { SignerClient } from "@ln/signer-client";
import type { ChainTip } from "../onchain/tip.js";
import type { NatsPeerLink } from "../peers/peer-link.js";
import { NodeError } from "./errors.js";
import type { ChainPort, LocalTerms, LogLine, PeerControl, WalletPort } from "./ports.js";
import type { ChannelRegistry } from "./registry.js";
import { StoreError, type ChannelStore } from "./store.js";

/** The policy of every channel we run (the core's defaults otherwise). */
export const CHANNEL_POLICY: Partial<ChannelPolicy> = { autoCommit: true };

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

export interface OpeningsOptions {
  store: ChannelStore;
  signer: SignerClient;
  registry: ChannelRegistry;
  link: NatsPeerLink;
  chain: ChainPort;
  wallet: WalletPort;
  peers: PeerControl;
  tip: ChainTip;
  replicaId: string;
  leaseMs: number;
  terms: LocalTerms;
  log: LogLine;
}

/** New channels: ours (the operator's open) and the acceptor's of a peer's open_channel. */
export class Openings {
  constructor(private readonly o: OpeningsOptions) {}

  /** Opens a channel to a connected peer, funding the anchor from our wallet. */
  async open(peerNodeId: string, fundingSat: Sat): Promise<string> {
    if (fundingSat <= 0n || fundingSat > MAX_ANCHOR_SAT)
      throw new NodeError("INVALID", `fundingSat must be from 1 to ${MAX_ANCHOR_SAT} satoshi (draft 2.2)`);
    if (await this.o.store.liveWith(peerNodeId))
      throw new NodeError("CONFLICT", `there is already a live channel with ${peerNodeId}; close it first`);
    return this.createChannel(peerNodeId, "creator", fundingSat);
  }

  async createChannel(
    peer: string,
    role: "creator" | "acceptor",
    fundingSat: Sat | undefined,
  ): Promise<string> {
    // The opening's deadlines count from this height: never from an unknown one.
    if (this.o.tip.height === 0) {
      const tip = await this.o.chain.tip();
      this.o.tip.set(tip.height, tip.time);
    }
    // The draft's messages name no channel: ones of an earlier channel with this peer may still
    // be on their way. A new channel we open starts on a new connection, and takes nothing before.
    const needsNewConnection =
      role === "creator" && (await this.o.store.rows()).some((r) => r.peerNodeId === peer);
    const keys = await this.o.signer.call("NewChannel", {});
    const id = randomUUID();
    const created = createChannel({
      role,
      local: {
        delay: { blocks: this.o.terms.delayBlocks },
        minDepth: this.o.terms.minDepth,
        initialFeeRate: this.o.terms.feeRate,
        commitKey: hex(keys.commit_pubkey),
        finalKey: hex(keys.final_pubkey),
        revocationHash: hex(keys.revocation_hash_0),
        nextRevocationHash: hex(keys.revocation_hash_1),
      },
      ...(fundingSat !== undefined ? { fundingSat } : {}),
      policy: CHANNEL_POLICY,
      chain: { height: this.o.tip.height, time: this.o.tip.time },
    });
    // Whatever the channel ends with on our final key comes back to the wallet: watched before
    // the channel exists, so a chain watcher that is down fails the opening, not the channel.
    await this.o.wallet.watchFinalKey({
      channelId: id,
      signerChannel: keys.channel,
      finalPubkeyHex: hex(keys.final_pubkey),
    });
    const t = await this.o.store
      .create(id, created, {
        peerNodeId: peer,
        signerChannel: keys.channel,
        owner: this.o.replicaId,
        leaseMs: this.o.leaseMs,
      })
      .catch((e: unknown) => {
        if (e instanceof StoreError && e.code === "CHANNEL_EXISTS")
          throw new NodeError("CONFLICT", `there is already a live channel with ${peer}; close it first`);
        throw e;
      });
    this.o.registry.hold(id, { peer, signerChannel: keys.channel, awaitingConnection: needsNewConnection });
    this.o.log.info(`channel ${id}: created as ${role} with ${peer.slice(0, 16)}…`, { channelId: id, peer });
    // Sent now if the peer is connected; otherwise on its next connection (retransmission), which
    // a channel after an earlier one with this peer asks for (the redial follows the drop).
    if (needsNewConnection) this.o.peers.resync(peer);
    else for (const m of t.sends) this.o.link.sendTo(peer, m);
    return id;
  }
}
