import type {
  ChannelDetail,
  ForwardingPolicy,
  ForwardList,
  Graph,
  GraphPolicy,
  ChannelList,
  ChannelSummary,
  Invoice,
  Locktime,
  NodeInfo,
  AnyPayment,
  InvoiceAttempt,
  InvoicePayment,
  Payment,
  PaymentList,
  PeerInfo,
  RevokedTokens,
  TokenList,
  WalletAddress,
  WalletBalance,
  Withdrawal,
} from "./client.js";
import type { StatusEvent } from "./events.js";

/**
 * Human output: pure functions from API replies to text (ending in a newline). Strings from the
 * server are shown with control characters escaped, so a description cannot drive the terminal.
 */

/** Escapes control characters (C0, DEL, C1) as \uXXXX. */
export function clean(s: string): string {
  return s.replace(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

export interface Column {
  header: string;
  /** Right-align (numbers). */
  right?: boolean;
}

/** A plain-text table: a header row, columns two spaces apart, no trailing spaces. */
export function table(columns: readonly Column[], rows: readonly (readonly string[])[]): string {
  const cells = rows.map((r) => columns.map((_, i) => clean(r[i] ?? "")));
  const widths = columns.map((c, i) => Math.max(c.header.length, ...cells.map((r) => (r[i] ?? "").length)));
  const line = (r: readonly string[]): string =>
    columns
      .map((c, i) => {
        const v = r[i] ?? "";
        const w = widths[i] ?? 0;
        return c.right ? v.padStart(w) : v.padEnd(w);
      })
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.header)), ...cells.map(line)].map((l) => `${l}\n`).join("");
}

/** Key/value lines, keys padded to one width. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w + 1)}  ${clean(v)}\n`).join("");
}

/** Groups a decimal string's digits by thousands with "," (display only; --json keeps the raw value). */
export function groupDigits(dec: string): string {
  if (!/^[0-9]+$/.test(dec)) return dec;
  return dec.replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export const sat = (dec: string): string => `${groupDigits(dec)} sat`;
export const msat = (dec: string): string => `${groupDigits(dec)} msat`;

export function locktime(l: Locktime): string {
  return "blocks" in l
    ? `height ${l.blocks}`
    : `unix ${l.seconds} (${new Date(l.seconds * 1000).toISOString()})`;
}

export function formatInfo(i: NodeInfo): string {
  return keyValues([
    ["node id", i.nodeId],
    ["network", i.network],
    ["version", i.version],
    ["block height", String(i.blockHeight)],
    ["peers", String(i.peerCount)],
    ["channels", String(i.channelCount)],
  ]);
}

export function formatPeer(p: PeerInfo): string {
  return keyValues([
    ["node id", p.nodeId],
    ["address", p.host.includes(":") ? `[${p.host}]:${p.port}` : `${p.host}:${p.port}`],
    ["connected", p.connected ? "yes" : "no"],
  ]);
}

const CHANNEL_COLUMNS: Column[] = [
  { header: "ID" },
  { header: "SCID" },
  { header: "PEER" },
  { header: "PHASE" },
  { header: "ROLE" },
  { header: "CAPACITY (sat)", right: true },
  { header: "LOCAL (msat)", right: true },
  { header: "REMOTE (msat)", right: true },
];

export function formatChannels(list: ChannelList): string {
  if (list.channels.length === 0) return "no channels\n";
  return table(
    CHANNEL_COLUMNS,
    list.channels.map((c) => [
      c.id,
      c.shortChannelId ?? "-",
      c.peerNodeId,
      c.phase,
      c.role,
      groupDigits(c.capacitySat),
      groupDigits(c.localBalanceMsat),
      groupDigits(c.remoteBalanceMsat),
    ]),
  );
}

function channelPairs(c: ChannelSummary): Array<[string, string]> {
  return [
    ["channel", c.id],
    ["scid", c.shortChannelId ?? "-"],
    ["peer", c.peerNodeId],
    ["phase", c.phase === "behind" ? "behind (data loss suspected: see the restore runbook)" : c.phase],
    ["role", c.role],
    ["capacity", sat(c.capacitySat)],
    ["local balance", msat(c.localBalanceMsat)],
    ["remote balance", msat(c.remoteBalanceMsat)],
  ];
}

/** A channel summary (the reply to open, close, force-close, fee). */
export function formatChannelSummary(c: ChannelSummary): string {
  return keyValues(channelPairs(c));
}

export function formatChannel(c: ChannelDetail): string {
  const pairs = channelPairs(c);
  pairs.push(["anchor txid", c.anchorTxid ?? "-"]);
  if (c.failure) pairs.push(["failure", `${c.failure.code}: ${c.failure.problem}`]);
  let out = keyValues(pairs);
  out += "\n";
  out +=
    c.htlcs.length === 0
      ? "no HTLCs\n"
      : `HTLCs:\n${table(
          [
            { header: "ID", right: true },
            { header: "DIRECTION" },
            { header: "AMOUNT (msat)", right: true },
            { header: "EXPIRY" },
            { header: "PAYMENT HASH" },
          ],
          c.htlcs.map((h) => [h.id, h.direction, groupDigits(h.amountMsat), locktime(h.expiry), h.rHash]),
        )}`;
  if (c.transactions.length > 0)
    out += `\nbroadcast:\n${table(
      [{ header: "KIND" }, { header: "TXID" }],
      c.transactions.map((t) => [t.kind, t.txid]),
    )}`;
  if (c.onchain)
    out += `\non chain: anchor spent by ${c.onchain.kind.replace("_", " ")} ${c.onchain.spendTxid} at height ${c.onchain.height}\n${table(
      [
        { header: "OUTPUT" },
        { header: "WHAT" },
        { header: "AMOUNT (sat)", right: true },
        { header: "READY AT", right: true },
        { header: "STATUS" },
        { header: "SPENT BY" },
      ],
      c.onchain.claims.map((x) => [
        x.outpoint,
        x.htlcId === null ? x.what : `${x.what} (HTLC ${x.htlcId})`,
        groupDigits(x.amountSat),
        x.readyHeight === null ? "-" : String(x.readyHeight),
        x.status,
        x.spentBy ?? x.sweepTxid ?? "-",
      ]),
    )}`;
  return out;
}

/** The BOLT #11 string alone on the first line (to copy or pipe), then its details. */
export function formatInvoice(i: Invoice): string {
  const head = i.bolt11 === null ? "" : `${clean(i.bolt11)}\n\n`;
  return `${head}${keyValues([
    ["payment hash", i.rHash],
    ["amount", i.amountMsat === "0" ? "any" : msat(i.amountMsat)],
    ["description", i.description],
    ["status", i.status],
    ["created", i.createdAt],
    ["expires", i.expiresAt ?? "never"],
    ["payee", i.payee],
  ])}`;
}

/** A BOLT #11 invoice decoded locally (lnctl decode), its numbers as decimal strings. */
export interface DecodedInvoiceJson {
  network: string;
  paymentHash: string;
  paymentSecret: string;
  amountMsat: string | null;
  description: string | null;
  descriptionHash: string | null;
  payee: string;
  createdAt: string;
  expiresAt: string;
  minFinalCltvExpiryDelta: number;
  routeHints: {
    nodeId: string;
    shortChannelId: string;
    feeBaseMsat: string;
    feeProportionalMillionths: string;
    cltvExpiryDelta: number;
  }[][];
}

export function formatDecodedInvoice(d: DecodedInvoiceJson): string {
  const pairs: [string, string][] = [
    ["network", d.network],
    ["payment hash", d.paymentHash],
    ["amount", d.amountMsat === null ? "any" : msat(d.amountMsat)],
    ["description", d.description ?? `(hash ${d.descriptionHash ?? "none"})`],
    ["payee", d.payee],
    ["created", d.createdAt],
    ["expires", d.expiresAt],
    ["min final cltv expiry delta", `${d.minFinalCltvExpiryDelta} blocks`],
    ["payment secret", d.paymentSecret],
  ];
  d.routeHints.forEach((hint, i) =>
    hint.forEach((h, j) =>
      pairs.push([
        `route hint ${i + 1}.${j + 1}`,
        `${h.nodeId} over ${h.shortChannelId}, fee ${h.feeBaseMsat} msat + ${h.feeProportionalMillionths} ppm, cltv delta ${h.cltvExpiryDelta}`,
      ]),
    ),
  );
  return keyValues(pairs);
}

export function formatPayment(p: Payment): string {
  const pairs: Array<[string, string]> = [
    ["payment", p.id],
    ["status", p.status],
    ["channel", p.channelId],
    ["payment hash", p.rHash],
    ["amount", msat(p.amountMsat)],
    ["expiry", locktime(p.expiry)],
    ["created", p.createdAt],
  ];
  if (p.failureReason !== null) pairs.push(["failure", p.failureReason]);
  if (p.failure !== null)
    pairs.push(
      ["failed at", `hop ${p.failure.hop} ${p.failure.nodeId}`],
      ["failure code", `${p.failure.name} (0x${p.failure.code.toString(16).padStart(4, "0")})`],
    );
  let out = keyValues(pairs);
  if (p.route)
    out += `\nroute:\n${table(
      [
        { header: "HOP", right: true },
        { header: "NODE" },
        { header: "CHANNEL" },
        { header: "AMOUNT (msat)", right: true },
        { header: "EXPIRY", right: true },
        { header: "FEE BASE (msat)", right: true },
        { header: "FEE PPM", right: true },
        { header: "CLTV DELTA", right: true },
      ],
      p.route.hops.map((h, i) => [
        String(i),
        h.nodeId,
        h.shortChannelId,
        groupDigits(h.amountMsat),
        String(h.expiry),
        groupDigits(h.feeBaseMsat),
        String(h.feeProportionalMillionths),
        String(h.cltvExpiryDelta),
      ]),
    )}`;
  return out;
}

export function formatPolicy(p: ForwardingPolicy): string {
  return keyValues([
    ["channel", p.channelId],
    ["fee base", msat(p.feeBaseMsat)],
    ["fee rate", `${groupDigits(String(p.feeProportionalMillionths))} ppm`],
    ["cltv delta", `${p.cltvExpiryDelta} blocks`],
    ["htlc minimum", msat(p.htlcMinimumMsat)],
  ]);
}

export function formatForwards(list: ForwardList): string {
  const totals = `settled: ${list.totals.settled}, fees earned: ${msat(list.totals.feesEarnedMsat)}\n`;
  if (list.forwards.length === 0) return `no forwards\n${totals}`;
  return `${table(
    [
      { header: "ID", right: true },
      { header: "STATUS" },
      { header: "IN (channel:htlc)" },
      { header: "IN (msat)", right: true },
      { header: "OUT (channel:htlc)" },
      { header: "OUT SCID" },
      { header: "OUT (msat)", right: true },
      { header: "FEE (msat)", right: true },
      { header: "CREATED" },
      { header: "FAILURE" },
    ],
    list.forwards.map((f) => [
      f.id,
      f.status,
      `${f.inChannel}:${f.inHtlcId}`,
      groupDigits(f.inAmountMsat),
      f.outChannel === null ? "-" : `${f.outChannel}:${f.outHtlcId ?? "-"}`,
      f.outShortChannelId ?? "-",
      f.outAmountMsat === null ? "-" : groupDigits(f.outAmountMsat),
      groupDigits(f.feeMsat),
      f.createdAt,
      f.failure ?? "",
    ]),
  )}${totals}`;
}

/** One direction's policy in one cell: fee, delta, HTLC bounds; "off" first if disabled. */
function policyCell(p: GraphPolicy | null): string {
  if (p === null) return "-";
  const max = p.htlcMaximumMsat === null ? "" : groupDigits(p.htlcMaximumMsat);
  return `${p.disabled ? "off " : ""}${groupDigits(p.feeBaseMsat)} msat + ${p.feeProportionalMillionths} ppm, ${p.cltvExpiryDelta} blocks, ${groupDigits(p.htlcMinimumMsat)}..${max} msat`;
}

export function formatGraph(g: Graph): string {
  const nodes = table(
    [
      { header: "NODE ID" },
      { header: "ALIAS" },
      { header: "ADDRESSES" },
      { header: "ANNOUNCED" },
      { header: "OURS" },
    ],
    g.nodes.map((n) => [
      n.nodeId,
      n.alias ?? "-",
      n.addresses.length === 0 ? "-" : n.addresses.join(" "),
      n.timestamp === null ? "-" : new Date(n.timestamp * 1000).toISOString(),
      n.ours ? "yes" : "",
    ]),
  );
  const channels =
    g.channels.length === 0
      ? "no channels\n"
      : table(
          [
            { header: "SCID" },
            { header: "NODE 1" },
            { header: "NODE 2" },
            { header: "CAPACITY (sat)", right: true },
            { header: "PUBLIC" },
            { header: "OURS" },
            { header: "1->2" },
            { header: "2->1" },
          ],
          g.channels.map((c) => [
            c.shortChannelId ?? "-",
            c.node1,
            c.node2,
            groupDigits(c.capacitySat),
            c.announced ? "yes" : "no",
            c.ours ? (c.channelId ?? "yes") : "",
            policyCell(c.node1Policy),
            policyCell(c.node2Policy),
          ]),
        );
  return `our node: ${g.nodeId}\n\n${g.nodes.length} nodes\n${nodes}\n${g.channels.length} channels\n${channels}`;
}

export function formatPayments(list: PaymentList): string {
  if (list.payments.length === 0) return "no payments\n";
  return table(
    [
      { header: "ID" },
      { header: "STATUS" },
      { header: "AMOUNT (msat)", right: true },
      { header: "CHANNEL" },
      { header: "EXPIRY" },
      { header: "CREATED" },
    ],
    list.payments.map((p) =>
      "kind" in p
        ? [p.id, p.status, groupDigits(p.amountMsat), `invoice to ${short(p.payee)}`, "-", p.createdAt]
        : [p.id, p.status, groupDigits(p.amountMsat), p.channelId, locktime(p.expiry), p.createdAt],
    ),
  );
}

const short = (hex: string): string => `${hex.slice(0, 10)}…`;

/** An attempt's route on one line: each node reached and the channel that reaches it. */
export function attemptRoute(a: InvoiceAttempt): string {
  return a.route.length === 0
    ? "(none sent)"
    : a.route.map((h) => `${short(h.nodeId)} via ${h.shortChannelId}`).join(" → ");
}

/** Why an attempt failed, on one line. */
export function attemptFailure(a: InvoiceAttempt): string {
  const f = a.failure;
  if (f === null) return "";
  const where = f.hop === null ? "" : `hop ${f.hop} (${short(f.nodeId ?? "")}): `;
  const code = f.code === null ? "" : ` (0x${f.code.toString(16).padStart(4, "0")})`;
  return `${where}${f.name}${code}${f.description ? `: ${f.description}` : ""}`;
}

/** One attempt on one line: number, route, fee, outcome. */
export function formatAttempt(n: number, a: InvoiceAttempt): string {
  const outcome =
    a.status === "pending"
      ? "in flight"
      : a.status === "succeeded"
        ? "succeeded"
        : `failed: ${attemptFailure(a)}`;
  return clean(`attempt ${n}: ${attemptRoute(a)}, fee ${msat(a.feeMsat)}: ${outcome}`) + "\n";
}

export function formatInvoicePayment(p: InvoicePayment): string {
  const pairs: Array<[string, string]> = [
    ["payment", p.id],
    ["status", p.status],
    ["payee", p.payee],
    ["payment hash", p.rHash],
    ["amount", msat(p.amountMsat)],
    ["fee limit", msat(p.maxFeeMsat)],
    ["created", p.createdAt],
  ];
  if (p.feeMsat !== null) pairs.push(["fee", msat(p.feeMsat)]);
  if (p.preimage !== null) pairs.push(["preimage", p.preimage]);
  if (p.failure !== null) pairs.push(["failure", p.failure]);
  let out = keyValues(pairs);
  if (p.attempts.length > 0)
    out += `\nattempts:\n${p.attempts.map((a, i) => formatAttempt(i + 1, a)).join("")}`;
  return out;
}

export function formatAnyPayment(p: AnyPayment): string {
  return "kind" in p ? formatInvoicePayment(p) : formatPayment(p);
}

export function formatAddress(a: WalletAddress): string {
  return `${clean(a.address)}\n`;
}

export function formatBalance(b: WalletBalance): string {
  return keyValues([
    ["confirmed", sat(b.confirmedSat)],
    ["unconfirmed", sat(b.unconfirmedSat)],
    // Not yet a confirmed coin: shown so a fresh close does not look like lost money.
    ...b.closeOutputs.map((o): [string, string] => [
      "close output",
      `${sat(o.amountSat)} (${closeOutputState(o)}) ${clean(o.txid)}:${o.vout}`,
    ]),
  ]);
}

function closeOutputState(o: WalletBalance["closeOutputs"][number]): string {
  if (o.status === "waiting") return `matures at height ${o.maturesAtHeight ?? "?"}`;
  if (o.status === "sweeping") return `sweeping${o.sweepTxid !== null ? ` in ${clean(o.sweepTxid)}` : ""}`;
  return "swept at the next block";
}

export function formatWithdrawal(w: Withdrawal): string {
  return keyValues([
    ["txid", w.txid],
    ["address", w.address],
    ["amount", sat(w.amountSat)],
  ]);
}

export function formatTokens(list: TokenList): string {
  if (list.tokens.length === 0) return "no tokens\n";
  return table(
    [
      { header: "ID" },
      { header: "LABEL" },
      { header: "SCOPES" },
      { header: "CREATED" },
      { header: "REVOKED" },
    ],
    list.tokens.map((t) => [t.id, clean(t.label), t.scopes.join(","), t.createdAt, t.revokedAt ?? "-"]),
  );
}

export function formatRevoked(r: RevokedTokens): string {
  return r.revoked.map((t) => `revoked ${t.id} (${clean(t.label)}; ${t.scopes.join(",")})\n`).join("");
}

/** One status event on one line: seq, time, kind, subject, status, then the details as key=value. */
export function formatEvent(e: StatusEvent): string {
  const detail = Object.entries(e.detail ?? {}).map(
    ([k, v]) => `${k}=${v === null ? "null" : typeof v === "object" ? JSON.stringify(v) : String(v)}`,
  );
  return `${clean([e.seq, e.at, e.kind, e.subject, e.status, ...detail].join("  "))}\n`;
}

export type InvoicePaymentView = InvoicePayment;

/** The end of `lnctl pay <invoice>`: the proof, or every attempt's reason. */
export function formatPaymentResult(p: InvoicePayment): string {
  if (p.status === "succeeded")
    return keyValues([
      ["paid", msat(p.amountMsat)],
      ["fee", p.feeMsat === null ? "-" : msat(p.feeMsat)],
      ["preimage", p.preimage ?? "-"],
      ["attempts", String(p.attempts.length)],
    ]);
  const lines = p.attempts.map(
    (a, i) => `${clean(`  ${i + 1}. ${attemptRoute(a)}: ${attemptFailure(a) || a.status}`)}\n`,
  );
  return `${clean(`payment failed: ${p.failure ?? "(no reason)"}`)}\n${lines.length > 0 ? `attempts:\n${lines.join("")}` : "no attempt was sent\n"}`;
}
