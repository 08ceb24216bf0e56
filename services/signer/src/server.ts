/**
 * The gRPC server over mutual TLS: the client must present a certificate chaining to the
 * configured CA, whose subject CN SIGNER_CLIENTS maps to a role allowed to call the method
 * (permissions.ts; PERMISSION_DENIED otherwise). A policy refusal is FAILED_PRECONDITION, a malformed request INVALID_ARGUMENT;
 * both carry the reason code at the start of the message ("CODE: ...") and in the trailing
 * metadata "signer-refusal". Nothing secret is logged: only the method and the code.
 */
import * as grpc from "@grpc/grpc-js";
import { msat, sat } from "@ln/bitcoin";
import { Counter, Histogram, type Registry } from "@ln/metrics";
import { invalid, SignerError } from "./errors.js";
import {
  bytes,
  closeParams,
  commitmentParams,
  invoiceFields,
  present,
  pubkey,
  transaction,
  u64,
  type OutputOwnerMsg,
  type SignerMethod,
  type SignerMethods,
  type SweepInputMsg,
} from "./messages.js";
import { loadSignerService } from "@ln/signer-client";
import { checkNumber } from "./keys.js";
import { authorizeClient, subjectCn, type Clients } from "./permissions.js";
import type { SweepInput } from "./policy.js";
import type { ChannelStatusRecord, SignerService, WalletOutputOwner } from "./service.js";

export const REFUSAL_METADATA_KEY = "signer-refusal";

export interface TlsFiles {
  /** PEM of the CA that client certificates must chain to. */
  ca: Buffer;
  /** PEM of the server certificate chain and its private key. */
  cert: Buffer;
  key: Buffer;
}

import { processLogger, structuredLog, type Log } from "@ln/log";
export type { Log };

/** SignerStatuses: channels per call at most (the channel service asks in slices). */
export const MAX_STATUSES = 10_000;

/** A channel's records as ChannelStatusReply: each number with its `has_` flag. */
function statusReply(c: ChannelStatusRecord): SignerMethods["ChannelStatus"][1] {
  return {
    has_revealed: c.highestRevealed !== undefined,
    highest_revealed: (c.highestRevealed ?? 0n).toString(),
    has_local_signed: c.highestLocalSigned !== undefined,
    highest_local_signed: (c.highestLocalSigned ?? 0n).toString(),
    has_remote_signed: c.highestRemoteSigned !== undefined,
    highest_remote_signed: (c.highestRemoteSigned ?? 0n).toString(),
  };
}

type Handlers = {
  [M in SignerMethod]: (req: SignerMethods[M][0]) => Promise<SignerMethods[M][1]> | SignerMethods[M][1];
};

/**
 * The signer's metrics, labelled by gRPC method and, for a refusal, its code (never a channel, a
 * key or a digest).
 */
export interface SignerMetrics {
  /** signer_requests_total{method}: calls received. */
  requests: Counter<"method">;
  /**
   * signer_refusals_total{client,method,reason}: calls answered with a SignerError; `reason` is its
   * code (a policy refusal such as FEE_TOO_HIGH, NOT_PERMITTED, or INVALID_REQUEST for a malformed
   * request), `client` the caller's CN if SIGNER_CLIENTS names it, else "unknown".
   */
  refusals: Counter<"client" | "method" | "reason">;
  /** signer_internal_errors_total{method}: calls that failed otherwise (INTERNAL). */
  internalErrors: Counter<"method">;
  /** signer_request_seconds{method}: time from the call to its answer. */
  seconds: Histogram<"method">;
}

export function signerMetrics(registry: Registry): SignerMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: "signer_requests_total",
      help: "Signer gRPC calls received, by method.",
      labelNames: ["method"] as const,
      registers,
    }),
    refusals: new Counter({
      name: "signer_refusals_total",
      help: "Signer calls refused, by client, method and reason code (the policy's refusal code, NOT_PERMITTED, or INVALID_REQUEST).",
      labelNames: ["client", "method", "reason"] as const,
      registers,
    }),
    internalErrors: new Counter({
      name: "signer_internal_errors_total",
      help: "Signer calls that failed with an internal error, by method.",
      labelNames: ["method"] as const,
      registers,
    }),
    seconds: new Histogram({
      name: "signer_request_seconds",
      help: "Time to answer a signer call, by method.",
      labelNames: ["method"] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
  };
}

function toStatus(
  e: unknown,
  method: string,
  client: string,
  log: Log,
  metrics: SignerMetrics | undefined,
): Partial<grpc.StatusObject> {
  if (e instanceof SignerError) {
    metrics?.refusals.inc({ client, method, reason: e.code });
    const metadata = new grpc.Metadata();
    metadata.set(REFUSAL_METADATA_KEY, e.code);
    const code =
      e.code === "NOT_PERMITTED"
        ? grpc.status.PERMISSION_DENIED
        : e.isRefusal
          ? grpc.status.FAILED_PRECONDITION
          : grpc.status.INVALID_ARGUMENT;
    // A refusal is the policy working (a warning, with its code); an invalid request, the caller's fault.
    log.warn(`${method}: ${e.isRefusal ? "refused" : "invalid request"} ${e.code} (client ${client})`, {
      code: e.code,
      client,
    });
    return { code, details: `${e.code}: ${e.message}`, metadata };
  }
  metrics?.internalErrors.inc({ method });
  log.error(`${method}: internal error ${e instanceof Error ? e.name : typeof e}`);
  return { code: grpc.status.INTERNAL, details: "internal error" };
}

function outputOwners(outputs: readonly OutputOwnerMsg[]): WalletOutputOwner[] {
  return outputs.map((o, i): WalletOutputOwner => {
    if (o.owner === "wallet_key_index" && o.wallet_key_index !== undefined)
      return { walletKeyIndex: o.wallet_key_index };
    if (o.owner === "anchor" && o.anchor)
      return { anchor: { channel: o.anchor.channel, peerCommitKey: o.anchor.peer_commit_key } };
    if (o.owner === "external" && o.external) return { external: { script: o.external.script } };
    throw new SignerError("INVALID_REQUEST", `outputs[${i}] names no owner`);
  });
}

/** An optional transaction: absent when empty. */
const prevTx = (hex: string, what: string) => (hex === "" ? undefined : transaction(hex, what));

function sweepInputs(inputs: readonly SweepInputMsg[]): SweepInput[] {
  return inputs.map((i, n): SweepInput => {
    const amount = sat(u64(i.amount_sat, `inputs[${n}].amount_sat`));
    if (i.kind === "final_key")
      return {
        inputIndex: i.input_index,
        amount,
        spend: { kind: "final_key" },
        prevTx: prevTx(i.prev_tx_hex, `inputs[${n}].prev_tx_hex`),
      };
    if (i.kind === "commitment_output" && i.commitment_output) {
      const c = i.commitment_output;
      const what = `inputs[${n}].commitment_output`;
      const number = checkNumber(u64(c.number, `${what}.number`));
      return {
        inputIndex: i.input_index,
        amount,
        spend: {
          kind: "commitment_output",
          ours: c.ours,
          number,
          params: commitmentParams(c.params, `${what}.params`),
          vout: c.vout,
          preimage: c.preimage.length === 0 ? undefined : bytes(c.preimage, 32, `${what}.preimage`),
          commitmentTx: transaction(c.commitment_tx_hex, `${what}.commitment_tx_hex`),
        },
      };
    }
    throw new SignerError("INVALID_REQUEST", `inputs[${n}] names no kind of spend`);
  });
}

/** R values for HTLCs we offered, 32 bytes each (at most one per HTLC of a commitment). */
function preimages(rs: readonly Buffer[] | undefined): Buffer[] {
  if ((rs?.length ?? 0) > 3000) throw new SignerError("INVALID_REQUEST", "more than 3000 preimages");
  return (rs ?? []).map((r, i) => bytes(r, 32, `preimages[${i}]`));
}

function handlers(s: SignerService): Handlers {
  return {
    NodeInfo: () => ({ node_pubkey: s.nodeInfo().nodePubkey }),
    Ecdh: (r) => ({ shared_secret: s.ecdh(r.point) }),
    OnionEcdh: (r) => ({ shared_secret: s.ecdh(r.point) }),
    SignSession: (r) => ({ signature: s.signSession(r.handshake_hash) }),
    NewChannel: async () => {
      const c = await s.newChannel();
      return {
        channel: c.channel,
        commit_pubkey: c.commitPubkey,
        final_pubkey: c.finalPubkey,
        revocation_hash_0: c.revocationHash0,
        revocation_hash_1: c.revocationHash1,
      };
    },
    RevocationHash: async (r) => ({
      revocation_hash: await s.revocationHash(r.channel, u64(r.number, "number")),
    }),
    RevealRevocation: async (r) => {
      const signed = present(r.signed_commitment, "signed_commitment");
      const out = await s.revealRevocation(r.channel, {
        revoke: u64(r.revoke, "revoke"),
        next: u64(r.next, "next"),
        signedCommitment: {
          number: u64(signed.number, "signed_commitment.number"),
          params: commitmentParams(signed.params, "signed_commitment.params"),
          theirSig: bytes(signed.their_sig, 64, "signed_commitment.their_sig"),
        },
        preimages: preimages(r.preimages),
      });
      return { preimage: out.preimage, next_hash: out.nextHash };
    },
    SignRemoteCommitment: async (r) => ({
      signature: await s.signRemoteCommitment(
        r.channel,
        u64(r.number, "number"),
        commitmentParams(r.params),
        preimages(r.preimages),
      ),
    }),
    SignLocalCommitment: async (r) => {
      const out = await s.signLocalCommitment(
        r.channel,
        u64(r.number, "number"),
        commitmentParams(r.params),
        bytes(r.their_sig, 64, "their_sig"),
        preimages(r.preimages),
      );
      return { tx_hex: out.tx.toHex(), txid: out.txid };
    },
    SignClose: async (r) => ({ signature: await s.signClose(r.channel, closeParams(r.params)) }),
    RecordPeerRevocation: async (r) => {
      await s.recordPeerRevocation(r.channel, u64(r.number, "number"), bytes(r.preimage, 32, "preimage"));
      return {};
    },
    SignJustice: async (r) => {
      const sigs = await s.signJustice(r.channel, {
        revokedNumber: u64(r.revoked_number, "revoked_number"),
        params: commitmentParams(r.params),
        commitmentTx: transaction(r.commitment_tx_hex, "commitment_tx_hex"),
        justiceTx: transaction(r.justice_tx_hex, "justice_tx_hex"),
        walletKeyIndexes: r.wallet_key_indexes,
      });
      return {
        signatures: sigs.map((x) => ({
          input_index: x.inputIndex,
          pubkey: x.pubkey,
          signature: x.signature,
        })),
      };
    },
    WalletKey: (r) => ({ pubkey: s.walletKey(r.index) }),
    InvoiceHash: async (r) => ({
      r_hash: await s.invoiceHash(r.index, msat(u64(r.amount_msat, "amount_msat"))),
    }),
    RevealInvoice: async (r) => ({ r: await s.revealInvoice(r.index) }),
    SignInvoice: async (r) => ({ invoice: await s.signInvoice(r.index, invoiceFields(r)) }),
    ChannelStatus: async (r) => statusReply(await s.channelStatus(r.channel)),
    SignerStatuses: async (r) => {
      if (r.channels.length > MAX_STATUSES)
        throw invalid(`at most ${MAX_STATUSES} channels per SignerStatuses, got ${r.channels.length}`);
      const all = await s.channelStatuses(r.channels);
      return {
        statuses: r.channels.map((channel, i) => {
          const c = all[i];
          return {
            channel,
            known: c !== undefined,
            status: statusReply(
              c ?? {
                highestRevealed: undefined,
                highestLocalSigned: undefined,
                highestRemoteSigned: undefined,
              },
            ),
          };
        }),
      };
    },
    SignChannelAnnouncement: async (r) => {
      const out = await s.signChannelAnnouncement(
        r.channel,
        u64(r.short_channel_id, "short_channel_id"),
        pubkey(r.other_node_id, "other_node_id"),
        pubkey(r.other_commit_key, "other_commit_key"),
      );
      return { node_sig: out.nodeSig, commit_sig: out.commitSig };
    },
    SignChannelUpdate: async (r) => {
      if (r.direction !== 0 && r.direction !== 1) throw invalid(`direction ${r.direction} is not 0 or 1`);
      return {
        signature: await s.signChannelUpdate({
          shortChannelId: u64(r.short_channel_id, "short_channel_id"),
          direction: r.direction,
          timestamp: r.timestamp,
          disabled: r.disabled,
          cltvExpiryDelta: r.cltv_expiry_delta,
          htlcMinimumMsat: msat(u64(r.htlc_minimum_msat, "htlc_minimum_msat")),
          htlcMaximumMsat: msat(u64(r.htlc_maximum_msat, "htlc_maximum_msat")),
          feeBaseMsat: msat(BigInt(r.fee_base_msat)),
          feeProportionalMillionths: BigInt(r.fee_proportional_millionths),
        }),
      };
    },
    SignNodeAnnouncement: (r) => ({
      signature: s.signNodeAnnouncement({
        timestamp: r.timestamp,
        alias: r.alias,
        addresses: [...(r.addresses ?? [])],
      }),
    }),
    SignSweep: async (r) => {
      const sigs = await s.signSweep(
        r.channel,
        transaction(r.tx_hex, "tx_hex"),
        sweepInputs(r.inputs),
        outputOwners(r.outputs),
      );
      return {
        signatures: sigs.map((x) => ({
          input_index: x.inputIndex,
          pubkey: x.pubkey,
          signature: x.signature,
        })),
      };
    },
    SignWalletSpend: async (r) => {
      const outputs = outputOwners(r.outputs);
      const sigs = await s.signWalletSpend(
        transaction(r.tx_hex, "tx_hex"),
        r.inputs.map((i, n) => ({
          keyIndex: i.key_index,
          amount: sat(u64(i.amount_sat, `inputs[${n}].amount_sat`)),
          prevTx: prevTx(i.prev_tx_hex, `inputs[${n}].prev_tx_hex`),
        })),
        outputs,
      );
      return {
        signatures: sigs.map((x) => ({
          input_index: x.inputIndex,
          pubkey: x.pubkey,
          signature: x.signature,
        })),
      };
    },
  };
}

function implementation(
  s: SignerService,
  clients: Clients,
  log: Log,
  metrics: SignerMetrics | undefined,
): grpc.UntypedServiceImplementation {
  const h = handlers(s);
  const impl: grpc.UntypedServiceImplementation = {};
  for (const method of Object.keys(h) as SignerMethod[]) {
    const fn = h[method] as (req: unknown) => unknown;
    const call: grpc.handleUnaryCall<unknown, unknown> = (c, callback) => {
      metrics?.requests.inc({ method });
      const done = metrics?.seconds.startTimer({ method });
      const cn = subjectCn(c.getAuthContext().sslPeerCertificate?.subject);
      // A label only for the CNs configured: any other certificate of the CA counts as "unknown".
      const client = cn !== undefined && clients.has(cn) ? cn : "unknown";
      Promise.resolve()
        .then(() => {
          authorizeClient(clients, cn, method);
          return fn(c.request);
        })
        .then(
          (reply) => {
            done?.();
            callback(null, reply);
          },
          (e: unknown) => {
            done?.();
            callback(toStatus(e, method, client, log, metrics));
          },
        );
    };
    impl[method] = call;
  }
  return impl;
}

export interface RunningServer {
  server: grpc.Server;
  port: number;
  /** Stops accepting calls and waits for those in flight (forcing after `graceMs`). */
  shutdown(graceMs?: number): Promise<void>;
}

export async function startServer(opts: {
  service: SignerService;
  listen: string;
  tls: TlsFiles;
  /** The clients by certificate CN and their roles (SIGNER_CLIENTS); every other caller is refused. */
  clients: Clients;
  log?: Log;
  /** Counters and timings of the calls (signerMetrics); none if absent. */
  metrics?: SignerMetrics;
}): Promise<RunningServer> {
  const log = opts.log ?? structuredLog(processLogger("signer"));
  const server = new grpc.Server();
  server.addService(loadSignerService(), implementation(opts.service, opts.clients, log, opts.metrics));
  const credentials = grpc.ServerCredentials.createSsl(
    opts.tls.ca,
    [{ cert_chain: opts.tls.cert, private_key: opts.tls.key }],
    true,
  );
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(opts.listen, credentials, (err, p) => (err ? reject(err) : resolve(p))),
  );
  return {
    server,
    port,
    shutdown: (graceMs = 10_000) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), graceMs);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
