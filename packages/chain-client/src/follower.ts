import { BlockFollowerError, RpcTransportError } from "./errors.js";
import type { BlockVerbose2 } from "./rpc.js";

export interface BlockRef {
  readonly height: number;
  readonly hash: string;
}

/**
 * The last block the consumer has fully handled, plus the recent blocks below it (ascending, the
 * cursor itself last) so a reorg can be walked back to the fork point.
 */
export interface Cursor extends BlockRef {
  readonly recent?: readonly BlockRef[];
}

export interface CursorStore {
  load(): Promise<Cursor | undefined>;
  save(cursor: Cursor): Promise<void>;
}

export class MemoryCursorStore implements CursorStore {
  private cursor: Cursor | undefined;
  constructor(initial?: Cursor) {
    this.cursor = initial;
  }
  load(): Promise<Cursor | undefined> {
    return Promise.resolve(this.cursor);
  }
  save(cursor: Cursor): Promise<void> {
    this.cursor = { height: cursor.height, hash: cursor.hash, recent: [...(cursor.recent ?? [])] };
    return Promise.resolve();
  }
}

export type FollowerEvent =
  | {
      readonly type: "connected";
      readonly height: number;
      readonly hash: string;
      readonly block: BlockVerbose2;
    }
  | { readonly type: "disconnected"; readonly height: number; readonly hash: string };

export interface FollowerProgress {
  readonly height: number;
  readonly tip: number;
}

/** The RPC calls the follower needs: a BitcoinRpc, or a fake in tests. */
export interface FollowerRpc {
  getBlockCount(): Promise<number>;
  getBlockHash(height: number): Promise<string>;
  getBlock(hash: string, verbosity: 2): Promise<BlockVerbose2>;
}

export interface BlockFollowerOptions {
  readonly rpc: FollowerRpc;
  /** Awaited for each event, in order. A throw stops the follower (HANDLER_FAILED). */
  readonly onEvent: (event: FollowerEvent) => Promise<void>;
  readonly store?: CursorStore;
  /**
   * Without a stored cursor: the first height to deliver. Default: the current tip (nothing
   * already mined is delivered, only blocks after it).
   */
  readonly startHeight?: number;
  /** Poll interval for start(). Default 1000 ms. */
  readonly intervalMs?: number;
  /** How many recent blocks are remembered for reorg handling. Default 100. */
  readonly maxRecent?: number;
  /** Called every `progressEvery` blocks during a catch-up longer than that, and at its end. */
  readonly onProgress?: (p: FollowerProgress) => void;
  /** Default 100. */
  readonly progressEvery?: number;
  /**
   * Transport failures (node down, timeout) do not stop the polling loop of start(); they are
   * reported here and the next poll tries again.
   */
  readonly onPollError?: (e: RpcTransportError) => void;
}

interface State {
  /** Ascending; the last entry is the cursor. Empty: nothing below startHeight is known. */
  recent: BlockRef[];
  /** Height of the next block to connect when `recent` is empty. */
  base: number;
  /** recent[0] is only the block below startHeight, never delivered. */
  anchored: boolean;
}

/**
 * Polls a node and delivers connected/disconnected events. The cursor is saved after each handled
 * event, so a crash re-delivers the last event rather than skipping one.
 */
export class BlockFollower {
  private readonly rpc: FollowerRpc;
  private readonly store: CursorStore;
  private readonly intervalMs: number;
  private readonly maxRecent: number;
  private readonly progressEvery: number;
  private state: State | undefined;
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private pass: Promise<void> = Promise.resolve();
  private failed: Error | undefined;

  constructor(private readonly opts: BlockFollowerOptions) {
    this.rpc = opts.rpc;
    this.store = opts.store ?? new MemoryCursorStore();
    this.intervalMs = opts.intervalMs ?? 1000;
    this.maxRecent = Math.max(2, opts.maxRecent ?? 100);
    this.progressEvery = Math.max(1, opts.progressEvery ?? 100);
  }

  /** The last handled block, or undefined before the first pass. */
  get cursor(): BlockRef | undefined {
    return this.state?.recent.at(-1);
  }

  /**
   * Polls until stop(). The promise resolves after stop() and rejects with the error that stopped
   * the follower (a BlockFollowerError, or an RpcError from the node); await it or attach a catch.
   */
  start(): Promise<void> {
    if (this.loop !== undefined) return this.loop;
    this.running = true;
    this.loop = this.run();
    return this.loop;
  }

  /** Stops polling and waits for the pass in progress to finish handling its current event. */
  async stop(): Promise<void> {
    this.running = false;
    this.wake?.();
    try {
      await this.loop;
    } catch {
      // The error was reported through start()'s promise.
    } finally {
      this.loop = undefined;
    }
  }

  /** One poll pass: follow the node to its current tip. Rejects instead of stopping. */
  syncOnce(): Promise<void> {
    const next = this.pass.then(() => this.syncPass());
    this.pass = next.catch(() => undefined);
    return next;
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        await this.syncOnce();
      } catch (e) {
        if (e instanceof RpcTransportError) {
          this.opts.onPollError?.(e);
        } else {
          this.running = false;
          throw e;
        }
      }
      if (!this.running) break;
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, this.intervalMs);
        this.wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.wake = undefined;
    }
  }

  private async load(): Promise<State> {
    if (this.state !== undefined) return this.state;
    const saved = await this.store.load();
    if (saved !== undefined) {
      const recent = [...(saved.recent ?? [])].filter((r) => r.height < saved.height);
      recent.push({ height: saved.height, hash: saved.hash });
      this.state = { recent, base: saved.height + 1, anchored: false };
    } else if (this.opts.startHeight === undefined) {
      const tip = await this.rpc.getBlockCount();
      const hash = await this.rpc.getBlockHash(tip);
      this.state = { recent: [{ height: tip, hash }], base: tip + 1, anchored: false };
      await this.persist(this.state);
    } else {
      const start = this.opts.startHeight;
      if (!Number.isInteger(start) || start < 0)
        throw new BlockFollowerError(
          "BAD_CURSOR",
          `startHeight must be a non-negative integer, got ${start}`,
        );
      const recent = start > 0 ? [{ height: start - 1, hash: await this.rpc.getBlockHash(start - 1) }] : [];
      this.state = { recent, base: start, anchored: recent.length > 0 };
    }
    return this.state;
  }

  private async syncPass(): Promise<void> {
    if (this.failed !== undefined) throw this.failed;
    const st = await this.load();
    for (;;) {
      const tip = await this.rpc.getBlockCount();
      await this.unwindReorg(st, tip);
      const first = nextHeight(st);
      const longCatchUp = tip - first + 1 > this.progressEvery;
      let restart = false;
      for (let h = first; h <= tip; h++) {
        if (!this.running && this.loop !== undefined) return;
        const hash = await this.rpc.getBlockHash(h);
        const block = await this.rpc.getBlock(hash, 2);
        const prev = st.recent.at(-1);
        if (prev !== undefined && block.previousblockhash !== prev.hash) {
          restart = true; // the node reorged while we were catching up
          break;
        }
        await this.emit({ type: "connected", height: h, hash, block });
        if (st.anchored) {
          st.recent = [];
          st.anchored = false;
        }
        st.recent.push({ height: h, hash });
        if (st.recent.length > this.maxRecent) st.recent.splice(0, st.recent.length - this.maxRecent);
        await this.persist(st);
        if (longCatchUp && ((h - first + 1) % this.progressEvery === 0 || h === tip)) {
          this.opts.onProgress?.({ height: h, tip });
        }
      }
      if (!restart) break;
    }
  }

  /** Disconnects our blocks from the top down while the node's chain disagrees with them. */
  private async unwindReorg(st: State, tip: number): Promise<void> {
    for (;;) {
      const top = st.recent.at(-1);
      if (top === undefined) return;
      const nodeHash = top.height <= tip ? await this.rpc.getBlockHash(top.height) : undefined;
      if (nodeHash === top.hash) return;
      if (st.anchored) {
        // The block below startHeight, never delivered, left the chain: nothing to undo.
        st.recent = [];
        st.anchored = false;
        continue;
      }
      const below = st.recent.at(-2) ?? (await this.parentOf(top));
      await this.emit({ type: "disconnected", height: top.height, hash: top.hash });
      st.recent.pop();
      if (st.recent.length === 0) st.recent.push(below);
      await this.persist(st);
    }
  }

  /** The parent of a block beyond our window, from the node (nodes keep stale blocks). */
  private async parentOf(top: BlockRef): Promise<BlockRef> {
    let prev: string | undefined;
    try {
      prev = (await this.rpc.getBlock(top.hash, 2)).previousblockhash;
    } catch (e) {
      if (e instanceof RpcTransportError) throw e;
      prev = undefined;
    }
    if (prev === undefined)
      throw this.fail(
        new BlockFollowerError(
          "REORG_TOO_DEEP",
          `reorg deeper than the ${this.maxRecent} remembered blocks: block ${top.hash} at height ${top.height} left the chain and the node no longer knows its parent; restart from an older height with a fresh cursor`,
        ),
      );
    return { height: top.height - 1, hash: prev };
  }

  private async emit(event: FollowerEvent): Promise<void> {
    try {
      await this.opts.onEvent(event);
    } catch (e) {
      throw this.fail(
        new BlockFollowerError(
          "HANDLER_FAILED",
          `the block handler failed on ${event.type} ${event.hash} at height ${event.height}: ${e instanceof Error ? e.message : String(e)}; the follower stopped and the cursor still points before this event, so a restart re-delivers it`,
          { cause: e },
        ),
      );
    }
  }

  private fail(e: BlockFollowerError): BlockFollowerError {
    this.failed = e;
    this.running = false;
    return e;
  }

  private async persist(st: State): Promise<void> {
    const top = st.recent.at(-1);
    if (top === undefined) return;
    await this.store.save({ height: top.height, hash: top.hash, recent: st.recent.slice(0, -1) });
  }
}

function nextHeight(st: State): number {
  const top = st.recent.at(-1);
  return top === undefined ? st.base : top.height + 1;
}
