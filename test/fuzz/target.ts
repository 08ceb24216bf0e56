import type { Rng } from "./rng.js";

/** What one input did: accepted, or refused with a typed error (its label: class and code). */
export type Verdict = { accepted: true } | { accepted: false; rejection: string };
export const ACCEPTED: Verdict = { accepted: true };
export const rejected = (rejection: string): Verdict => ({ accepted: false, rejection });

/**
 * A property the fuzzer checks beyond "no crash" (a MUST of the draft, a well-formed state):
 * thrown when it fails, and never a typed rejection, so it always counts as a crash.
 */
export class PropertyFailure extends Error {
  override readonly name = "PropertyFailure";
}

export function check(ok: boolean, what: string): void {
  if (!ok) throw new PropertyFailure(what);
}

export interface Target {
  name: string;
  /** Seed inputs, every one VALID and built by the real encoders, so mutations reach deep code. */
  corpus: Buffer[];
  /** Field-level protobuf mutations apply to the input from this byte (undefined: bytes only). */
  protoFrom?: number;
  /** A fresh input (a random well-formed message); random bytes when absent. */
  generate?(rng: Rng): Buffer;
  /** Percent of the inputs that are fresh ones (default 5). */
  freshPercent?: number;
  /** Runs one input. Throws a typed rejection (see `typed`) or returns a verdict. */
  run(input: Buffer): Verdict | Promise<Verdict>;
  /** The label of a typed rejection (e.g. "WireError:TRUNCATED"), or undefined: a crash. */
  typed(e: unknown): string | undefined;
}

export interface TargetSpec {
  name: string;
  /** Share of the inputs: cheap decoders high, signature-heavy targets low. */
  weight: number;
  what: string;
  create(): Promise<Target>;
}

/** A typed-rejection classifier for error classes that carry a `code`. */
export function codedErrors(...classes: (abstract new (...args: never[]) => Error & { code: string })[]) {
  return (e: unknown): string | undefined => {
    for (const c of classes) if (e instanceof c) return `${e.name}:${e.code}`;
    return undefined;
  };
}
