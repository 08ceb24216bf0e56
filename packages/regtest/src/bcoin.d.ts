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

  export interface Mempool {
    /** Resolves to the missing parent hashes when the tx is an orphan. */
    addTX(tx: TX): Promise<unknown[] | null | undefined>;
    removeOrphan(hash: string): void;
  }

  export class FullNode {
    constructor(options: FullNodeOptions);
    readonly chain: Chain;
    readonly mempool: Mempool;
    readonly rpc: NodeRpc;
    readonly pool: { forceSync: () => void };
    readonly miner: { readonly options: { minWeight: number } };
    readonly http: { readonly http: { address(): AddressInfo | string | null; keepAliveTimeout: number } };
    open(): Promise<void>;
    close(): Promise<void>;
    getCoinsByAddress(addrs: readonly string[]): Promise<Coin[]>;
  }

  export class Coin {
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

  export class TX {
    static fromRaw(data: string, enc: "hex"): TX;
    readonly outputs: Output[];
    txid(): string;
    hash(enc: "hex"): string;
    toRaw(): Buffer;
  }

  export class MTX {
    addOutput(script: Address, value: number): Output;
    fund(
      coins: readonly Coin[],
      options: { changeAddress: string; rate: number; height: number },
    ): Promise<unknown>;
    sign(rings: readonly KeyRing[]): number;
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
    readonly Block: typeof Block;
    readonly Address: typeof Address;
    readonly KeyRing: typeof KeyRing;
    readonly Network: { get(type: "regtest"): NetworkInstance };
  };
  export default bcoin;
}
