import { Type, type TSchema } from "typebox";

/** Amounts travel as decimal strings: JSON numbers lose precision past 2^53. */
const DECIMAL = "^(0|[1-9][0-9]{0,19})$";
export const SatString = Type.String({ pattern: DECIMAL, description: "satoshi, decimal string" });
export const MsatString = Type.String({ pattern: DECIMAL, description: "millisatoshi, decimal string" });
export const Hex32 = Type.String({ pattern: "^[0-9a-f]{64}$", description: "32 bytes, lowercase hex" });
export const NodeId = Type.String({
  pattern: "^0[23][0-9a-f]{64}$",
  description: "compressed secp256k1 public key, lowercase hex",
});
export const ChannelId = Type.String({ minLength: 1, maxLength: 128, pattern: "^[A-Za-z0-9_-]+$" });
export const Timestamp = Type.String({ format: "date-time" });

export const Locktime = Type.Union(
  [
    Type.Object(
      { blocks: Type.Integer({ minimum: 1, maximum: 499_999_999 }) },
      { additionalProperties: false },
    ),
    Type.Object({ seconds: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
  ],
  { description: "absolute HTLC expiry: a block height or a unix time in seconds" },
);

export const ErrorBody = Type.Object({
  error: Type.Object({
    code: Type.String(),
    message: Type.String({ description: "what went wrong and what to do next" }),
    requestId: Type.Optional(Type.String()),
  }),
});

export const Status = Type.Object({ status: Type.String() });

export const NodeInfo = Type.Object({
  nodeId: Type.String(),
  network: Type.String(),
  version: Type.String(),
  blockHeight: Type.Integer(),
  peerCount: Type.Integer(),
  channelCount: Type.Integer(),
});

export const ConnectPeerBody = Type.Object(
  {
    host: Type.String({ minLength: 1, maxLength: 253 }),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    nodeId: NodeId,
  },
  { additionalProperties: false },
);
export const PeerInfo = Type.Object({
  nodeId: Type.String(),
  host: Type.String(),
  port: Type.Integer(),
  connected: Type.Boolean(),
});

export const OpenChannelBody = Type.Object(
  {
    nodeId: NodeId,
    fundingSat: SatString,
    /** Never announced to the network (gossip); default false: public once 6 blocks deep. */
    private: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

const Phase = Type.Union([
  Type.Literal("opening"),
  Type.Literal("normal"),
  Type.Literal("clearing"),
  Type.Literal("closed"),
  Type.Literal("failed"),
  Type.Literal("behind"),
]);

const channelFields = {
  id: Type.String(),
  peerNodeId: Type.String(),
  phase: Phase,
  role: Type.Union([Type.Literal("creator"), Type.Literal("acceptor")]),
  capacitySat: SatString,
  localBalanceMsat: MsatString,
  remoteBalanceMsat: MsatString,
  shortChannelId: Type.Optional(
    Type.String({
      pattern: "^[0-9]+x[0-9]+x[0-9]+$",
      description:
        "BOLT #7 short_channel_id, HEIGHTxINDEXxOUTPUT (block height, anchor's index in the block, anchor output); absent until the anchor is in a block",
    }),
  ),
};
export const ChannelSummary = Type.Object(channelFields);
export const ChannelList = Type.Object({ channels: Type.Array(ChannelSummary) });
export const Htlc = Type.Object({
  id: Type.String({ description: "HTLC id, decimal string" }),
  direction: Type.Union([Type.Literal("offered"), Type.Literal("received")]),
  amountMsat: MsatString,
  rHash: Type.String(),
  expiry: Locktime,
});
export const ChannelDetail = Type.Object({
  ...channelFields,
  htlcs: Type.Array(Htlc),
  failure: Type.Union([Type.Object({ code: Type.String(), problem: Type.String() }), Type.Null()]),
  anchorTxid: Type.Union([Type.String(), Type.Null()]),
  transactions: Type.Array(
    Type.Object({ kind: Type.String({ description: "close or commitment" }), txid: Type.String() }),
    { description: "what this node broadcast for the channel" },
  ),
  onchain: Type.Union([
    Type.Object(
      {
        kind: Type.Union([
          Type.Literal("our_commitment"),
          Type.Literal("their_commitment"),
          Type.Literal("close"),
          Type.Literal("unknown"),
        ]),
        spendTxid: Type.String(),
        commitmentNumber: Type.Union([Type.String(), Type.Null()]),
        height: Type.Integer(),
        claims: Type.Array(
          Type.Object({
            outpoint: Type.String({ description: "txid:vout of the output" }),
            what: Type.String({ description: "to_us, delayed, htlc_timeout, htlc_redeem or watch" }),
            amountSat: SatString,
            htlcId: Type.Union([Type.String(), Type.Null()]),
            readyHeight: Type.Union([Type.Integer(), Type.Null()]),
            status: Type.String({
              description: "waiting, sweeping, swept, lost, wallet, watching or uneconomic",
            }),
            sweepTxid: Type.Union([Type.String(), Type.Null()]),
            spentBy: Type.Union([Type.String(), Type.Null()]),
          }),
        ),
      },
      { description: "what spent the anchor (draft 6) and what became of each output we claim" },
    ),
    Type.Null(),
  ]),
});
export const ChannelParams = Type.Object({ id: ChannelId });
export const UpdateFeeBody = Type.Object(
  { feeRate: Type.Integer({ minimum: 1, maximum: 1_000_000_000, description: "satoshi per 1000 bytes" }) },
  { additionalProperties: false },
);
export const PaymentParams = Type.Object({
  id: Type.String({ minLength: 1, maxLength: 200, pattern: "^[A-Za-z0-9_:-]+$" }),
});

export const CreateInvoiceBody = Type.Object(
  {
    amountMsat: Type.Optional(
      Type.String({
        pattern: "^[1-9][0-9]{0,19}$",
        description: "msat, decimal; leave it out for any amount",
      }),
    ),
    description: Type.Optional(Type.String({ maxLength: 639, description: "at most 639 bytes of UTF-8" })),
    expirySeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 31_536_000,
        description: "seconds until it expires, default 3600",
      }),
    ),
  },
  { additionalProperties: false },
);
export const InvoiceParams = Type.Object({ rHash: Hex32 });
export const Invoice = Type.Object({
  rHash: Type.String(),
  amountMsat: Type.String({ pattern: "^[0-9]{1,20}$", description: "msat, decimal; 0: any amount" }),
  description: Type.String(),
  createdAt: Timestamp,
  status: Type.Union([Type.Literal("open"), Type.Literal("settled")]),
  bolt11: Type.Union(
    [Type.String({ description: "the BOLT #11 string (lnbcrt... on regtest)" }), Type.Null()],
    {
      description: "null for an invoice made before BOLT #11 strings",
    },
  ),
  expiresAt: Type.Union([Timestamp, Type.Null()]),
  payee: Type.String({ description: "our node id, hex" }),
});

export const ShortChannelIdText = Type.String({
  pattern: "^(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,4})$",
  description: "short_channel_id as HEIGHTxINDEXxOUTPUT (BOLT #7)",
});
const Ppm = Type.Integer({
  minimum: 0,
  maximum: 4_294_967_295,
  description: "fee per million msat forwarded",
});
const CltvDelta = Type.Integer({ minimum: 0, maximum: 65_535, description: "blocks" });

/** One hop: the node reached, the channel that reaches it, and what the node before it charges for that channel. */
export const RouteHopBody = Type.Object(
  {
    nodeId: NodeId,
    shortChannelId: ShortChannelIdText,
    feeBaseMsat: Type.Optional(MsatString),
    feeProportionalMillionths: Type.Optional(Ppm),
    cltvExpiryDelta: Type.Optional(CltvDelta),
  },
  { additionalProperties: false },
);
export const PayBody = Type.Object(
  {
    channelId: Type.Optional(ChannelId),
    rHash: Hex32,
    amountMsat: MsatString,
    expiry: Locktime,
    route: Type.Optional(
      Type.Object(
        { hops: Type.Array(RouteHopBody, { minItems: 1, maxItems: 20 }) },
        {
          additionalProperties: false,
          description:
            "hops[0] is our peer over our channel (no fee or delta), the last hop the payee; amountMsat is what the payee gets, expiry (blocks) its HTLC's expiry",
        },
      ),
    ),
    paymentSecret: Type.Optional(
      Type.String({
        pattern: "^[0-9a-f]{64}$",
        description:
          "with a route: the invoice's payment secret (BOLT #11 s), carried to the payee in payment_data",
      }),
    ),
    onion: Type.Optional(
      Type.String({
        pattern: "^([0-9a-f]{2}){1,1366}$",
        description:
          "an onion built elsewhere (hex, a BOLT #4 packet of 1366 bytes), sent unchanged in place of the one the route would give (the route still sets the HTLC's amount and expiry); its shared secrets are not ours, so only a failure of the first hop (a malformed reason) can be read; for tests of a peer's onion handling",
      }),
    ),
  },
  {
    additionalProperties: false,
    description: "channelId, a route, or both (the route's first hop is the channel's peer)",
  },
);
/** Paying a BOLT #11 invoice: the node finds the route and retries (payments/payer.ts). */
export const InvoicePayBody = Type.Object(
  {
    invoice: Type.String({ minLength: 1, maxLength: 7089, description: "a BOLT #11 invoice string" }),
    amountMsat: Type.Optional(
      Type.String({ pattern: DECIMAL, description: "msat; only for an invoice that names no amount" }),
    ),
    maxFeeMsat: Type.Optional(
      Type.String({
        pattern: DECIMAL,
        description: "the most all forwarders together may charge; default 1% of the amount plus 1000 msat",
      }),
    ),
    timeoutSeconds: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 3600,
        description: "no new attempt after this (default 60); the payment fails once nothing is in flight",
      }),
    ),
    allowRepeat: Type.Optional(
      Type.Boolean({ description: "pay even though this invoice was paid or is being paid (default false)" }),
    ),
  },
  { additionalProperties: false },
);
export const AnyPayBody = Type.Union([PayBody, InvoicePayBody]);
const InvoiceAttempt = Type.Object({
  id: Type.String({ description: "the attempt's payment id (channel:htlc)" }),
  route: Type.Array(
    Type.Object({
      nodeId: Type.String(),
      shortChannelId: Type.String({ description: "HEIGHTxINDEXxOUTPUT" }),
      amountMsat: Type.String({ description: "the HTLC that reaches this hop, msat" }),
      expiry: Type.Integer(),
    }),
  ),
  amountMsat: Type.String({ description: "what we sent: the amount plus the fee" }),
  feeMsat: Type.String(),
  status: Type.Union([Type.Literal("pending"), Type.Literal("succeeded"), Type.Literal("failed")]),
  failure: Type.Union([
    Type.Object({
      hop: Type.Union([Type.Integer(), Type.Null()]),
      nodeId: Type.Union([Type.String(), Type.Null()]),
      code: Type.Union([Type.Integer(), Type.Null()]),
      name: Type.String({ description: "BOLT #4 failure name, unknown, or our channel's refusal code" }),
      description: Type.String(),
    }),
    Type.Null(),
  ]),
  createdAt: Timestamp,
});
export const InvoicePayment = Type.Object({
  id: Type.String(),
  kind: Type.Literal("invoice"),
  status: Type.Union([Type.Literal("pending"), Type.Literal("succeeded"), Type.Literal("failed")]),
  rHash: Type.String(),
  payee: Type.String(),
  amountMsat: MsatString,
  maxFeeMsat: MsatString,
  feeMsat: Type.Union([MsatString, Type.Null()]),
  preimage: Type.Union([Type.String(), Type.Null()]),
  failure: Type.Union([Type.String(), Type.Null()]),
  deadline: Timestamp,
  allowRepeat: Type.Boolean(),
  attempts: Type.Array(InvoiceAttempt),
  createdAt: Timestamp,
  finishedAt: Type.Union([Timestamp, Type.Null()]),
});
export const IdempotencyHeaders = Type.Object({
  "idempotency-key": Type.String({
    minLength: 1,
    maxLength: 255,
    pattern: "^[\\x21-\\x7e]+$",
    description: "a fresh key per payment or withdrawal; a retry with the same key returns the first result",
  }),
});
export const Payment = Type.Object({
  id: Type.String(),
  channelId: Type.String(),
  rHash: Type.String(),
  amountMsat: MsatString,
  expiry: Locktime,
  status: Type.Union([Type.Literal("pending"), Type.Literal("succeeded"), Type.Literal("failed")]),
  failureReason: Type.Union([Type.String(), Type.Null()]),
  route: Type.Union([
    Type.Object({
      hops: Type.Array(
        Type.Object({
          nodeId: Type.String(),
          shortChannelId: Type.String(),
          feeBaseMsat: MsatString,
          feeProportionalMillionths: Type.Integer(),
          cltvExpiryDelta: Type.Integer(),
          amountMsat: Type.String({ description: "the HTLC that reaches this hop, msat" }),
          expiry: Type.Integer({ description: "the HTLC that reaches this hop: its expiry height" }),
        }),
      ),
    }),
    Type.Null(),
  ]),
  failure: Type.Union([
    Type.Object(
      {
        hop: Type.Integer({ description: "index in route.hops of the node that failed it" }),
        nodeId: Type.String(),
        code: Type.Integer({ description: "BOLT #4 failure code" }),
        name: Type.String({ description: "BOLT #4 failure name, or unknown" }),
        description: Type.String(),
      },
      { description: "who failed the payment and why, from its error packet" },
    ),
    Type.Null(),
  ]),
  createdAt: Timestamp,
});
export const AnyPayment = Type.Union([Payment, InvoicePayment]);
export const PaymentList = Type.Object({ payments: Type.Array(AnyPayment) });
export const ListQuery = Type.Object(
  { limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })) },
  { additionalProperties: false },
);

/** A channel's forwarding policy: what we charge and require to forward over it (BOLT #7 channel_update). */
export const ForwardingPolicy = Type.Object({
  channelId: Type.String(),
  feeBaseMsat: MsatString,
  feeProportionalMillionths: Ppm,
  cltvExpiryDelta: CltvDelta,
  htlcMinimumMsat: MsatString,
});
export const ForwardingPolicyBody = Type.Object(
  {
    feeBaseMsat: Type.Optional(Type.String({ pattern: "^(0|[1-9][0-9]{0,9})$", description: "msat, u32" })),
    feeProportionalMillionths: Type.Optional(Ppm),
    cltvExpiryDelta: Type.Optional(CltvDelta),
    htlcMinimumMsat: Type.Optional(MsatString),
  },
  { additionalProperties: false, minProperties: 1, description: "the fields to change; the others stay" },
);

export const ForwardStatus = Type.Union([
  Type.Literal("offering"),
  Type.Literal("offered"),
  Type.Literal("fulfilled"),
  Type.Literal("failed"),
  Type.Literal("settled"),
  Type.Literal("failed_back"),
]);
export const ForwardsQuery = Type.Object(
  {
    status: Type.Optional(ForwardStatus),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, default: 100 })),
  },
  { additionalProperties: false },
);
const OrNull = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
export const Forward = Type.Object({
  id: Type.String(),
  inChannel: Type.String(),
  inHtlcId: Type.String(),
  rHash: Type.String(),
  inAmountMsat: MsatString,
  inExpiry: Type.Integer(),
  outChannel: OrNull(Type.String()),
  outHtlcId: OrNull(Type.String()),
  outShortChannelId: OrNull(Type.String({ description: "HEIGHTxINDEXxOUTPUT" })),
  outAmountMsat: OrNull(MsatString),
  outExpiry: OrNull(Type.Integer()),
  status: Type.String({ description: "offering, offered, fulfilled, failed, settled or failed_back" }),
  feeMsat: Type.String({ description: "in minus out, once settled; else 0" }),
  failure: OrNull(Type.String()),
  createdAt: Timestamp,
  resolvedAt: OrNull(Timestamp),
});
export const ForwardList = Type.Object({
  forwards: Type.Array(Forward),
  totals: Type.Object({
    settled: Type.Integer({ description: "forwards settled, over the whole table" }),
    feesEarnedMsat: MsatString,
  }),
});

export const WalletAddress = Type.Object({ address: Type.String() });
export const WalletBalance = Type.Object({ confirmedSat: SatString, unconfirmedSat: SatString });
export const WithdrawBody = Type.Object(
  { address: Type.String({ minLength: 14, maxLength: 90 }), amountSat: SatString },
  { additionalProperties: false },
);
export const Withdrawal = Type.Object({ txid: Type.String(), address: Type.String(), amountSat: SatString });

const ScopeName = Type.Union([
  Type.Literal("admin"),
  Type.Literal("readonly"),
  Type.Literal("invoice"),
  Type.Literal("address"),
]);
export const TokenRecord = Type.Object({
  id: Type.String(),
  label: Type.String(),
  scopes: Type.Array(ScopeName),
  createdAt: Timestamp,
  revokedAt: Type.Union([Timestamp, Type.Null()]),
});
export const TokenList = Type.Object({ tokens: Type.Array(TokenRecord) });
export const RevokeTokenBody = Type.Union(
  [
    Type.Object({ id: Type.String({ minLength: 1, maxLength: 64 }) }, { additionalProperties: false }),
    Type.Object({ label: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false }),
  ],
  { description: "the token's id, or a label: every live token with that label is revoked" },
);
export const RevokedTokens = Type.Object({
  revoked: Type.Array(
    Type.Object({ id: Type.String(), label: Type.String(), scopes: Type.Array(ScopeName) }),
  ),
});

/** An event's seq: a decimal bigint (Postgres bigint, so at most 2^63-1). */
export const SEQ = "^(0|[1-9][0-9]{0,18})$";

export const EventsQuery = Type.Object(
  {
    after: Type.Optional(
      Type.String({ pattern: SEQ, description: "start after this seq (as Last-Event-ID does)" }),
    ),
    from: Type.Optional(Type.Literal("start", { description: "replay every event from the first" })),
  },
  { additionalProperties: false },
);

const DetailScalar = Type.Union([Type.String(), Type.Number(), Type.Boolean(), Type.Null()]);

/** The JSON `data` of each status event on GET /v1/events (and on NATS). */
export const StatusEventJson = Type.Object({
  seq: Type.String({ pattern: SEQ, description: "increasing; the SSE id" }),
  kind: Type.Union([Type.Literal("payment"), Type.Literal("invoice"), Type.Literal("channel")]),
  subject: Type.String({ description: "payment id, invoice payment hash, or channel id" }),
  status: Type.String(),
  detail: Type.Record(
    Type.String(),
    Type.Union([
      DetailScalar,
      Type.Record(Type.String(), DetailScalar, {
        description: "one level of scalars, e.g. a failed payment's failure",
      }),
    ]),
  ),
  at: Timestamp,
});

/** Every route declares the error shape for 4xx and 5xx alongside its success response. */
export const withErrors = <S extends Record<number, TSchema>>(
  ok: S,
): S & { "4xx": typeof ErrorBody; "5xx": typeof ErrorBody } => ({
  ...ok,
  "4xx": ErrorBody,
  "5xx": ErrorBody,
});
