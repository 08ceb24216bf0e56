// The operator's console, run in the browser: asks for a control API token, then reads the /v1
// routes with it and renders them again whenever GET /v1/events reports a status change (a
// streaming fetch: EventSource cannot send the Authorization header). The token lives in this tab's
// sessionStorage only and travels only in the Authorization header, never in a URL. Everything is
// built with DOM calls and text nodes, never parsed from HTML strings: peer-supplied strings
// (failure reasons) must not become markup. Plain JavaScript so the API can serve it without a build step.

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

const isLive = (c) => c.phase !== "closed" && c.phase !== "failed";

async function load(token) {
  const [info, channels, payments, wallet] = await Promise.all([
    get("v1/info", token),
    get("v1/channels", token),
    get(`v1/payments?limit=${PAYMENTS_SHOWN}`, token),
    get("v1/wallet/balance", token),
  ]);
  const live = channels.channels.filter(isLive).slice(0, MAX_DETAILS);
  const details = await Promise.all(live.map((c) => get(`v1/channels/${encodeURIComponent(c.id)}`, token)));
  return { info, channels: channels.channels, details, payments: payments.payments, wallet };
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
  const { info, channels, details, payments, wallet } = data;

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
      ["Channel id", "Short channel id", "Peer", "Role", "State", "Capacity", "Local", "Remote", "HTLCs"],
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
        mono(p.channelId),
        msatText(p.amountMsat),
        pill(p.status),
        p.failureReason ?? "",
      ]),
      "No payments yet.",
    ),
  );
}

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
