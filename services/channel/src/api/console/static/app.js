// The operator's console, run in the browser: asks for a control API token, then reads the /v1
// routes with it and renders them again whenever GET /v1/events reports a status change (a
// streaming fetch: EventSource cannot send the Authorization header). The token lives in this tab's
// sessionStorage only and travels only in the Authorization header, never in a URL. Everything is
// built with DOM calls and text nodes, never parsed from HTML strings: peer-supplied strings
// (failure reasons) must not become markup. Plain JavaScript so the API can serve it without a build step.
// The actions (invoice, pay, open, close, fees) send the same token to the same /v1 routes lnctl uses;
// the QR code comes from the vendored qrcode-generator module (console/qrcode.js), loaded on first use.

const TOKEN_KEY = "ln-console-token";
/** Block height and the wallet are not status events: they are read again this often. */
const SLOW_REFRESH_MS = 60_000;
/** Events arriving together cause one reload. */
const EVENT_DEBOUNCE_MS = 150;
const RECONNECT_MIN_MS = 1000;
const RECONNECT_MAX_MS = 30_000;
/** Channel details (for HTLCs) are fetched one request each: cap them for a node with many. */
const MAX_DETAILS = 50;
const PAYMENTS_SHOWN = 20;

const $ = (id) => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`console page lacks #${id}`);
  return el;
};

class HttpError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// ---- API ------------------------------------------------------------------------------------

/** GET a /v1 route (relative, so the console also works behind a path prefix). */
async function get(path, token) {
  const res = await fetch(path, {
    headers: { authorization: `Bearer ${token}`, accept: "application/json" },
    cache: "no-store",
    credentials: "omit",
  });
  let body;
  try {
    body = await res.json();
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = body && body.error ? body.error : {};
    throw new HttpError(res.status, err.code ?? `HTTP_${res.status}`, err.message ?? res.statusText);
  }
  return body;
}

/** A mutating call (an action): JSON in, JSON out; a refusal becomes an HttpError with the API's message. */
async function send(method, path, token, body, extraHeaders) {
  const res = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      accept: "application/json",
      ...(body === undefined ? {} : { "content-type": "application/json" }),
      ...extraHeaders,
    },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  let parsed;
  try {
    parsed = await res.json();
  } catch {
    parsed = undefined;
  }
  if (!res.ok) {
    const err = parsed && parsed.error ? parsed.error : {};
    throw new HttpError(res.status, err.code ?? `HTTP_${res.status}`, err.message ?? res.statusText);
  }
  return parsed;
}

const isLive = (c) => c.phase !== "closed" && c.phase !== "failed";

async function load(token) {
  const [info, channels, payments, wallet, graph] = await Promise.all([
    get("v1/info", token),
    get("v1/channels", token),
    get(`v1/payments?limit=${PAYMENTS_SHOWN}`, token),
    get("v1/wallet/balance", token),
    get("v1/graph", token),
  ]);
  const live = channels.channels.filter(isLive).slice(0, MAX_DETAILS);
  const details = await Promise.all(live.map((c) => get(`v1/channels/${encodeURIComponent(c.id)}`, token)));
  const watched =
    watch.id === undefined
      ? undefined
      : await get(`v1/payments/${encodeURIComponent(watch.id)}`, token).catch(() => undefined);
  return { info, channels: channels.channels, details, payments: payments.payments, wallet, graph, watched };
}

// ---- formatting -----------------------------------------------------------------------------

const grouped = (n) => BigInt(n).toLocaleString("en-US");
const satText = (s) => `${grouped(s)} sat`;

/** msat as sat, keeping the millisatoshi when there are any. */
function msatText(m) {
  const v = BigInt(m);
  const frac = v % 1000n;
  return frac === 0n ? satText(v / 1000n) : `${grouped(v / 1000n)}.${frac.toString().padStart(3, "0")} sat`;
}

const timeText = (iso) => `${new Date(iso).toISOString().slice(0, 19).replace("T", " ")} UTC`;
const expiryText = (e) => ("blocks" in e ? `block ${e.blocks}` : timeText(new Date(e.seconds * 1000)));

// ---- DOM ------------------------------------------------------------------------------------

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props ?? {})) {
    if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

/** An SVG element (in the namespace of the page's own graph canvas): attributes one by one, text as text nodes. */
function svg(tag, attrs, ...children) {
  const node = document.createElementNS($("graph-canvas").namespaceURI, tag);
  for (const [k, v] of Object.entries(attrs ?? {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : String(c));
  return node;
}

const mono = (text) => el("span", { class: "mono" }, text);
const pill = (text) => el("span", { class: `pill pill-${text}` }, text);

function table(headers, rows, empty) {
  if (rows.length === 0) return el("p", { class: "muted" }, empty);
  const head = el("tr", {}, ...headers.map((h) => el("th", { scope: "col" }, h)));
  const body = rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

function pairs(target, entries) {
  target.replaceChildren(...entries.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
}

// ---- rendering ------------------------------------------------------------------------------

function render(data) {
  const { info, channels, details, payments, wallet, graph, watched } = data;

  pairs($("node"), [
    ["Node id", mono(info.nodeId)],
    ["Network", info.network],
    ["Version", info.version],
    ["Block height", grouped(info.blockHeight)],
    ["Peers", String(info.peerCount)],
    ["Channels", String(info.channelCount)],
  ]);

  const confirmed = BigInt(wallet.confirmedSat);
  const unconfirmed = BigInt(wallet.unconfirmedSat);
  pairs($("wallet"), [
    ["Confirmed", satText(confirmed)],
    ["Unconfirmed", satText(unconfirmed)],
    ["Total", satText(confirmed + unconfirmed)],
  ]);

  // The API has no watchtower route: say so rather than guess.
  $("tower").replaceChildren(
    el("p", {}, "Not reported by this API: GET /v1/info carries no watchtower status."),
    el("p", { class: "muted" }, "See the watchtower service's own /metrics and logs."),
  );

  // No peer list either: /v1/info counts connected peers, channels name their peers.
  const byPeer = new Map();
  for (const c of channels) {
    const p = byPeer.get(c.peerNodeId) ?? { channels: 0, live: 0, capacity: 0n };
    p.channels += 1;
    if (isLive(c)) p.live += 1;
    p.capacity += BigInt(c.capacitySat);
    byPeer.set(c.peerNodeId, p);
  }
  $("peers").replaceChildren(
    el("p", {}, `${info.peerCount} connected (GET /v1/info). The API lists no peers; these have channels:`),
    table(
      ["Peer node id", "Channels", "Open", "Capacity"],
      [...byPeer].map(([id, p]) => [mono(id), String(p.channels), String(p.live), satText(p.capacity)]),
      "No channels, so no peers to name.",
    ),
  );

  const htlcsOf = new Map(details.map((d) => [d.id, d.htlcs]));
  $("channels").replaceChildren(
    table(
      [
        "Channel id",
        "Short channel id",
        "Peer",
        "Role",
        "State",
        "Capacity",
        "Local",
        "Remote",
        "HTLCs",
        "Actions",
      ],
      channels.map((c) => {
        const htlcs = htlcsOf.get(c.id);
        return [
          mono(c.id),
          c.shortChannelId === undefined ? "–" : mono(c.shortChannelId),
          mono(c.peerNodeId),
          c.role,
          pill(c.phase),
          satText(c.capacitySat),
          msatText(c.localBalanceMsat),
          msatText(c.remoteBalanceMsat),
          htlcs === undefined ? "–" : String(htlcs.length),
          channelActions(c),
        ];
      }),
      "No channels.",
    ),
  );

  const htlcRows = details.flatMap((d) =>
    d.htlcs.map((h) => [
      mono(d.id),
      h.id,
      h.direction,
      msatText(h.amountMsat),
      mono(h.rHash),
      expiryText(h.expiry),
    ]),
  );
  const capped = channels.filter(isLive).length > MAX_DETAILS ? ` (first ${MAX_DETAILS} open channels)` : "";
  $("htlcs").replaceChildren(
    table(
      ["Channel", "HTLC id", "Direction", "Amount", "Payment hash", "Expiry"],
      htlcRows,
      `No HTLCs in flight${capped}.`,
    ),
  );

  $("payments").replaceChildren(
    table(
      ["Created", "Payment id", "Channel", "Amount", "Status", "Failure"],
      payments.map((p) => [
        timeText(p.createdAt),
        mono(p.id),
        // An invoice payment (the node found its routes) names its payee, not one channel.
        p.kind === "invoice" ? `invoice to ${shortId(p.payee)}` : mono(p.channelId),
        msatText(p.amountMsat),
        pill(p.status),
        (p.kind === "invoice" ? p.failure : p.failureReason) ?? "",
      ]),
      "No payments yet.",
    ),
  );

  renderGraph(graph);
  if (watched !== undefined) renderWatched(watched);
}

// ---- channel actions ------------------------------------------------------------------------

function channelActions(c) {
  const box = el("span", { class: "actions" });
  if (c.phase !== "normal") return box;
  const fees = el("button", { type: "button", "data-action": "fees", "data-channel": c.id }, "Fees");
  fees.addEventListener("click", () => void openFees(c.id));
  const close = el("button", { type: "button", "data-action": "close", "data-channel": c.id }, "Close");
  close.addEventListener("click", () => openClose(c.id));
  box.append(fees, " ", close);
  return box;
}

// ---- graph view -----------------------------------------------------------------------------

const GRAPH_W = 760;
const GRAPH_H = 460;
const shortId = (id) => `${id.slice(0, 10)}…`;
let selected;

function policyLines(label, p) {
  if (p === null) return [`${label}: no channel_update`];
  return [
    `${label}: ${p.disabled ? "disabled, " : ""}${msatText(p.feeBaseMsat)} + ${p.feeProportionalMillionths} ppm, ` +
      `cltv delta ${p.cltvExpiryDelta}, htlc ${msatText(p.htlcMinimumMsat)} to ` +
      `${p.htlcMaximumMsat === null ? "–" : msatText(p.htlcMaximumMsat)}` +
      `${p.timestamp === null ? "" : `, updated ${timeText(new Date(p.timestamp * 1000))}`}`,
  ];
}

function nodeName(graph, id) {
  const n = graph.nodes.find((x) => x.nodeId === id);
  return n && n.alias ? `${n.alias} (${shortId(id)})` : shortId(id);
}

function channelText(graph, c) {
  return [
    `Channel ${c.shortChannelId ?? "(not in a block yet)"}${c.ours ? " (ours)" : ""}${c.announced ? "" : ", not announced"}`,
    `Capacity ${satText(c.capacitySat)}`,
    ...policyLines(`${nodeName(graph, c.node1)} → ${nodeName(graph, c.node2)}`, c.node1Policy),
    ...policyLines(`${nodeName(graph, c.node2)} → ${nodeName(graph, c.node1)}`, c.node2Policy),
  ];
}

function showDetail(graph, what) {
  selected = what;
  const box = $("graph-detail");
  if (what.kind === "channel") {
    const c = graph.channels.find((x) => (x.channelId ?? x.shortChannelId) === what.key);
    if (!c) return box.replaceChildren();
    box.replaceChildren(
      el("h3", {}, `Channel ${c.shortChannelId ?? c.channelId}`),
      table(
        ["Direction", "Disabled", "Base fee", "Fee rate", "CLTV delta", "HTLC min", "HTLC max", "Updated"],
        [
          [c.node1, c.node2, c.node1Policy],
          [c.node2, c.node1, c.node2Policy],
        ].map(([from, to, p]) => [
          `${nodeName(graph, from)} → ${nodeName(graph, to)}`,
          p === null ? "–" : p.disabled ? "yes" : "no",
          p === null ? "–" : msatText(p.feeBaseMsat),
          p === null ? "–" : `${p.feeProportionalMillionths} ppm`,
          p === null ? "–" : String(p.cltvExpiryDelta),
          p === null ? "–" : msatText(p.htlcMinimumMsat),
          p === null || p.htlcMaximumMsat === null ? "–" : msatText(p.htlcMaximumMsat),
          p === null || p.timestamp === null ? "–" : timeText(new Date(p.timestamp * 1000)),
        ]),
        "",
      ),
      el(
        "p",
        { class: "muted" },
        `Capacity ${satText(c.capacitySat)}; ${c.announced ? "announced" : "not announced"}` +
          `${c.channelId === null ? "" : `; our channel ${c.channelId}`}; short channel id as a number ` +
          `${c.shortChannelIdNumber ?? "–"}.`,
      ),
    );
  } else {
    const n = graph.nodes.find((x) => x.nodeId === what.key);
    if (!n) return box.replaceChildren();
    box.replaceChildren(
      el("h3", {}, n.ours ? "Our node" : `Node ${n.alias || shortId(n.nodeId)}`),
      el(
        "dl",
        {},
        el("dt", {}, "Node id"),
        el("dd", {}, mono(n.nodeId)),
        el("dt", {}, "Alias"),
        el("dd", {}, n.alias ?? "–"),
        el("dt", {}, "Addresses"),
        el("dd", {}, n.addresses.length === 0 ? "–" : n.addresses.join(", ")),
        el("dt", {}, "Announced"),
        el("dd", {}, n.timestamp === null ? "–" : timeText(new Date(n.timestamp * 1000))),
        el("dt", {}, "Channels"),
        el(
          "dd",
          {},
          String(graph.channels.filter((c) => c.node1 === n.nodeId || c.node2 === n.nodeId).length),
        ),
      ),
    );
  }
}

/** Nodes on a circle (ours first, at the top; the rest by node id), channels as lines between them. */
function renderGraph(graph) {
  const order = [...graph.nodes.filter((n) => n.ours), ...graph.nodes.filter((n) => !n.ours)];
  const cx = GRAPH_W / 2;
  const cy = GRAPH_H / 2;
  const r = Math.min(cx, cy) - 50;
  const at = new Map(
    order.map((n, i) => {
      const a = -Math.PI / 2 + (2 * Math.PI * i) / order.length;
      return [
        n.nodeId,
        {
          x: order.length === 1 ? cx : cx + r * Math.cos(a),
          y: order.length === 1 ? cy : cy + r * Math.sin(a),
        },
      ];
    }),
  );
  // Channels between the same two nodes bend apart so each can be pointed at.
  const perPair = new Map();
  for (const c of graph.channels) {
    const k = `${c.node1}-${c.node2}`;
    perPair.set(k, (perPair.get(k) ?? 0) + 1);
  }
  const seenPair = new Map();
  const lines = graph.channels.map((c) => {
    const k = `${c.node1}-${c.node2}`;
    const i = seenPair.get(k) ?? 0;
    seenPair.set(k, i + 1);
    const a = at.get(c.node1);
    const b = at.get(c.node2);
    const len = Math.hypot(b.x - a.x, b.y - a.y) || 1;
    const bend = (i - ((perPair.get(k) ?? 1) - 1) / 2) * 36;
    const mx = (a.x + b.x) / 2 + (-(b.y - a.y) / len) * bend;
    const my = (a.y + b.y) / 2 + ((b.x - a.x) / len) * bend;
    const disabled = [c.node1Policy, c.node2Policy].every((p) => p === null || p.disabled);
    const key = c.channelId ?? c.shortChannelId;
    const d = `M ${a.x.toFixed(1)} ${a.y.toFixed(1)} Q ${mx.toFixed(1)} ${my.toFixed(1)} ${b.x.toFixed(1)} ${b.y.toFixed(1)}`;
    // A wide invisible stroke under the drawn one takes the pointer, gaps of a dashed line included.
    const group = svg(
      "g",
      { class: "chan-g", tabindex: "0" },
      svg("title", {}, channelText(graph, c).join("\n")),
      svg("path", { d, class: "chan-hit" }),
      svg("path", {
        d,
        class: `chan${c.ours ? " ours" : ""}${disabled ? " disabled" : ""}${c.announced ? "" : " private"}`,
        "data-scid": c.shortChannelId ?? "",
        "data-channel": c.channelId ?? "",
      }),
    );
    group.addEventListener("click", () => showDetail(graph, { kind: "channel", key }));
    return group;
  });
  const dots = order.map((n) => {
    const p = at.get(n.nodeId);
    const g = svg(
      "g",
      { class: `node${n.ours ? " ours" : ""}`, "data-node": n.nodeId, tabindex: "0" },
      svg("title", {}, `${n.alias ? `${n.alias}\n` : ""}${n.nodeId}${n.ours ? "\n(our node)" : ""}`),
      svg("circle", { cx: p.x.toFixed(1), cy: p.y.toFixed(1), r: n.ours ? 16 : 12 }),
      svg(
        "text",
        { x: p.x.toFixed(1), y: (p.y + (p.y >= cy ? 32 : -24)).toFixed(1), "text-anchor": "middle" },
        n.ours ? `${n.alias || shortId(n.nodeId)} (us)` : n.alias || shortId(n.nodeId),
      ),
    );
    g.addEventListener("click", () => showDetail(graph, { kind: "node", key: n.nodeId }));
    return g;
  });
  const canvas = $("graph-canvas");
  canvas.setAttribute("aria-label", `${graph.nodes.length} nodes, ${graph.channels.length} channels`);
  canvas.replaceChildren(svg("g", { class: "chans" }, ...lines), svg("g", { class: "nodes" }, ...dots));
  $("graph").replaceChildren(
    el(
      "p",
      { class: "muted" },
      `${graph.nodes.length} nodes, ${graph.channels.length} channels (${graph.channels.filter((c) => c.ours).length} ours).`,
    ),
  );
  if (selected !== undefined) showDetail(graph, selected);
}

// ---- actions --------------------------------------------------------------------------------

const currentToken = () => sessionStorage.getItem(TOKEN_KEY) ?? "";
const errorOf = (form) => form.querySelector("[data-role=error]");
const doneOf = (form) => form.querySelector("[data-role=done]");
const decimal = (v, what) => {
  const t = v.trim();
  if (!/^(0|[1-9][0-9]*)$/.test(t)) throw new Error(`${what} must be a whole number`);
  return t;
};

/** Runs a form's action: its button disabled meanwhile, a refusal shown in the form, the page reloaded. */
function onSubmit(id, action) {
  const form = $(id);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const buttons = [...form.querySelectorAll("button")];
    errorOf(form).textContent = "";
    for (const b of buttons) b.disabled = true;
    void (async () => {
      try {
        await action(form);
      } catch (e) {
        errorOf(form).textContent =
          e instanceof HttpError ? `${e.code}: ${e.message}` : String(e.message ?? e);
      } finally {
        for (const b of buttons) b.disabled = false;
      }
      scheduleReload();
    })();
  });
}

/** The QR code of `text` as an SVG of dark modules (qrcode-generator, loaded on first use). */
async function qrSvg(text) {
  const { default: qrcode } = await import("./qrcode.js");
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const n = qr.getModuleCount();
  const quiet = 4;
  let d = "";
  for (let row = 0; row < n; row += 1)
    for (let col = 0; col < n; col += 1)
      if (qr.isDark(row, col)) d += `M${col + quiet} ${row + quiet}h1v1h-1z`;
  return svg(
    "svg",
    { viewBox: `0 0 ${n + 2 * quiet} ${n + 2 * quiet}`, class: "qr", role: "img", "aria-label": "QR code" },
    svg("rect", { width: n + 2 * quiet, height: n + 2 * quiet, class: "qr-bg" }),
    svg("path", { d, class: "qr-fg" }),
  );
}

onSubmit("invoice-form", async (form) => {
  const amountSat = decimal($("invoice-amount").value, "The amount");
  const description = $("invoice-description").value;
  const inv = await send("POST", "v1/invoices", currentToken(), {
    amountMsat: (BigInt(amountSat) * 1000n).toString(),
    ...(description === "" ? {} : { description }),
  });
  // The BOLT #11 string once the node makes one; before that, the payment hash.
  const payable = typeof inv.bolt11 === "string" ? inv.bolt11 : inv.rHash;
  const box = $("invoice-result");
  box.replaceChildren(
    el(
      "p",
      {},
      typeof inv.bolt11 === "string"
        ? "Invoice (BOLT #11):"
        : "Payment hash (this node gives no BOLT #11 string):",
    ),
    el("p", { class: "mono", id: "invoice-text" }, payable),
    el("p", { class: "muted mono" }, `${msatText(inv.amountMsat)}, payment hash ${inv.rHash}`),
  );
  const copy = el("button", { type: "button" }, "Copy");
  copy.addEventListener("click", () => void navigator.clipboard?.writeText(payable));
  box.append(copy);
  try {
    box.append(el("div", { id: "invoice-qr" }, await qrSvg(payable)));
  } catch (e) {
    box.append(el("p", { class: "error" }, `No QR code: ${e instanceof Error ? e.message : String(e)}`));
  }
  form.reset();
});

/** The payment being watched: its id, and the timer that reads it again while it is pending. */
const watch = { id: undefined, timer: undefined };
const WATCH_POLL_MS = 1000;

/** An attempt's failure: BOLT #4's name, where, and the node's words (text only). */
function failureText(f) {
  if (f === null || f === undefined) return "";
  if (typeof f === "string") return f;
  const where = f.hop === null || f.hop === undefined ? "" : ` at hop ${f.hop}`;
  const who = f.nodeId ? ` (${shortId(f.nodeId)})` : "";
  return `${f.name ?? "failed"}${where}${who}${f.description ? `: ${f.description}` : ""}`;
}

function routeText(route) {
  const hops = Array.isArray(route) ? route : route && Array.isArray(route.hops) ? route.hops : [];
  return hops.map((h) => `${h.shortChannelId ?? "?"} → ${shortId(String(h.nodeId ?? ""))}`).join(", ");
}

function renderWatched(p) {
  const rows = [
    ["Payment id", mono(p.id)],
    ["Status", pill(p.status)],
    ["Amount", msatText(p.amountMsat)],
    ...(p.feeMsat === undefined || p.feeMsat === null ? [] : [["Fee", msatText(p.feeMsat)]]),
    ["Payment hash", mono(p.rHash)],
    ...(p.preimage ? [["Preimage", mono(p.preimage)]] : []),
    ...(p.payee ? [["Payee", mono(p.payee)]] : []),
    ...(p.failureReason ? [["Failure", p.failureReason]] : []),
    ...(p.kind === "invoice" && p.failure ? [["Failure", p.failure]] : []),
    ...(p.route ? [["Route", routeText(p.route)]] : []),
  ];
  const dl = el("dl", {});
  pairs(dl, rows);
  const attempts = Array.isArray(p.attempts)
    ? table(
        ["Attempt", "Route", "Amount", "Fee", "Status", "Failure"],
        p.attempts.map((a, i) => [
          String(a.id ?? i + 1),
          routeText(a.route),
          a.amountMsat === undefined ? "–" : msatText(a.amountMsat),
          a.feeMsat === undefined ? "–" : msatText(a.feeMsat),
          pill(a.status),
          failureText(a.failure),
        ]),
        "No attempt yet.",
      )
    : el("p", { class: "muted" }, "This node reports no attempts for this payment.");
  $("payment-watch").replaceChildren(el("h3", {}, "Payment"), dl, el("h3", {}, "Attempts"), attempts);
  clearTimeout(watch.timer);
  if (p.status === "pending")
    watch.timer = setTimeout(() => {
      if (watch.id === p.id) void refresh();
    }, WATCH_POLL_MS);
}

async function startPayment(body) {
  const key = crypto.randomUUID();
  const p = await send("POST", "v1/payments", currentToken(), body, { "idempotency-key": key });
  watch.id = p.id;
  renderWatched(p);
}

onSubmit("pay-form", async (form) => {
  const invoice = $("pay-invoice").value.trim();
  const amount = $("pay-amount").value.trim();
  await startPayment({ invoice, ...(amount === "" ? {} : { amountMsat: decimal(amount, "The amount") }) });
  form.reset();
});

onSubmit("open-form", async (form) => {
  const peer = $("open-peer").value.trim();
  const m = /^(0[23][0-9a-fA-F]{64})(?:@(.+):([0-9]{1,5}))?$/.exec(peer);
  if (!m) throw new Error("The peer is a node id (66 hex digits), optionally @host:port");
  const nodeId = m[1].toLowerCase();
  if (m[2] !== undefined)
    await send("POST", "v1/peers", currentToken(), { nodeId, host: m[2], port: Number(m[3]) });
  const c = await send("POST", "v1/channels", currentToken(), {
    nodeId,
    fundingSat: decimal($("open-amount").value, "The funding"),
  });
  form.reset();
  doneOf(form).textContent = `Channel ${c.id} is ${c.phase}.`;
});

async function openFees(channelId) {
  const form = $("fees-form");
  errorOf(form).textContent = "";
  doneOf(form).textContent = "";
  $("fees-channel").textContent = channelId;
  form.dataset.channel = channelId;
  $("fees-section").hidden = false;
  try {
    const p = await get(`v1/channels/${encodeURIComponent(channelId)}/policy`, currentToken());
    $("fees-base").value = p.feeBaseMsat;
    $("fees-ppm").value = String(p.feeProportionalMillionths);
    $("fees-cltv").value = String(p.cltvExpiryDelta);
  } catch (e) {
    errorOf(form).textContent = explain(e);
  }
  $("fees-base").focus();
}

onSubmit("fees-form", async (form) => {
  const id = form.dataset.channel;
  const p = await send("PUT", `v1/channels/${encodeURIComponent(id)}/policy`, currentToken(), {
    feeBaseMsat: decimal($("fees-base").value, "The base fee"),
    feeProportionalMillionths: Number(decimal($("fees-ppm").value, "The fee rate")),
    cltvExpiryDelta: Number(decimal($("fees-cltv").value, "The CLTV delta")),
  });
  doneOf(form).textContent =
    `Saved: ${msatText(p.feeBaseMsat)} + ${p.feeProportionalMillionths} ppm, cltv delta ${p.cltvExpiryDelta}.`;
});
$("fees-cancel").addEventListener("click", () => {
  $("fees-section").hidden = true;
});

function openClose(channelId) {
  const form = $("close-form");
  errorOf(form).textContent = "";
  $("close-channel").textContent = channelId;
  form.dataset.channel = channelId;
  $("close-dialog").showModal();
}

onSubmit("close-form", async (form) => {
  await send("POST", `v1/channels/${encodeURIComponent(form.dataset.channel)}/close`, currentToken());
  $("close-dialog").close();
});
$("close-cancel").addEventListener("click", () => $("close-dialog").close());

// ---- live updates: GET /v1/events ----------------------------------------------------------

/** The open stream (its AbortController), the last seq seen, and the pending reconnect or reload. */
const live = {
  abort: undefined,
  lastId: undefined,
  retryMs: RECONNECT_MIN_MS,
  retryTimer: undefined,
  reloadTimer: undefined,
};

function stopEvents() {
  live.abort?.abort();
  live.abort = undefined;
  clearTimeout(live.retryTimer);
  live.retryTimer = undefined;
  clearTimeout(live.reloadTimer);
}

/** Splits text/event-stream into frames; returns the frames complete so far and keeps the rest. */
function parseFrames(state, text) {
  state.buffer += text.replace(/\r\n?/g, "\n");
  const frames = [];
  for (let at = state.buffer.indexOf("\n\n"); at >= 0; at = state.buffer.indexOf("\n\n")) {
    const frame = {};
    for (const line of state.buffer.slice(0, at).split("\n")) {
      const colon = line.indexOf(":");
      if (colon <= 0) continue;
      frame[line.slice(0, colon)] = line.slice(colon + 1).replace(/^ /, "");
    }
    state.buffer = state.buffer.slice(at + 2);
    if (frame.event !== undefined || frame.data !== undefined) frames.push(frame);
  }
  return frames;
}

/** Follows the event stream; each event schedules one reload; a disconnect resumes after lastId. */
async function followEvents(token) {
  stopEvents();
  const abort = new AbortController();
  live.abort = abort;
  let reason;
  try {
    const headers = { authorization: `Bearer ${token}`, accept: "text/event-stream" };
    if (live.lastId !== undefined) headers["last-event-id"] = live.lastId;
    const res = await fetch("v1/events", {
      headers,
      cache: "no-store",
      credentials: "omit",
      signal: abort.signal,
    });
    if (res.status === 401 || res.status === 403) {
      const body = await res.json().catch(() => undefined);
      const err = body && body.error ? body.error : {};
      return showLogin(
        explain(new HttpError(res.status, err.code ?? `HTTP_${res.status}`, err.message ?? "")),
      );
    }
    if (!res.ok || !res.body) throw new Error(`the event stream answered ${res.status}`);
    const resumed = live.lastId !== undefined;
    live.lastId ??= res.headers.get("x-events-after") ?? undefined;
    live.retryMs = RECONNECT_MIN_MS;
    setLiveText(true);
    // Block height and the wallet may have moved while no stream was open.
    if (resumed) scheduleReload();
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    const state = { buffer: "" };
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const f of parseFrames(state, decoder.decode(value, { stream: true }))) {
        if (f.event === "end") {
          const err = JSON.parse(f.data ?? "{}").error ?? {};
          if (err.code === "TOKEN_REVOKED") return showLogin(`Token rejected: ${err.message ?? "revoked"}`);
          reason = err.message;
          continue;
        }
        if (f.id !== undefined) live.lastId = f.id;
        scheduleReload();
      }
    }
  } catch (e) {
    if (abort.signal.aborted) return;
    reason = e instanceof Error ? e.message : String(e);
  }
  if (abort.signal.aborted || live.abort !== abort) return;
  live.abort = undefined;
  setLiveText(false, reason);
  live.retryTimer = setTimeout(() => {
    live.retryTimer = undefined;
    const t = sessionStorage.getItem(TOKEN_KEY);
    if (t) void followEvents(t);
  }, live.retryMs);
  live.retryMs = Math.min(live.retryMs * 2, RECONNECT_MAX_MS);
}

function scheduleReload() {
  clearTimeout(live.reloadTimer);
  live.reloadTimer = setTimeout(() => void refresh(), EVENT_DEBOUNCE_MS);
}

function setLiveText(connected, reason) {
  $("updated").textContent = connected
    ? `Updated ${new Date().toLocaleTimeString()}; live (status events)`
    : `Live updates interrupted${reason ? ` (${reason})` : ""}; reconnecting`;
}

// ---- session --------------------------------------------------------------------------------

let timer;
let busy = false;
let again = false;

function showLogin(message) {
  clearTimeout(timer);
  stopEvents();
  live.lastId = undefined;
  sessionStorage.removeItem(TOKEN_KEY);
  $("dashboard").hidden = true;
  $("toolbar").hidden = true;
  $("banner").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message ?? "";
  $("token").focus();
}

function explain(e) {
  if (e instanceof HttpError) {
    if (e.status === 401) return `Token rejected: ${e.message}`;
    if (e.status === 403) return `This token may not read the node: ${e.message}`;
    return `The API answered ${e.status} ${e.code}: ${e.message}`;
  }
  return `Cannot reach the API: ${e instanceof Error ? e.message : String(e)}`;
}

/** One refresh; on 401/403 it drops the token and asks again, other failures keep the last data. */
async function refresh() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) return showLogin();
  if (busy) {
    // An event during a reload: reload once more after it, so nothing is left unseen.
    again = true;
    return;
  }
  busy = true;
  clearTimeout(timer);
  try {
    render(await load(token));
    $("banner").hidden = true;
    $("dashboard").hidden = false;
    $("toolbar").hidden = false;
    $("login").hidden = true;
    if (live.abort === undefined && live.retryTimer === undefined) void followEvents(token);
    else if (live.abort !== undefined) setLiveText(true);
  } catch (e) {
    if (e instanceof HttpError && (e.status === 401 || e.status === 403)) return showLogin(explain(e));
    $("banner").textContent = `${explain(e)}. Showing the last data; retrying.`;
    $("banner").hidden = false;
  } finally {
    busy = false;
  }
  if (again) {
    again = false;
    return void refresh();
  }
  // Status changes come as events; block height and the wallet are read again now and then.
  timer = setTimeout(() => {
    if (!document.hidden) void refresh();
  }, SLOW_REFRESH_MS);
}

$("login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const input = $("token");
  const token = input.value.trim();
  input.value = "";
  if (!token) return showLogin("Enter a token.");
  sessionStorage.setItem(TOKEN_KEY, token);
  $("login-error").textContent = "Checking…";
  void refresh();
});
$("refresh").addEventListener("click", () => void refresh());
$("signout").addEventListener("click", () => showLogin("Token forgotten."));
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && sessionStorage.getItem(TOKEN_KEY)) void refresh();
});

if (sessionStorage.getItem(TOKEN_KEY)) void refresh();
else showLogin();
