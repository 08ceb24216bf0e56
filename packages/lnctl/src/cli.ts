import { randomUUID } from "node:crypto";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { ApiClientError, ConnectionError, LnClient, type FetchLike, type Locktime } from "./client.js";
import { ConfigError, readFileIfExists, resolveSettings, type Env, type ReadFile } from "./config.js";
import { followEvents } from "./events.js";
import * as F from "./format.js";
import { isRejectionCode } from "@ln/control-api";
import { decodeInvoice, InvoiceError, type DecodedInvoice } from "@ln/invoice";

/** Exit codes, one per kind of outcome a script may act on differently (`lnctl help` lists them). */
export const EXIT = {
  ok: 0,
  api: 1,
  usage: 2,
  connection: 3,
  refused: 4,
  auth: 5,
  notFound: 6,
  unavailable: 7,
  outcomeUnknown: 8,
  paymentFailed: 9,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

const EXIT_MEANING: Record<keyof typeof EXIT, string> = {
  ok: "ok",
  api: "the API refused the request (any other error code: see the message)",
  usage: "usage or configuration error (nothing was sent)",
  connection: "the API cannot be reached, or did not answer with JSON",
  refused: "the channel refused the command (a rejection code such as CHANNEL_CLOSING); nothing was done",
  auth: "the token is missing, unknown, revoked, or lacks the route's scope (401, 403)",
  notFound: "no such channel, payment or route (404)",
  unavailable: "the node, its database or the peer cannot serve this now; retry later",
  outcomeUnknown: "the payment may or may not have been sent: check `lnctl payments` before paying again",
  paymentFailed: "`lnctl pay <invoice>`: the payment failed (every attempt's reason is printed)",
};

/** The exit code for an error the API answered with: by its code, else by its HTTP status. */
export function exitCodeOf(e: ApiClientError): ExitCode {
  if (e.code === "PAYMENT_OUTCOME_UNKNOWN") return EXIT.outcomeUnknown;
  if (isRejectionCode(e.code)) return EXIT.refused;
  switch (e.code) {
    case "UNAUTHENTICATED":
    case "FORBIDDEN":
      return EXIT.auth;
    case "NOT_FOUND":
      return EXIT.notFound;
    case "UNAVAILABLE":
    case "NOT_READY":
    case "AUDIT_UNAVAILABLE":
    case "PEER_UNREACHABLE":
      return EXIT.unavailable;
  }
  // A code this lnctl does not know (a newer server, or an error without a JSON body).
  if (e.status === 401 || e.status === 403) return EXIT.auth;
  if (e.status === 404) return EXIT.notFound;
  if (e.status === 503) return EXIT.unavailable;
  return EXIT.api;
}

/** Blocks added to the current height when `pay` gets neither --expiry-blocks nor --expiry-height. */
export const DEFAULT_EXPIRY_BLOCKS = 288;
const MAX_BLOCK_HEIGHT = 499_999_999;
/** About two years of blocks: more is a typo, and keeps height + n a block height. */
const MAX_RELATIVE_BLOCKS = 100_000;

// ---------------------------------------------------------------------------------------------
// Commands and their usage

export type ExpiryArg = { kind: "relative"; blocks: number } | { kind: "height"; height: number };

export type Command =
  | { name: "help"; topic: string | undefined }
  | { name: "info" }
  | { name: "connect"; nodeId: string; host: string; port: number }
  | { name: "open"; nodeId: string; fundingSat: bigint }
  | { name: "channels" }
  | { name: "channel"; id: string }
  | { name: "close"; id: string }
  | { name: "force-close"; id: string }
  | { name: "fee"; id: string; feeRate: number }
  | {
      name: "invoice";
      amountMsat: bigint;
      description: string | undefined;
      expirySeconds?: number | undefined;
    }
  | { name: "decode"; invoice: string }
  | {
      name: "pay";
      /** Without: our channel with the route's first hop. */
      channelId: string | undefined;
      /** --hop: a route, the payee last. */
      hops?: HopArg[] | undefined;
      rHash: string;
      amountMsat: bigint;
      expiry: ExpiryArg;
      idempotencyKey: string | undefined;
    }
  | {
      name: "pay invoice";
      invoice: string;
      /** Only for an invoice without an amount. */
      amountMsat: bigint | undefined;
      maxFeeMsat: bigint | undefined;
      timeoutSeconds: number | undefined;
      allowRepeat: boolean;
      idempotencyKey: string | undefined;
    }
  | { name: "payments"; limit: number | undefined }
  | { name: "policy"; id: string; change: PolicyChange }
  | { name: "forwards"; status: ForwardStatus | undefined; limit: number | undefined }
  | { name: "payment"; id: string }
  | { name: "events"; after: string | undefined }
  | { name: "wallet address" }
  | { name: "wallet balance" }
  | { name: "wallet withdraw"; address: string; amountSat: bigint; idempotencyKey: string | undefined }
  | { name: "token list" }
  | { name: "token revoke"; target: { id: string } | { label: string } };

export interface Globals {
  url: string | undefined;
  token: string | undefined;
  config: string | undefined;
  json: boolean;
}

export type Parsed =
  | { ok: true; globals: Globals; command: Command }
  | { ok: false; topic: string | undefined; message: string };

interface Spec {
  usage: string;
  summary: string;
  /** Command-specific options this command accepts. */
  options?: readonly CommandOption[];
  details?: string;
}

type CommandOption =
  | "description"
  | "expiry-blocks"
  | "expiry-height"
  | "idempotency-key"
  | "limit"
  | "after"
  | "fee-base-msat"
  | "fee-ppm"
  | "cltv-delta"
  | "htlc-min-msat"
  | "status"
  | "hop"
  | "max-fee"
  | "timeout"
  | "amount"
  | "allow-repeat"
  | "expiry";

export const FORWARD_STATUSES = [
  "offering",
  "offered",
  "fulfilled",
  "failed",
  "settled",
  "failed_back",
] as const;
export type ForwardStatus = (typeof FORWARD_STATUSES)[number];

export const COMMANDS: Readonly<Record<string, Spec>> = {
  info: { usage: "lnctl info", summary: "node id, network, block height, peer and channel counts" },
  connect: {
    usage: "lnctl connect <nodeId>@<host>:<port>",
    summary: "connect to a peer (admin)",
    details: "An IPv6 host goes in brackets: <nodeId>@[::1]:9735.",
  },
  open: {
    usage: "lnctl open <nodeId> <sat>",
    summary: "open a channel to a connected peer, funding it with <sat> satoshi (admin)",
  },
  channels: { usage: "lnctl channels", summary: "list channels" },
  channel: { usage: "lnctl channel <id>", summary: "one channel: state, balances, HTLCs, broadcasts" },
  close: { usage: "lnctl close <id>", summary: "close a channel cooperatively (admin)" },
  "force-close": {
    usage: "lnctl force-close <id>",
    summary: "close a channel unilaterally: broadcast our commitment (admin)",
  },
  fee: {
    usage: "lnctl fee <id> <satPerKb>",
    summary: "propose a new commitment fee rate, satoshi per 1000 bytes (admin)",
  },
  invoice: {
    usage: "lnctl invoice <msat> [--description <text>] [--expiry <seconds>]",
    summary:
      "create a BOLT #11 invoice for <msat> millisatoshi (0: any amount) and print it (invoice or admin)",
    options: ["description", "expiry"],
  },
  decode: {
    usage: "lnctl decode <bolt11>",
    summary: "decode a BOLT #11 invoice here (no node needed): check its signature and show its fields",
  },
  pay: {
    usage:
      "lnctl pay <invoice> [--max-fee <msat>] [--timeout <s>] [--allow-repeat] [--amount <msat>] [--idempotency-key <key>] | lnctl pay [<channelId>] <rHash> <msat> [--hop <nodeId>@<HxIxO>[/<feeBaseMsat>/<feePpm>/<cltvDelta>]]... [--expiry-blocks <n> | --expiry-height <h>] [--idempotency-key <key>]",
    summary:
      "pay a BOLT #11 invoice (routes found and retried, each attempt printed), or <msat> for <rHash> over a channel or a route (admin)",
    options: [
      "expiry-blocks",
      "expiry-height",
      "idempotency-key",
      "hop",
      "max-fee",
      "timeout",
      "amount",
      "allow-repeat",
    ],
    details: [
      "With an invoice (lnbc…, lntb…, lnbcrt…) the node finds a route and retries after each failure;",
      "lnctl follows the events and prints each attempt (route, fee, outcome) and the result: the",
      "preimage (exit 0), or every attempt's reason (exit 9). --max-fee caps what all forwarders",
      "together charge (default 1% of the amount plus 1000 msat); --timeout (default 60 s) stops new",
      "attempts; --amount only for an invoice without an amount. Paying an invoice paid (or being paid)",
      "already is refused unless --allow-repeat.",
      "",
      "--hop, once per hop in order, sends an onion over a route: the node reached, the channel that",
      "reaches it, and the fee and cltv delta the node before it charges for that channel (none for",
      "the first hop, our channel; the last hop is the payee, which gets <msat> at the expiry).",
      "With --hop the channel may be left out: our channel with the first hop's node is used.",
      `The HTLC expires at block height <h>, or <n> blocks above the current height (default ${DEFAULT_EXPIRY_BLOCKS}).`,
      "Without --idempotency-key a random key is used and printed to stderr with the command that",
      "retries this exact payment: a retry with the same key and arguments pays at most once.",
    ].join("\n"),
  },
  payments: {
    usage: "lnctl payments [--limit <n>]",
    summary: "list payments, newest first (default limit 100, at most 1000)",
    options: ["limit"],
  },
  payment: { usage: "lnctl payment <id>", summary: "one payment and its outcome" },
  policy: {
    usage:
      "lnctl policy <channel-id> [--fee-base-msat <n>] [--fee-ppm <n>] [--cltv-delta <n>] [--htlc-min-msat <n>]",
    summary: "show a channel's forwarding policy, or change the fields given (admin)",
    options: ["fee-base-msat", "fee-ppm", "cltv-delta", "htlc-min-msat"],
    details: [
      "Forwarding an HTLC out over the channel costs --fee-base-msat plus --fee-ppm per million msat",
      "sent on; the incoming HTLC must expire --cltv-delta blocks after the outgoing one, and carry at",
      "least --htlc-min-msat. Fields not given keep their value.",
    ].join("\n"),
  },
  forwards: {
    usage: "lnctl forwards [--status <status>] [--limit <n>]",
    summary: "forwarded HTLCs, newest first, and the fees earned (default limit 100, at most 1000)",
    options: ["status", "limit"],
    details: `--status is one of ${FORWARD_STATUSES.join(", ")}.`,
  },
  events: {
    usage: "lnctl events [--after <seq>] [--json]",
    summary: "follow status changes of payments, invoices and channels, one line each, until Ctrl-C",
    options: ["after"],
    details: [
      "Without --after it shows what happens from now on; --after 0 replays every event first.",
      "Each line starts with the event's seq. After a disconnect lnctl reconnects and resumes after",
      "the last seq it printed, so no event is skipped or printed twice; to resume a later run, give",
      "that seq as --after. --json prints each event as one JSON object per line.",
    ].join("\n"),
  },
  wallet: {
    usage:
      "lnctl wallet address | lnctl wallet balance | lnctl wallet withdraw <address> <sat> [--idempotency-key <key>]",
    summary:
      "on-chain wallet: a new deposit address (address or admin), the balance, or send <sat> out (admin)",
    options: ["idempotency-key"],
    details: [
      "address allocates a new wallet key, watched on chain for good (POST /v1/wallet/address).",
      "withdraw: without --idempotency-key a random key is used and printed to stderr with the command",
      "that retries this exact withdrawal: a retry with the same key and arguments withdraws at most once.",
    ].join("\n"),
  },
  token: {
    usage: "lnctl token list | lnctl token revoke <id|label>",
    summary: "API tokens: list them, or revoke one by id or every live one with a label (admin)",
    details: [
      "An argument shaped as a token id (a UUID) revokes that token; anything else revokes every live",
      "token with that label. A revoked token is refused (401) from the next request on.",
      "The token bootstrapped from CHANNEL_ADMIN_TOKEN is labelled 'admin (CHANNEL_ADMIN_TOKEN)'.",
    ].join("\n"),
  },
  help: { usage: "lnctl help [<command>]", summary: "this help, or one command's" },
};

const GLOBAL_HELP = `Global options:
  --url <url>        control API base URL        (else $LNCTL_URL, else "url" in the config file)
  --token <token>    bearer token                (else $LNCTL_TOKEN, else "token" in the config file)
                     (prefer $LNCTL_TOKEN or the file: a --token shows in ps and shell history)
  --config <path>    config file {"url","token"} (else $LNCTL_CONFIG, else ~/.config/lnctl/config.json)
  --json             print the API's JSON reply instead of a table
  -h, --help         show help

Exit codes:
${(Object.keys(EXIT) as (keyof typeof EXIT)[]).map((k) => `  ${EXIT[k]}  ${EXIT_MEANING[k]}`).join("\n")}`;

/** What a usage error prints after its message: the command's usage line, or the command list. */
export function briefUsage(topic?: string): string {
  const spec = topic === undefined ? undefined : COMMANDS[topic];
  if (spec && topic !== undefined) return `usage: ${spec.usage}\nRun 'lnctl help ${topic}' for details.\n`;
  return `usage: lnctl <command> [arguments] [options]\ncommands: ${Object.keys(COMMANDS).join(", ")}\nRun 'lnctl help' for details.\n`;
}

/** The help text: all commands, or one command's usage. */
export function usage(topic?: string): string {
  const spec = topic === undefined ? undefined : COMMANDS[topic];
  if (spec) {
    const lines = [`usage: ${spec.usage}`, "", spec.summary];
    if (spec.details) lines.push("", spec.details);
    return `${lines.join("\n")}\n\n${GLOBAL_HELP}\n`;
  }
  const w = Math.max(...Object.keys(COMMANDS).map((k) => k.length));
  const list = Object.entries(COMMANDS)
    .map(([k, s]) => `  ${k.padEnd(w)}  ${s.summary}`)
    .join("\n");
  return `usage: lnctl <command> [arguments] [options]\n\nCommands:\n${list}\n\nRun 'lnctl help <command>' for a command's arguments.\n\n${GLOBAL_HELP}\n`;
}

// ---------------------------------------------------------------------------------------------
// Argument parsing (pure)

const OPTIONS = {
  url: { type: "string" },
  token: { type: "string" },
  config: { type: "string" },
  json: { type: "boolean" },
  help: { type: "boolean", short: "h" },
  description: { type: "string" },
  "expiry-blocks": { type: "string" },
  "expiry-height": { type: "string" },
  "idempotency-key": { type: "string" },
  limit: { type: "string" },
  after: { type: "string" },
  "fee-base-msat": { type: "string" },
  "fee-ppm": { type: "string" },
  "cltv-delta": { type: "string" },
  "htlc-min-msat": { type: "string" },
  status: { type: "string" },
  hop: { type: "string", multiple: true },
  "max-fee": { type: "string" },
  timeout: { type: "string" },
  amount: { type: "string" },
  "allow-repeat": { type: "boolean" },
  expiry: { type: "string" },
} as const satisfies ParseArgsConfig["options"];

const COMMAND_OPTIONS: readonly CommandOption[] = [
  "description",
  "expiry-blocks",
  "expiry-height",
  "idempotency-key",
  "limit",
  "after",
  "fee-base-msat",
  "fee-ppm",
  "cltv-delta",
  "htlc-min-msat",
  "status",
  "hop",
  "max-fee",
  "timeout",
  "amount",
  "allow-repeat",
  "expiry",
];

/** One --hop: `<nodeId>@<HxIxO>[/<feeBaseMsat>/<feePpm>/<cltvDelta>]`. */
export interface HopArg {
  nodeId: string;
  shortChannelId: string;
  feeBaseMsat: bigint;
  feeProportionalMillionths: number;
  cltvExpiryDelta: number;
}

const SCID_TEXT = /^(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,7})x(0|[1-9][0-9]{0,4})$/;

export function parseHop(s: string): HopArg {
  const at = s.indexOf("@");
  if (at < 0)
    throw new UsageError(
      `--hop is <nodeId>@<HxIxO>[/<feeBaseMsat>/<feePpm>/<cltvDelta>], got ${JSON.stringify(s)}`,
    );
  const nodeId = parseNodeId(s.slice(0, at));
  const [scid = "", ...policy] = s.slice(at + 1).split("/");
  if (!SCID_TEXT.test(scid))
    throw new UsageError(`--hop: short channel id must be HEIGHTxINDEXxOUTPUT, got ${JSON.stringify(scid)}`);
  if (policy.length !== 0 && policy.length !== 3)
    throw new UsageError(
      `--hop: give all three of /<feeBaseMsat>/<feePpm>/<cltvDelta> or none, got ${JSON.stringify(s)}`,
    );
  const [base, ppm, delta] = policy;
  const feeBaseMsat = base === undefined ? 0n : parseAmount(base, "--hop fee base msat");
  if (feeBaseMsat > 0xffff_ffffn) throw new UsageError("--hop fee base msat is at most 4294967295");
  return {
    nodeId,
    shortChannelId: scid,
    feeBaseMsat,
    feeProportionalMillionths: ppm === undefined ? 0 : parseIntArg(ppm, "--hop fee ppm", 0, 4_294_967_295),
    cltvExpiryDelta: delta === undefined ? 0 : parseIntArg(delta, "--hop cltv delta", 0, 65_535),
  };
}

/** A hop as --hop takes it (the policy only when it is not all zero). */
export const hopText = (h: HopArg): string =>
  h.feeBaseMsat === 0n && h.feeProportionalMillionths === 0 && h.cltvExpiryDelta === 0
    ? `${h.nodeId}@${h.shortChannelId}`
    : `${h.nodeId}@${h.shortChannelId}/${h.feeBaseMsat}/${h.feeProportionalMillionths}/${h.cltvExpiryDelta}`;

/** The policy fields to change (none: show it). */
export interface PolicyChange {
  feeBaseMsat?: bigint;
  feeProportionalMillionths?: number;
  cltvExpiryDelta?: number;
  htlcMinimumMsat?: bigint;
}

class UsageError extends Error {}

const DECIMAL = /^(0|[1-9][0-9]{0,19})$/;

/** A non-negative amount as a decimal integer string (underscores allowed between digits). */
export function parseAmount(s: string, what: string): bigint {
  const t = /^[0-9]+(_[0-9]+)*$/.test(s) ? s.replaceAll("_", "") : s;
  if (!DECIMAL.test(t))
    throw new UsageError(
      `${what} must be a whole number (decimal digits, at most 20), got ${JSON.stringify(s)}`,
    );
  return BigInt(t);
}

/** An integer in [min, max]. */
export function parseIntArg(s: string, what: string, min: number, max: number): number {
  if (!/^[0-9]{1,10}$/.test(s))
    throw new UsageError(`${what} must be a whole number, got ${JSON.stringify(s)}`);
  const n = Number(s);
  if (n < min || n > max) throw new UsageError(`${what} must be between ${min} and ${max}, got ${n}`);
  return n;
}

export function parseNodeId(s: string): string {
  if (!/^0[23][0-9a-fA-F]{64}$/.test(s))
    throw new UsageError(
      `node id must be a compressed public key: 66 hex characters starting 02 or 03, got ${JSON.stringify(s)}`,
    );
  return s.toLowerCase();
}

/** Token ids are UUIDs (ApiStore.createToken). */
const TOKEN_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function parseIdempotencyKey(key: string | undefined): string | undefined {
  if (key !== undefined && !/^[\x21-\x7e]{1,255}$/.test(key))
    throw new UsageError("--idempotency-key must be 1-255 printable ASCII characters without spaces");
  return key;
}

function parseChannelId(s: string): string {
  if (!/^[A-Za-z0-9_-]{1,128}$/.test(s))
    throw new UsageError(`channel id must be 1-128 of A-Z a-z 0-9 _ -, got ${JSON.stringify(s)}`);
  return s;
}

function parsePaymentId(s: string): string {
  if (!/^[A-Za-z0-9_:-]{1,200}$/.test(s))
    throw new UsageError(`payment id must be 1-200 of A-Z a-z 0-9 _ : -, got ${JSON.stringify(s)}`);
  return s;
}

function parseHash(s: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(s))
    throw new UsageError(`payment hash must be 64 hex characters (32 bytes), got ${JSON.stringify(s)}`);
  return s.toLowerCase();
}

/** `<nodeId>@<host>:<port>`, the host in brackets when it is an IPv6 address. */
export function parsePeerAddress(s: string): { nodeId: string; host: string; port: number } {
  const at = s.indexOf("@");
  if (at < 0) throw new UsageError(`expected <nodeId>@<host>:<port>, got ${JSON.stringify(s)}`);
  const nodeId = parseNodeId(s.slice(0, at));
  const hp = s.slice(at + 1);
  let host: string;
  let portText: string;
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:([^:]*)$/.exec(hp);
  if (v6) {
    host = v6[1] ?? "";
    portText = v6[2] ?? "";
  } else {
    const colon = hp.lastIndexOf(":");
    if (colon < 0) throw new UsageError(`missing :<port> in ${JSON.stringify(hp)}`);
    host = hp.slice(0, colon);
    portText = hp.slice(colon + 1);
    if (host.includes(":"))
      throw new UsageError(`put an IPv6 host in brackets: <nodeId>@[${host}]:${portText}`);
  }
  if (host === "" || host.length > 253 || /[\s/@]/.test(host))
    throw new UsageError(`bad host ${JSON.stringify(host)}`);
  const port = parseIntArg(portText, "port", 1, 65535);
  return { nodeId, host, port };
}

function parsePayInvoice(
  invoice: string,
  o: {
    "max-fee"?: string;
    timeout?: string;
    amount?: string;
    "allow-repeat"?: boolean;
    "idempotency-key"?: string;
  },
): Command {
  if (invoice.length > 7089) throw new UsageError("the invoice is longer than any BOLT #11 invoice");
  return {
    name: "pay invoice",
    invoice,
    amountMsat: o.amount === undefined ? undefined : parseAmount(o.amount, "--amount"),
    maxFeeMsat: o["max-fee"] === undefined ? undefined : parseAmount(o["max-fee"], "--max-fee"),
    timeoutSeconds: o.timeout === undefined ? undefined : parseIntArg(o.timeout, "--timeout", 1, 3600),
    allowRepeat: o["allow-repeat"] === true,
    idempotencyKey: parseIdempotencyKey(o["idempotency-key"]),
  };
}

function positionals(topic: string, args: readonly string[], names: readonly string[]): string[] {
  if (args.length < names.length)
    throw new UsageError(
      `${topic}: missing ${names
        .slice(args.length)
        .map((n) => `<${n}>`)
        .join(" ")}`,
    );
  if (args.length > names.length)
    throw new UsageError(`${topic}: unexpected argument ${JSON.stringify(args[names.length])}`);
  return [...args];
}

/** Parses the command line (without node and the script). Never throws. */
export function parseCommandLine(argv: readonly string[]): Parsed {
  // A lenient first pass to learn the command, so an option error can show that command's usage.
  let topic: string | undefined;
  try {
    const loose = parseArgs({ args: [...argv], options: OPTIONS, strict: false, allowPositionals: true });
    topic = loose.positionals[0];
  } catch {
    topic = undefined;
  }
  if (topic !== undefined && !(topic in COMMANDS)) topic = undefined;

  let values: {
    [K in keyof typeof OPTIONS]?: (typeof OPTIONS)[K] extends { multiple: true }
      ? string[]
      : (typeof OPTIONS)[K]["type"] extends "string"
        ? string
        : boolean;
  };
  let args: string[];
  try {
    const p = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: true });
    values = p.values;
    args = p.positionals;
  } catch (e) {
    return { ok: false, topic, message: (e as Error).message };
  }
  const globals: Globals = {
    url: values.url,
    token: values.token,
    config: values.config,
    json: values.json === true,
  };
  const [name, ...rest] = args;
  if (name === undefined) {
    if (values.help) return { ok: true, globals, command: { name: "help", topic: undefined } };
    return { ok: false, topic: undefined, message: "no command given" };
  }
  if (!(name in COMMANDS))
    return { ok: false, topic: undefined, message: `unknown command ${JSON.stringify(name)}` };
  if (values.help) return { ok: true, globals, command: { name: "help", topic: name } };

  const allowed = COMMANDS[name]?.options ?? [];
  for (const o of COMMAND_OPTIONS)
    if (values[o] !== undefined && !allowed.includes(o))
      return { ok: false, topic: name, message: `${name} does not take --${o}` };

  try {
    return { ok: true, globals, command: parseCommand(name, rest, values) };
  } catch (e) {
    if (e instanceof UsageError) return { ok: false, topic: name, message: e.message };
    throw e;
  }
}

function parseCommand(
  name: string,
  args: readonly string[],
  o: Partial<Record<Exclude<CommandOption, "hop" | "allow-repeat">, string>> & {
    hop?: string[];
    "allow-repeat"?: boolean;
  },
): Command {
  switch (name) {
    case "help": {
      if (args.length > 1) throw new UsageError(`help: unexpected argument ${JSON.stringify(args[1])}`);
      const t = args[0];
      if (t !== undefined && !(t in COMMANDS)) throw new UsageError(`unknown command ${JSON.stringify(t)}`);
      return { name: "help", topic: t };
    }
    case "info":
    case "channels":
      positionals(name, args, []);
      return { name };
    case "connect": {
      const [addr] = positionals(name, args, ["nodeId@host:port"]);
      return { name, ...parsePeerAddress(addr ?? "") };
    }
    case "open": {
      const [nodeId, amount] = positionals(name, args, ["nodeId", "sat"]);
      const fundingSat = parseAmount(amount ?? "", "the funding amount <sat>");
      if (fundingSat === 0n) throw new UsageError("the funding amount <sat> must be above 0");
      return { name, nodeId: parseNodeId(nodeId ?? ""), fundingSat };
    }
    case "channel":
    case "close":
    case "force-close": {
      const [id] = positionals(name, args, ["id"]);
      return { name, id: parseChannelId(id ?? "") };
    }
    case "fee": {
      const [id, rate] = positionals(name, args, ["id", "satPerKb"]);
      return {
        name,
        id: parseChannelId(id ?? ""),
        feeRate: parseIntArg(rate ?? "", "the fee rate <satPerKb>", 1, 1_000_000_000),
      };
    }
    case "invoice": {
      const [amount] = positionals(name, args, ["msat"]);
      const description = o.description;
      if (description !== undefined && description.length > 640)
        throw new UsageError(`--description is at most 640 characters, got ${description.length}`);
      const expirySeconds =
        o.expiry === undefined ? undefined : parseIntArg(o.expiry, "--expiry <seconds>", 1, 31_536_000);
      return {
        name,
        amountMsat: parseAmount(amount ?? "", "the amount <msat>"),
        description,
        ...(expirySeconds === undefined ? {} : { expirySeconds }),
      };
    }
    case "decode": {
      const [invoice] = positionals(name, args, ["bolt11"]);
      return { name, invoice: invoice ?? "" };
    }
    case "pay": {
      if (args.length === 1 && /^ln/i.test(args[0] ?? "") && o.hop === undefined)
        return parsePayInvoice(args[0] ?? "", o);
      for (const x of ["max-fee", "timeout", "amount", "allow-repeat"] as const)
        if (o[x] !== undefined) throw new UsageError(`--${x} is for paying an invoice: lnctl pay <invoice>`);
      const hops = o.hop?.map(parseHop);
      // With a route the channel may be left out: the one with the route's first hop.
      const [channelId, rHash, amount] =
        hops !== undefined && args.length === 2
          ? [undefined, ...positionals(name, args, ["rHash", "msat"])]
          : positionals(name, args, ["channelId", "rHash", "msat"]);
      const amountMsat = parseAmount(amount ?? "", "the amount <msat>");
      if (amountMsat === 0n) throw new UsageError("the amount <msat> must be above 0");
      if (o["expiry-blocks"] !== undefined && o["expiry-height"] !== undefined)
        throw new UsageError("give --expiry-blocks or --expiry-height, not both");
      const expiry: ExpiryArg =
        o["expiry-height"] !== undefined
          ? {
              kind: "height",
              height: parseIntArg(o["expiry-height"], "--expiry-height", 1, MAX_BLOCK_HEIGHT),
            }
          : {
              kind: "relative",
              blocks:
                o["expiry-blocks"] === undefined
                  ? DEFAULT_EXPIRY_BLOCKS
                  : parseIntArg(o["expiry-blocks"], "--expiry-blocks", 1, MAX_RELATIVE_BLOCKS),
            };
      if (hops !== undefined && hops.length > 20) throw new UsageError("a route has at most 20 hops");
      return {
        name,
        channelId: channelId === undefined ? undefined : parseChannelId(channelId),
        ...(hops === undefined ? {} : { hops }),
        rHash: parseHash(rHash ?? ""),
        amountMsat,
        expiry,
        idempotencyKey: parseIdempotencyKey(o["idempotency-key"]),
      };
    }
    case "payments": {
      positionals(name, args, []);
      const limit = o.limit === undefined ? undefined : parseIntArg(o.limit, "--limit", 1, 1000);
      return { name, limit };
    }
    case "payment": {
      const [id] = positionals(name, args, ["id"]);
      return { name, id: parsePaymentId(id ?? "") };
    }
    case "policy": {
      const [id] = positionals(name, args, ["channel-id"]);
      const change: PolicyChange = {};
      if (o["fee-base-msat"] !== undefined) {
        change.feeBaseMsat = parseAmount(o["fee-base-msat"], "--fee-base-msat");
        if (change.feeBaseMsat > 0xffff_ffffn) throw new UsageError("--fee-base-msat is at most 4294967295");
      }
      if (o["fee-ppm"] !== undefined)
        change.feeProportionalMillionths = parseIntArg(o["fee-ppm"], "--fee-ppm", 0, 4_294_967_295);
      if (o["cltv-delta"] !== undefined)
        change.cltvExpiryDelta = parseIntArg(o["cltv-delta"], "--cltv-delta", 0, 65_535);
      if (o["htlc-min-msat"] !== undefined)
        change.htlcMinimumMsat = parseAmount(o["htlc-min-msat"], "--htlc-min-msat");
      return { name, id: parseChannelId(id ?? ""), change };
    }
    case "forwards": {
      positionals(name, args, []);
      const status = o.status;
      if (status !== undefined && !(FORWARD_STATUSES as readonly string[]).includes(status))
        throw new UsageError(
          `--status must be one of ${FORWARD_STATUSES.join(", ")}, got ${JSON.stringify(status)}`,
        );
      const limit = o.limit === undefined ? undefined : parseIntArg(o.limit, "--limit", 1, 1000);
      return { name, status: status as ForwardStatus | undefined, limit };
    }
    case "events": {
      positionals(name, args, []);
      const after = o.after;
      if (after !== undefined && (!/^(0|[1-9][0-9]{0,18})$/.test(after) || BigInt(after) >= 1n << 63n))
        throw new UsageError(`--after must be an event seq (a whole number), got ${JSON.stringify(after)}`);
      return { name, after };
    }
    case "wallet": {
      const [sub, ...more] = args;
      switch (sub) {
        case "address":
        case "balance":
          positionals(`wallet ${sub}`, more, []);
          if (o["idempotency-key"] !== undefined)
            throw new UsageError(`wallet ${sub} does not take --idempotency-key`);
          return { name: `wallet ${sub}` };
        case "withdraw": {
          const [address, amount] = positionals("wallet withdraw", more, ["address", "sat"]);
          const a = address ?? "";
          if (a.length < 14 || a.length > 90 || !/^[\x21-\x7e]+$/.test(a))
            throw new UsageError(`not a bitcoin address: ${JSON.stringify(a)}`);
          const amountSat = parseAmount(amount ?? "", "the amount <sat>");
          if (amountSat === 0n) throw new UsageError("the amount <sat> must be above 0");
          return {
            name: "wallet withdraw",
            address: a,
            amountSat,
            idempotencyKey: parseIdempotencyKey(o["idempotency-key"]),
          };
        }
        case undefined:
          throw new UsageError("wallet: missing address, balance or withdraw");
        default:
          throw new UsageError(`wallet: unknown subcommand ${JSON.stringify(sub)}`);
      }
    }
    case "token": {
      const [sub, ...more] = args;
      switch (sub) {
        case "list":
          positionals("token list", more, []);
          return { name: "token list" };
        case "revoke": {
          const [t] = positionals("token revoke", more, ["id|label"]);
          const v = t ?? "";
          if (v === "" || v.length > 200) throw new UsageError("token revoke: give a token id or a label");
          return { name: "token revoke", target: TOKEN_ID.test(v) ? { id: v.toLowerCase() } : { label: v } };
        }
        case undefined:
          throw new UsageError("token: missing list or revoke");
        default:
          throw new UsageError(`token: unknown subcommand ${JSON.stringify(sub)}`);
      }
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(name)}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Running

export interface Writable {
  write(chunk: string): unknown;
}

export interface RunOptions {
  env: Env;
  stdout: Writable;
  stderr: Writable;
  /** For tests: replaces global fetch. */
  fetch?: FetchLike;
  /** For tests: reads the config file (undefined when missing). */
  readFile?: ReadFile;
  /** Per-request timeout, ms. */
  timeoutMs?: number;
  /** `events` runs until this aborts (main.ts: Ctrl-C). */
  signal?: AbortSignal;
  /** `events`: first wait before reconnecting, ms (default 1000). */
  reconnectMs?: number;
}

/** Runs one lnctl command line; returns the exit code (see EXIT). */
export async function run(argv: readonly string[], opts: RunOptions): Promise<number> {
  const parsed = parseCommandLine(argv);
  if (!parsed.ok) {
    opts.stderr.write(`lnctl: ${parsed.message}\n${briefUsage(parsed.topic)}`);
    return EXIT.usage;
  }
  const { globals, command } = parsed;
  if (command.name === "help") {
    opts.stdout.write(usage(command.topic));
    return EXIT.ok;
  }
  if (command.name === "decode") {
    // Local: the invoice is checked here (signature, fields), no node is asked.
    let d: DecodedInvoice;
    try {
      d = decodeInvoice(command.invoice);
    } catch (e) {
      if (!(e instanceof InvoiceError)) throw e;
      opts.stderr.write(`lnctl: not a valid invoice: ${e.code}: ${F.clean(e.message)}\n`);
      return EXIT.usage;
    }
    const out = decodedJson(d);
    opts.stdout.write(globals.json ? json(out) : F.formatDecodedInvoice(out));
    return EXIT.ok;
  }
  let client: LnClient;
  try {
    const s = resolveSettings(globals, opts.env, opts.readFile ?? readFileIfExists);
    client = new LnClient({
      url: s.url,
      token: s.token,
      ...(opts.fetch ? { fetch: opts.fetch } : {}),
      ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }),
    });
  } catch (e) {
    if (e instanceof ConfigError) {
      opts.stderr.write(`lnctl: ${e.message}\n`);
      return EXIT.usage;
    }
    throw e;
  }
  try {
    if (command.name === "events") {
      await followEvents(client, {
        after: command.after,
        signal: opts.signal ?? new AbortController().signal,
        onEvent: (e) => opts.stdout.write(globals.json ? `${JSON.stringify(e)}\n` : F.formatEvent(e)),
        onNotice: (line) => opts.stderr.write(`lnctl: ${line}\n`),
        ...(opts.reconnectMs === undefined ? {} : { reconnectMs: opts.reconnectMs }),
      });
      return EXIT.ok;
    }
    if (command.name === "pay invoice") return await payInvoice(client, command, globals.json, opts);
    const out = await execute(client, command, globals.json, opts.stderr);
    opts.stdout.write(out);
    return EXIT.ok;
  } catch (e) {
    if (e instanceof ApiClientError) {
      opts.stderr.write(formatApiError(e));
      return exitCodeOf(e);
    }
    if (e instanceof ConnectionError) {
      opts.stderr.write(`lnctl: ${e.message}\n`);
      return EXIT.connection;
    }
    opts.stderr.write(`lnctl: unexpected failure: ${e instanceof Error ? e.message : String(e)}\n`);
    return EXIT.api;
  }
}

/**
 * `lnctl pay <invoice>`: posts it, then follows the events and, at each one about this payment,
 * reads the payment back and prints what changed: each attempt as it is sent and as it ends,
 * then the result. The payment is read once the stream is open, so nothing is missed.
 */
async function payInvoice(
  client: LnClient,
  c: Extract<Command, { name: "pay invoice" }>,
  asJson: boolean,
  opts: RunOptions,
): Promise<number> {
  const key = c.idempotencyKey ?? randomUUID();
  if (c.idempotencyKey === undefined) opts.stderr.write(`idempotency key: ${key}\n`);
  const r = await client.payInvoice(
    {
      invoice: c.invoice,
      ...(c.amountMsat === undefined ? {} : { amountMsat: c.amountMsat.toString() }),
      ...(c.maxFeeMsat === undefined ? {} : { maxFeeMsat: c.maxFeeMsat.toString() }),
      ...(c.timeoutSeconds === undefined ? {} : { timeoutSeconds: c.timeoutSeconds }),
      ...(c.allowRepeat ? { allowRepeat: true } : {}),
    },
    key,
  );
  const id = r.payment.id;
  if (r.replayed && !asJson)
    opts.stderr.write("this idempotency key was used before: following that payment; nothing new was sent\n");
  if (!asJson) opts.stdout.write(`payment ${id}: ${F.msat(r.payment.amountMsat)} to ${r.payment.payee}\n`);
  const shown = new Map<string, string>();
  let final: F.InvoicePaymentView | undefined;
  const stop = new AbortController();
  const outer = opts.signal;
  outer?.addEventListener("abort", () => stop.abort(), { once: true });
  const show = (p: F.InvoicePaymentView): void => {
    p.attempts.forEach((a, i) => {
      if (shown.get(a.id) === a.status) return;
      shown.set(a.id, a.status);
      if (!asJson) opts.stdout.write(F.formatAttempt(i + 1, a));
    });
    if (p.status !== "pending") {
      final = p;
      stop.abort();
    }
  };
  let queue: Promise<void> = Promise.resolve();
  const refresh = (): void => {
    queue = queue
      .then(async () => {
        if (final) return;
        const p = await client.getPayment(id);
        if ("kind" in p) show(p);
      })
      .catch((e: unknown) => {
        opts.stderr.write(`lnctl: reading payment ${id}: ${e instanceof Error ? e.message : String(e)}\n`);
      });
  };
  if (r.payment.status !== "pending") show(r.payment);
  else
    await followEvents(client, {
      after: undefined,
      signal: stop.signal,
      onOpen: refresh,
      onEvent: (e) => {
        if (e.subject === id || e.detail["invoicePaymentId"] === id) refresh();
      },
      onNotice: (line) => opts.stderr.write(`lnctl: ${line}\n`),
      ...(opts.reconnectMs === undefined ? {} : { reconnectMs: opts.reconnectMs }),
    });
  await queue;
  if (!final) {
    opts.stderr.write(`lnctl: stopped following payment ${id}; it goes on (lnctl payment ${id})\n`);
    return EXIT.ok;
  }
  opts.stdout.write(asJson ? json(final) : F.formatPaymentResult(final));
  return final.status === "succeeded" ? EXIT.ok : EXIT.paymentFailed;
}

export function formatApiError(e: ApiClientError): string {
  return `error: ${e.code} (HTTP ${e.status}): ${F.clean(e.message)}\nrequest id: ${F.clean(e.requestId ?? "(none)")}\n`;
}

const json = (v: unknown): string => `${JSON.stringify(v, null, 2)}\n`;

const isoOf = (unixSeconds: number): string => new Date(unixSeconds * 1000).toISOString();

function decodedJson(d: DecodedInvoice): F.DecodedInvoiceJson {
  return {
    network: d.network,
    paymentHash: d.paymentHash,
    paymentSecret: d.paymentSecret.toString("hex"),
    amountMsat: d.amountMsat?.toString() ?? null,
    description: d.description ?? null,
    descriptionHash: d.descriptionHash ?? null,
    payee: d.payee,
    createdAt: isoOf(d.createdAt),
    expiresAt: isoOf(d.expiresAt),
    minFinalCltvExpiryDelta: d.minFinalCltvExpiryDelta,
    routeHints: d.routeHints.map((hint) =>
      hint.map((h) => ({
        nodeId: h.nodeId,
        shortChannelId: `${h.shortChannelId >> 40n}x${(h.shortChannelId >> 16n) & 0xffffffn}x${h.shortChannelId & 0xffffn}`,
        feeBaseMsat: h.feeBaseMsat.toString(),
        feeProportionalMillionths: h.feeProportionalMillionths.toString(),
        cltvExpiryDelta: h.cltvExpiryDelta,
      })),
    ),
  };
}

async function execute(client: LnClient, c: Command, asJson: boolean, stderr: Writable): Promise<string> {
  const show = <T>(v: T, human: (v: T) => string): string => (asJson ? json(v) : human(v));
  switch (c.name) {
    case "help":
      return usage(c.topic);
    case "info":
      return show(await client.info(), F.formatInfo);
    case "connect":
      return show(await client.connectPeer({ nodeId: c.nodeId, host: c.host, port: c.port }), F.formatPeer);
    case "open":
      return show(
        await client.openChannel({ nodeId: c.nodeId, fundingSat: c.fundingSat }),
        F.formatChannelSummary,
      );
    case "channels":
      return show(await client.listChannels(), F.formatChannels);
    case "channel":
      return show(await client.getChannel(c.id), F.formatChannel);
    case "close":
      return show(await client.closeChannel(c.id), F.formatChannelSummary);
    case "force-close":
      return show(await client.forceClose(c.id), F.formatChannelSummary);
    case "fee":
      return show(await client.updateFee(c.id, c.feeRate), F.formatChannelSummary);
    case "invoice":
      return show(
        await client.createInvoice({
          ...(c.amountMsat === 0n ? {} : { amountMsat: c.amountMsat }),
          ...(c.description === undefined ? {} : { description: c.description }),
          ...(c.expirySeconds === undefined ? {} : { expirySeconds: c.expirySeconds }),
        }),
        F.formatInvoice,
      );
    case "decode":
      throw new Error("decode runs without a node");
    case "pay": {
      let height: number;
      if (c.expiry.kind === "height") height = c.expiry.height;
      else {
        const info = await client.info();
        height = info.blockHeight + c.expiry.blocks;
      }
      const expiry: Locktime = { blocks: height };
      const key = c.idempotencyKey ?? randomUUID();
      if (c.idempotencyKey === undefined) stderr.write(`idempotency key: ${key}\n`);
      const hops = (c.hops ?? []).map((h) => ` --hop ${hopText(h)}`).join("");
      stderr.write(
        `to retry this payment without paying twice: lnctl pay ${c.channelId === undefined ? "" : `${c.channelId} `}${c.rHash} ${c.amountMsat} --expiry-height ${height}${hops} --idempotency-key ${key}\n`,
      );
      const r = await client.payWithReplay(
        {
          channelId: c.channelId,
          rHash: c.rHash,
          amountMsat: c.amountMsat,
          expiry,
          ...(c.hops === undefined ? {} : { route: c.hops }),
        },
        key,
      );
      if (r.replayed && !asJson)
        stderr.write("this idempotency key was used before: showing that payment; nothing new was sent\n");
      return show(r.payment, F.formatPayment);
    }
    case "payments":
      return show(await client.listPayments(c.limit), F.formatPayments);
    case "payment":
      return show(await client.getPayment(c.id), F.formatAnyPayment);
    case "policy":
      return show(
        Object.keys(c.change).length === 0
          ? await client.getPolicy(c.id)
          : await client.setPolicy(c.id, c.change),
        F.formatPolicy,
      );
    case "forwards":
      return show(await client.listForwards({ status: c.status, limit: c.limit }), F.formatForwards);
    case "events":
      throw new Error("events streams: run() follows it");
    case "pay invoice":
      throw new Error("pay <invoice> follows the events: run() does it");
    case "wallet address":
      return show(await client.walletAddress(), F.formatAddress);
    case "wallet balance":
      return show(await client.walletBalance(), F.formatBalance);
    case "wallet withdraw": {
      const key = c.idempotencyKey ?? randomUUID();
      if (c.idempotencyKey === undefined) stderr.write(`idempotency key: ${key}\n`);
      stderr.write(
        `to retry this withdrawal without withdrawing twice: lnctl wallet withdraw ${c.address} ${c.amountSat} --idempotency-key ${key}\n`,
      );
      const r = await client.withdrawWithReplay({ address: c.address, amountSat: c.amountSat }, key);
      if (r.replayed && !asJson)
        stderr.write("this idempotency key was used before: showing that withdrawal; nothing new was sent\n");
      return show(r.withdrawal, F.formatWithdrawal);
    }
    case "token list":
      return show(await client.listTokens(), F.formatTokens);
    case "token revoke":
      return show(await client.revokeTokens(c.target), F.formatRevoked);
  }
}
