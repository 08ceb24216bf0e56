/**
 * The signer's operations over domain types: the policy decides inside a Postgres transaction,
 * signatures are made only after it passed, and a preimage is returned only after the reveal is
 * durable (the transaction committed).
 */
import { crashPoint } from "@ln/crash";
import { msat, sha256, type Msat, type Sat } from "@ln/bitcoin";
import {
  anchorSighash,
  finalizeAnchorSpend,
  p2shSighash,
  p2wpkhOutput,
  p2wpkhSighash,
  signDigest,
  type CloseParams,
  type CommitmentParams,
} from "@ln/tx";
import type { Transaction } from "bitcoinjs-lib";
import * as ecc from "tiny-secp256k1";
import { assembleInvoice, InvoiceError, unsignedInvoice, type InvoiceFields } from "@ln/invoice";
import { invalid, refuse } from "./errors.js";
import { checkNumber, type KeyRing } from "./keys.js";
import {
  authorizeClose,
  authorizeJustice,
  authorizeLocalBroadcast,
  authorizeRemoteCommitment,
  authorizeReveal,
  authorizeSweep,
  authorizeWalletSpend,
  recordPeerRevocation,
  type OurChannel,
  type OutputOwner,
  type RevealRequest,
  type SweepInput,
} from "./policy.js";
import { authorizeInvoiceReveal } from "./received-htlcs.js";
import {
  channelAnnouncementDigest,
  channelUpdateDigest,
  checkChannelUpdate,
  checkNodeAnnouncement,
  forwardingNode,
  nodeAnnouncementDigest,
  type ChannelUpdateFields,
} from "@ln/gossip";
import type { SignerStore } from "./store.js";
import { limitWithdrawals, type WithdrawalConfig } from "./withdrawals.js";

export interface InputSignature {
  inputIndex: number;
  pubkey: Buffer;
  signature: Buffer;
}

/** What ChannelStatus answers of a channel: undefined where nothing of that kind was done yet. */
export interface ChannelStatusRecord {
  highestRevealed: bigint | undefined;
  highestLocalSigned: bigint | undefined;
  highestRemoteSigned: bigint | undefined;
}

export interface NewChannel {
  channel: number;
  commitPubkey: Buffer;
  finalPubkey: Buffer;
  revocationHash0: Buffer;
  revocationHash1: Buffer;
}

export type WalletOutputOwner =
  | { walletKeyIndex: number }
  | { anchor: { channel: number; peerCommitKey: Buffer } }
  | { external: { script: Buffer } };

function check32(b: Uint8Array, what: string): void {
  if (b.length !== 32) throw invalid(`${what} must be 32 bytes, got ${b.length}`);
}

function checkSig(b: Uint8Array, what: string): void {
  if (b.length !== 64) throw invalid(`${what} must be a 64-byte compact signature, got ${b.length} bytes`);
}

export class SignerService {
  constructor(
    private readonly keys: KeyRing,
    private readonly store: SignerStore,
    private readonly cfg: WithdrawalConfig,
  ) {}

  #ours(channel: number): OurChannel {
    const keys = this.keys.channel(channel);
    return { keys, revocationHash: (n) => this.keys.revocationHash(channel, n) };
  }

  nodeInfo(): { nodePubkey: Buffer } {
    return { nodePubkey: this.keys.nodePub };
  }

  /** BOLT #8 (and BOLT #4 onion) ECDH: SHA256 of the compressed point priv * P. */
  ecdh(point: Uint8Array): Buffer {
    if (point.length !== 33 || !ecc.isPoint(point))
      throw invalid("the ECDH point must be a 33-byte compressed point");
    const shared = ecc.pointMultiply(point, this.keys.node.priv, true);
    if (shared === null) throw invalid("ECDH produced the point at infinity");
    return sha256(shared);
  }

  /**
   * The transport's authenticate signature: SHA256(SHA256(h)) computed here from the handshake
   * hash h, so the gateway's key can sign nothing but sessions (DESIGN.md 3).
   */
  signSession(handshakeHash: Uint8Array): Buffer {
    check32(handshakeHash, "the handshake hash");
    return signDigest(this.keys.node.priv, sha256(sha256(handshakeHash)));
  }

  async newChannel(): Promise<NewChannel> {
    const channel = await this.store.newChannel();
    const k = this.keys.channel(channel);
    return {
      channel,
      commitPubkey: k.commit.pub,
      finalPubkey: k.final.pub,
      revocationHash0: this.keys.revocationHash(channel, 0n),
      revocationHash1: this.keys.revocationHash(channel, 1n),
    };
  }

  async revocationHash(channel: number, number: bigint): Promise<Buffer> {
    checkNumber(number);
    await this.store.withChannel(channel, () => Promise.resolve());
    return this.keys.revocationHash(channel, number);
  }

  async revealRevocation(channel: number, r: RevealRequest): Promise<{ preimage: Buffer; nextHash: Buffer }> {
    checkNumber(r.revoke);
    checkNumber(r.next);
    checkNumber(r.signedCommitment.number);
    checkSig(r.signedCommitment.theirSig, "their_sig");
    const ours = this.#ours(channel);
    await this.store.withChannel(channel, (s) => authorizeReveal(s, ours, r, this.cfg));
    crashPoint("signer.revealed.committed");
    // Committed: the reveal is durable before the preimage leaves.
    return {
      preimage: this.keys.revocationPreimage(channel, r.revoke),
      nextHash: this.keys.revocationHash(channel, r.next),
    };
  }

  /** `preimages`: R values learned for HTLCs we offered, the removals they allow (channel-policy.ts). */
  async signRemoteCommitment(
    channel: number,
    number: bigint,
    params: CommitmentParams,
    preimages: readonly Buffer[] = [],
  ): Promise<Buffer> {
    checkNumber(number);
    const ours = this.#ours(channel);
    const c = await this.store.withChannel(channel, (s) =>
      authorizeRemoteCommitment(s, ours, number, params, this.cfg, preimages),
    );
    crashPoint("signer.remote_signed.committed");
    return signDigest(ours.keys.commit.priv, anchorSighash(c.tx, c.anchorRedeemScript));
  }

  async signLocalCommitment(
    channel: number,
    number: bigint,
    params: CommitmentParams,
    theirSig: Uint8Array,
    preimages: readonly Buffer[] = [],
  ): Promise<{ tx: Transaction; txid: string }> {
    checkNumber(number);
    checkSig(theirSig, "their_sig");
    const ours = this.#ours(channel);
    const c = await this.store.withChannel(channel, (s) =>
      authorizeLocalBroadcast(s, ours, number, params, theirSig, this.cfg, preimages),
    );
    const sig = signDigest(ours.keys.commit.priv, anchorSighash(c.tx, c.anchorRedeemScript));
    const peerKey = params.anchor.commitKeys.find((k) => !Buffer.from(k).equals(ours.keys.commit.pub))!;
    const tx = finalizeAnchorSpend(c.tx, c.anchorRedeemScript, [
      { pubkey: ours.keys.commit.pub, compact: sig },
      { pubkey: peerKey, compact: theirSig },
    ]);
    return { tx, txid: tx.getId() };
  }

  async signClose(channel: number, params: CloseParams): Promise<Buffer> {
    const ours = this.#ours(channel);
    const close = await this.store.withChannel(channel, (s) => authorizeClose(s, ours, params, this.cfg));
    return signDigest(ours.keys.commit.priv, anchorSighash(close.tx, close.anchorRedeemScript));
  }

  async recordPeerRevocation(channel: number, number: bigint, preimage: Uint8Array): Promise<void> {
    checkNumber(number);
    check32(preimage, "the preimage");
    await this.store.withChannel(channel, (s) => recordPeerRevocation(s, number, preimage));
    crashPoint("signer.peer_revocation.committed");
  }

  async signJustice(
    channel: number,
    r: {
      revokedNumber: bigint;
      params: CommitmentParams;
      commitmentTx: Transaction;
      justiceTx: Transaction;
      walletKeyIndexes: readonly number[];
    },
  ): Promise<InputSignature[]> {
    checkNumber(r.revokedNumber);
    const ours = this.#ours(channel);
    const walletScripts = r.walletKeyIndexes.map((i) => p2wpkhOutput(this.keys.wallet(i).pub));
    const inputs = await this.store.withChannel(channel, (s) =>
      authorizeJustice(s, ours, { ...r, walletScripts }, this.cfg),
    );
    return inputs.map(({ inputIndex, redeemScript }) => ({
      inputIndex,
      pubkey: ours.keys.final.pub,
      signature: signDigest(ours.keys.final.priv, p2shSighash(r.justiceTx, inputIndex, redeemScript)),
    }));
  }

  /** The payment hash of invoice `index` (public); its amount recorded the first time one is given. */
  async invoiceHash(index: number, amountMsat: Msat = msat(0n)): Promise<Buffer> {
    const hash = this.keys.invoiceHash(index);
    if (amountMsat > 0n) await this.store.registerInvoice(index, amountMsat);
    return hash;
  }

  /**
   * The BOLT #11 string of invoice `index`, signed with the node key. The signed data is built
   * here from the fields (never taken from the caller), for the hash we derive for the index, our
   * node id as payee, and the amount registered for the index (registered now if none was).
   */
  async signInvoice(index: number, f: InvoiceFields): Promise<string> {
    if (!f.paymentHash.equals(this.keys.invoiceHash(index)))
      throw refuse("INVOICE_HASH_MISMATCH", `the payment hash is not invoice ${index}'s`);
    if (!f.payee.equals(this.keys.nodePub))
      throw refuse("WRONG_PAYEE", "the invoice's payee is not our node id");
    let signingHash: Buffer;
    try {
      signingHash = unsignedInvoice(f).signingHash;
    } catch (e) {
      if (e instanceof InvoiceError) throw invalid(`the fields make no invoice: ${e.message}`);
      throw e;
    }
    const amount = f.amountMsat ?? msat(0n);
    if (amount > 0n) await this.store.registerInvoice(index, amount);
    else if ((await this.store.invoiceAmount(index)) !== undefined)
      throw refuse("INVOICE_AMOUNT_MISMATCH", `invoice ${index} was registered with an amount`);
    const sig = ecc.signRecoverable(signingHash, this.keys.node.priv);
    return assembleInvoice(f, Buffer.from(sig.signature), sig.recoveryId);
  }

  /**
   * R of invoice `index`, after the reveal is recorded (audit: first and last time, count); only
   * while a signed commitment not revoked holds an HTLC offered to us paying it (received-htlcs.ts),
   * or once R was revealed before (asking again after a crash gets the same R).
   */
  async revealInvoice(index: number): Promise<Buffer> {
    const r = this.keys.invoicePreimage(index);
    const amountMsat = await this.store.invoiceAmount(index);
    authorizeInvoiceReveal({
      index,
      revealedBefore: (await this.store.invoiceReveal(index)) !== undefined,
      amountMsat,
      matchingHtlc: await this.store.hasReceivedHtlc(sha256(r), amountMsat ?? msat(0n)),
    });
    await this.store.recordInvoiceReveal(index);
    crashPoint("signer.invoice_reveal.committed");
    return r;
  }

  walletKey(index: number): Buffer {
    return this.keys.wallet(index).pub;
  }

  /**
   * What this signer's records say of a channel (read-only): the channel service compares them
   * with its own state at start, and stops a channel whose state is behind them (DESIGN.md 6).
   */
  async channelStatus(channel: number): Promise<ChannelStatusRecord> {
    const c = await this.store.withChannel(channel, (s) => Promise.resolve(s.channel));
    return {
      highestRevealed: c.highestRevealed,
      highestLocalSigned: c.highestLocalSigned,
      highestRemoteSigned: c.highestRemoteSigned,
    };
  }

  /**
   * ChannelStatus of many channels at once (SignerStatuses), in the order asked; undefined for a
   * channel this signer never allocated. Read from its own records, like channelStatus.
   */
  async channelStatuses(channels: readonly number[]): Promise<(ChannelStatusRecord | undefined)[]> {
    const records = await this.store.channelStatuses(channels);
    return channels.map((index) => records.get(index));
  }

  async signWalletSpend(
    tx: Transaction,
    inputs: readonly { keyIndex: number; amount: Sat; prevTx?: Transaction | undefined }[],
    outputs: readonly WalletOutputOwner[],
  ): Promise<InputSignature[]> {
    const inputKeys = inputs.map((i) => ({
      ...this.keys.wallet(i.keyIndex),
      amount: i.amount,
      prevTx: i.prevTx,
    }));
    const channels = outputs.flatMap((o) => ("anchor" in o ? [o.anchor.channel] : []));
    await this.store.withChannels(channels, async (stores, withdrawals) => {
      const owners: OutputOwner[] = outputs.map((o) => {
        if ("walletKeyIndex" in o)
          return { kind: "wallet", index: o.walletKeyIndex, pubkey: this.keys.wallet(o.walletKeyIndex).pub };
        if ("external" in o) return { kind: "external", script: o.external.script };
        if (o.anchor.peerCommitKey.length !== 33 || !ecc.isPoint(o.anchor.peerCommitKey))
          throw invalid("peer_commit_key must be a 33-byte compressed point");
        return {
          kind: "anchor",
          store: stores.get(o.anchor.channel)!,
          ours: this.#ours(o.anchor.channel),
          peerCommitKey: o.anchor.peerCommitKey,
        };
      });
      await authorizeWalletSpend(
        {
          tx,
          inputs: inputKeys.map((k) => ({ pubkey: k.pub, amount: k.amount, prevTx: k.prevTx })),
          outputs: owners,
        },
        this.cfg,
      );
      await limitWithdrawals(
        withdrawals,
        tx,
        outputs.map((o) => "external" in o),
        this.cfg,
      );
    });
    return inputKeys.map((k, inputIndex) => ({
      inputIndex,
      pubkey: k.pub,
      signature: signDigest(k.priv, p2wpkhSighash(tx, inputIndex, k.pub, k.amount)),
    }));
  }

  /**
   * Signs a sweep of channel `channel`'s outputs to our wallet keys (policy: authorizeSweep), each
   * input with our final key over its legacy P2SH SIGHASH_ALL digest (every kind is a path of that
   * key). The channel must have been allocated (UNKNOWN_CHANNEL otherwise); nothing is recorded.
   */
  async signSweep(
    channel: number,
    tx: Transaction,
    inputs: readonly SweepInput[],
    outputs: readonly WalletOutputOwner[],
  ): Promise<InputSignature[]> {
    const ours = this.#ours(channel);
    const owners = outputs.map((o) =>
      "walletKeyIndex" in o
        ? { kind: "wallet" as const, index: o.walletKeyIndex, pubkey: this.keys.wallet(o.walletKeyIndex).pub }
        : { kind: "other" as const, what: "anchor" in o ? "a channel anchor" : "an external script" },
    );
    const toSign = await this.store.withChannel(channel, (s) =>
      authorizeSweep(s, ours, { tx, inputs, outputs: owners }, this.cfg),
    );
    return toSign.map(({ inputIndex, redeemScript }) => ({
      inputIndex,
      pubkey: ours.keys.final.pub,
      signature: signDigest(ours.keys.final.priv, p2shSighash(tx, inputIndex, redeemScript)),
    }));
  }

  // ---- gossip (DESIGN.md 10): digests by @ln/gossip, rebuilt here from our own records

  /**
   * Our node key's and channel `channel`'s commit key's signatures of the channel_announcement of
   * `scid` between us and `otherNodeId`, whose commit key must be the one recorded for the channel
   * (from the commitments signed). Records the scid and the peer first.
   */
  async signChannelAnnouncement(
    channel: number,
    scid: bigint,
    otherNodeId: Buffer,
    otherCommitKey: Buffer,
  ): Promise<{ nodeSig: Buffer; commitSig: Buffer }> {
    const node = this.keys.node;
    if (otherNodeId.equals(node.pub)) throw invalid("other_node_id is our own node id");
    await this.store.recordAnnouncement(channel, scid, otherNodeId, (ch) => {
      if (ch.peerCommitKey === undefined)
        throw refuse(
          "WRONG_COMMIT_KEY",
          `channel ${channel}: no commitment signed yet, the peer's commit key is unknown`,
        );
      if (!ch.peerCommitKey.equals(otherCommitKey))
        throw refuse(
          "WRONG_COMMIT_KEY",
          `channel ${channel}: other_commit_key is not the peer's recorded commit key`,
        );
      // The scid's last two bytes are the anchor's output index (BOLT #7): the one we signed for.
      if (ch.anchor !== undefined && Number(scid & 0xffffn) !== ch.anchor.vout)
        throw refuse(
          "ANNOUNCEMENT_MISMATCH",
          `channel ${channel}: short_channel_id's output index ${scid & 0xffffn} is not the anchor's ${ch.anchor.vout}`,
        );
    });
    const commit = this.keys.channel(channel).commit;
    const weAreFirst = Buffer.compare(node.pub, otherNodeId) < 0;
    const digest = channelAnnouncementDigest({
      shortChannelId: scid,
      nodeId1: weAreFirst ? node.pub : otherNodeId,
      nodeId2: weAreFirst ? otherNodeId : node.pub,
      commitKey1: weAreFirst ? commit.pub : otherCommitKey,
      commitKey2: weAreFirst ? otherCommitKey : commit.pub,
    });
    return { nodeSig: signDigest(node.priv, digest), commitSig: signDigest(commit.priv, digest) };
  }

  /** The node key's signature of a channel_update of a channel we announced, in a direction we forward. */
  async signChannelUpdate(u: ChannelUpdateFields): Promise<Buffer> {
    const rules = checkChannelUpdate(u);
    if (!rules.ok) throw invalid(rules.problem);
    const known = await this.store.announced(u.shortChannelId);
    if (known === undefined)
      throw refuse(
        "UNKNOWN_SHORT_CHANNEL_ID",
        `no channel_announcement was signed for short_channel_id ${u.shortChannelId}`,
      );
    const node = this.keys.node;
    const [nodeId1, nodeId2] =
      Buffer.compare(node.pub, known.peerNodeId) < 0
        ? [node.pub, known.peerNodeId]
        : [known.peerNodeId, node.pub];
    if (!forwardingNode({ nodeId1, nodeId2 }, u).equals(node.pub))
      throw refuse(
        "NOT_FORWARDING_NODE",
        `short_channel_id ${u.shortChannelId}: the peer forwards in direction ${u.direction}`,
      );
    return signDigest(node.priv, channelUpdateDigest(u));
  }

  /** The node key's signature of our node_announcement. */
  signNodeAnnouncement(n: { timestamp: number; alias: string; addresses: string[] }): Buffer {
    const fields = { nodeId: this.keys.node.pub, ...n };
    const rules = checkNodeAnnouncement(fields);
    if (!rules.ok) throw invalid(rules.problem);
    return signDigest(this.keys.node.priv, nodeAnnouncementDigest(fields));
  }
}
