import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import {
  BitcoinRpc,
  BlockFollower,
  BlockFollowerError,
  MemoryCursorStore,
  RpcError,
  RpcTransportError,
  type FollowerEvent,
  type BlockVerbose2,
  type FollowerRpc,
} from "@ln/chain-client";

interface Seen {
  method: string;
  params: unknown[];
  auth: string | undefined;
  body: Record<string, unknown>;
}

type Handler = (req: Seen, res: ServerResponse) => void;

let server: Server | undefined;

afterEach(async () => {
  const s = server;
  server = undefined;
  if (s !== undefined) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
});

async function fakeNode(handler: Handler): Promise<{ url: string; seen: Seen[] }> {
  const seen: Seen[] = [];
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString("utf8")));
    req.on("end", () => {
      const body = JSON.parse(data) as Record<string, unknown>;
      const s: Seen = {
        method: String(body.method),
        params: Array.isArray(body.params) ? body.params : [],
        auth: req.headers.authorization,
        body,
      };
      seen.push(s);
      handler(s, res);
    });
  });
  await new Promise<void>((r) => server?.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, seen };
}

const reply = (res: ServerResponse, status: number, body: unknown): void => {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
};
const ok = (res: ServerResponse, result: unknown, id: unknown = 1): void =>
  reply(res, 200, { result, error: null, id });

const H = (n: number): string => n.toString(16).padStart(64, "0");

describe("BitcoinRpc", () => {
  it("sends a JSON-RPC 1.0 body with basic auth and parses the result", async () => {
    const node = await fakeNode((req, res) =>
      ok(res, { chain: "regtest", blocks: 7, headers: 7, bestblockhash: H(7) }, req.body.id),
    );
    const rpc = new BitcoinRpc({ url: node.url, user: "alice", password: "s3cret" });
    const info = await rpc.getBlockchainInfo();
    expect(info).toEqual({ chain: "regtest", blocks: 7, headers: 7, bestblockhash: H(7) });
    const [seen] = node.seen;
    expect(seen?.body.jsonrpc).toBe("1.0");
    expect(seen?.method).toBe("getblockchaininfo");
    expect(seen?.params).toEqual([]);
    expect(typeof seen?.body.id).toBe("number");
    expect(seen?.auth).toBe(`Basic ${Buffer.from("alice:s3cret").toString("base64")}`);
  });

  it("takes credentials from the URL but never shows them", async () => {
    const node = await fakeNode((_req, res) => reply(res, 401, ""));
    const url = node.url.replace("http://", "http://bob:hunter2@");
    const rpc = new BitcoinRpc({ url, retries: 0 });
    expect(rpc.url).toBe(node.url);
    const err = await rpc.getBlockCount().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcTransportError);
    expect((err as RpcTransportError).code).toBe("HTTP");
    expect((err as RpcTransportError).status).toBe(401);
    expect((err as Error).message).not.toContain("hunter2");
    expect(node.seen[0]?.auth).toBe(`Basic ${Buffer.from("bob:hunter2").toString("base64")}`);
  });

  it("maps a JSON-RPC error body (HTTP 500, as bitcoind sends it) to RpcError without retrying", async () => {
    const node = await fakeNode((req, res) =>
      reply(res, 500, {
        result: null,
        error: { code: -5, message: "No such mempool or blockchain transaction" },
        id: req.body.id,
      }),
    );
    const rpc = new BitcoinRpc({ url: node.url, retries: 3, retryDelayMs: 1 });
    const err = await rpc.getRawTransaction(H(1)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcError);
    expect((err as RpcError).code).toBe(-5);
    expect((err as RpcError).rpcMessage).toBe("No such mempool or blockchain transaction");
    expect(node.seen).toHaveLength(1);
  });

  it("retries an idempotent read after two 503s, then succeeds", async () => {
    let n = 0;
    const node = await fakeNode((req, res) =>
      ++n <= 2 ? reply(res, 503, "busy") : ok(res, 42, req.body.id),
    );
    const rpc = new BitcoinRpc({ url: node.url, retries: 3, retryDelayMs: 1 });
    expect(await rpc.getBlockCount()).toBe(42);
    expect(node.seen).toHaveLength(3);
  });

  it("gives up after `retries` extra attempts", async () => {
    const node = await fakeNode((_req, res) => reply(res, 502, "bad gateway"));
    const rpc = new BitcoinRpc({ url: node.url, retries: 2, retryDelayMs: 1 });
    const err = await rpc.getBlockHash(1).catch((e: unknown) => e);
    expect((err as RpcTransportError).code).toBe("HTTP");
    expect(node.seen).toHaveLength(3);
  });

  it("never retries generatetoaddress (each attempt would mine more); retries sendrawtransaction (idempotent)", async () => {
    const node = await fakeNode((_req, res) => reply(res, 503, "busy"));
    const rpc = new BitcoinRpc({ url: node.url, retries: 3, retryDelayMs: 1 });
    await rpc.generateToAddress(1, "bcrt1qxyz").catch(() => undefined);
    expect(node.seen).toHaveLength(1);
    const e1 = await rpc.sendRawTransaction("00").catch((e: unknown) => e);
    expect((e1 as RpcTransportError).code).toBe("HTTP");
    expect(node.seen).toHaveLength(5);
  });

  it("reports a timeout with the URL and what to check, and retries it for reads", async () => {
    const node = await fakeNode(() => {
      /* never answers */
    });
    const rpc = new BitcoinRpc({
      url: node.url,
      password: "pw-secret",
      timeoutMs: 50,
      retries: 1,
      retryDelayMs: 1,
    });
    const t0 = Date.now();
    const err = await rpc.getBestBlockHash().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcTransportError);
    expect((err as RpcTransportError).code).toBe("TIMEOUT");
    expect((err as Error).message).toContain(node.url);
    expect((err as Error).message).toContain("50 ms");
    expect((err as Error).message).not.toContain("pw-secret");
    expect(node.seen).toHaveLength(2);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it("reports a refused connection as NETWORK", async () => {
    const node = await fakeNode((_req, res) => ok(res, 1));
    const url = node.url;
    await new Promise<void>((r) => server?.close(() => r()));
    server = undefined;
    const rpc = new BitcoinRpc({ url, retries: 1, retryDelayMs: 1 });
    const err = await rpc.getBlockCount().catch((e: unknown) => e);
    expect((err as RpcTransportError).code).toBe("NETWORK");
  });

  it("rejects a malformed result as BAD_RESPONSE, not retried", async () => {
    const node = await fakeNode((req, res) => ok(res, { chain: 1 }, req.body.id));
    const rpc = new BitcoinRpc({ url: node.url, retries: 3, retryDelayMs: 1 });
    const err = await rpc.getBlockchainInfo().catch((e: unknown) => e);
    expect((err as RpcTransportError).code).toBe("BAD_RESPONSE");
    expect(node.seen).toHaveLength(1);
  });

  it("parses getblock verbosities and normalizes bcoin's estimatesmartfee", async () => {
    const header = { hash: H(2), height: 2, confirmations: 1, time: 1, previousblockhash: H(1) };
    const tx = { txid: H(9), hex: "0200", vout: [{ n: 0, value: 0.5, scriptPubKey: { hex: "0014" } }] };
    const node = await fakeNode((req, res) => {
      if (req.method === "getblock") {
        const v = req.params[1];
        return ok(res, v === 0 ? "00ff" : { ...header, tx: v === 2 ? [tx] : [H(9)] });
      }
      if (req.method === "estimatesmartfee")
        return ok(res, req.params[0] === 1 ? { fee: -1, blocks: 1 } : { fee: 0.0002, blocks: 6 });
      return ok(res, null);
    });
    const rpc = new BitcoinRpc({ url: node.url });
    expect(await rpc.getBlock(H(2), 0)).toBe("00ff");
    expect((await rpc.getBlock(H(2), 1)).tx).toEqual([H(9)]);
    const b2 = await rpc.getBlock(H(2), 2);
    expect(b2.tx[0]?.hex).toBe("0200");
    expect(b2.previousblockhash).toBe(H(1));
    expect(await rpc.estimateSmartFee(6)).toEqual({ feerate: 0.0002, blocks: 6 });
    const none = await rpc.estimateSmartFee(1);
    expect(none.feerate).toBeUndefined();
    expect(none.errors?.length).toBe(1);
  });
});

/** An in-memory chain for the follower: blocks[height] = hash; parents derived from order. */
class FakeChain implements FollowerRpc {
  blocks: string[] = [];
  private forks = 0;
  constructor(n: number) {
    this.extend(n);
  }
  extend(n: number): string[] {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const h = `${(this.forks + 1).toString(16).padStart(8, "0")}${this.blocks.length.toString(16).padStart(56, "0")}`;
      this.blocks.push(h);
      out.push(h);
    }
    return out;
  }
  reorg(depth: number, extra: number): string[] {
    this.blocks.splice(this.blocks.length - depth, depth);
    this.forks++;
    return this.extend(depth + extra);
  }
  getBlockCount(): Promise<number> {
    return Promise.resolve(this.blocks.length - 1);
  }
  getBlockHash(h: number): Promise<string> {
    const b = this.blocks[h];
    return b === undefined
      ? Promise.reject(new RpcError(-8, "Block height out of range", "getblockhash"))
      : Promise.resolve(b);
  }
  getBlock(hash: string): Promise<BlockVerbose2> {
    const height = this.blocks.indexOf(hash);
    if (height < 0) return Promise.reject(new RpcError(-5, "Block not found", "getblock"));
    const prev = this.blocks[height - 1];
    return Promise.resolve({
      hash,
      height,
      confirmations: 1,
      time: 0,
      tx: [],
      ...(prev !== undefined ? { previousblockhash: prev } : {}),
    });
  }
}

describe("BlockFollower", () => {
  const collect = (): { events: FollowerEvent[]; onEvent: (e: FollowerEvent) => Promise<void> } => {
    const events: FollowerEvent[] = [];
    return { events, onEvent: (e) => (events.push(e), Promise.resolve()) };
  };
  const brief = (e: FollowerEvent): string => `${e.type[0]}${e.height}`;

  it("delivers from startHeight, reports progress on a long catch-up, and handles a reorg", async () => {
    const chain = new FakeChain(250);
    const { events, onEvent } = collect();
    const progress: number[] = [];
    const f = new BlockFollower({
      rpc: chain,
      onEvent,
      startHeight: 10,
      progressEvery: 100,
      onProgress: (p) => progress.push(p.height),
    });
    await f.syncOnce();
    expect(events.map((e) => e.height)).toEqual(Array.from({ length: 240 }, (_, i) => i + 10));
    expect(progress).toEqual([109, 209, 249]);
    events.length = 0;
    chain.reorg(3, 1);
    await f.syncOnce();
    expect(events.map(brief)).toEqual(["d249", "d248", "d247", "c247", "c248", "c249", "c250"]);
  });

  it("stops on a handler error without advancing the cursor, and a restart re-delivers", async () => {
    const chain = new FakeChain(5);
    const store = new MemoryCursorStore();
    let fail = true;
    const seen: number[] = [];
    const onEvent = (e: FollowerEvent): Promise<void> => {
      if (e.height === 2 && fail) return Promise.reject(new Error("db down"));
      seen.push(e.height);
      return Promise.resolve();
    };
    const f = new BlockFollower({ rpc: chain, onEvent, store, startHeight: 0 });
    const err = await f.syncOnce().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BlockFollowerError);
    expect((err as BlockFollowerError).code).toBe("HANDLER_FAILED");
    expect((await store.load())?.height).toBe(1);
    // The failed follower stays failed.
    expect(await f.syncOnce().catch((e: unknown) => (e as BlockFollowerError).code)).toBe("HANDLER_FAILED");
    fail = false;
    await new BlockFollower({ rpc: chain, onEvent, store }).syncOnce();
    expect(seen).toEqual([0, 1, 2, 3, 4]);
  });

  it("start() rejects with the handler error", async () => {
    const chain = new FakeChain(3);
    const f = new BlockFollower({
      rpc: chain,
      startHeight: 0,
      intervalMs: 5,
      onEvent: () => Promise.reject(new Error("boom")),
    });
    const err = await f.start().catch((e: unknown) => e);
    expect((err as BlockFollowerError).code).toBe("HANDLER_FAILED");
  });

  it("fails with REORG_TOO_DEEP when the node no longer knows the parent beyond its window", async () => {
    const chain = new FakeChain(20);
    const { events, onEvent } = collect();
    const f = new BlockFollower({ rpc: chain, onEvent, startHeight: 0, maxRecent: 2 });
    await f.syncOnce();
    events.length = 0;
    // The fake chain forgets replaced blocks, so a walk beyond the window cannot be resolved.
    chain.reorg(4, 0);
    const err = await f.syncOnce().catch((e: unknown) => e);
    expect((err as BlockFollowerError).code).toBe("REORG_TOO_DEEP");
  });
});
