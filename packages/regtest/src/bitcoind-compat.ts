// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="./bcoin.d.ts" />
import bcoin, { type BlockTemplate, type FullNode, type MempoolEntry, type TX } from "bcoin";

/** Test controls of the compat layer (mutable; read on every call). */
export interface CompatControls {
  /** sat/kvB answered by estimatesmartfee; undefined = bcoin's own estimate. */
  feeEstimate: number | undefined;
  /** sat/kvB below which mined blocks leave mempool txs out (and their descendants); 0 = off. */
  minMiningFeeRate: number;
}

/**
 * bcoin 1.0.2's RPC differs from bitcoind where our client and tests care:
 *  - sendrawtransaction relays without reporting validation failures (it always answers the txid);
 *  - getblock takes (hash, verbose: bool, details: bool) and its decoded txs carry no `hex`.
 *  - the mempool rejects every double spend (no BIP125 replacement);
 *  - estimatesmartfee answers `{ fee, blocks }` from its own estimator (nothing on regtest).
 * These replacements make the in-process node answer like bitcoind, and add the test controls
 * (fixed fee estimate, miner fee floor) that the returned object holds.
 */
export function installBitcoindCompat(node: FullNode): CompatControls {
  const calls = node.rpc.calls;
  const rpc = node.rpc;
  const controls: CompatControls = { feeEstimate: undefined, minMiningFeeRate: 0 };

  // bcoin otherwise refuses version-1 txs that signal RBF ('replace-by-fee'); replacement itself
  // is submitTx's.
  node.mempool.options.replaceByFee = true;

  const estimatesmartfee = calls.estimatesmartfee;
  if (estimatesmartfee === undefined) throw new Error("bcoin RPC has no estimatesmartfee to wrap");
  calls.estimatesmartfee = async (params: unknown[], help?: boolean): Promise<unknown> => {
    const rate = controls.feeEstimate;
    const blocks = params[0];
    if (rate === undefined || help === true || params.length !== 1 || typeof blocks !== "number")
      return estimatesmartfee.call(rpc, params, help);
    // bitcoind: feerate in BTC/kvB.
    return { feerate: rate / 1e8, blocks };
  };

  const assemble = node.miner.assemble.bind(node.miner);
  node.miner.assemble = (attempt: BlockTemplate): void => {
    assemble(attempt);
    if (controls.minMiningFeeRate > 0) holdBackBelow(attempt, controls.minMiningFeeRate);
  };

  calls.sendrawtransaction = async (params: unknown[]): Promise<unknown> => {
    const hex = params[0];
    if (typeof hex !== "string" || !/^(?:[0-9a-fA-F]{2})+$/.test(hex))
      throw rpcError(-22, "TX decode failed");
    let tx: TX;
    try {
      tx = bcoin.TX.fromRaw(hex, "hex");
    } catch {
      throw rpcError(-22, "TX decode failed");
    }
    await submitTx(node, tx);
    return tx.txid();
  };

  const getblock = calls.getblock;
  if (getblock === undefined) throw new Error("bcoin RPC has no getblock to wrap");
  calls.getblock = async (params: unknown[], help?: boolean): Promise<unknown> => {
    const [hash, verbosityParam] = params;
    const verbosity =
      verbosityParam === undefined || verbosityParam === true
        ? 1
        : verbosityParam === false
          ? 0
          : verbosityParam;
    if (verbosity !== 0 && verbosity !== 1 && verbosity !== 2)
      throw rpcError(-8, "Verbosity must be in range from 0 to 2");
    if (verbosity === 0) return getblock.call(rpc, [hash, false], help);
    const json = await getblock.call(rpc, [hash, true, verbosity === 2], help);
    if (verbosity === 1) return json;
    const raw = await getblock.call(rpc, [hash, false], help);
    if (typeof raw !== "string" || !isRecord(json) || !Array.isArray(json.tx)) return json;
    const block = bcoin.Block.fromRaw(raw, "hex");
    const txs: unknown[] = json.tx;
    return {
      ...json,
      tx: txs.map((t, i) => {
        const btx = block.txs[i];
        return isRecord(t) && btx !== undefined ? { ...t, hex: btx.toRaw().toString("hex") } : t;
      }),
    };
  };
  return controls;
}

/**
 * Removes from a block template (after bcoin's miner filled it) every tx whose own fee rate
 * (fee * 1000 / vsize) is below `floor` sat/kvB, and every tx spending an output of a removed one,
 * then fixes the template's totals and rebuilds its coinbase (its value is subsidy + attempt.fees)
 * and merkle tree. The removed txs stay in the mempool.
 */
function holdBackBelow(attempt: BlockTemplate, floor: number): void {
  const dropped = new Set<string>();
  const kept = [];
  // bcoin's miner adds a tx only after all its in-mempool parents, so one pass suffices.
  for (const item of attempt.items) {
    const tx = item.tx;
    const below = item.fee * 1000 < floor * tx.getVirtualSize();
    if (below || tx.inputs.some(({ prevout }) => dropped.has(prevout.hash))) {
      dropped.add(item.hash);
      attempt.fees -= item.fee;
      attempt.weight -= tx.getWeight();
      attempt.sigops -= item.sigops;
    } else {
      kept.push(item);
    }
  }
  if (dropped.size === 0) return;
  attempt.items = kept;
  attempt.refresh();
}

/** bitcoind's default -minrelaytxfee and -incrementalrelayfee, in sat per 1000 vbytes. */
export const MIN_RELAY_FEE_PER_KVB = 1000;
/** BIP125 rule 5: a replacement may evict at most this many transactions. */
export const MAX_REPLACEMENT_EVICTIONS = 100;
/** An input with nSequence below this signals BIP125 replaceability. */
const RBF_SEQUENCE_BOUND = 0xfffffffe;

/**
 * Accepts a transaction into the mempool or throws a bitcoind-style RPC error:
 * -26 with the reject reason (e.g. "non-BIP68-final", "non-final", "mandatory-script-verify-flag",
 * "txn-mempool-conflict", "insufficient fee"), -25 "bad-txns-inputs-missingorspent", -27 when its
 * outputs are already confirmed.
 *
 * bcoin 1.0.2 rejects any double spend of a mempool input ("bad-txns-inputs-spent"); this adds
 * BIP125 replacement in front of it (see replaceInMempool).
 */
export async function submitTx(node: FullNode, tx: TX): Promise<void> {
  const mempool = node.mempool;
  // The mempool's own lock (bcoin's addTX takes the same one around _addTX): checks, evictions
  // and the insertion happen without another mempool or chain update in between.
  const unlock = await mempool.locker.lock(tx.hash("hex"));
  try {
    if (mempool.hasEntry(tx.hash("hex"))) return; // bitcoind answers the txid again
    const conflicts = directConflicts(node, tx);
    if (conflicts.length > 0) await replaceInMempool(node, tx, conflicts);
    else await addToMempool(node, tx);
  } finally {
    unlock();
  }
}

/** bcoin's insertion (without its lock: the caller holds it), errors mapped to bitcoind's. */
async function addToMempool(node: FullNode, tx: TX): Promise<void> {
  let missing: unknown[] | null | undefined;
  try {
    missing = await node.mempool._addTX(tx);
  } catch (e) {
    // Also when the same tx waits on the lock (bcoin counts it as known); that call adds it.
    if (isVerifyError(e) && e.reason === "txn-already-in-mempool") return;
    throw mapVerifyError(e);
  }
  if (missing !== null && missing !== undefined && missing.length > 0) {
    node.mempool.removeOrphan(tx.hash("hex"));
    throw rpcError(-25, "bad-txns-inputs-missingorspent");
  }
}

function mapVerifyError(e: unknown): unknown {
  if (!isVerifyError(e)) return e;
  if (e.reason === "txn-already-known") return rpcError(-27, "Transaction outputs already in utxo set");
  return rpcError(-26, e.reason);
}

/** The mempool entries spending one of tx's inputs (each once). */
function directConflicts(node: FullNode, tx: TX): MempoolEntry[] {
  const out = new Map<string, MempoolEntry>();
  for (const { prevout } of tx.inputs) {
    const spender = node.mempool.getSpent(prevout.hash, prevout.index);
    if (spender !== undefined && spender !== null) out.set(spender.tx.hash("hex"), spender);
  }
  return [...out.values()];
}

/** BIP125 rule 1 without inheritance: some input of the tx itself has nSequence < 0xfffffffe. */
function signalsReplaceability(tx: TX): boolean {
  return tx.inputs.some((input) => input.sequence < RBF_SEQUENCE_BOUND);
}

/**
 * BIP125 replacement of `conflicts` (the mempool txs spending an input of `tx`) by `tx`:
 *  1. every direct conflict signals replaceability itself (an input nSequence < 0xfffffffe).
 *     Inherited signalling (only an unconfirmed ancestor signals) is ignored: such a conflict is
 *     not replaceable, which is also what Bitcoin Core does (it never implemented inheritance);
 *  2. no new unconfirmed inputs ("replacement-adds-unconfirmed");
 *  3. and 4. fee >= the fees of everything evicted (conflicts and their mempool descendants) +
 *     MIN_RELAY_FEE_PER_KVB for the new tx's size ("insufficient fee");
 *  5. at most MAX_REPLACEMENT_EVICTIONS evictions ("too many potential replacements");
 *  6. a higher fee rate than each direct conflict ("insufficient fee").
 * The new tx is fully validated (scripts, locks, ...) before anything is evicted; should bcoin
 * still refuse it after the evictions, the evicted txs are put back.
 */
async function replaceInMempool(node: FullNode, tx: TX, conflicts: MempoolEntry[]): Promise<void> {
  const mempool = node.mempool;
  for (const c of conflicts) {
    if (!signalsReplaceability(c.tx)) throw rpcError(-26, "txn-mempool-conflict");
  }

  // Conflicts first, then their descendants (parents before children along each path).
  const evicted = new Map<string, MempoolEntry>();
  for (const c of conflicts) evicted.set(c.tx.hash("hex"), c);
  for (const c of conflicts) {
    for (const d of mempool.getDescendants(c)) evicted.set(d.tx.hash("hex"), d);
  }
  if (evicted.size > MAX_REPLACEMENT_EVICTIONS) throw rpcError(-26, "too many potential replacements");

  const conflictParents = new Set<string>();
  for (const c of conflicts) for (const { prevout } of c.tx.inputs) conflictParents.add(prevout.hash);
  for (const { prevout } of tx.inputs) {
    if (evicted.has(prevout.hash)) throw rpcError(-26, "bad-txns-spends-conflicting-tx");
    if (mempool.hasEntry(prevout.hash) && !conflictParents.has(prevout.hash))
      throw rpcError(-26, "replacement-adds-unconfirmed");
  }

  const view = await mempool.getCoinView(tx);
  if (!tx.hasCoins(view)) throw rpcError(-25, "bad-txns-inputs-missingorspent");
  const entry = bcoin.MempoolEntry.fromTX(tx, view, node.chain.height);
  // entry.size is bcoin's vsize (sigops-adjusted like bitcoind's).
  for (const c of conflicts) {
    // Rule 6, cross-multiplied: fee / size > c.fee / c.size.
    if (entry.fee * c.size <= c.fee * entry.size) throw rpcError(-26, "insufficient fee");
  }
  let evictedFees = 0;
  for (const e of evicted.values()) evictedFees += e.fee;
  const relayFee = Math.floor((MIN_RELAY_FEE_PER_KVB * entry.size) / 1000);
  if (entry.fee < evictedFees + relayFee) throw rpcError(-26, "insufficient fee");

  try {
    await mempool.verify(entry, view);
  } catch (e) {
    throw mapVerifyError(e);
  }

  // Leaves first, so bcoin's evictEntry updates the remaining ancestors' descendant fees/sizes.
  const order = [...evicted.values()];
  for (const e of [...order].reverse()) {
    if (mempool.hasEntry(e.tx.hash("hex"))) mempool.evictEntry(e);
  }
  try {
    await addToMempool(node, tx);
  } catch (e) {
    // Put the originals back (a child re-added before its parent waits as an orphan and is
    // resolved when the parent comes back).
    for (const old of order) {
      try {
        await mempool._addTX(old.tx);
      } catch {
        // It was valid a moment ago; nothing better to do than to keep going.
      }
    }
    throw e;
  }
}

/** The shape bweb maps to a JSON-RPC error with this code. */
export function rpcError(code: number, message: string): Error {
  return Object.assign(new Error(message), { type: "RPCError", code });
}

function isVerifyError(e: unknown): e is Error & { reason: string } {
  return (
    e instanceof Error &&
    "type" in e &&
    e.type === "VerifyError" &&
    "reason" in e &&
    typeof e.reason === "string"
  );
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
