import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { createServer, type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
// The real control API, in-process. Imported by relative path from this test only: the lnctl
// package itself depends on nothing but node built-ins.
import { ApiStore, buildApi, type ApiOptions } from "../../../services/channel/src/api/index.js";
import { MemoryBackend } from "../../../services/channel/test/memory-backend.js";
import { EXIT } from "../src/cli.js";
import type { ChannelDetail, ChannelList, Payment, PaymentList } from "../src/client.js";
import { HASH, lnctl, NODE, type Ran } from "./helpers.js";
import { testDatabaseUrl } from "@ln/testkit";

type Pool = ApiOptions["pool"];
// pg is the channel service's dependency, not lnctl's: load it from there.
const requireFromChannel = createRequire(new URL("../../../services/channel/package.json", import.meta.url));
const pg = requireFromChannel("pg") as {
  Pool: new (cfg: { connectionString: string; max: number }) => Pool;
};

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `lnctl_test_${randomBytes(6).toString("hex")}`;

let app: Awaited<ReturnType<typeof buildApi>>;
let backend: MemoryBackend;
let url = "";
const tokens = { admin: "", readonly: "", invoice: "", address: "" };

beforeAll(async () => {
  backend = new MemoryBackend({ pool });
  app = await buildApi({ pool, schema, backend });
  const store = new ApiStore(pool, schema);
  for (const s of ["admin", "readonly", "invoice", "address"] as const)
    tokens[s] = (await store.createToken(`lnctl ${s}`, [s])).token;
  await app.listen({ host: "127.0.0.1", port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

/** lnctl against the live API with the admin token from the environment. */
const cli = (argv: string[], token = tokens.admin): Promise<Ran> =>
  lnctl(argv, { LNCTL_URL: url, LNCTL_TOKEN: token });
const okJson = async <T>(argv: string[]): Promise<T> => {
  const r = await cli([...argv, "--json"]);
  expect(r.stderr, argv.join(" ")).toBe("");
  expect(r.code, argv.join(" ")).toBe(EXIT.ok);
  return JSON.parse(r.stdout) as T;
};

describe("lnctl against the control API", () => {
  let channelId = "";

  it("info", async () => {
    const r = await cli(["info"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`node id:       ${backend.nodeId}\n`);
    expect(r.stdout).toContain("block height:  100\n");
    expect(await okJson(["info"])).toMatchObject({ network: "regtest", blockHeight: 100 });
  });

  it("connect, open, channels, channel", async () => {
    const c = await cli(["connect", `${NODE}@[::1]:9735`]);
    expect(c).toMatchObject({ code: 0, stderr: "" });
    expect(c.stdout).toContain("address:    [::1]:9735\n");
    expect(c.stdout).toContain("connected:  yes\n");

    const o = await cli(["open", NODE, "1000000"]);
    expect(o.code).toBe(0);
    expect(o.stdout).toContain("capacity:        1,000,000 sat\n");
    expect(o.stdout).toContain("local balance:   1,000,000,000 msat\n");
    const list = await okJson<ChannelList>(["channels"]);
    expect(list.channels).toHaveLength(1);
    channelId = list.channels[0]?.id ?? "";
    expect(o.stdout).toContain(`channel:         ${channelId}\n`);

    const t = await cli(["channels"]);
    expect(t.stdout.split("\n")[0]).toMatch(/^ID\s+SCID\s+PEER\s+PHASE/);
    expect(t.stdout).toContain(channelId);
    expect(t.stdout).toMatch(/normal\s+creator\s+1,000,000\s+1,000,000,000\s+0\n/);

    const d = await okJson<ChannelDetail>(["channel", channelId]);
    expect(d).toMatchObject({ id: channelId, peerNodeId: NODE, capacitySat: "1000000", htlcs: [] });
    expect((await cli(["channel", channelId])).stdout).toContain("no HTLCs");

    // Opening to a peer that is not connected: the API's error, exit 7 (retry once connected).
    const bad = await cli(["open", `03${"44".repeat(32)}`, "1000"]);
    expect(bad.code).toBe(EXIT.unavailable);
    expect(bad.stderr).toMatch(/^error: PEER_UNREACHABLE \(HTTP \d+\): .*\nrequest id: [\w-]+\n$/);
  });

  it("invoice", async () => {
    const r = await cli(["invoice", "123456789012345678", "--description", "coffee", "--expiry", "600"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("amount:        123,456,789,012,345,678 msat\n");
    expect(r.stdout).toContain("description:   coffee\n");
    // The string first, alone on its line; decoded here (no node), it says what was asked.
    const bolt11 = r.stdout.split("\n")[0] ?? "";
    expect(bolt11).toMatch(/^lnbcrt1234567890123456780p1/);
    const d = await lnctl(["decode", bolt11, "--json"], {});
    expect(d.code).toBe(0);
    const decoded = JSON.parse(d.stdout) as Record<string, unknown>;
    expect(decoded).toMatchObject({
      network: "regtest",
      amountMsat: "123456789012345678",
      description: "coffee",
      payee: backend.nodeId,
      minFinalCltvExpiryDelta: 18,
    });
    expect(Date.parse(String(decoded["expiresAt"])) - Date.parse(String(decoded["createdAt"]))).toBe(600_000);
    const human = await lnctl(["decode", bolt11], {});
    expect(human.stdout).toContain("description:                  coffee\n");
    expect(human.stdout).toContain(`payee:                        ${backend.nodeId}\n`);
    // A changed character: refused, with the reason.
    const bad = await lnctl(["decode", bolt11.slice(0, -1) + (bolt11.endsWith("q") ? "p" : "q")], {});
    expect(bad.code).toBe(EXIT.usage);
    expect(bad.stderr).toMatch(/^lnctl: not a valid invoice: MALFORMED: /);
    // Any amount.
    const any = await cli(["invoice", "0", "--json"]);
    expect(JSON.parse(any.stdout)).toMatchObject({ amountMsat: "0" });
    // An invoice token may create invoices.
    const j = await lnctl(["invoice", "5", "--json"], { LNCTL_URL: url, LNCTL_TOKEN: tokens.invoice });
    expect(JSON.parse(j.stdout)).toMatchObject({ amountMsat: "5", description: "" });
  });

  it("pay: a reused idempotency key pays once; the default key is printed for a retry", async () => {
    const before = backend.count("pay");
    const argv = ["pay", channelId, HASH, "250000", "--expiry-blocks", "40", "--idempotency-key", "op-key-1"];
    const first = await cli(argv);
    expect(first.code).toBe(0);
    expect(first.stdout).toContain("status:        succeeded\n");
    expect(first.stdout).toContain("expiry:        height 140\n"); // 100 from /v1/info + 40
    expect(first.stderr).toContain(
      `to retry this payment without paying twice: lnctl pay ${channelId} ${HASH} 250000 --expiry-height 140 --idempotency-key op-key-1\n`,
    );
    const again = await cli(argv);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain("this idempotency key was used before");
    // The retry command printed on stderr, with --json: the same payment, nothing new sent.
    const firstJson = await cli([...argv, "--json"]);
    const replay = await cli([
      "pay",
      channelId,
      HASH,
      "250000",
      "--expiry-height",
      "140",
      "--idempotency-key",
      "op-key-1",
      "--json",
    ]);
    expect(replay.code).toBe(0);
    expect(JSON.parse(replay.stdout)).toEqual(JSON.parse(firstJson.stdout));
    expect(backend.count("pay") - before).toBe(1);

    // The same key with different arguments is refused.
    const other = await cli([
      "pay",
      channelId,
      HASH,
      "1",
      "--expiry-height",
      "140",
      "--idempotency-key",
      "op-key-1",
    ]);
    expect(other.code).toBe(EXIT.api);
    expect(other.stderr).toMatch(/^error: IDEMPOTENCY_KEY_REUSED \(HTTP 422\)/m);
    expect(backend.count("pay") - before).toBe(1);

    // Without a key: a random UUID, printed to stderr, and the retry command replays it.
    const fresh = await cli(["pay", channelId, HASH, "1000", "--json"]);
    expect(fresh.code).toBe(0);
    const key = /^idempotency key: ([0-9a-f-]{36})$/m.exec(fresh.stderr)?.[1];
    expect(key).toBeDefined();
    const retry = /^to retry this payment without paying twice: lnctl (.*)$/m.exec(fresh.stderr)?.[1];
    expect(retry).toContain(`--idempotency-key ${key}`);
    expect(retry).toContain(`--expiry-height ${100 + 288}`);
    const paid = JSON.parse(fresh.stdout) as Payment;
    const rerun = await cli([...(retry ?? "").split(" "), "--json"]);
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toEqual(paid);
    expect(backend.count("pay") - before).toBe(2);
  });

  it("payments and payment", async () => {
    const list = await okJson<PaymentList>(["payments"]);
    expect(list.payments).toHaveLength(2);
    expect((await okJson<PaymentList>(["payments", "--limit", "1"])).payments).toHaveLength(1);
    const t = await cli(["payments"]);
    expect(t.stdout).toMatch(/^ID\s+STATUS\s+AMOUNT \(msat\)/);
    expect(t.stdout).toMatch(/succeeded\s+250,000\s/);
    const id = list.payments[1]?.id ?? "";
    const p = await okJson<Payment>(["payment", id]);
    expect(p).toMatchObject({ id, amountMsat: "250000", expiry: { blocks: 140 }, status: "succeeded" });
    expect((await cli(["payment", id])).stdout).toContain(`payment:       ${id}\n`);
    const missing = await cli(["payment", "nope"]);
    expect(missing.code).toBe(EXIT.notFound);
    expect(missing.stderr).toMatch(/^error: NOT_FOUND \(HTTP 404\): no payment nope.*\nrequest id: /);
  });

  it("fee, close, force-close", async () => {
    const f = await cli(["fee", channelId, "2500"]);
    expect(f).toMatchObject({ code: 0, stderr: "" });
    expect(f.stdout).toContain("phase:           normal\n");
    expect(backend.count("updateFee")).toBe(1);
    const low = await cli(["fee", channelId, "10"]);
    expect(low.code).toBe(EXIT.api);
    expect(low.stderr).toMatch(/below 1000/);

    const c = await cli(["close", channelId]);
    expect(c.code).toBe(0);
    expect(c.stdout).toContain("phase:           clearing\n");
    const again = await cli(["close", channelId]);
    expect(again.code).toBe(EXIT.api);
    expect(again.stderr).toMatch(/^error: CONFLICT/);

    const fc = await okJson<{ phase: string }>(["force-close", channelId]);
    expect(fc.phase).toBe("closed");
  });

  it("wallet address (POST, address scope), balance, withdraw", async () => {
    const a = await cli(["wallet", "address"]);
    expect(a.code).toBe(0);
    expect(a.stdout).toMatch(/^bcrt1q[0-9a-f]{40}\n$/);
    expect((await cli(["wallet", "address"], tokens.address)).code).toBe(0);
    const ro = await cli(["wallet", "address"], tokens.readonly);
    expect(ro.code).toBe(EXIT.auth);
    expect(ro.stderr).toMatch(/^error: FORBIDDEN \(HTTP 403\)/);
    expect(backend.count("walletAddress")).toBe(2);
    const b = await cli(["wallet", "balance"]);
    expect(b.stdout).toBe("confirmed:    9,000,000 sat\nunconfirmed:  0 sat\n");
    const w = await cli(["wallet", "withdraw", a.stdout.trim(), "500000"]);
    expect(w.code).toBe(0);
    expect(w.stdout).toMatch(
      /^txid:\s+[0-9a-f]{64}\naddress:\s+bcrt1q[0-9a-f]{40}\namount:\s+500,000 sat\n$/,
    );
    expect(await okJson(["wallet", "balance"])).toEqual({
      confirmedSat: "8500000",
      unconfirmedSat: "0",
      closeOutputs: [],
    });
  });

  it("wallet withdraw: a key per invocation, printed with the retry command; a retry withdraws once", async () => {
    const before = backend.count("withdraw");
    const to = `bcrt1q${"9".repeat(38)}`;
    const first = await cli(["wallet", "withdraw", to, "1000", "--json"]);
    expect(first.code).toBe(0);
    const key = /^idempotency key: ([0-9a-f-]{36})$/m.exec(first.stderr)?.[1];
    expect(key).toBeDefined();
    const retry = /^to retry this withdrawal without withdrawing twice: lnctl (.*)$/m.exec(first.stderr)?.[1];
    expect(retry).toBe(`wallet withdraw ${to} 1000 --idempotency-key ${key}`);
    const again = await cli([...(retry ?? "").split(" "), "--json"]);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual(JSON.parse(first.stdout));
    const human = await cli((retry ?? "").split(" "));
    expect(human.stderr).toContain("this idempotency key was used before");
    expect(backend.count("withdraw") - before).toBe(1);
    // Another invocation without a key is another withdrawal.
    expect((await cli(["wallet", "withdraw", to, "1000"])).code).toBe(0);
    expect(backend.count("withdraw") - before).toBe(2);
    // The same key with another amount is refused.
    const other = await cli(["wallet", "withdraw", to, "2000", "--idempotency-key", key ?? ""]);
    expect(other.code).toBe(EXIT.api);
    expect(other.stderr).toMatch(/^error: IDEMPOTENCY_KEY_REUSED \(HTTP 422\)/m);
    expect(backend.count("withdraw") - before).toBe(2);
  });

  it("token list and token revoke by id or label: the revoked token is refused at once", async () => {
    const store = new ApiStore(pool, schema);
    const a = await store.createToken("cashier", ["invoice"]);
    const b = await store.createToken("cashier", ["invoice"]);
    const c = await store.createToken("auditor", ["readonly"]);
    const list = await cli(["token", "list"]);
    expect(list.code).toBe(0);
    expect(list.stdout.split("\n")[0]).toMatch(/^ID\s+LABEL\s+SCOPES\s+CREATED\s+REVOKED/);
    expect(list.stdout).toMatch(new RegExp(`${c.id}\\s+auditor\\s+readonly\\s+\\S+\\s+-`));
    for (const t of [a, b, c]) expect(list.stdout).not.toContain(t.token);

    const byId = await cli(["token", "revoke", c.id]);
    expect(byId).toMatchObject({ code: 0, stderr: "" });
    expect(byId.stdout).toBe(`revoked ${c.id} (auditor; readonly)\n`);
    const refused = await cli(["info"], c.token);
    expect(refused.code).toBe(EXIT.auth);
    expect(refused.stderr).toMatch(/^error: UNAUTHENTICATED \(HTTP 401\)/);

    const byLabel = await okJson<{ revoked: { id: string }[] }>(["token", "revoke", "cashier"]);
    expect(byLabel.revoked.map((r) => r.id).sort()).toEqual([a.id, b.id].sort());
    for (const t of [a, b]) expect((await cli(["info"], t.token)).code).toBe(EXIT.auth);

    const none = await cli(["token", "revoke", "cashier"]);
    expect(none.code).toBe(EXIT.notFound);
    expect(none.stderr).toMatch(/^error: NOT_FOUND \(HTTP 404\)/);
    const notAdmin = await cli(["token", "revoke", "cashier"], tokens.invoice);
    expect(notAdmin.stderr).toMatch(/^error: FORBIDDEN \(HTTP 403\)/);
  });

  it("a wrong token: exit 5 with UNAUTHENTICATED; a readonly token on an admin route: FORBIDDEN", async () => {
    const wrong = `${tokens.admin}x`;
    const r = await cli(["info"], wrong);
    expect(r.code).toBe(EXIT.auth);
    expect(r.stderr).toMatch(
      /^error: UNAUTHENTICATED \(HTTP 401\): unknown or revoked token.*\nrequest id: \S+\n$/,
    );
    expect(r.stderr + r.stdout).not.toContain(wrong);
    const ro = await cli(["wallet", "withdraw", "bcrt1qxyzxyzxyzxyzxyz", "1"], tokens.readonly);
    expect(ro.code).toBe(EXIT.auth);
    expect(ro.stderr).toMatch(/^error: FORBIDDEN \(HTTP 403\)/m);
    expect(ro.stderr).not.toContain(tokens.readonly);
  });

  it("an unreachable URL: exit 3 naming the URL", async () => {
    // A port that was just listening and is now closed.
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const r = await lnctl(["channels"], { LNCTL_URL: `http://127.0.0.1:${port}`, LNCTL_TOKEN: tokens.admin });
    expect(r.code).toBe(EXIT.connection);
    expect(r.stdout).toBe("");
    expect(r.stderr).toContain(`cannot reach http://127.0.0.1:${port}`);
    expect(r.stderr).toContain("check --url or LNCTL_URL");
    expect(r.stderr).not.toContain(tokens.admin);
  });
});
