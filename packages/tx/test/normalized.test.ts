import { txidToInternal } from "@ln/bitcoin";
import { normalizedTxid, normalizedTxidOfHexInto, normalizedTxidOfRaw, TxParseError } from "@ln/tx";
import { Transaction } from "bitcoinjs-lib";
import fc from "fast-check";
import { describe, expect, it } from "vitest";

/** What the tower computed before: parse with bitcoinjs, clone, empty, re-serialize. */
const viaBitcoinjs = (raw: Uint8Array): Buffer =>
  txidToInternal(normalizedTxid(Transaction.fromBuffer(Buffer.from(raw))));

/** Lengths around each varint width: 1 byte, 0xfd (3 bytes), 0xfe (5 bytes). */
const scriptLength = fc.oneof(
  { weight: 8, arbitrary: fc.integer({ min: 0, max: 120 }) },
  { weight: 2, arbitrary: fc.integer({ min: 250, max: 600 }) },
  { weight: 1, arbitrary: fc.constantFrom(0xfc, 0xfd, 0xffff) },
  { weight: 1, arbitrary: fc.integer({ min: 0x10000, max: 0x10100 }) },
);
/** A script of that length; the content is a cheap pattern (large ones are common here). */
const script = fc.tuple(scriptLength, fc.integer({ min: 0, max: 255 })).map(([len, seed]) => {
  const b = Buffer.allocUnsafe(len);
  for (let i = 0; i < len; i++) b[i] = (seed + i * 7) & 0xff;
  return b;
});
const witness = fc.array(
  fc.oneof(
    script,
    fc.uint8Array({ maxLength: 80 }).map((b) => Buffer.from(b)),
  ),
  { maxLength: 4 },
);
const input = fc.record({
  hash: fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b)),
  index: fc.nat({ max: 0xffffffff }),
  sequence: fc.nat({ max: 0xffffffff }),
  script,
  witness,
});
const output = fc.record({
  value: fc.bigInt({ min: 0n, max: 2_100_000_000_000_000n }),
  script,
});
/** Counts around the 0xfd varint too, now and then. */
const many = <T>(a: fc.Arbitrary<T>) =>
  fc.oneof(
    { weight: 10, arbitrary: fc.array(a, { minLength: 1, maxLength: 5 }) },
    { weight: 1, arbitrary: fc.array(a, { minLength: 252, maxLength: 256 }) },
  );
const smallScripts = <T extends { script: Buffer }>(xs: T[]): T[] =>
  xs.map((x) => (x.script.length > 64 ? { ...x, script: x.script.subarray(0, 64) } : x));

const transaction = fc
  .record({
    version: fc.nat({ max: 0xffffffff }),
    locktime: fc.nat({ max: 0xffffffff }),
    ins: many(input),
    outs: many(output),
    segwit: fc.boolean(),
  })
  .map(({ version, locktime, ins, outs, segwit }) => {
    // Hundreds of inputs or outputs each with a 64 kB script would only slow the run down.
    if (ins.length > 5) ins = smallScripts(ins);
    if (outs.length > 5) outs = smallScripts(outs);
    const tx = new Transaction();
    tx.version = version;
    tx.locktime = locktime;
    for (const i of ins) tx.addInput(i.hash, i.index, i.sequence, i.script);
    for (const o of outs) tx.addOutput(o.script, o.value);
    if (segwit) ins.forEach((i, k) => tx.setWitness(k, i.witness));
    return tx;
  });

/** Either the right 32 bytes or TxParseError, never anything else. */
function outcome(raw: Uint8Array): Buffer | TxParseError {
  try {
    const h = normalizedTxidOfRaw(raw);
    expect(h.length).toBe(32);
    return h;
  } catch (e) {
    if (!(e instanceof TxParseError)) throw e;
    return e;
  }
}

describe("normalizedTxidOfRaw", () => {
  it("equals normalizedTxid for random legacy and segwit transactions", () => {
    fc.assert(
      fc.property(transaction, (tx) => {
        const raw = Buffer.from(tx.toBuffer());
        expect(normalizedTxidOfRaw(raw).equals(txidToInternal(normalizedTxid(tx)))).toBe(true);
      }),
      { numRuns: 300 },
    );
  });

  it("ignores scriptSigs and witnesses, and nothing else", () => {
    fc.assert(
      fc.property(transaction, script, (tx, other) => {
        const before = normalizedTxidOfRaw(tx.toBuffer());
        const resigned = tx.clone();
        resigned.setInputScript(0, other);
        resigned.setWitness(0, [other]);
        expect(normalizedTxidOfRaw(resigned.toBuffer()).equals(before)).toBe(true);
        const moved = tx.clone();
        moved.locktime = (tx.locktime + 1) >>> 0;
        expect(normalizedTxidOfRaw(moved.toBuffer()).equals(before)).toBe(false);
      }),
      { numRuns: 100 },
    );
  });

  it("a witness-free transaction normalizes to its txid once its scriptSigs are empty", () => {
    const tx = new Transaction();
    tx.addInput(Buffer.alloc(32, 1), 0);
    tx.addOutput(Buffer.from([0x51]), 1000n);
    expect(normalizedTxidOfRaw(tx.toBuffer()).equals(tx.getHash())).toBe(true);
  });

  it("refuses truncated input, bad varints and trailing bytes with TxParseError", () => {
    const tx = new Transaction();
    tx.addInput(Buffer.alloc(32, 1), 0, 0xffffffff, Buffer.alloc(300, 2));
    tx.addOutput(Buffer.from([0x51]), 1000n);
    const raw = Buffer.from(tx.toBuffer());
    for (let cut = 0; cut < raw.length; cut++)
      expect(() => normalizedTxidOfRaw(raw.subarray(0, cut))).toThrow(TxParseError);
    expect(() => normalizedTxidOfRaw(Buffer.concat([raw, Buffer.of(0)]))).toThrow(/after the transaction/);
    // The scriptSig length 300 as 0xfd 2c 01; written as 0xfe 2c 01 00 00 it is non-canonical.
    const at = 4 + 1 + 36;
    expect(raw.subarray(at, at + 3)).toEqual(Buffer.from([0xfd, 0x2c, 0x01]));
    const padded = Buffer.concat([
      raw.subarray(0, at),
      Buffer.from([0xfe, 0x2c, 0x01, 0, 0]),
      raw.subarray(at + 3),
    ]);
    expect(() => normalizedTxidOfRaw(padded)).toThrow(/non-canonical/);
    const small = Buffer.from(raw);
    small[at + 1] = 0x10;
    small[at + 2] = 0x00; // 0xfd 0x0010: 16 in three bytes
    expect(() => normalizedTxidOfRaw(small)).toThrow(/non-canonical/);
    // A segwit marker with only empty witnesses (bitcoinjs and Core refuse it too).
    const marked = Buffer.concat([
      raw.subarray(0, 4),
      Buffer.of(0, 1),
      raw.subarray(4, -4),
      Buffer.of(0),
      raw.subarray(-4),
    ]);
    expect(() => normalizedTxidOfRaw(marked)).toThrow(/without witness/);
    expect(() => normalizedTxidOfRaw(new Uint8Array(0))).toThrow(TxParseError);
  });

  it("on any bytes: TxParseError or the value bitcoinjs gives (fuzz)", () => {
    const mutated = transaction.chain((tx) => {
      const raw = Buffer.from(tx.toBuffer());
      return fc.oneof(
        fc.integer({ min: 0, max: raw.length - 1 }).map((cut) => raw.subarray(0, cut)),
        fc.uint8Array({ minLength: 1, maxLength: 16 }).map((extra) => Buffer.concat([raw, extra])),
        fc
          .array(fc.tuple(fc.nat({ max: raw.length - 1 }), fc.integer({ min: 0, max: 255 })), {
            minLength: 1,
            maxLength: 4,
          })
          .map((flips) => {
            const b = Buffer.from(raw);
            for (const [at, v] of flips) b[at] = v;
            return b;
          }),
      );
    });
    const bytes = fc.oneof(
      mutated,
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
    );
    fc.assert(
      fc.property(bytes, (raw) => {
        const got = outcome(raw);
        let parsed: Transaction | undefined;
        try {
          parsed = Transaction.fromBuffer(raw);
        } catch {
          parsed = undefined;
        }
        if (got instanceof Buffer) {
          // Whatever it reads, bitcoinjs reads the same way.
          expect(parsed).toBeDefined();
          expect(got.equals(viaBitcoinjs(raw))).toBe(true);
        } else if (parsed !== undefined && Buffer.from(parsed.toBuffer()).equals(raw)) {
          // Refused, yet bitcoinjs reads it canonically: must not happen.
          expect.unreachable(`refused a canonical transaction: ${(got as Error).message}`);
        }
      }),
      { numRuns: 1000 },
    );
  });
});

describe("normalizedTxidOfHexInto", () => {
  /** Into a fresh buffer at an offset, the bytes around it checked untouched; or the error. */
  function intoOutcome(hex: string, at: number): Buffer | TxParseError {
    const out = Buffer.alloc(at + 32 + 8, 0x5c);
    try {
      normalizedTxidOfHexInto(hex, out, at);
    } catch (e) {
      if (!(e instanceof TxParseError)) throw e;
      expect(out.every((x) => x === 0x5c)).toBe(true);
      return e;
    }
    expect(out.subarray(0, at).every((x) => x === 0x5c)).toBe(true);
    expect(out.subarray(at + 32).every((x) => x === 0x5c)).toBe(true);
    return out.subarray(at, at + 32);
  }

  it("equals normalizedTxid (bitcoinjs) for random legacy and segwit transactions, one after another", () => {
    fc.assert(
      fc.property(fc.array(transaction, { minLength: 1, maxLength: 4 }), fc.nat({ max: 64 }), (txs, at) => {
        // Several in a row: the reused decoding buffer must carry nothing from one to the next.
        for (const tx of txs) {
          const got = intoOutcome(tx.toHex(), at);
          expect(got).toBeInstanceOf(Buffer);
          expect((got as Buffer).equals(txidToInternal(normalizedTxid(tx)))).toBe(true);
        }
      }),
      { numRuns: 200 },
    );
  });

  it("a transaction larger than the reused buffer (64 kB) too", () => {
    const tx = new Transaction();
    tx.addInput(Buffer.alloc(32, 1), 0, 0xffffffff, Buffer.alloc(70_000, 2));
    tx.addOutput(Buffer.alloc(10_000, 0x51), 1000n);
    tx.setWitness(0, [Buffer.alloc(5000, 3)]);
    expect(tx.toBuffer().length).toBeGreaterThan(65536);
    expect((intoOutcome(tx.toHex(), 0) as Buffer).equals(txidToInternal(normalizedTxid(tx)))).toBe(true);
  });

  it('on any string: what normalizedTxidOfRaw gives for Buffer.from(hex, "hex"), or the same refusal', () => {
    const hexChars = fc.constantFrom(..."0123456789abcdefABCDEF");
    const strings = fc.oneof(
      // A transaction's hex with a character replaced, cut short or padded.
      transaction.chain((tx) => {
        const hex = tx.toHex();
        return fc.oneof(
          fc.nat({ max: hex.length - 1 }).map((cut) => hex.slice(0, cut)),
          fc
            .tuple(fc.nat({ max: hex.length - 1 }), fc.constantFrom("g", "z", " ", "-", "\u00e9", "F", "0"))
            .map(([at, c]) => hex.slice(0, at) + c + hex.slice(at + 1)),
          fc.string({ unit: hexChars, maxLength: 5 }).map((extra) => hex + extra),
        );
      }),
      fc.string({ unit: hexChars, maxLength: 200 }),
      fc.string({ maxLength: 50 }),
    );
    fc.assert(
      fc.property(strings, (hex) => {
        const got = intoOutcome(hex, 3);
        const want = outcome(Buffer.from(hex, "hex"));
        if (want instanceof Buffer) expect(got instanceof Buffer && got.equals(want)).toBe(true);
        else expect(got).toBeInstanceOf(TxParseError);
      }),
      { numRuns: 1000 },
    );
  });
});
