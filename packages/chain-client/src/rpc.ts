import { txidFromHex, type Txid } from "@ln/bitcoin";
import { RpcError, RpcTransportError } from "./errors.js";
import { Shape, isRecord, type JsonRecord } from "./guards.js";

export interface BitcoinRpcOptions {
  /** e.g. "http://127.0.0.1:18443". Credentials in the URL are accepted and moved to the header. */
  readonly url: string;
  readonly user?: string;
  readonly password?: string;
  /** Per attempt. Default 10 000 ms. */
  readonly timeoutMs?: number;
  /** Extra attempts for idempotent reads after a transport failure. Default 3. */
  readonly retries?: number;
  /** First backoff delay; doubles each retry. Default 250 ms. */
  readonly retryDelayMs?: number;
  readonly fetch?: typeof fetch;
}

export interface CallOptions {
  /** Retry transport failures. Default: true for the known read-only methods, false otherwise. */
  readonly idempotent?: boolean;
}

export interface BlockchainInfo {
  readonly chain: string;
  readonly blocks: number;
  readonly headers: number;
  readonly bestblockhash: string;
}

export interface BlockHeaderInfo {
  readonly hash: string;
  readonly height: number;
  readonly confirmations: number;
  readonly time: number;
  /** Absent for the genesis block. */
  readonly previousblockhash?: string;
}

export interface BlockVerbose1 extends BlockHeaderInfo {
  readonly tx: readonly Txid[];
}

export interface DecodedTxOut {
  readonly n: number;
  /** BTC, as the node prints it. */
  readonly value: number;
  readonly scriptPubKey: { readonly hex: string };
}

export interface DecodedTx {
  readonly txid: Txid;
  /** The serialized transaction (with witness). */
  readonly hex: string;
  readonly vout: readonly DecodedTxOut[];
}

export interface BlockVerbose2 extends BlockHeaderInfo {
  readonly tx: readonly DecodedTx[];
}

export interface RawTransactionVerbose extends DecodedTx {
  /** Present once confirmed. */
  readonly blockhash?: string;
  readonly confirmations?: number;
}

export interface SmartFee {
  /** BTC per kvB; absent when the node has no estimate. */
  readonly feerate?: number;
  readonly errors?: readonly string[];
  readonly blocks?: number;
}

/** Methods that only read state: a transport failure is retried. */
const IDEMPOTENT = new Set([
  // Safe to resend: the same transaction is accepted again or reported as already known. A
  // resend matters: an HTTP keep-alive socket the node closes while idle resets the next request.
  "sendrawtransaction",
  "getblockchaininfo",
  "getblockcount",
  "getbestblockhash",
  "getblockhash",
  "getblock",
  "getblockheader",
  "getrawtransaction",
  "getrawmempool",
  "getmempoolinfo",
  "getmempoolentry",
  "gettxout",
  "estimatesmartfee",
  "getnetworkinfo",
  "getchaintips",
  "uptime",
]);

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A bitcoind JSON-RPC 1.0 client (also answers against bcoin's bitcoind-compatible RPC).
 * Errors: RpcError when the node judged the request (never retried), RpcTransportError when no
 * judged answer came back (retried for idempotent reads only).
 */
export class BitcoinRpc {
  /** The URL without credentials; safe to print. */
  readonly url: string;
  private readonly auth: string | undefined;
  private readonly timeoutMs: number;
  private readonly retries: number;
  private readonly retryDelayMs: number;
  private readonly fetchFn: typeof fetch;
  private nextId = 1;

  constructor(opts: BitcoinRpcOptions) {
    let parsed: URL;
    try {
      parsed = new URL(opts.url);
    } catch {
      throw new TypeError(
        `BitcoinRpc: "${redactUrl(opts.url)}" is not a URL; use e.g. http://127.0.0.1:18443`,
      );
    }
    const user = opts.user ?? decodeURIComponent(parsed.username);
    const password = opts.password ?? decodeURIComponent(parsed.password);
    parsed.username = "";
    parsed.password = "";
    this.url = parsed.toString().replace(/\/$/, parsed.pathname === "/" ? "" : "/");
    this.auth =
      user !== "" || password !== ""
        ? `Basic ${Buffer.from(`${user}:${password}`, "utf8").toString("base64")}`
        : undefined;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.retries = opts.retries ?? 3;
    this.retryDelayMs = opts.retryDelayMs ?? 250;
    this.fetchFn = opts.fetch ?? globalThis.fetch;
    if (!Number.isInteger(this.retries) || this.retries < 0)
      throw new TypeError(`BitcoinRpc: retries must be a non-negative integer, got ${this.retries}`);
  }

  /** Calls any method; the result is unchecked (`unknown` unless you narrow it). */
  async call<T = unknown>(
    method: string,
    params: readonly unknown[] = [],
    opts: CallOptions = {},
  ): Promise<T> {
    const idempotent = opts.idempotent ?? IDEMPOTENT.has(method);
    const attempts = idempotent ? this.retries + 1 : 1;
    let last: RpcTransportError | undefined;
    for (let attempt = 0; attempt < attempts; attempt++) {
      if (attempt > 0) await sleep(this.retryDelayMs * 2 ** (attempt - 1));
      try {
        return (await this.once(method, params)) as T;
      } catch (e) {
        if (!(e instanceof RpcTransportError) || !isRetryable(e)) throw e;
        last = e;
      }
    }
    // attempts >= 1, so last is set when we get here.
    throw last ?? new RpcTransportError("NETWORK", `${method}: no attempt made`, method);
  }

  private async once(method: string, params: readonly unknown[]): Promise<unknown> {
    const id = this.nextId++;
    const body = JSON.stringify({ jsonrpc: "1.0", id, method, params });
    const headers: Record<string, string> = { "content-type": "application/json" };
    if (this.auth !== undefined) headers.authorization = this.auth;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.timeoutMs);
    let status: number;
    let text: string;
    try {
      const res = await this.fetchFn(this.url, { method: "POST", headers, body, signal: controller.signal });
      status = res.status;
      text = await res.text();
    } catch (e) {
      if (controller.signal.aborted)
        throw new RpcTransportError(
          "TIMEOUT",
          `node at ${this.url} did not answer ${method} within ${this.timeoutMs} ms; check it is running and the URL/port, or raise timeoutMs`,
          method,
          undefined,
          { cause: e },
        );
      throw new RpcTransportError(
        "NETWORK",
        `cannot reach node at ${this.url} for ${method} (${describeCause(e)}); check it is running and the URL/port`,
        method,
        undefined,
        { cause: e },
      );
    } finally {
      clearTimeout(timer);
    }

    let json: unknown;
    try {
      json = text === "" ? undefined : JSON.parse(text);
    } catch {
      json = undefined;
    }
    // bitcoind answers RPC errors with HTTP 500/404 and a JSON-RPC error body: that is a judged answer.
    if (isRecord(json) && json.error !== undefined && json.error !== null) {
      const err = json.error;
      if (isRecord(err) && typeof err.code === "number")
        throw new RpcError(err.code, typeof err.message === "string" ? err.message : "", method);
      throw new RpcTransportError(
        "BAD_RESPONSE",
        `node at ${this.url} answered ${method} with a malformed error object`,
        method,
      );
    }
    if (status < 200 || status >= 300) {
      const hint =
        status === 401 || status === 403
          ? "check the RPC user/password"
          : status >= 500
            ? "the node or a proxy in front of it failed; check the node's log"
            : "check the URL path and that it is a JSON-RPC endpoint";
      throw new RpcTransportError(
        "HTTP",
        `node at ${this.url} answered ${method} with HTTP ${status}; ${hint}`,
        method,
        status,
      );
    }
    if (!isRecord(json) || !("result" in json))
      throw new RpcTransportError(
        "BAD_RESPONSE",
        `node at ${this.url} answered ${method} with a body that is not JSON-RPC; is the URL pointing at bitcoind's RPC port?`,
        method,
      );
    return json.result;
  }

  async getBlockchainInfo(): Promise<BlockchainInfo> {
    const s = new Shape("getblockchaininfo", "result");
    const o = s.record(await this.call("getblockchaininfo"));
    return {
      chain: s.string(o, "chain"),
      blocks: s.number(o, "blocks"),
      headers: s.number(o, "headers"),
      bestblockhash: s.hash(o.bestblockhash, "bestblockhash"),
    };
  }

  async getBlockCount(): Promise<number> {
    const v = await this.call("getblockcount");
    return typeof v === "number" ? v : new Shape("getblockcount", "result").fail("expected a number");
  }

  async getBestBlockHash(): Promise<string> {
    return new Shape("getbestblockhash", "result").hash(await this.call("getbestblockhash"));
  }

  async getBlockHash(height: number): Promise<string> {
    return new Shape("getblockhash", "result").hash(await this.call("getblockhash", [height]));
  }

  async getBlockHeader(hash: string): Promise<BlockHeaderInfo> {
    const s = new Shape("getblockheader", "result");
    return parseHeader(s, s.record(await this.call("getblockheader", [hash, true])));
  }

  getBlock(hash: string, verbosity: 0): Promise<string>;
  getBlock(hash: string, verbosity?: 1): Promise<BlockVerbose1>;
  getBlock(hash: string, verbosity: 2): Promise<BlockVerbose2>;
  async getBlock(hash: string, verbosity: 0 | 1 | 2 = 1): Promise<string | BlockVerbose1 | BlockVerbose2> {
    const s = new Shape("getblock", `verbosity ${verbosity} result`);
    const result = await this.call("getblock", [hash, verbosity]);
    if (verbosity === 0) return s.hex(result, "block");
    const o = s.record(result);
    const header = parseHeader(s, o);
    const txs = s.array(o.tx);
    if (verbosity === 1) return { ...header, tx: txs.map((t) => toTxid(s, t)) };
    return { ...header, tx: txs.map((t) => parseDecodedTx(s, t)) };
  }

  getRawTransaction(txid: Txid | string, verbose?: false): Promise<string>;
  getRawTransaction(txid: Txid | string, verbose: true): Promise<RawTransactionVerbose>;
  async getRawTransaction(txid: Txid | string, verbose = false): Promise<string | RawTransactionVerbose> {
    const s = new Shape("getrawtransaction", "result");
    const result = await this.call("getrawtransaction", [txid, verbose]);
    if (!verbose) return s.hex(result, "transaction");
    const o = s.record(result);
    const tx = parseDecodedTx(s, o);
    const blockhash = s.optString(o, "blockhash");
    const confirmations = s.optNumber(o, "confirmations");
    return {
      ...tx,
      ...(blockhash !== undefined ? { blockhash } : {}),
      ...(confirmations !== undefined ? { confirmations } : {}),
    };
  }

  /**
   * gettxout: the output if it is in the node's UTXO set (with the mempool's spends when
   * `includeMempool`), else undefined (spent, or never existed).
   */
  async getTxOut(
    txid: Txid | string,
    vout: number,
    includeMempool = false,
  ): Promise<{ confirmations: number; bestblock: string } | undefined> {
    const s = new Shape("gettxout", "result");
    const result = await this.call("gettxout", [txid, vout, includeMempool]);
    if (result === null || result === undefined) return undefined;
    const o = s.record(result);
    return { confirmations: s.number(o, "confirmations"), bestblock: s.string(o, "bestblock") };
  }

  async getRawMempool(): Promise<Txid[]> {
    const s = new Shape("getrawmempool", "result");
    return s.array(await this.call("getrawmempool", [false])).map((t) => toTxid(s, t));
  }

  /** Retried after a transport failure: resending the same transaction is harmless. */
  async sendRawTransaction(hex: string): Promise<Txid> {
    const s = new Shape("sendrawtransaction", "result");
    return toTxid(s, await this.call("sendrawtransaction", [hex]));
  }

  /**
   * Normalizes bitcoind's `{feerate?, errors?, blocks}` and bcoin's `{fee, blocks}` (fee -1 when
   * there is no estimate) to `{feerate?, errors?, blocks?}` in BTC/kvB.
   */
  async estimateSmartFee(blocks: number): Promise<SmartFee> {
    const s = new Shape("estimatesmartfee", "result");
    const o = s.record(await this.call("estimatesmartfee", [blocks]));
    const n = s.optNumber(o, "blocks");
    const errors = o.errors === undefined ? undefined : s.stringArray(o.errors, "errors");
    let feerate = s.optNumber(o, "feerate");
    if (feerate === undefined && "fee" in o) {
      const fee = s.optNumber(o, "fee");
      if (fee !== undefined && fee > 0) feerate = fee;
    }
    const out: { feerate?: number; errors?: readonly string[]; blocks?: number } = {};
    if (feerate !== undefined) out.feerate = feerate;
    if (errors !== undefined) out.errors = errors;
    else if (feerate === undefined) out.errors = ["Insufficient data or no feerate found"];
    if (n !== undefined) out.blocks = n;
    return out;
  }

  /** Not retried: a retry after a lost answer would mine extra blocks. */
  async generateToAddress(n: number, address: string): Promise<string[]> {
    const s = new Shape("generatetoaddress", "result");
    return s.array(await this.call("generatetoaddress", [n, address])).map((h) => s.hash(h, "block hash"));
  }
}

function isRetryable(e: RpcTransportError): boolean {
  if (e.code === "TIMEOUT" || e.code === "NETWORK") return true;
  return e.code === "HTTP" && e.status !== undefined && e.status >= 500;
}

function parseHeader(s: Shape, o: JsonRecord): BlockHeaderInfo {
  const prev = s.optString(o, "previousblockhash");
  return {
    hash: s.hash(o.hash, "hash"),
    height: s.number(o, "height"),
    confirmations: s.number(o, "confirmations"),
    time: s.number(o, "time"),
    ...(prev !== undefined ? { previousblockhash: s.hash(prev, "previousblockhash") } : {}),
  };
}

function toTxid(s: Shape, v: unknown): Txid {
  return txidFromHex(s.hash(v, "txid"));
}

function parseDecodedTx(s: Shape, v: unknown): DecodedTx {
  const o = s.record(v);
  const vout = s.array(o.vout).map((x): DecodedTxOut => {
    const out = s.record(x);
    const spk = s.record(out.scriptPubKey);
    return {
      n: s.number(out, "n"),
      value: s.number(out, "value"),
      scriptPubKey: { hex: s.hex(spk.hex, "scriptPubKey.hex") },
    };
  });
  return { txid: toTxid(s, o.txid), hex: s.hex(o.hex, "tx hex"), vout };
}

function describeCause(e: unknown): string {
  if (e instanceof Error) {
    const cause: unknown = e.cause;
    if (cause instanceof Error) return `${e.message}: ${cause.message}`;
    return e.message;
  }
  return String(e);
}

function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, "//***@");
}
