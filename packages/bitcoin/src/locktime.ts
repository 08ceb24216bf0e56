/**
 * The draft's `locktime`: a delay or an expiry, in blocks or in seconds (DESIGN.md 9.7).
 * Plain data, so channel state serialises losslessly.
 */
export type Locktime = { readonly blocks: number } | { readonly seconds: number };

export const isBlocks = (l: Locktime): l is { readonly blocks: number } => "blocks" in l;
