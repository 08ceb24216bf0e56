/**
 * The operator's console driving a REAL node: two nodes A and B as separate processes (signer,
 * watchtower, peer gateway, channel service each; test/lab/network.ts) over Postgres, NATS and an
 * in-process regtest node. A's console in headless Chromium (Debian's, under playwright-core)
 * signs in with A's admin token and, through its forms only: opens a channel to B (connecting
 * first), shows it in the graph view once normal, creates an invoice with its QR code, sets the
 * channel's fees, pays B's BOLT #11 invoice and watches its attempts (the amount moves to B), and
 * closes the channel cooperatively after a confirm. Each outcome is checked on the nodes' own
 * APIs and tables, not on the page alone. The page must log no error; screenshots go to
 * test-results/console-*.png.
 *
 * Needs Chromium: scripts/ensure-chromium.sh installs Debian's package; CHROMIUM_PATH picks another.
 */
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { decode as lightDecode } from "light-bolt11-decoder";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { channelWith, startNetwork, type Network, type NetNode } from "../lab/network.js";

const CHROMIUM = process.env["CHROMIUM_PATH"] ?? "/usr/bin/chromium";
const SCREENSHOT_DIR = fileURLToPath(new URL("../../test-results/", import.meta.url));
const FUND_SAT = 10_000_000n;
const CHANNEL_SAT = 4_000_000n;
/** B's invoice A pays from the console. */
const INVOICE_MSAT = 30_000_000n;

let net: Network;
let A: NetNode;
let B: NetNode;
let browser: Browser | undefined;
let page: Page;
/** A's channel id, as its console reported the open. */
let channelId = "";
/** Errors and warnings the page logged, and its uncaught exceptions. */
const problems: string[] = [];

const text = async (selector: string): Promise<string> => (await page.locator(selector).innerText()).trim();
const shot = async (name: string): Promise<void> => {
  const path = `${SCREENSHOT_DIR}console-${name}.png`;
  await page.screenshot({ path, fullPage: true });
  expect(existsSync(path)).toBe(true);
};
const row = () => page.locator("#channels tbody tr", { hasText: channelId });

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(
      `Chromium is not at ${CHROMIUM}: run scripts/ensure-chromium.sh, or set CHROMIUM_PATH to a Chromium binary`,
    );
  await mkdir(SCREENSHOT_DIR, { recursive: true });
  net = await startNetwork({ nodes: ["A", "B"] });
  A = net.node("A");
  B = net.node("B");
  await net.fund(A, FUND_SAT);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--no-sandbox"] });
  page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await net?.cleanup({ removeDir: true });
}, 60_000);

describe("the console's actions against a real node", () => {
  it("signs in with A's admin token", async () => {
    await page.goto(`${A.apiUrl}/console`);
    await page.fill("#token", A.token);
    await page.click("#login button[type=submit]");
    await page.locator("#dashboard").waitFor({ state: "visible" });
    expect(await text("#node")).toContain(A.nodeId);
    // Alone in the graph: our node, no channel.
    expect(await page.locator(`#graph-canvas g.node.ours[data-node="${A.nodeId}"]`).count()).toBe(1);
    expect(await page.locator("#graph-canvas path.chan").count()).toBe(0);
  });

  it("opens a channel to B (connecting first); mined until normal, the page shows it", async () => {
    await page.fill("#open-peer", `${B.nodeId}@127.0.0.1:${B.peerPort}`);
    await page.fill("#open-amount", CHANNEL_SAT.toString());
    await page.click("#open-form button[type=submit]");
    await expect
      .poll(() => text("#open-form [data-role=done]"), { timeout: 30_000 })
      .toMatch(/^Channel \S+ is/);
    expect(await text("#open-form [data-role=error]")).toBe("");
    channelId = (/^Channel (\S+) is/.exec(await text("#open-form [data-role=done]")) ?? [])[1] ?? "";
    const mine = await channelWith(A, B, channelId);
    expect(mine?.id).toBe(channelId);
    expect(mine?.capacitySat).toBe(CHANNEL_SAT.toString());
    await net.waitFor("A-B normal on both ends", net.bothNormal(A, B, channelId), { mine: true });
    const scid = (await A.api.channel(channelId)).shortChannelId;
    expect(scid).toMatch(/^[0-9]+x[0-9]+x[0-9]+$/);
    // The page follows the events: the row turns normal with the anchor's place.
    await expect
      .poll(async () => (await row().locator("td").allInnerTexts()).map((c) => c.trim()).slice(1, 5), {
        timeout: 20_000,
      })
      .toEqual([scid, B.nodeId, "creator", "normal"]);
    await shot("open");
  });

  it("draws the channel in the graph view, ours highlighted; a click shows both directions' policies", async () => {
    const scid = (await A.api.channel(channelId)).shortChannelId ?? "";
    const chan = page.locator(`#graph-canvas path.chan.ours[data-channel="${channelId}"]`);
    await expect.poll(() => chan.count(), { timeout: 20_000 }).toBe(1);
    expect(await chan.getAttribute("data-scid")).toBe(scid);
    expect(await page.locator(`#graph-canvas g.node[data-node="${B.nodeId}"]`).count()).toBe(1);
    // Hover: the channel's title names its policies.
    expect(await chan.locator("xpath=..").locator("title").textContent()).toContain(`Channel ${scid} (ours)`);
    // A real click at the middle of the line (a straight line's box has no width for a locator click).
    await page.locator("#graph-canvas").scrollIntoViewIfNeeded();
    const box = await chan.boundingBox();
    if (box === null) throw new Error("the channel's line has no box");
    await page.mouse.click(box.x + box.width / 2, box.y + box.height / 2);
    const policy = await A.api.policy(channelId);
    await expect.poll(() => text("#graph-detail")).toContain(`Channel ${scid}`);
    const detail = await text("#graph-detail");
    expect(detail).toContain(`${policy.feeProportionalMillionths} ppm`);
    expect(detail).toContain("4,000,000 sat");
    await page.locator("#graph-view").screenshot({ path: `${SCREENSHOT_DIR}console-graph.png` });
  });

  it("creates an invoice on A and shows it with its QR code", async () => {
    await page.fill("#invoice-amount", "1500");
    await page.fill("#invoice-description", "console <b>coffee</b>");
    await page.click("#invoice-form button[type=submit]");
    await page.locator("#invoice-qr svg.qr").waitFor({ state: "visible" });
    expect(await text("#invoice-form [data-role=error]")).toBe("");
    const shown = await text("#invoice-text");
    // The BOLT #11 string, read by an independent decoder: regtest, the amount, our description,
    // A as the payee, and a payment hash A stored with that amount.
    expect(shown).toMatch(/^lnbcrt/);
    const decoded = lightDecode(shown);
    const section = (name: string): unknown => decoded.sections.find((x) => x.name === name);
    expect(section("amount")).toMatchObject({ value: "1500000" });
    expect(section("description")).toMatchObject({ value: "console <b>coffee</b>" });
    expect(section("payee")).toMatchObject({ value: A.nodeId });
    const rHash = (section("payment_hash") as { value: string }).value;
    expect(await text("#invoice-result")).toContain(`payment hash ${rHash}`);
    const stored = await net.query<{
      amount_msat: string;
      description: string;
      status: string;
      bolt11: string;
    }>(
      `SELECT amount_msat, description, status, bolt11 FROM "${A.schemas.channel}".invoices WHERE r_hash = '${rHash}'`,
    );
    expect(stored).toEqual([
      { amount_msat: "1500000", description: "console <b>coffee</b>", status: "open", bolt11: shown },
    ]);
    expect(await page.locator("#invoice-result b").count()).toBe(0);
    // A QR code is a square of modules plus the 4-module quiet zone each side: at least version 1 (21).
    const box =
      (await page.locator("#invoice-qr svg.qr").getAttribute("viewBox"))?.split(" ").map(Number) ?? [];
    expect(box[2]).toBe(box[3]);
    expect(box[2]).toBeGreaterThanOrEqual(29);
    expect(await page.locator("#invoice-qr svg.qr path.qr-fg").getAttribute("d")).toMatch(/^M/);
    await shot("invoice");
  });

  it("sets the channel's fees from its row", async () => {
    const before = await A.api.policy(channelId);
    await row().locator("button[data-action=fees]").click();
    await page.locator("#fees-section").waitFor({ state: "visible" });
    await expect.poll(() => page.inputValue("#fees-base")).toBe(before.feeBaseMsat);
    expect(await page.inputValue("#fees-ppm")).toBe(String(before.feeProportionalMillionths));
    expect(await page.inputValue("#fees-cltv")).toBe(String(before.cltvExpiryDelta));
    await page.fill("#fees-base", "2500");
    await page.fill("#fees-ppm", "350");
    await page.fill("#fees-cltv", String(before.cltvExpiryDelta + 6));
    await page.click("#fees-form button[type=submit]");
    await expect.poll(() => text("#fees-form [data-role=done]")).toContain("Saved");
    expect(await A.api.policy(channelId)).toEqual({
      channelId,
      feeBaseMsat: "2500",
      feeProportionalMillionths: 350,
      cltvExpiryDelta: before.cltvExpiryDelta + 6,
      htlcMinimumMsat: before.htlcMinimumMsat,
    });
    await shot("fees");
  });

  it("pays B's BOLT #11 invoice and watches its attempts", async () => {
    const inv = (await B.api.createInvoice(INVOICE_MSAT, "B's invoice, paid from A's console")) as {
      rHash: string;
      bolt11?: string | null;
    };
    if (typeof inv.bolt11 !== "string") throw new Error("B's invoice has no BOLT #11 string");
    await page.fill("#pay-invoice", inv.bolt11);
    await page.click("#pay-form button[type=submit]");
    await expect.poll(() => text("#payment-watch"), { timeout: 60_000 }).toMatch(/Status\s+succeeded/);
    expect(await text("#pay-form [data-role=error]")).toBe("");
    const id = (/Payment id\s+(\S+)/.exec(await text("#payment-watch")) ?? [])[1] ?? "";
    // A's record: one attempt straight to B over the channel, no fee; the page shows that attempt.
    const p = await A.api.invoicePayment(id);
    const scid = (await A.api.channel(channelId)).shortChannelId;
    expect({ status: p.status, rHash: p.rHash, payee: p.payee, fee: p.feeMsat }).toEqual({
      status: "succeeded",
      rHash: inv.rHash,
      payee: B.nodeId,
      fee: "0",
    });
    expect(p.attempts.map((a) => [a.status, a.route.map((h) => [h.nodeId, h.shortChannelId])])).toEqual([
      ["succeeded", [[B.nodeId, scid]]],
    ]);
    const attempts = page.locator("#payment-watch table tbody tr");
    expect(await attempts.count()).toBe(1);
    const cells = (await attempts.first().locator("td").allInnerTexts()).map((c) => c.trim());
    expect(cells[1]).toBe(`${scid} → ${B.nodeId.slice(0, 10)}…`);
    expect(cells[4]).toBe("succeeded");
    // B's books: the invoice settled; A's channel: the amount moved to B, no HTLC left.
    await net.waitFor(
      "B's invoice settled and A's balance moved",
      async () => {
        const [row] = await net.query<{ status: string }>(
          `SELECT status FROM "${B.schemas.channel}".invoices WHERE r_hash = '${inv.rHash}'`,
        );
        const a = await A.api.channel(channelId);
        return (
          (row?.status === "settled" &&
            a.remoteBalanceMsat === INVOICE_MSAT.toString() &&
            a.localBalanceMsat === (CHANNEL_SAT * 1000n - INVOICE_MSAT).toString() &&
            a.htlcs.length === 0) ||
          `invoice ${row?.status}, A local ${a.localBalanceMsat} remote ${a.remoteBalanceMsat}, htlcs ${a.htlcs.length}`
        );
      },
      { intervalMs: 250, timeoutMs: 30_000, quiet: true },
    );
    // Balances move with the last revocation, which is no status event: Refresh shows them.
    await page.click("#refresh");
    await expect
      .poll(async () => (await row().locator("td").allInnerTexts()).map((c) => c.trim()).slice(6, 8))
      .toEqual(["3,970,000 sat", "30,000 sat"]);
    await shot("pay-invoice");
  });

  it("closes the channel cooperatively after a confirm; mined until closed", async () => {
    await row().locator("button[data-action=close]").click();
    await page.locator("#close-dialog").waitFor({ state: "visible" });
    expect(await text("#close-channel")).toBe(channelId);
    await shot("close-confirm");
    await page.click("#close-confirm");
    await page.locator("#close-dialog").waitFor({ state: "hidden" });
    expect(await text("#close-form [data-role=error]")).toBe("");
    await net.waitFor(
      "A's channel closed",
      async () => {
        const c = await A.api.channel(channelId);
        return c.phase === "closed" || c.phase;
      },
      { mine: true, timeoutMs: 60_000 },
    );
    await expect
      .poll(async () => (await row().locator("td").allInnerTexts())[4]?.trim(), { timeout: 20_000 })
      .toBe("closed");
    // A closed channel is no longer drawn.
    await expect.poll(() => page.locator("#graph-canvas path.chan").count(), { timeout: 20_000 }).toBe(0);
    await shot("closed");
  });

  it("logged no error", () => {
    expect(problems).toEqual([]);
  });
});
