/** The chains an invoice can be for, and their BOLT #11 prefixes after "ln". */
export type InvoiceNetwork = "regtest" | "testnet" | "bitcoin";

export const NETWORKS: readonly InvoiceNetwork[] = ["regtest", "testnet", "bitcoin"];

/** bolt11's network objects (bech32 is the part after "ln"; the rest only matters for fallback addresses). */
export const BOLT11_NETWORK = {
  bitcoin: { bech32: "bc", pubKeyHash: 0x00, scriptHash: 0x05, validWitnessVersions: [0, 1] },
  testnet: { bech32: "tb", pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
  regtest: { bech32: "bcrt", pubKeyHash: 0x6f, scriptHash: 0xc4, validWitnessVersions: [0, 1] },
} as const satisfies Record<
  InvoiceNetwork,
  { bech32: string; pubKeyHash: number; scriptHash: number; validWitnessVersions: readonly number[] }
>;

export function networkOfBech32(prefix: string): InvoiceNetwork | undefined {
  return NETWORKS.find((n) => BOLT11_NETWORK[n].bech32 === prefix);
}
