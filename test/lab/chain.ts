/*~ Reading the regtest chain in tests and the lab: who spent what. */
import type { Regtest } from "@ln/regtest";
import { Transaction } from "bitcoinjs-lib";

/** The display txid of the transaction input `i` spends. */
export const spentTxid = (tx: Transaction, i: number): string => {
  const input = tx.ins[i];
  if (input === undefined) throw new Error(`no input ${i}`);
  return Buffer.from(input.hash).reverse().toString("hex");
};

/**
 * The confirmed transactions spending outputs of `txid`, found in the blocks from `fromHeight`
 * to the tip: each spending transaction once, with the vouts it spends.
 */
export async function confirmedSpenders(
  rpc: Regtest["rpc"],
  txid: string,
  fromHeight: number,
): Promise<{ tx: Transaction; vouts: number[]; height: number }[]> {
  const out: { tx: Transaction; vouts: number[]; height: number }[] = [];
  const tip = await rpc.getBlockCount();
  for (let h = Math.max(0, fromHeight); h <= tip; h++) {
    const block = await rpc.getBlock(await rpc.getBlockHash(h), 2);
    for (const t of typeof block === "object" && "tx" in block ? block.tx : []) {
      if (typeof t !== "object") continue;
      const tx = Transaction.fromHex(t.hex);
      const vouts = tx.ins.flatMap((input, i) => (spentTxid(tx, i) === txid ? [input.index] : []));
      if (vouts.length > 0) out.push({ tx, vouts, height: h });
    }
  }
  return out;
}

/** The height of the block holding `txid`, or undefined while unconfirmed. */
export async function confirmedAt(rpc: Regtest["rpc"], txid: string): Promise<number | undefined> {
  const raw = await rpc.getRawTransaction(txid, true).catch(() => undefined);
  if (typeof raw !== "object" || raw.blockhash === undefined) return undefined;
  return (await rpc.getBlockHeader(raw.blockhash)).height;
}
