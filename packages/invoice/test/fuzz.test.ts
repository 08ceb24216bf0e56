import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeInvoice, InvoiceError } from "../src/index.js";
import { bech32Encode, bech32Split, CHARSET } from "./bech32.js";
import { fields, sign } from "./helpers.js";

/** decodeInvoice either decodes or throws InvoiceError: nothing else escapes. */
function onlyInvoiceError(s: string): void {
  try {
    decodeInvoice(s);
  } catch (e) {
    if (!(e instanceof InvoiceError)) throw e;
  }
}

const valid = sign(fields());
const { hrp, words } = bech32Split(valid);
const word = fc.integer({ min: 0, max: 31 });

describe("decodeInvoice fuzz", () => {
  it("random strings and random bech32 over ln prefixes", () => {
    fc.assert(fc.property(fc.string({ maxLength: 600 }), onlyInvoiceError), { numRuns: 300 });
    const prefix = fc.constantFrom("lnbcrt", "lntb", "lnbc", "lnbcrt10u", "lnbc0", "lnsb", "ln", "lnbc1p");
    fc.assert(
      fc.property(prefix, fc.array(word, { maxLength: 800 }), (p, ws) =>
        onlyInvoiceError(bech32Encode(p, ws)),
      ),
      { numRuns: 300 },
    );
    fc.assert(fc.property(fc.stringMatching(new RegExp(`^ln[${CHARSET}]{0,400}$`)), onlyInvoiceError), {
      numRuns: 200,
    });
  });

  it("mutated valid invoices, re-checksummed so the mutation reaches the parser", () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant("set" as const), at: fc.nat(words.length - 1), w: word }),
      fc.record({
        kind: fc.constant("insert" as const),
        at: fc.nat(words.length),
        ws: fc.array(word, { maxLength: 60 }),
      }),
      fc.record({
        kind: fc.constant("delete" as const),
        at: fc.nat(words.length - 1),
        n: fc.integer({ min: 1, max: 60 }),
      }),
    );
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (ms) => {
        const ws = [...words];
        for (const m of ms) {
          if (m.kind === "set") ws[m.at % Math.max(1, ws.length)] = m.w;
          else if (m.kind === "insert") ws.splice(m.at, 0, ...m.ws);
          else ws.splice(m.at, m.n);
        }
        onlyInvoiceError(bech32Encode(hrp, ws));
      }),
      { numRuns: Number(process.env["FUZZ_RUNS"] ?? 500) },
    );
  });

  // A change may also hide the n field (a changed length shifts the fields after it); then the
  // signature recovers some other key: the invoice is not ours any more, and nothing says it is.
  it("a changed word in the signed part never decodes as signed by our node", () => {
    fc.assert(
      fc.property(fc.nat(words.length - 105), word, (at, w) => {
        fc.pre(words[at] !== w);
        const ws = [...words];
        ws[at] = w;
        let payee: string | undefined;
        try {
          payee = decodeInvoice(bech32Encode(hrp, ws)).payee;
        } catch (e) {
          expect(e).toBeInstanceOf(InvoiceError);
        }
        expect(payee).not.toBe(fields().payee.toString("hex"));
      }),
      { numRuns: 200 },
    );
  });
});
