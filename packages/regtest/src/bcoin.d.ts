// The small part of bcoin 1.0.2 (untyped CommonJS) that the harness uses. Hashes in bcoin 1.x
// are hex strings; `txid()`/`rhash()` give display order.
declare module "bcoin" {
  import type { AddressInfo } from "node:net";

  export interface FullNodeOptions {
    network: "regtest";
    memory: boolean;
    indexTX: boolean;
    indexAddress: boolean;
    workers: boolean;
    listen: boolean;
    httpHost: string;
    httpPort: number;
    apiKey: string;
    logLevel: "none" | "error" | "warning" | "info" | "debug";
    logConsole?: boolean;
    coinCache?: number;
  }

  export type RpcHandler = (this: unknown, params: unknown[], help?: boolean) => Promise<unknown>;

  export interface NodeRpc {
    calls: Record<string, RpcHandler | undefined>;
  }

  export interface ChainEntry {
    readonly height: number;
    rhash(): string;
  }

  export interface Chain {
    readonly height: number;
    readonly tip: ChainEntry;
  }

  /** Opaque: the coins a tx spends. */
  export interface CoinView {
    readonly __coinView: never;
  }

  export class MempoolEntry {
    static fromTX(tx: TX, view: CoinView, height: number): MempoolEntry;
    readonly tx: TX;
    /** Fee in satoshi. */
    readonly fee: number;
    /** Virtual size (sigops-adjusted). */
    readonly size: number;
  }

  export interface Mempool {
    /** Resolves to the missing parent hashes when the tx is an orphan. */
    addTX(tx: TX): Promise<unknown[] | null | undefined>;
    /** addTX without taking `locker`. */
    _addTX(tx: TX): Promise<unknown[] | null | undefined>;
    /** The chain's lock; addTX holds it while inserting. */
    readonly locker: { lock(name?: string): Promise<() => void> };
    readonly options: { replaceByFee: boolean; minRelay: number };
    removeOrphan(hash: string): void;
    hasEntry(hash: string): boolean;
    getEntry(hash: string): MempoolEntry | undefined;
    /** The entry spending this outpoint. */
    getSpent(hash: string, index: number): MempoolEntry | null | undefined;
    getDescendants(entry: MempoolEntry): MempoolEntry[];
    /** Removes the entry and (recursively) its spenders, updating its ancestors. */
    evictEntry(entry: MempoolEntry): void;
    getCoinView(tx: TX): Promise<CoinView>;
    /** Contextual checks (locks, standardness, fees, scripts); throws a VerifyError. */
    verify(entry: MempoolEntry, view: CoinView): Promise<void>;
  }

  export interface BlockEntry {
    readonly tx: TX;
    readonly hash: string;
    readonly fee: number;
    readonly sigops: number;
  }

  export interface BlockTemplate {
    items: BlockEntry[];
    fees: number;
    weight: number;
    sigops: number;
    /** Rebuilds the coinbase (value: subsidy + fees) and the merkle tree. */
    refresh(): void;
  }

  export interface Miner {
    readonly options: { minWeight: number };
    /** Fills a block template from the mempool (synchronous). */
    assemble(attempt: BlockTemplate): void;
  }

  export class FullNode {
    constructor(options: FullNodeOptions);
    readonly chain: Chain;
    readonly mempool: Mempool;
    readonly rpc: NodeRpc;
    readonly pool: { forceSync: () => void };
    readonly miner: Miner;
    readonly http: { readonly http: { address(): AddressInfo | string | null; keepAliveTimeout: number } };
    open(): Promise<void>;
    close(): Promise<void>;
    getCoinsByAddress(addrs: readonly string[]): Promise<Coin[]>;
  }

  export class Coin {
    static fromTX(tx: TX, index: number, height: number): Coin;
    readonly height: number;
    readonly value: number;
    readonly index: number;
    readonly coinbase: boolean;
    txid(): string;
  }

  export class Script {
    toRaw(): Buffer;
  }

  export class Output {
    readonly value: number;
    readonly script: Script;
    getAddress(): Address | null;
  }

  export interface Outpoint {
    /** Internal byte order, hex. */
    readonly hash: string;
    readonly index: number;
  }

  export interface Input {
    readonly prevout: Outpoint;
    sequence: number;
  }

  export class TX {
    static fromRaw(data: string, enc: "hex"): TX;
    readonly inputs: Input[];
    readonly outputs: Output[];
    txid(): string;
    hash(enc: "hex"): string;
    toRaw(): Buffer;
    getVirtualSize(): number;
    getWeight(): number;
    hasCoins(view: CoinView): boolean;
  }

  export class MTX {
    readonly inputs: Input[];
    addCoin(coin: Coin): Input;
    addOutput(script: Address, value: number): Output;
    fund(
      coins: readonly Coin[],
      options: { changeAddress: string; rate: number; height: number },
    ): Promise<unknown>;
    sign(rings: KeyRing | readonly KeyRing[]): number;
    toTX(): TX;
  }

  export class Block {
    static fromRaw(data: string, enc: "hex"): Block;
    readonly txs: TX[];
  }

  export class Address {
    static fromString(addr: string, network: "regtest"): Address;
    toString(network: "regtest"): string;
  }

  export class KeyRing {
    static generate(compressed: boolean): KeyRing;
    witness: boolean;
    getAddress(enc: "string", network: "regtest"): string;
  }

  export interface Deployment {
    window: number;
    threshold: number;
  }

  export interface NetworkInstance {
    readonly type: string;
    readonly addressPrefix: { bech32: string; pubkeyhash: number; scripthash: number };
    readonly deployments: { readonly csv: Deployment; readonly segwit: Deployment };
  }

  const bcoin: {
    readonly FullNode: typeof FullNode;
    readonly MTX: typeof MTX;
    readonly TX: typeof TX;
    readonly Coin: typeof Coin;
    readonly MempoolEntry: typeof MempoolEntry;
    readonly Block: typeof Block;
    readonly Address: typeof Address;
    readonly KeyRing: typeof KeyRing;
    readonly Network: { get(type: "regtest"): NetworkInstance };
  };
  export default bcoin;
}
