import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  deriveSecret,
  emptyShachainStore,
  generateFromSeed,
  insertSecret,
  ShachainError,
  type ShachainStore,
} from "@ln/shachain";

// The official BOLT #3 appendix D vectors, one test per entry.
interface Vectors {
  generation_tests: { name: string; seed: string; I: number; output: string }[];
  storage_tests: {
    name: string;
    inserts: { I: number; secret: string; output: "OK" | "ERROR" }[];
    expected_final: "OK" | "ERROR";
  }[];
}
const vectors = JSON.parse(
  readFileSync(new URL("../../../../shared/vectors/bolt03-shachain.json", import.meta.url), "utf8"),
) as Vectors;

describe("generate_from_seed (BOLT #3 appendix D)", () => {
  it.each(vectors.generation_tests.map((t) => [t.name, t] as const))("%s", (_name, t) => {
    expect(generateFromSeed(Buffer.from(t.seed, "hex"), BigInt(t.I)).toString("hex")).toBe(t.output);
  });
});

describe("insert_secret (BOLT #3 appendix D)", () => {
  it("has every storage test", () => {
    expect(vectors.storage_tests.length).toBe(9);
  });
  it.each(vectors.storage_tests.map((t) => [t.name, t] as const))("%s", (_name, t) => {
    let store: ShachainStore = emptyShachainStore();
    const accepted: { I: number; secret: string }[] = [];
    let failed = false;
    for (const step of t.inserts) {
      let outcome: "OK" | "ERROR";
      try {
        store = insertSecret(store, BigInt(step.I), Buffer.from(step.secret, "hex"));
        accepted.push(step);
        outcome = "OK";
      } catch (e) {
        expect(e).toBeInstanceOf(ShachainError);
        expect((e as ShachainError).code).toBe("SECRET_MISMATCH");
        outcome = "ERROR";
        failed = true;
      }
      expect(outcome, `insert of index ${step.I}`).toBe(step.output);
      if (failed) break;
    }
    expect(failed ? "ERROR" : "OK").toBe(t.expected_final);
    // Every secret the store accepted can still be derived from it.
    for (const a of accepted) expect(deriveSecret(store, BigInt(a.I))?.toString("hex")).toBe(a.secret);
  });
});
