// Slow requests (ops-mcp's traces, admin only) and, on a click, one request's waterfall: a bar per span, indented
// by its parent, coloured by service, errors marked. Uses app.js's el() and byId(). No inline handlers (CSP).

const TRACES_EVERY_MS = 10000;
const TOKEN_KEY = "titanium.admin-token";
// One colour per service, in the order of the request path.
const SERVICE_COLOURS = {
  "load-balancer": "#5b9cff",
  "api-gateway": "#a78bfa",
  "auth-service": "#f0b429",
  "user-service": "#2fbf71",
  "blog-service": "#38bdf8",
  "cluster-monitor": "#fb923c",
  "edge-config": "#f472b6",
  "ops-mcp": "#94a3b8",
  "dashboard-ui": "#c084fc",
};

const traces = { timer: null, selected: null };

function adminToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function opsGet(path) {
  const answer = await fetch(path, {
    cache: "no-store",
    headers: { Authorization: `Bearer ${adminToken()}`, "X-Heartbeat": "true" },
    signal: AbortSignal.timeout(5000),
  });
  const body = await answer.json().catch(() => ({}));
  if (answer.status === 401) sessionStorage.removeItem(TOKEN_KEY);
  if (!answer.ok) throw new Error(`HTTP ${answer.status}${body.detail ? `: ${body.detail}` : ""}`);
  return body;
}

function serviceColour(service) {
  return SERVICE_COLOURS[service] || "#8a96ad";
}

function showSignIn(message) {
  byId("trace-login").hidden = false;
  byId("trace-open").hidden = true;
  byId("slow-summary").textContent = "sign in as an admin";
  byId("slow-panel").replaceChildren(el("p", { className: "muted", text: message }));
}

async function pollSlowRequests() {
  clearTimeout(traces.timer);
  if (!adminToken()) {
    showSignIn("Traces are for admins: sign in to see the slowest recent requests.");
    return;
  }
  byId("trace-login").hidden = true;
  byId("trace-open").hidden = false;
  try {
    const body = await opsGet("/api/ops/traces?slowest=10");
    const requests = Array.isArray(body.requests) ? body.requests : [];
    byId("slow-summary").textContent = `${requests.length} slowest recent`;
    byId("slow-panel").replaceChildren(requests.length
      ? el("table", { id: "slow-table" },
        el("thead", {}, el("tr", {}, ["route", "status", "ms", "services", "trace"].map((h) => el("th", { text: h })))),
        el("tbody", {}, requests.map(slowRow)))
      : el("p", { className: "muted", text: "No traced requests yet." }));
  } catch (error) {
    if (!adminToken()) {
      showSignIn(`Signed out (${error.message}).`);
      return;
    }
    byId("slow-panel").replaceChildren(el("p", { className: "reason", text: `traces are unavailable (${error.message}).` }));
  }
  traces.timer = setTimeout(pollSlowRequests, TRACES_EVERY_MS);
}

function slowRow(request) {
  const row = el("tr", { className: "slow-row", "data-trace-id": request.trace_id, tabindex: "0" },
    el("td", { text: request.route }),
    el("td", {}, el("span", { className: `pill ${request.error ? "pill-offline" : "pill-online"}`, text: String(request.status ?? "–") })),
    el("td", { className: "num", text: fmt(request.duration_ms, 1) }),
    el("td", {}, request.services.map((s) => el("span", { className: "service-chip", text: s, "data-service": s }))),
    el("td", { className: "trace-id", text: request.trace_id.slice(0, 8) }));
  for (const chip of row.querySelectorAll(".service-chip")) chip.style.borderColor = serviceColour(chip.dataset.service);
  row.addEventListener("click", () => openWaterfall(request.trace_id));
  row.addEventListener("keydown", (event) => { if (event.key === "Enter") openWaterfall(request.trace_id); });
  return row;
}

function depthsOf(spans) {
  const byId = new Map(spans.map((s) => [s.span_id, s]));
  const depth = new Map();
  const of = (span) => {
    if (depth.has(span.span_id)) return depth.get(span.span_id);
    const parent = span.parent_id && byId.get(span.parent_id);
    depth.set(span.span_id, 0);  // guards a cycle in bad data
    const value = parent ? of(parent) + 1 : 0;
    depth.set(span.span_id, value);
    return value;
  };
  spans.forEach(of);
  return depth;
}

function treeOrder(spans) {
  const children = new Map();
  const ids = new Set(spans.map((s) => s.span_id));
  for (const span of spans) {
    const key = span.parent_id && ids.has(span.parent_id) ? span.parent_id : null;
    if (!children.has(key)) children.set(key, []);
    children.get(key).push(span);
  }
  const ordered = [];
  const walk = (key) => {
    for (const span of (children.get(key) || []).sort((a, b) => a.offset_ms - b.offset_ms)) {
      ordered.push(span);
      walk(span.span_id);
    }
  };
  walk(null);
  return ordered;
}

async function openWaterfall(traceId) {
  const box = byId("waterfall");
  box.hidden = false;
  traces.selected = traceId;
  for (const row of document.querySelectorAll(".slow-row")) row.classList.toggle("selected", row.dataset.traceId === traceId);
  box.replaceChildren(el("p", { className: "muted", text: `loading trace ${traceId}…` }));
  // Which trace the waterfall shows, once drawn (people and tests can tell an old drawing from the new one).
  delete box.dataset.traceId;
  try {
    const tree = await opsGet(`/api/ops/traces/${traceId}`);
    const total = tree.duration_ms || 1;
    const depth = depthsOf(tree.spans);
    const bars = treeOrder(tree.spans).map((span) => {
      const label = el("div", { className: "wf-label", title: `${span.service}: ${span.name}` },
        span.error ? el("span", { className: "wf-error", text: "✕", title: "error" }) : null,
        el("span", { className: "wf-service", text: span.service }),
        el("span", { className: "wf-name", text: span.name }));
      label.style.paddingLeft = `${depth.get(span.span_id) * 14 + 4}px`;
      const bar = el("div", { className: "wf-bar" }, el("span", { className: "wf-ms", text: `${fmt(span.duration_ms, 2)} ms` }));
      bar.style.left = `${(span.offset_ms / total) * 100}%`;
      bar.style.width = `${Math.max((span.duration_ms / total) * 100, 0.4)}%`;
      bar.style.background = serviceColour(span.service);
      return el("div", {
        className: `wf-row${span.error ? " wf-row-error" : ""}`,
        "data-service": span.service,
        "data-depth": String(depth.get(span.span_id)),
        "data-error": String(span.error),
      }, label, el("div", { className: "wf-track" }, bar));
    });
    const legend = el("div", { className: "wf-legend" }, tree.services.map((s) => {
      const swatch = el("span", { className: "wf-swatch" });
      swatch.style.background = serviceColour(s);
      return el("span", { className: "wf-key" }, swatch, s);
    }));
    box.replaceChildren(
      el("div", { className: "wf-head" },
        el("strong", { text: `trace ${tree.trace_id}` }),
        el("span", { className: "muted", text: ` · ${fmt(tree.duration_ms, 1)} ms · ${tree.spans.length} spans` })),
      legend,
      el("div", { id: "waterfall-rows", className: "wf-rows" }, bars));
    box.dataset.traceId = traceId;
  } catch (error) {
    box.replaceChildren(el("p", { className: "reason", text: `trace ${traceId} is unavailable (${error.message}).` }));
  }
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const status = byId("trace-login-status");
  try {
    const answer = await fetch("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: form.username.value, password: form.password.value }),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(body.detail || `HTTP ${answer.status}`);
    sessionStorage.setItem(TOKEN_KEY, body.access_token);
    form.password.value = "";
    status.textContent = "";
    pollSlowRequests();
  } catch (error) {
    status.textContent = `sign-in failed: ${error.message}`;
  }
}

// A trace named in a bug report (error bodies carry trace_id) may be neither slow nor recent enough to be listed.
function openTraceById(event) {
  event.preventDefault();
  openWaterfall(event.target.trace_id.value.trim().toLowerCase());
}

document.addEventListener("DOMContentLoaded", () => {
  byId("trace-login").addEventListener("submit", signIn);
  byId("trace-open").addEventListener("submit", openTraceById);
  pollSlowRequests();
});
