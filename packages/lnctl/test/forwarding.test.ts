/** lnctl policy and forwards, and payments shown with their route and failure. */
import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ApiStore, buildApi, type ApiOptions } from "../../../services/channel/src/api/index.js";
import { MemoryBackend } from "../../../services/channel/test/memory-backend.js";
import { EXIT, parseCommandLine } from "../src/cli.js";
import type { ForwardList, Payment } from "../src/client.js";
import * as F from "../src/format.js";
import { lnctl, NODE, type Ran } from "./helpers.js";
import { testDatabaseUrl } from "@ln/testkit";

type Pool = ApiOptions["pool"];
const requireFromChannel = createRequire(new URL("../../../services/channel/package.json", import.meta.url));
const pg = requireFromChannel("pg") as {
  Pool: new (cfg: { connectionString: string; max: number }) => Pool;
};
const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 4 });
const schema = `lnctl_fwd_test_${randomBytes(6).toString("hex")}`;

let app: Awaited<ReturnType<typeof buildApi>>;
let backend: MemoryBackend;
let url = "";
const tokens = { admin: "", readonly: "" };
let channelId = "";

beforeAll(async () => {
  backend = new MemoryBackend({ pool });
  app = await buildApi({ pool, schema, backend });
  const store = new ApiStore(pool, schema);
  for (const s of ["admin", "readonly"] as const)
    tokens[s] = (await store.createToken(`lnctl ${s}`, [s])).token;
  await app.listen({ host: "127.0.0.1", port: 0 });
  url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
  await backend.connectPeer({ host: "127.0.0.1", port: 9735, nodeId: NODE });
  channelId = (await backend.openChannel({ nodeId: NODE, fundingSat: 1_000_000n as never })).id;
});
afterAll(async () => {
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

const cli = (argv: string[], token = tokens.admin): Promise<Ran> =>
  lnctl(argv, { LNCTL_URL: url, LNCTL_TOKEN: token });

describe("parsing policy and forwards", () => {
  it("policy without options shows, with options changes; forwards takes --status and --limit", () => {
    expect(parseCommandLine(["policy", "c1"])).toMatchObject({
      ok: true,
      command: { name: "policy", id: "c1", change: {} },
    });
    expect(
      parseCommandLine([
        "policy",
        "c1",
        "--fee-base-msat",
        "0",
        "--fee-ppm",
        "250",
        "--cltv-delta",
        "200",
        "--htlc-min-msat",
        "18446744073709551615",
      ]),
    ).toMatchObject({
      ok: true,
      command: {
        name: "policy",
        change: {
          feeBaseMsat: 0n,
          feeProportionalMillionths: 250,
          cltvExpiryDelta: 200,
          htlcMinimumMsat: 18446744073709551615n,
        },
      },
    });
    expect(parseCommandLine(["forwards", "--status", "settled", "--limit", "5"])).toMatchObject({
      ok: true,
      command: { name: "forwards", status: "settled", limit: 5 },
    });
    for (const bad of [
      ["policy"],
      ["policy", "c1", "--cltv-delta", "65536"],
      ["policy", "c1", "--fee-base-msat", "4294967296"],
      ["policy", "c1", "--status", "settled"],
      ["forwards", "--status", "lost"],
      ["forwards", "--fee-ppm", "1"],
    ])
      expect(parseCommandLine(bad).ok, bad.join(" ")).toBe(false);
  });
});

describe("pay over a route", () => {
  const C = `03${"33".repeat(32)}`;
  const HASH = "cd".repeat(32);

  it("parses --hop, once per hop, with or without the channel", () => {
    expect(
      parseCommandLine([
        "pay",
        HASH,
        "1000000",
        "--hop",
        `${NODE}@700x1x0`,
        "--hop",
        `${C}@710x2x1/2000/250/144`,
      ]),
    ).toMatchObject({
      ok: true,
      command: {
        name: "pay",
        channelId: undefined,
        amountMsat: 1_000_000n,
        hops: [
          {
            nodeId: NODE,
            shortChannelId: "700x1x0",
            feeBaseMsat: 0n,
            feeProportionalMillionths: 0,
            cltvExpiryDelta: 0,
          },
          {
            nodeId: C,
            shortChannelId: "710x2x1",
            feeBaseMsat: 2000n,
            feeProportionalMillionths: 250,
            cltvExpiryDelta: 144,
          },
        ],
      },
    });
    expect(parseCommandLine(["pay", "ch", HASH, "5", "--hop", `${NODE}@1x2x3`])).toMatchObject({
      ok: true,
      command: { channelId: "ch", hops: [{ shortChannelId: "1x2x3" }] },
    });
    for (const bad of [
      ["pay", HASH, "5"],
      ["pay", HASH, "5", "--hop", "1x2x3"],
      ["pay", HASH, "5", "--hop", `${NODE}@1-2-3`],
      ["pay", HASH, "5", "--hop", `${NODE}@1x2x3/5`],
      ["pay", HASH, "5", "--hop", `${NODE}@1x2x3/0/0/65536`],
    ])
      expect(parseCommandLine(bad).ok, bad.join(" ")).toBe(false);
  });

  it("pays over the route; the retry command names the hops and pays once", async () => {
    const before = backend.count("pay");
    const r = await cli([
      "pay",
      HASH,
      "1000000",
      "--expiry-height",
      "1000",
      "--hop",
      `${NODE}@700x1x0`,
      "--hop",
      `${C}@710x2x1/2000/250/144`,
      "--json",
    ]);
    expect(r.code).toBe(EXIT.ok);
    const p = JSON.parse(r.stdout) as Payment;
    expect(p.channelId).toBe(channelId);
    // 1,000,000 + 2000 + floor(1,000,000 * 250 / 1e6) = 1,002,250 at 1000 + 144.
    expect(p.amountMsat).toBe("1002250");
    expect(p.route?.hops.map((h) => [h.shortChannelId, h.amountMsat, h.expiry])).toEqual([
      ["700x1x0", "1002250", 1144],
      ["710x2x1", "1000000", 1000],
    ]);
    const retry = /to retry this payment without paying twice: lnctl (.*)\n/.exec(r.stderr)?.[1];
    expect(retry).toContain(`--hop ${NODE}@700x1x0 --hop ${C}@710x2x1/2000/250/144 --idempotency-key`);
    const again = await cli([...(retry ?? "").split(" "), "--json"]);
    expect(again.code).toBe(EXIT.ok);
    expect(JSON.parse(again.stdout)).toEqual(p);
    expect(backend.count("pay")).toBe(before + 1);
  });
});

describe("formatting", () => {
  it("a failed payment over a route: who failed, the code, and each hop", () => {
    const C = `03${"33".repeat(32)}`;
    const p: Payment = {
      id: "c1:0",
      channelId: "c1",
      rHash: "ab".repeat(32),
      amountMsat: "1003350",
      expiry: { blocks: 1184 },
      status: "failed",
      failureReason: "hop 1 (03333333…): fee_insufficient (htlc 1001100 msat, channel_update none)",
      route: {
        hops: [
          {
            nodeId: NODE,
            shortChannelId: "700x1x0",
            feeBaseMsat: "0",
            feeProportionalMillionths: 0,
            cltvExpiryDelta: 0,
            amountMsat: "1003350",
            expiry: 1184,
          },
          {
            nodeId: C,
            shortChannelId: "710x2x1",
            feeBaseMsat: "2000",
            feeProportionalMillionths: 250,
            cltvExpiryDelta: 144,
            amountMsat: "1001100",
            expiry: 1040,
          },
        ],
      },
      failure: {
        hop: 1,
        nodeId: C,
        code: 0x100c,
        name: "fee_insufficient",
        description: "fee_insufficient (htlc 1001100 msat, channel_update none)",
      },
      createdAt: "2026-01-01T00:00:00.000Z",
    };
    const out = F.formatPayment(p);
    expect(out).toContain(
      "failure:       hop 1 (03333333…): fee_insufficient (htlc 1001100 msat, channel_update none)\n",
    );
    expect(out).toContain(`failed at:     hop 1 ${C}\n`);
    expect(out).toContain("failure code:  fee_insufficient (0x100c)\n");
    const lines = out.slice(out.indexOf("route:\n")).split("\n");
    expect(lines[1]).toMatch(
      /^HOP\s+NODE\s+CHANNEL\s+AMOUNT \(msat\)\s+EXPIRY\s+FEE BASE \(msat\)\s+FEE PPM\s+CLTV DELTA$/,
    );
    expect(lines[2]?.trim().split(/\s+/)).toEqual(["0", NODE, "700x1x0", "1,003,350", "1184", "0", "0", "0"]);
    expect(lines[3]?.trim().split(/\s+/)).toEqual([
      "1",
      C,
      "710x2x1",
      "1,001,100",
      "1040",
      "2,000",
      "250",
      "144",
    ]);
    // Without a route or a decoded failure: as before.
    expect(F.formatPayment({ ...p, route: null, failure: null })).not.toContain("route:");
  });

  it("policy and forwards", () => {
    expect(
      F.formatPolicy({
        channelId: "c1",
        feeBaseMsat: "1000",
        feeProportionalMillionths: 2500,
        cltvExpiryDelta: 184,
        htlcMinimumMsat: "1000",
      }),
    ).toBe(
      [
        "channel:       c1",
        "fee base:      1,000 msat",
        "fee rate:      2,500 ppm",
        "cltv delta:    184 blocks",
        "htlc minimum:  1,000 msat",
        "",
      ].join("\n"),
    );
    const list: ForwardList = {
      forwards: [
        {
          id: "7",
          inChannel: "a",
          inHtlcId: "3",
          rHash: "ab".repeat(32),
          inAmountMsat: "1003350",
          inExpiry: 1184,
          outChannel: "b",
          outHtlcId: "9",
          outShortChannelId: "710x2x1",
          outAmountMsat: "1001100",
          outExpiry: 1040,
          status: "settled",
          feeMsat: "2250",
          failure: null,
          createdAt: "2026-01-01T00:00:00.000Z",
          resolvedAt: "2026-01-01T00:01:00.000Z",
        },
      ],
      totals: { settled: 1, feesEarnedMsat: "2250" },
    };
    const out = F.formatForwards(list).split("\n");
    expect(out[0]).toMatch(
      /^ID\s+STATUS\s+IN \(channel:htlc\)\s+IN \(msat\)\s+OUT \(channel:htlc\)\s+OUT SCID\s+OUT \(msat\)\s+FEE \(msat\)\s+CREATED\s+FAILURE$/,
    );
    expect(out[1]?.trim().split(/\s+/)).toEqual([
      "7",
      "settled",
      "a:3",
      "1,003,350",
      "b:9",
      "710x2x1",
      "1,001,100",
      "2,250",
      "2026-01-01T00:00:00.000Z",
    ]);
    expect(out[2]).toBe("settled: 1, fees earned: 2,250 msat");
    expect(F.formatForwards({ forwards: [], totals: { settled: 0, feesEarnedMsat: "0" } })).toBe(
      "no forwards\nsettled: 0, fees earned: 0 msat\n",
    );
  });

  it("an event's nested failure is one JSON value on the line", () => {
    const line = F.formatEvent({
      seq: "5",
      at: "2026-01-01T00:00:00.000Z",
      kind: "payment",
      subject: "c1:0",
      status: "failed",
      detail: { failure: { hop: 1, name: "fee_insufficient" } },
    });
    expect(line).toBe(
      '5  2026-01-01T00:00:00.000Z  payment  c1:0  failed  failure={"hop":1,"name":"fee_insufficient"}\n',
    );
  });
});

describe("lnctl policy and forwards against the control API", () => {
  it("policy shows the defaults, changes what is given (admin), and a readonly token cannot change it", async () => {
    const shown = await cli(["policy", channelId]);
    expect(shown).toMatchObject({ code: EXIT.ok, stderr: "" });
    expect(shown.stdout).toContain("cltv delta:    184 blocks\n");
    const changed = await cli(["policy", channelId, "--fee-ppm", "250", "--json"]);
    expect(changed.code).toBe(EXIT.ok);
    expect(JSON.parse(changed.stdout)).toEqual({
      channelId,
      feeBaseMsat: "1000",
      feeProportionalMillionths: 250,
      cltvExpiryDelta: 184,
      htlcMinimumMsat: "1000",
    });
    const refused = await cli(["policy", channelId, "--fee-ppm", "1"], tokens.readonly);
    expect(refused.code).toBe(EXIT.auth);
    expect((await cli(["policy", "no-such-channel"])).code).toBe(EXIT.notFound);
  });

  it("forwards lists the table and the totals, with --status", async () => {
    backend.forwards.push({
      id: 1n,
      inChannel: channelId,
      inHtlcId: 4n,
      rHash: "ab".repeat(32),
      inAmountMsat: 12_000n as never,
      inExpiry: 900,
      outShortChannelId: (700n << 40n) | (1n << 16n),
      outChannel: "out",
      outHtlcId: 2n,
      outAmountMsat: 10_000n as never,
      outExpiry: 800,
      status: "settled",
      failure: undefined,
      feeMsat: 2000n as never,
      createdAt: new Date("2026-01-01T00:00:00.000Z"),
      resolvedAt: new Date("2026-01-01T00:05:00.000Z"),
    });
    const r = await cli(["forwards", "--status", "settled"], tokens.readonly);
    expect(r).toMatchObject({ code: EXIT.ok, stderr: "" });
    expect(r.stdout).toContain("700x1x0");
    expect(r.stdout).toContain("settled: 1, fees earned: 2,000 msat\n");
    const none = await cli(["forwards", "--status", "offered", "--json"]);
    expect(JSON.parse(none.stdout)).toEqual({ forwards: [], totals: { settled: 1, feesEarnedMsat: "2000" } });
  });
});
