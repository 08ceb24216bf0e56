import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import {
  HandshakeError,
  InitiatorHandshake,
  localStaticEcdh,
  MessageCipher,
  ResponderHandshake,
  type HandshakeResult,
} from "@ln/transport";

// The official BOLT #8 appendix A vectors (see /work/shared/vectors/README.md).
type Trace =
  | { op: "set"; values: Record<string, string> }
  | { op: "HKDF"; salt: string; ikm: string; result?: [string, string] }
  | { op: "encryptWithAD" | "decryptWithAD" | "encrypt" };
interface Act {
  act: "one" | "two" | "three";
  input?: string;
  trace: Trace[];
  output?: string;
  error?: string;
}
interface HandshakeTest {
  name: string;
  "rs.pub"?: string;
  "ls.priv": string;
  "ls.pub": string;
  "e.priv": string;
  "e.pub": string;
  expected: "success" | "error";
  error?: string;
  acts: Act[];
  final?: { trace: Trace[]; ck: string; sk: string; rk: string };
}
interface Vectors {
  initiator_tests: HandshakeTest[];
  responder_tests: HandshakeTest[];
  message_tests: {
    name: string;
    ck: string;
    sk: string;
    rk: string;
    message: string;
    outputs: { index: number; trace: Trace[]; output: string }[];
  }[];
}
const vectors = JSON.parse(
  readFileSync(new URL("../../../../shared/vectors/bolt08-transport.json", import.meta.url), "utf8"),
) as Vectors;

const hex = (s: string): Buffer => Buffer.from(s, "hex");

/** Records the handshake's trace hook, one list per act. */
class Recorder {
  events: [string, string][] = [];
  readonly hook = (name: string, value: Buffer): void => {
    this.events.push([name, value.toString("hex")]);
  };
  take(): [string, string][] {
    const out = this.events;
    this.events = [];
    return out;
  }
}

/** The act's `set` values in spec order; private keys are never traced, so they are left out. */
function expectedSets(act: Act): [string, string][] {
  const out: [string, string][] = [];
  for (const step of act.trace) {
    if (step.op !== "set") continue;
    for (const [k, v] of Object.entries(step.values)) if (k !== "e.priv") out.push([k, v]);
  }
  return out;
}

/** Checks the act's traced values and that the getters show its last h and ck. */
function checkAct(act: Act, rec: Recorder, hs: { handshakeHash: Buffer; chainingKey: Buffer }): void {
  const want = expectedSets(act);
  expect(rec.take()).toEqual(want);
  const lastH = want.filter(([k]) => k === "h").at(-1);
  const lastCk = want.filter(([k]) => k === "ck").at(-1);
  if (lastH) expect(hs.handshakeHash.toString("hex")).toBe(lastH[1]);
  if (lastCk) expect(hs.chainingKey.toString("hex")).toBe(lastCk[1]);
}

function checkFinal(t: HandshakeTest, r: HandshakeResult, hs: { handshakeHash: Buffer }): void {
  const final = t.final;
  if (!final) throw new Error("success vector without final keys");
  expect(r.chainingKey.toString("hex")).toBe(final.ck);
  expect(r.sendingKey.toString("hex")).toBe(final.sk);
  expect(r.receivingKey.toString("hex")).toBe(final.rk);
  expect(r.handshakeHash).toEqual(hs.handshakeHash);
}

async function codeOf(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof HandshakeError) return err.code;
    throw err;
  }
  throw new Error("expected a HandshakeError");
}

function actOf(t: HandshakeTest, name: Act["act"]): Act {
  const act = t.acts.find((a) => a.act === name);
  if (!act) throw new Error(`${t.name}: no act ${name}`);
  return act;
}

describe("BOLT #8 initiator vectors", () => {
  it("has every initiator test", () => {
    expect(vectors.initiator_tests.length).toBe(5);
  });
  it.each(vectors.initiator_tests.map((t) => [t.name, t] as const))("%s", async (_name, t) => {
    const rec = new Recorder();
    const hs = new InitiatorHandshake({
      localStatic: hex(t["ls.pub"]),
      staticEcdh: localStaticEcdh(hex(t["ls.priv"])),
      remoteStatic: hex(t["rs.pub"] ?? ""),
      ephemeralPriv: hex(t["e.priv"]),
      trace: rec.hook,
    });
    const one = actOf(t, "one");
    const two = actOf(t, "two");
    expect((await hs.actOne()).toString("hex")).toBe(one.output);
    if (t.expected === "success") checkAct(one, rec, hs);
    rec.take();
    const act2 = hex(two.input ?? "");
    if (t.expected === "error") {
      expect(await codeOf(hs.actTwoThenThree(act2))).toBe(t.error?.split(" ")[0]);
      expect(two.error).toBe(t.error);
      return;
    }
    const { act3, result } = await hs.actTwoThenThree(act2);
    // Act two and three run in one call, so split the trace at act three's first value.
    const events = rec.take();
    const nTwo = expectedSets(two).length;
    rec.events = events.slice(0, nTwo);
    expect(rec.take()).toEqual(expectedSets(two));
    rec.events = events.slice(nTwo);
    const three = actOf(t, "three");
    checkAct(three, rec, hs);
    expect(act3.toString("hex")).toBe(three.output);
    expect(result.remoteStatic.toString("hex")).toBe(t["rs.pub"]);
    checkFinal(t, result, hs);
  });
});

describe("BOLT #8 responder vectors", () => {
  it("has every responder test", () => {
    expect(vectors.responder_tests.length).toBe(10);
  });
  it.each(vectors.responder_tests.map((t) => [t.name, t] as const))("%s", async (_name, t) => {
    const rec = new Recorder();
    const hs = new ResponderHandshake({
      localStatic: hex(t["ls.pub"]),
      staticEcdh: localStaticEcdh(hex(t["ls.priv"])),
      ephemeralPriv: hex(t["e.priv"]),
      trace: rec.hook,
    });
    const one = actOf(t, "one");
    const act1 = hex(one.input ?? "");
    if (one.error !== undefined) {
      expect(await codeOf(hs.actOneThenTwo(act1))).toBe(one.error.split(" ")[0]);
      expect(one.error).toBe(t.error);
      return;
    }
    const act2 = await hs.actOneThenTwo(act1);
    const events = rec.take();
    const two = actOf(t, "two");
    expect(act2.toString("hex")).toBe(two.output);
    if (t.expected === "success") {
      // One call covers acts one and two; split the trace where act two's values start.
      const nOne = expectedSets(one).length;
      expect(events.slice(0, nOne)).toEqual(expectedSets(one));
      rec.events = events.slice(nOne);
      checkAct(two, rec, hs);
    }
    const three = actOf(t, "three");
    const act3 = hex(three.input ?? "");
    if (three.error !== undefined) {
      expect(await codeOf(hs.actThree(act3))).toBe(three.error.split(" ")[0]);
      expect(three.error).toBe(t.error);
      // Error traces are not checked: the "bad rs" one does not even match its input (README).
      return;
    }
    const result = await hs.actThree(act3);
    checkAct(three, rec, hs);
    expect(result.remoteStatic.toString("hex")).toBe(expectedSets(three).find(([k]) => k === "rs")?.[1]);
    checkFinal(t, result, hs);
  });
});

describe("BOLT #8 message vectors", () => {
  const m = vectors.message_tests[0];
  if (!m) throw new Error("no message test");
  const message = hex(m.message);
  const wanted = new Map(m.outputs.map((o) => [o.index, o.output]));
  const last = Math.max(...wanted.keys());
  // Encrypt once, then let each index check its own output.
  const enc = new MessageCipher(hex(m.sk), hex(m.ck));
  const outputs: Buffer[] = [];
  for (let i = 0; i <= last; i++) outputs.push(enc.encryptMessage(message));
  const dec = new MessageCipher(hex(m.sk), hex(m.ck));
  const decrypted: Buffer[] = outputs.map((out) => {
    const len = dec.decryptLength(out.subarray(0, 18));
    expect(out.length).toBe(18 + len + 16);
    return dec.decryptBody(out.subarray(18));
  });

  it("is the message 'hello' and has outputs 0, 1, 500, 501, 1000, 1001", () => {
    expect(message.toString()).toBe("hello");
    expect([...wanted.keys()]).toEqual([0, 1, 500, 501, 1000, 1001]);
  });
  it.each(m.outputs.map((o) => [o.index, o] as const))("output %i", (index, o) => {
    expect(outputs[index]?.toString("hex")).toBe(o.output);
    expect(decrypted[index]?.toString()).toBe("hello");
  });
  it("rotates keys as the trace's HKDF lines say", () => {
    // Each rotation line is salt=ck, ikm=k, result=[ck', k']: after 500 messages (1000 nonces) a cipher
    // on (k, ck) must encrypt exactly like a fresh cipher on (k', ck').
    const lines = m.outputs.flatMap((o) => o.trace).filter((s) => s.op === "HKDF" && s.result !== undefined);
    expect(lines.length).toBe(4);
    for (const step of lines) {
      if (step.op !== "HKDF" || !step.result) continue;
      const before = new MessageCipher(hex(step.ikm), hex(step.salt));
      for (let i = 0; i < 500; i++) before.encryptMessage(message);
      expect(before.nonce).toBe(0);
      const after = new MessageCipher(hex(step.result[1]), hex(step.result[0]));
      expect(before.encryptMessage(message)).toEqual(after.encryptMessage(message));
    }
  });
});

describe("handshake state guard", () => {
  const t = vectors.responder_tests[0];
  const i = vectors.initiator_tests[0];
  if (!t || !i) throw new Error("no success vectors");
  const responder = (): ResponderHandshake =>
    new ResponderHandshake({
      localStatic: hex(t["ls.pub"]),
      staticEcdh: localStaticEcdh(hex(t["ls.priv"])),
      ephemeralPriv: hex(t["e.priv"]),
    });
  const initiator = (): InitiatorHandshake =>
    new InitiatorHandshake({
      localStatic: hex(i["ls.pub"]),
      staticEcdh: localStaticEcdh(hex(i["ls.priv"])),
      remoteStatic: hex(i["rs.pub"] ?? ""),
      ephemeralPriv: hex(i["e.priv"]),
    });
  const act1 = hex(actOf(t, "one").input ?? "");
  const act2 = hex(actOf(i, "two").input ?? "");
  const act3 = hex(actOf(t, "three").input ?? "");

  it("rejects acts out of order with a plain Error", async () => {
    await expect(responder().actThree(act3)).rejects.toThrow(/out of order/);
    await expect(initiator().actTwoThenThree(act2)).rejects.toThrow(/out of order/);
    const r = responder();
    await r.actOneThenTwo(act1);
    await expect(r.actOneThenTwo(act1)).rejects.toThrow(/out of order/);
    await r.actThree(act3);
    await expect(r.actThree(act3)).rejects.toThrow(/out of order/);
    const n = initiator();
    await n.actOne();
    await expect(n.actOne()).rejects.toThrow(/out of order/);
  });
  it("refuses to continue after a failed act", async () => {
    const r = responder();
    await expect(r.actOneThenTwo(act1.subarray(1))).rejects.toBeInstanceOf(HandshakeError);
    await expect(r.actOneThenTwo(act1)).rejects.toThrow(/out of order/);
  });
  it("refuses a concurrent call while an act awaits the signer", async () => {
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const ecdh = localStaticEcdh(hex(t["ls.priv"]));
    const r = new ResponderHandshake({
      localStatic: hex(t["ls.pub"]),
      staticEcdh: async (k) => {
        await gate;
        return ecdh(k);
      },
      ephemeralPriv: hex(t["e.priv"]),
    });
    const first = r.actOneThenTwo(act1);
    await expect(r.actOneThenTwo(act1)).rejects.toThrow(/out of order/);
    release();
    expect((await first).toString("hex")).toBe(actOf(t, "two").output);
  });
  it("gives plain-word error messages", async () => {
    const bad = Buffer.from(act2);
    bad[0] = 1;
    const n = initiator();
    await n.actOne();
    await expect(n.actTwoThenThree(bad)).rejects.toThrow("act two: version byte 1, expected 0");
  });
});
