import { describe, expect, it } from "vitest";
import {
  COMMANDS,
  DEFAULT_EXPIRY_BLOCKS,
  parseCommandLine,
  parsePeerAddress,
  type Command,
} from "../src/cli.js";
import { HASH, lnctl, NODE } from "./helpers.js";

const ok = (argv: string[]): Command => {
  const p = parseCommandLine(argv);
  if (!p.ok) throw new Error(`expected ${argv.join(" ")} to parse: ${p.message}`);
  return p.command;
};

describe("parseCommandLine: valid command lines", () => {
  it("parses every command", () => {
    expect(ok(["info"])).toEqual({ name: "info" });
    expect(ok(["connect", `${NODE}@10.0.0.1:9735`])).toEqual({
      name: "connect",
      nodeId: NODE,
      host: "10.0.0.1",
      port: 9735,
    });
    expect(ok(["open", NODE.toUpperCase().replace("0X", "0x"), "1_000_000"])).toEqual({
      name: "open",
      nodeId: NODE,
      fundingSat: 1_000_000n,
    });
    expect(ok(["channels"])).toEqual({ name: "channels" });
    expect(ok(["channel", "abc-1"])).toEqual({ name: "channel", id: "abc-1" });
    expect(ok(["close", "abc"])).toEqual({ name: "close", id: "abc" });
    expect(ok(["force-close", "abc"])).toEqual({ name: "force-close", id: "abc" });
    expect(ok(["fee", "abc", "2500"])).toEqual({ name: "fee", id: "abc", feeRate: 2500 });
    expect(ok(["invoice", "99999999999999999999", "--description", "coffee"])).toEqual({
      name: "invoice",
      amountMsat: 99_999_999_999_999_999_999n,
      description: "coffee",
    });
    expect(ok(["invoice", "5"])).toEqual({ name: "invoice", amountMsat: 5n, description: undefined });
    expect(ok(["invoice", "0", "--expiry", "600"])).toEqual({
      name: "invoice",
      amountMsat: 0n,
      description: undefined,
      expirySeconds: 600,
    });
    expect(ok(["decode", "lnbcrt1xyz"])).toEqual({ name: "decode", invoice: "lnbcrt1xyz" });
    expect(ok(["pay", "ch", HASH.toUpperCase(), "1000"])).toEqual({
      name: "pay",
      channelId: "ch",
      rHash: HASH,
      amountMsat: 1000n,
      expiry: { kind: "relative", blocks: DEFAULT_EXPIRY_BLOCKS },
      idempotencyKey: undefined,
    });
    expect(
      ok(["pay", "ch", HASH, "1000", "--expiry-blocks", "40", "--idempotency-key", "k-1"]),
    ).toMatchObject({
      expiry: { kind: "relative", blocks: 40 },
      idempotencyKey: "k-1",
    });
    expect(ok(["pay", "ch", HASH, "1000", "--expiry-height=900"])).toMatchObject({
      expiry: { kind: "height", height: 900 },
    });
    expect(ok(["payments"])).toEqual({ name: "payments", limit: undefined });
    expect(ok(["payments", "--limit", "5"])).toEqual({ name: "payments", limit: 5 });
    expect(ok(["payment", "p:1"])).toEqual({ name: "payment", id: "p:1" });
    expect(ok(["wallet", "address"])).toEqual({ name: "wallet address" });
    expect(ok(["wallet", "balance"])).toEqual({ name: "wallet balance" });
    expect(ok(["wallet", "withdraw", "bcrt1qxyzxyzxyzxyzxyz", "5000"])).toEqual({
      name: "wallet withdraw",
      address: "bcrt1qxyzxyzxyzxyzxyz",
      amountSat: 5000n,
      idempotencyKey: undefined,
    });
    expect(ok(["wallet", "withdraw", "bcrt1qxyzxyzxyzxyzxyz", "5000", "--idempotency-key", "w-1"])).toEqual({
      name: "wallet withdraw",
      address: "bcrt1qxyzxyzxyzxyzxyz",
      amountSat: 5000n,
      idempotencyKey: "w-1",
    });
    expect(ok(["token", "list"])).toEqual({ name: "token list" });
    const id = "0b9c4c39-6b0e-4f3e-9a43-5d0d2b7a9f10";
    expect(ok(["token", "revoke", id])).toEqual({ name: "token revoke", target: { id } });
    expect(ok(["token", "revoke", id.toUpperCase()])).toEqual({ name: "token revoke", target: { id } });
    expect(ok(["token", "revoke", "shop frontend"])).toEqual({
      name: "token revoke",
      target: { label: "shop frontend" },
    });
    expect(ok(["help"])).toEqual({ name: "help", topic: undefined });
    expect(ok(["help", "pay"])).toEqual({ name: "help", topic: "pay" });
    expect(ok(["pay", "--help"])).toEqual({ name: "help", topic: "pay" });
    expect(ok(["-h"])).toEqual({ name: "help", topic: undefined });
  });

  it("takes global options anywhere, and -- ends options", () => {
    const p = parseCommandLine([
      "--json",
      "channel",
      "--url",
      "http://x:1",
      "c1",
      "--token=t",
      "--config",
      "/c",
    ]);
    expect(p).toEqual({
      ok: true,
      globals: { url: "http://x:1", token: "t", config: "/c", json: true },
      command: { name: "channel", id: "c1" },
    });
    expect(ok(["invoice", "5", "--description=-x"])).toMatchObject({ description: "-x" });
    expect(ok(["channel", "--", "--json"])).toEqual({ name: "channel", id: "--json" });
  });

  it("keeps amounts exact past 2^53", () => {
    expect(ok(["open", NODE, "9007199254740993"])).toMatchObject({ fundingSat: 9007199254740993n });
  });

  it("parses peer addresses, IPv6 in brackets", () => {
    expect(parsePeerAddress(`${NODE}@[::1]:9735`)).toEqual({ nodeId: NODE, host: "::1", port: 9735 });
    expect(parsePeerAddress(`${NODE}@node.example.com:1`)).toEqual({
      nodeId: NODE,
      host: "node.example.com",
      port: 1,
    });
  });
});

/** Every usage error: exit 2, the message, and the usage of that command on stderr. */
const USAGE_ERRORS: Array<[argv: string[], message: RegExp, topic: string | undefined]> = [
  [[], /no command given/, undefined],
  [["frobnicate"], /unknown command "frobnicate"/, undefined],
  [["help", "frobnicate"], /unknown command "frobnicate"/, "help"],
  [["help", "pay", "x"], /unexpected argument "x"/, "help"],
  [["info", "extra"], /info: unexpected argument "extra"/, "info"],
  [["info", "--bogus"], /Unknown option '--bogus'/, "info"],
  [["info", "--url"], /--url/, "info"],
  [["channels", "x"], /unexpected argument/, "channels"],
  [["connect"], /missing <nodeId@host:port>/, "connect"],
  [["connect", "10.0.0.1:9735"], /expected <nodeId>@<host>:<port>/, "connect"],
  [["connect", "02ab@10.0.0.1:9735"], /node id must be a compressed public key/, "connect"],
  [["connect", `${NODE}@10.0.0.1`], /missing :<port>/, "connect"],
  [["connect", `${NODE}@10.0.0.1:0`], /port must be between 1 and 65535/, "connect"],
  [["connect", `${NODE}@10.0.0.1:70000`], /port must be between 1 and 65535/, "connect"],
  [["connect", `${NODE}@10.0.0.1:x`], /port must be a whole number/, "connect"],
  [["connect", `${NODE}@:9735`], /bad host/, "connect"],
  [["connect", `${NODE}@::1:9735`], /put an IPv6 host in brackets/, "connect"],
  [["open", NODE], /missing <sat>/, "open"],
  [["open", NODE, "1.5"], /must be a whole number/, "open"],
  [["open", NODE, "-5"], /Unknown option '-5'|must be a whole number/, "open"],
  [["open", NODE, "0"], /must be above 0/, "open"],
  [["open", NODE, "123456789012345678901"], /at most 20/, "open"],
  [["open", "04" + "ab".repeat(32), "5"], /node id/, "open"],
  [["open", NODE, "5", "--description", "x"], /open does not take --description/, "open"],
  [["channel"], /missing <id>/, "channel"],
  [["channel", "a/b"], /channel id must be/, "channel"],
  [["close"], /missing <id>/, "close"],
  [["force-close", "a", "b"], /unexpected argument "b"/, "force-close"],
  [["fee", "a"], /missing <satPerKb>/, "fee"],
  [["fee", "a", "0"], /between 1 and 1000000000/, "fee"],
  [["fee", "a", "1e3"], /whole number/, "fee"],
  [["invoice"], /missing <msat>/, "invoice"],
  [["invoice", "abc"], /whole number/, "invoice"],
  [["invoice", "5", "--description", "x".repeat(641)], /at most 640 characters/, "invoice"],
  [["invoice", "5", "--limit", "3"], /invoice does not take --limit/, "invoice"],
  [["invoice", "5", "--expiry", "0"], /between 1 and 31536000/, "invoice"],
  [["decode"], /missing <bolt11>/, "decode"],
  [["decode", "a", "b"], /unexpected argument "b"/, "decode"],
  [["decode", "a", "--expiry", "5"], /decode does not take --expiry/, "decode"],
  [["pay", "ch", HASH], /missing <msat>/, "pay"],
  [["pay", "ch", "abcd", "5"], /payment hash must be 64 hex/, "pay"],
  [["pay", "ch", HASH, "0"], /must be above 0/, "pay"],
  [["pay", "c h", HASH, "5"], /channel id must be/, "pay"],
  [["pay", "ch", HASH, "5", "--expiry-blocks", "1", "--expiry-height", "9"], /not both/, "pay"],
  [["pay", "ch", HASH, "5", "--expiry-blocks", "0"], /--expiry-blocks must be between/, "pay"],
  [["pay", "ch", HASH, "5", "--expiry-height", "500000000"], /--expiry-height must be between/, "pay"],
  [["pay", "ch", HASH, "5", "--idempotency-key", "has space"], /--idempotency-key must be/, "pay"],
  [["pay", "ch", HASH, "5", "--idempotency-key", "k".repeat(256)], /--idempotency-key must be/, "pay"],
  [["payments", "--limit", "0"], /--limit must be between 1 and 1000/, "payments"],
  [["payments", "--limit", "1001"], /--limit must be between 1 and 1000/, "payments"],
  [["payments", "x"], /unexpected argument/, "payments"],
  [["payment"], /missing <id>/, "payment"],
  [["payment", "a b"], /payment id must be/, "payment"],
  [["wallet"], /missing address, balance or withdraw/, "wallet"],
  [["wallet", "send"], /unknown subcommand "send"/, "wallet"],
  [["wallet", "balance", "x"], /unexpected argument/, "wallet"],
  [["wallet", "withdraw", "bcrt1qxyzxyzxyzxyzxyz"], /missing <sat>/, "wallet"],
  [["wallet", "withdraw", "short", "5"], /not a bitcoin address/, "wallet"],
  [["wallet", "withdraw", "bcrt1qxyzxyzxyzxyzxyz", "0"], /must be above 0/, "wallet"],
  [
    ["wallet", "withdraw", "bcrt1qxyzxyzxyzxyzxyz", "5", "--idempotency-key", "a b"],
    /--idempotency-key must be/,
    "wallet",
  ],
  [["wallet", "address", "--idempotency-key", "k"], /does not take --idempotency-key/, "wallet"],
  [["token"], /missing list or revoke/, "token"],
  [["token", "drop", "x"], /unknown subcommand "drop"/, "token"],
  [["token", "revoke"], /missing <id\|label>/, "token"],
  [["token", "list", "x"], /unexpected argument/, "token"],
  [["info", "--idempotency-key", "k"], /info does not take --idempotency-key/, "info"],
];

describe("usage errors", () => {
  it.each(USAGE_ERRORS)("%j → exit 2 with %s", async (argv, message, topic) => {
    const p = parseCommandLine(argv);
    expect(p.ok).toBe(false);
    if (!p.ok) {
      expect(p.message).toMatch(message);
      expect(p.topic).toBe(topic);
    }
    const r = await lnctl(argv, { LNCTL_URL: "http://127.0.0.1:1", LNCTL_TOKEN: "t" });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(message);
    const spec = topic === undefined ? undefined : COMMANDS[topic];
    if (spec) expect(r.stderr).toContain(`usage: ${spec.usage}`);
    else expect(r.stderr).toContain("usage: lnctl <command>");
  });

  it("help prints to stdout and exits 0, for every command", async () => {
    for (const topic of Object.keys(COMMANDS)) {
      const r = await lnctl(["help", topic]);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`usage: ${COMMANDS[topic]?.usage}`);
      expect(r.stdout).toContain("Exit codes");
    }
    const all = await lnctl(["help"]);
    for (const topic of Object.keys(COMMANDS)) expect(all.stdout).toContain(`  ${topic} `);
  });
});
