// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="./bcoin.d.ts" />
import { randomBytes } from "node:crypto";
import bcoin, { type Coin, type FullNode, type KeyRing } from "bcoin";
import { txidFromHex, type Sat, type Txid } from "@ln/bitcoin";
import { BitcoinRpc } from "@ln/chain-client";
import { installBitcoindCompat, submitTx, type CompatControls } from "./bitcoind-compat.js";

export { MAX_REPLACEMENT_EVICTIONS, MIN_RELAY_FEE_PER_KVB } from "./bitcoind-compat.js";

/** Regtest activates BIP65 (OP_CHECKLOCKTIMEVERIFY) at this height; CSV is active from genesis. */
export const CLTV_HEIGHT = 1351;
/** Blocks before a coinbase output can be spent. */
export const COINBASE_MATURITY = 100;
/**
 * bcoin 1.0.2 activates CSV and segwit on regtest through BIP9 versionbits (height 432 with its
 * 144-block window). The harness shrinks their window to one block, so both are active from this
 * height on; startRegtest always mines at least this many blocks.
 */
export const SEGWIT_CSV_HEIGHT = 3;
/** bcoin's regtest bech32 prefix is "rb"; the harness switches it (and the base58 prefixes) to bitcoind's. */
export const REGTEST_BECH32_HRP = "bcrt";

export interface RegtestProgress {
  readonly height: number;
  readonly target: number;
}

export interface RegtestOptions {
  /**
   * Blocks to mine to the harness wallet at start. Default 0, but at least SEGWIT_CSV_HEIGHT (3)
   * are always mined so segwit and CSV are enforced from the first test transaction on.
   */
  readonly height?: number;
  /** Called about every `progressEvery` blocks while mining more than that in one go. */
  readonly onProgress?: (p: RegtestProgress) => void;
  /** Default 250. */
  readonly progressEvery?: number;
  /** Node log level on the console. Default "error". */
  readonly logLevel?: "none" | "error" | "warning" | "info" | "debug";
}

export interface FundOptions {
  /** Mine one block so the funding tx confirms. Default true. */
  readonly confirm?: boolean;
  /** sat per 1000 vbytes. Default 1000, or 1.1 x the miner fee floor when that is higher. */
  readonly feeRatePerKvb?: number;
}

export interface Funding {
  readonly txid: Txid;
  readonly vout: number;
  /** The funding transaction, serialized. */
  readonly hex: string;
}

export interface Regtest {
  /** A client for the node's bitcoind-compatible JSON-RPC. */
  readonly rpc: BitcoinRpc;
  /** RPC URL without credentials (http://127.0.0.1:<random port>). */
  readonly url: string;
  /** RPC basic-auth user (any user is accepted; bcoin checks only the password). */
  readonly user: string;
  /** RPC password (bcoin's api key), random per node. */
  readonly password: string;
  /** The current tip height. */
  height(): number;
  /** Mines n blocks to `address` (default: the harness wallet). Returns their hashes. */
  mine(n: number, address?: string): Promise<string[]>;
  /** Mines up to `height` (no-op if already there). */
  mineTo(height: number, address?: string): Promise<string[]>;
  /** Mines to CLTV_HEIGHT so OP_CHECKLOCKTIMEVERIFY is enforced. */
  activateCltv(): Promise<void>;
  /** A fresh p2wpkh address ("bcrt1q...") of the harness wallet. */
  newAddress(type?: "p2wpkh"): string;
  /**
   * Pays `amount` to `address` from the harness wallet, mining coinbase blocks first when no
   * mature coins are available, then (unless confirm: false) one block to confirm it.
   */
  fund(address: string, amount: Sat, opts?: FundOptions): Promise<Funding>;
  /**
   * Submits a transaction through the mempool with bitcoind's rejection codes (the same path as
   * rpc.sendRawTransaction). A tx double-spending mempool txs replaces them under BIP125 (every
   * directly conflicting tx signals with an input nSequence < 0xfffffffe, pays at least the
   * evicted txs' fees plus 1 sat/vB of its own size, a higher fee rate than each conflict, at most
   * 100 evictions, no new unconfirmed inputs); the conflicts and their descendants leave the
   * mempool. Otherwise -26 "txn-mempool-conflict" (not replaceable) or "insufficient fee", and the
   * mempool is unchanged.
   */
  submit(hex: string): Promise<Txid>;
  /**
   * Fixes the answer of RPC `estimatesmartfee <n>` to bitcoind's `{ feerate, blocks: n }` with
   * `feerate` = satPerKvb / 1e8 BTC/kvB (what BitcoinRpc.estimateSmartFee returns as `feerate`).
   * `undefined` restores bcoin's own estimate.
   */
  setFeeEstimate(satPerKvb: number | undefined): void;
  /**
   * Miner fee floor in sat per 1000 vbytes (0 = off, the default). Blocks mined afterwards leave
   * out every mempool tx whose own fee rate (fee * 1000 / vsize) is below the floor, and every tx
   * that spends an output of a left-out one (no CPFP: a high-fee child does not pull its parent
   * in). Left-out txs stay in the mempool and are mined once the floor drops below their rate.
   */
  setMinMiningFeeRate(satPerKvb: number): void;
  /**
   * Reorganizes the chain: invalidates the last `depth` blocks (RPC invalidateblock) and mines
   * `depth + extra` (default extra 1) new blocks to a fresh address. Returns both hash lists.
   */
  reorg(
    depth: number,
    extra?: number,
  ): Promise<{ readonly disconnected: string[]; readonly connected: string[] }>;
  /** Closes the node and frees the RPC port. Idempotent. */
  stop(): Promise<void>;
}

export class RegtestError extends Error {
  override readonly name = "RegtestError";
  constructor(
    readonly code: "START_FAILED" | "INSUFFICIENT_FUNDS" | "BAD_ARGUMENT" | "STOPPED",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const MINE_CHUNK = 250;

/** Starts an in-process bcoin regtest full node (in memory, tx index on, RPC on loopback). */
export async function startRegtest(opts: RegtestOptions = {}): Promise<Regtest> {
  const network = bcoin.Network.get("regtest");
  network.addressPrefix.bech32 = REGTEST_BECH32_HRP;
  // And bitcoind's base58 prefixes (bcoin's regtest uses 0x3c and 0x26): "m/n..." and "2..." addresses.
  network.addressPrefix.pubkeyhash = 0x6f;
  network.addressPrefix.scripthash = 0xc4;
  for (const d of [network.deployments.csv, network.deployments.segwit]) {
    d.window = 1;
    d.threshold = 1;
  }

  const password = randomBytes(24).toString("hex");
  const node = new bcoin.FullNode({
    network: "regtest",
    memory: true,
    indexTX: true,
    indexAddress: true,
    workers: false,
    listen: false,
    httpHost: "127.0.0.1",
    httpPort: 0,
    apiKey: password,
    logLevel: opts.logLevel ?? "error",
  });
  try {
    await node.open();
  } catch (e) {
    throw new RegtestError("START_FAILED", `bcoin regtest node failed to open: ${errMessage(e)}`, {
      cause: e,
    });
  }
  const controls = installBitcoindCompat(node);
  // The node runs in the test's own process: a long synchronous stretch there (signing a big
  // transaction) can let the server's 5 s keep-alive timer close a socket the client is about to
  // reuse. Idle sockets are closed by the client (undici, after 4 s) instead.
  node.http.http.keepAliveTimeout = 10 * 60_000;
  // bcoin's miner skips "free" transactions (fee below the min relay fee for their size, which
  // includes the rounding of fee estimates); bitcoind's regtest mines whatever its mempool took.
  node.miner.options.minWeight = 4_000_000;
  // The P2P pool is never connected. On a chain reset (invalidateblock) bcoin's pool asserts that
  // it is, and that throw aborts the reset listeners before the mempool follows the new tip.
  node.pool.forceSync = () => undefined;
  const address = node.http.http.address();
  if (address === null || typeof address === "string") {
    await node.close();
    throw new RegtestError("START_FAILED", "bcoin's RPC server is not listening on a TCP port");
  }
  const url = `http://127.0.0.1:${address.port}`;
  const user = "bitcoinrpc";
  const rpc = new BitcoinRpc({ url, user, password, timeoutMs: 60_000 });
  const h = new Harness(node, controls, rpc, url, user, password, opts);
  await h.mine(Math.max(opts.height ?? 0, SEGWIT_CSV_HEIGHT));
  return h;
}

class Harness implements Regtest {
  private readonly rings = new Map<string, KeyRing>();
  private readonly walletAddress: string;
  private stopped = false;
  private readonly progressEvery: number;

  constructor(
    private readonly node: FullNode,
    private readonly controls: CompatControls,
    readonly rpc: BitcoinRpc,
    readonly url: string,
    readonly user: string,
    readonly password: string,
    private readonly opts: RegtestOptions,
  ) {
    this.walletAddress = this.newAddress();
    this.progressEvery = Math.max(1, opts.progressEvery ?? MINE_CHUNK);
  }

  height(): number {
    return this.node.chain.height;
  }

  newAddress(type: "p2wpkh" = "p2wpkh"): string {
    if (type !== "p2wpkh") throw new RegtestError("BAD_ARGUMENT", `unsupported address type ${String(type)}`);
    const ring = bcoin.KeyRing.generate(true);
    ring.witness = true;
    const addr = ring.getAddress("string", "regtest");
    this.rings.set(addr, ring);
    return addr;
  }

  async mine(n: number, address: string = this.walletAddress): Promise<string[]> {
    this.assertRunning();
    if (!Number.isInteger(n) || n < 0)
      throw new RegtestError("BAD_ARGUMENT", `mine(n): n must be a non-negative integer, got ${n}`);
    const target = this.height() + n;
    const report = n > this.progressEvery;
    const hashes: string[] = [];
    let sinceReport = 0;
    while (hashes.length < n) {
      const chunk = Math.min(MINE_CHUNK, this.progressEvery, n - hashes.length);
      hashes.push(...(await this.rpc.generateToAddress(chunk, address)));
      sinceReport += chunk;
      if (report && (sinceReport >= this.progressEvery || hashes.length === n)) {
        sinceReport = 0;
        this.opts.onProgress?.({ height: this.height(), target });
      }
    }
    return hashes;
  }

  async mineTo(height: number, address?: string): Promise<string[]> {
    const n = height - this.height();
    return n > 0 ? this.mine(n, address) : [];
  }

  async activateCltv(): Promise<void> {
    await this.mineTo(CLTV_HEIGHT);
  }

  async fund(address: string, amount: Sat, opts: FundOptions = {}): Promise<Funding> {
    this.assertRunning();
    if (amount <= 0n || amount > BigInt(Number.MAX_SAFE_INTEGER))
      throw new RegtestError(
        "BAD_ARGUMENT",
        `fund: amount must be a positive number of satoshi, got ${amount}`,
      );
    let target: ReturnType<typeof bcoin.Address.fromString>;
    try {
      target = bcoin.Address.fromString(address, "regtest");
    } catch (e) {
      throw new RegtestError(
        "BAD_ARGUMENT",
        `fund: ${address} is not a regtest address (${errMessage(e)}); bech32 addresses start with "bcrt1"`,
        { cause: e },
      );
    }
    const value = Number(amount);
    let coins = await this.spendable();
    const total = (cs: readonly Coin[]): number => cs.reduce((a, c) => a + c.value, 0);
    // Mature more coinbase outputs until the wallet can pay (plus a margin for the fee).
    for (let tries = 0; total(coins) < value + 100_000; tries++) {
      if (tries >= 20)
        throw new RegtestError(
          "INSUFFICIENT_FUNDS",
          `fund: the harness wallet cannot pay ${value} sat even after mining; the regtest subsidy halves every 150 blocks, fund earlier or with less`,
        );
      await this.mine(this.height() < COINBASE_MATURITY ? COINBASE_MATURITY + 1 - this.height() : 50);
      coins = await this.spendable();
    }
    const mtx = new bcoin.MTX();
    mtx.addOutput(target, value);
    await mtx.fund(coins, {
      changeAddress: this.walletAddress,
      // Above the miner fee floor (with a margin for bcoin's size estimate) so it confirms.
      rate: opts.feeRatePerKvb ?? Math.max(1000, Math.ceil(this.controls.minMiningFeeRate * 1.1)),
      height: this.height(),
    });
    mtx.sign([...this.rings.values()]);
    const tx = mtx.toTX();
    await submitTx(this.node, tx);
    const txid = txidFromHex(tx.txid());
    const want = target.toString("regtest");
    const vout = tx.outputs.findIndex(
      (o) => o.value === value && o.getAddress()?.toString("regtest") === want,
    );
    if (opts.confirm ?? true) await this.mine(1);
    return { txid, vout, hex: tx.toRaw().toString("hex") };
  }

  async submit(hex: string): Promise<Txid> {
    return this.rpc.sendRawTransaction(hex);
  }

  setFeeEstimate(satPerKvb: number | undefined): void {
    if (satPerKvb !== undefined && !(Number.isFinite(satPerKvb) && satPerKvb > 0))
      throw new RegtestError(
        "BAD_ARGUMENT",
        `setFeeEstimate: expected a positive sat/kvB rate or undefined, got ${satPerKvb}`,
      );
    this.controls.feeEstimate = satPerKvb;
  }

  setMinMiningFeeRate(satPerKvb: number): void {
    if (!Number.isFinite(satPerKvb) || satPerKvb < 0)
      throw new RegtestError(
        "BAD_ARGUMENT",
        `setMinMiningFeeRate: expected a non-negative sat/kvB rate, got ${satPerKvb}`,
      );
    this.controls.minMiningFeeRate = satPerKvb;
  }

  async reorg(depth: number, extra = 1): Promise<{ disconnected: string[]; connected: string[] }> {
    this.assertRunning();
    const tip = this.height();
    if (!Number.isInteger(depth) || depth < 1 || depth > tip)
      throw new RegtestError("BAD_ARGUMENT", `reorg(depth): depth must be 1..${tip}, got ${depth}`);
    const disconnected: string[] = [];
    for (let h = tip - depth + 1; h <= tip; h++) disconnected.push(await this.rpc.getBlockHash(h));
    const first = disconnected[0];
    if (first === undefined) throw new RegtestError("BAD_ARGUMENT", "reorg: nothing to disconnect");
    await this.rpc.call("invalidateblock", [first]);
    // A fresh coinbase address makes the new blocks differ from the invalidated ones.
    const connected = await this.mine(depth + extra, this.newAddress());
    return { disconnected, connected };
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    await this.node.close();
  }

  /** Mature coins of the harness wallet not spent in the chain or the mempool. */
  private async spendable(): Promise<Coin[]> {
    const tip = this.height();
    const coins = await this.node.getCoinsByAddress([...this.rings.keys()]);
    return coins.filter((c) => !c.coinbase || (c.height !== -1 && tip + 1 >= c.height + COINBASE_MATURITY));
  }

  private assertRunning(): void {
    if (this.stopped)
      throw new RegtestError("STOPPED", "the regtest node was stopped; start a new one with startRegtest()");
  }
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
