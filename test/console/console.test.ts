/**
 * The operator's console end to end in a real browser: the control API (memory backend, tokens
 * in Postgres) listens on a port, Debian's Chromium runs headless under playwright-core, and the
 * test signs in as an operator would: a wrong token is rejected, the right one shows the node's
 * channels, HTLCs, payments and wallet; Refresh picks up a new payment, a status event on
 * GET /v1/events makes the page show the change at once (no timer: the page's only one is a
 * minute), and revoking the token ends the stream and sends the page back to the sign-in form.
 * The graph view draws our channel and one only gossip knows (rows written to its tables), a
 * hostile alias as text. The page must log no error, and its screenshot is saved to
 * test-results/console.png.
 *
 * Needs Chromium: scripts/ensure-chromium.sh installs Debian's package; CHROMIUM_PATH picks another.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { AddressInfo } from "node:net";
import pg from "pg";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { msat, sat } from "@ln/bitcoin";
import {
  ApiStore,
  appendEvents,
  buildApi,
  inEventTransaction,
  type ChannelDetail,
  type Payment,
} from "@ln/channel-service";
// The test-only in-memory backend lives with the channel service's tests, not in its sources.
import { MemoryBackend } from "../../services/channel/test/memory-backend.js";
import { testDatabaseUrl } from "@ln/testkit";

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const SCREENSHOT_DIR = fileURLToPath(new URL("../../test-results/", import.meta.url));
const PEER = `03${"22".repeat(32)}`;
const RHASH = "ab".repeat(32);
/** A node only gossip knows, its alias a peer's words (at most 32 bytes), shown as text. */
const FAR = `03${"44".repeat(32)}`;
const HOSTILE_ALIAS = "<img src=x onerror=alert(1)>";
/** 104x1x0 = 104 * 2^40 + 1 * 2^16: a gossip channel PEER-FAR. */
const FAR_SCID = "114349209354240";
/** Rendered as text, never as markup: the page must show it literally. */
const HOSTILE_REASON = `peer said <img src=x onerror="document.title='pwned'">`;

/**
 * The memory backend settles payments at once, so it never has an HTLC in flight or a failed
 * payment: this one adds one of each so the page has them to show.
 */
class ShowcaseBackend extends MemoryBackend {
  readonly extraPayments: Payment[] = [];

  override async getChannel(id: string): Promise<ChannelDetail | undefined> {
    const c = await super.getChannel(id);
    if (!c) return c;
    return {
      ...c,
      htlcs: [
        { id: 7n, direction: "offered", amountMsat: msat(50_000n), rHash: RHASH, expiry: { blocks: 612 } },
      ],
    };
  }

  override async listPayments(): Promise<Payment[]> {
    return [...(await super.listPayments()), ...this.extraPayments];
  }
}

const pool = new pg.Pool({ connectionString: testDatabaseUrl(), max: 2 });
const schema = `console_e2e_${randomBytes(6).toString("hex")}`;
const backend = new ShowcaseBackend({ pool, graphSchema: schema });
let app: Awaited<ReturnType<typeof buildApi>>;
let base: string;
let token: { id: string; token: string };
let channelId: string;
let paymentId: string;
let browser: Browser | undefined;
let page: Page;
/** Errors and warnings the page logged, and its uncaught exceptions. */
const problems: string[] = [];
const requestedUrls: string[] = [];
/** Status of each /v1 response, and whether its request carried the valid token. */
const apiResponses: { url: string; status: number; validToken: boolean }[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not at ${CHROMIUM}: run scripts/ensure-chromium.sh (as root it installs Debian's chromium; ` +
        "else apt-get install chromium), or set CHROMIUM_PATH to a Chromium binary",
    );

  await backend.connectPeer({ host: "127.0.0.1", port: 9735, nodeId: PEER });
  channelId = (await backend.openChannel({ nodeId: PEER, fundingSat: sat(4_000_000n) })).id;
  backend.confirmAnchor(channelId, { height: 103, txIndex: 2, outputIndex: 1 });
  paymentId = (
    await backend.pay({ channelId, rHash: RHASH, amountMsat: msat(1_234_567n), expiry: { blocks: 600 } })
  ).id;
  backend.extraPayments.push({
    id: "failed-payment-1",
    channelId,
    rHash: "cd".repeat(32),
    amountMsat: msat(9_000n),
    expiry: { blocks: 601 },
    status: "failed",
    failureReason: HOSTILE_REASON,
    route: undefined,
    failure: undefined,
    createdAt: new Date("2024-01-02T03:04:05Z"),
  });

  // Revocation ends event streams within tokenCheckMs: short here, so the test need not wait 30 s.
  app = await buildApi({ pool, schema, backend, events: { limits: { tokenCheckMs: 200 } } });
  token = await new ApiStore(pool, schema).createToken("console e2e", ["readonly"]);
  // Gossip's graph (migration 21, migrated with the API's tables): a channel between our peer and
  // a node we have no channel with, one direction's policy, and that node's announcement.
  await pool.query(
    `INSERT INTO "${schema}".graph_channels (short_channel_id, node_1, node_2, commit_key_1, commit_key_2,
       anchor_txid, anchor_vout, capacity_sat, announcement) VALUES ($1, $2, $3, 'k1', 'k2', $4, 0, 2000000, '\\x00')`,
    [FAR_SCID, PEER, FAR, "cc".repeat(32)],
  );
  await pool.query(
    `INSERT INTO "${schema}".graph_policies (short_channel_id, direction, timestamp, disabled, cltv_expiry_delta,
       htlc_minimum_msat, htlc_maximum_msat, fee_base_msat, fee_proportional_millionths, channel_update)
       VALUES ($1, 1, 1700000000, false, 40, 1000, 1980000000, 700, 25, '\\x00')`,
    [FAR_SCID],
  );
  await pool.query(
    `INSERT INTO "${schema}".graph_nodes (node_id, timestamp, alias, addresses, node_announcement)
       VALUES ($1, 1700000000, $2, '["10.0.0.9:9735"]', '\\x00')`,
    [FAR, HOSTILE_ALIAS],
  );
  await app.listen({ host: "127.0.0.1", port: 0 });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => requestedUrls.push(r.url()));
  page.on("response", (r) => {
    if (!new URL(r.url()).pathname.startsWith("/v1/")) return;
    const validToken = r.request().headers()["authorization"] === `Bearer ${token.token}`;
    apiResponses.push({ url: r.url(), status: r.status(), validToken });
  });
});

afterAll(async () => {
  await browser?.close();
  await app?.close();
  await pool.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await pool.end();
});

/** Evaluates an expression in the page (a string: this file is type-checked without the DOM library). */
const inPage = (expr: string): Promise<unknown> => page.evaluate(expr);
const text = async (selector: string): Promise<string> => (await page.locator(selector).innerText()).trim();

describe("the operator's console in Chromium", () => {
  it("asks for a token and rejects a wrong one", async () => {
    await page.goto(`${base}/console`);
    await page.locator("#login").waitFor({ state: "visible" });
    expect(await page.locator("#dashboard").isVisible()).toBe(false);

    await page.fill("#token", "lnch_not-a-real-token");
    await page.click("#login button[type=submit]");
    await expect.poll(() => text("#login-error")).toContain("Token rejected");
    expect(await page.locator("#dashboard").isVisible()).toBe(false);
    expect(await inPage("sessionStorage.length")).toBe(0);
  });

  it("shows the node, channels, HTLCs, payments and wallet with the right token", async () => {
    await page.fill("#token", token.token);
    await page.click("#login button[type=submit]");
    await page.locator("#dashboard").waitFor({ state: "visible" });
    expect(await page.locator("#login").isVisible()).toBe(false);
    expect(await page.inputValue("#token")).toBe("");

    const node = await text("#node");
    expect(node).toContain(backend.nodeId);
    expect(node).toContain("regtest");
    expect(node).toMatch(/Block height\s+100/);

    // Opening 4 000 000 sat from 10 000 000, then paying 1 234 567 msat over the channel.
    const wallet = await text("#wallet");
    expect(wallet).toMatch(/Confirmed\s+6,000,000 sat/);
    expect(wallet).toMatch(/Unconfirmed\s+0 sat/);

    const row = page.locator("#channels tbody tr", { hasText: channelId });
    await expect.poll(() => row.count()).toBe(1);
    const cells = (await row.locator("td").allInnerTexts()).map((c) => c.trim());
    expect(cells).toEqual([
      channelId,
      "103x2x1",
      PEER,
      "creator",
      "normal",
      "4,000,000 sat",
      "3,998,765.433 sat",
      "1,234.567 sat",
      "1",
      "Fees Close",
    ]);

    const htlcs = (await page.locator("#htlcs tbody tr").first().locator("td").allInnerTexts()).map((c) =>
      c.trim(),
    );
    expect(htlcs).toEqual([channelId, "7", "offered", "50 sat", RHASH, "block 612"]);

    const peers = await text("#peers");
    expect(peers).toContain("1 connected");
    expect(peers).toContain(PEER);

    const payments = await text("#payments");
    expect(payments).toContain(paymentId);
    expect(payments).toContain("1,234.567 sat");
    expect(payments).toContain("succeeded");
    expect(payments).toContain("failed");
    expect(payments).toContain(HOSTILE_REASON);
    expect(await page.locator("#payments img").count()).toBe(0);
    expect(await page.title()).not.toBe("pwned");

    expect(await text("#tower")).toContain("Not reported by this API");
    await expect.poll(() => text("#updated")).toContain("live (status events)");
  });

  it("draws the graph: our channel highlighted, gossip's channel plain, a peer's alias as text", async () => {
    const ours = page.locator(`#graph-canvas path.chan.ours[data-channel="${channelId}"]`);
    await expect.poll(() => ours.count()).toBe(1);
    expect(await ours.getAttribute("data-scid")).toBe("103x2x1");
    const theirs = page.locator('#graph-canvas path.chan[data-scid="104x1x0"]');
    expect(await theirs.count()).toBe(1);
    expect(await theirs.getAttribute("class")).toBe("chan");
    expect(await page.locator("#graph-canvas g.node").count()).toBe(3);
    expect(await page.locator(`#graph-canvas g.node.ours[data-node="${backend.nodeId}"]`).count()).toBe(1);
    const far = page.locator(`#graph-canvas g.node[data-node="${FAR}"]`);
    expect(await far.locator("text").textContent()).toBe(HOSTILE_ALIAS);
    // Hover text: FAR's channel with its one policy (700 msat + 25 ppm, delta 40), FAR → PEER.
    const title = (await theirs.locator("xpath=..").locator("title").textContent()) ?? "";
    expect(title).toContain("Channel 104x1x0\nCapacity 2,000,000 sat\n");
    expect(title).toContain(
      `${HOSTILE_ALIAS} (${FAR.slice(0, 10)}…) → ${PEER.slice(0, 10)}…: 0.700 sat + 25 ppm, cltv delta 40`,
    );
    await far.locator("circle").click();
    await expect.poll(() => text("#graph-detail")).toContain("10.0.0.9:9735");
    expect(await text("#graph-detail")).toContain(HOSTILE_ALIAS);
    expect(await page.locator("#graph-view img").count()).toBe(0);
    expect(await page.title()).not.toBe("pwned");
  });

  it("keeps the token in session storage only, never in a URL", async () => {
    expect(page.url()).toBe(`${base}/console`);
    expect(await inPage("localStorage.length")).toBe(0);
    expect(await inPage("document.cookie")).toBe("");
    expect(await inPage("Object.keys(sessionStorage)")).toEqual(["ln-console-token"]);
    expect(requestedUrls.length).toBeGreaterThan(5);
    for (const u of requestedUrls) {
      expect(u.startsWith(`${base}/`), u).toBe(true);
      expect(u).not.toContain(token.token);
    }
  });

  it("saves a screenshot", async () => {
    await mkdir(SCREENSHOT_DIR, { recursive: true });
    const path = `${SCREENSHOT_DIR}console.png`;
    await page.screenshot({ path, fullPage: true });
    expect(existsSync(path)).toBe(true);
  });

  it("Refresh shows a new payment", async () => {
    const p = await backend.pay({
      channelId,
      rHash: "ef".repeat(32),
      amountMsat: msat(2_000n),
      expiry: { blocks: 700 },
    });
    await page.click("#refresh");
    await expect.poll(() => text("#payments")).toContain(p.id);
    const signedIn = apiResponses.filter((r) => r.validToken);
    expect(signedIn.length).toBeGreaterThan(5);
    expect(signedIn.filter((r) => r.status !== 200)).toEqual([]);
  });

  it("a status event makes the page show the change without Refresh", async () => {
    const p: Payment = {
      id: "evented-payment-1",
      channelId,
      rHash: "12".repeat(32),
      amountMsat: msat(3_000n),
      expiry: { blocks: 650 },
      status: "succeeded",
      failureReason: undefined,
      route: undefined,
      failure: undefined,
      createdAt: new Date(),
    };
    backend.extraPayments.push(p);
    expect(await text("#payments")).not.toContain(p.id);
    await inEventTransaction(pool, schema, (c) =>
      appendEvents(c, schema, [{ kind: "payment", subject: p.id, status: "succeeded" }]),
    );
    // Well under the page's one timer (a minute): only the event can have caused the reload.
    await expect.poll(() => text("#payments"), { timeout: 10_000 }).toContain(p.id);
    const streams = apiResponses.filter((r) => new URL(r.url).pathname === "/v1/events");
    expect(streams.length).toBeGreaterThan(0);
    expect(streams.every((r) => r.validToken && r.status === 200)).toBe(true);
  });

  it("a token revoked while the page is open ends its event stream and sends it back to sign-in", async () => {
    await new ApiStore(pool, schema).revokeToken(token.id);
    await page.locator("#login").waitFor({ state: "visible", timeout: 15_000 });
    expect(await text("#login-error")).toContain("Token rejected");
    expect(await page.locator("#dashboard").isVisible()).toBe(false);
    expect(await inPage("sessionStorage.length")).toBe(0);
  });

  it("logged no error but the expected 401s", () => {
    // Chromium logs every 4xx response as a console error; the wrong and revoked tokens made some.
    const unexpected = problems.filter((p) => !/status of 401 \(Unauthorized\)/.test(p));
    expect(unexpected).toEqual([]);
  });
});
