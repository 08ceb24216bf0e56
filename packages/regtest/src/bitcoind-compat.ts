// eslint-disable-next-line @typescript-eslint/triple-slash-reference
/// <reference path="./bcoin.d.ts" />
import bcoin, { type FullNode, type TX } from "bcoin";

/**
 * bcoin 1.0.2's RPC differs from bitcoind where our client and tests care:
 *  - sendrawtransaction relays without reporting validation failures (it always answers the txid);
 *  - getblock takes (hash, verbose: bool, details: bool) and its decoded txs carry no `hex`.
 * These replacements make the in-process node answer like bitcoind.
 */
export function installBitcoindCompat(node: FullNode): void {
  const calls = node.rpc.calls;
  const rpc = node.rpc;

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
}

/**
 * Accepts a transaction into the mempool or throws a bitcoind-style RPC error:
 * -26 with the reject reason (e.g. "non-BIP68-final", "non-final", "mandatory-script-verify-flag"),
 * -25 "bad-txns-inputs-missingorspent", -27 when its outputs are already confirmed.
 */
export async function submitTx(node: FullNode, tx: TX): Promise<void> {
  let missing: unknown[] | null | undefined;
  try {
    missing = await node.mempool.addTX(tx);
  } catch (e) {
    if (isVerifyError(e)) {
      if (e.reason === "txn-already-in-mempool") return;
      if (e.reason === "txn-already-known") throw rpcError(-27, "Transaction outputs already in utxo set");
      throw rpcError(-26, e.reason);
    }
    throw e;
  }
  if (missing !== null && missing !== undefined && missing.length > 0) {
    node.mempool.removeOrphan(tx.hash("hex"));
    throw rpcError(-25, "bad-txns-inputs-missingorspent");
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
