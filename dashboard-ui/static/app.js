// Titanium dashboard: shows the load balancer's /stats (pushed, see stats-stream.js), draws the charts, keeps the
// heartbeat and the cluster-monitor WebSocket, and lists edge devices. Everything is same-origin; nothing leaves the suite.
"use strict";

const HISTORY_MS = 5 * 60 * 1000;
// A hard cap as well, so a very short poll interval cannot grow the charts without bound.
const MAX_POINTS = 1000;
const STATS_TIMEOUT_MS = 5000;
const HEARTBEAT_EVERY_MS = 5000;
const HEARTBEAT_RECONNECT_MS = 2000;
const CLUSTERS_RECONNECT_MAX_MS = 10000;
const EDGE_EVERY_MS = 5000;
const DIAGNOSIS_EVERY_MS = 5000;
const MAX_EVENTS = 100;
// `services`: the order of the service cards, as the suite's catalogue lists them (others follow, by name).
const DEFAULT_CONFIG = { poll_interval_s: 2, api_docs: {}, services: [] };

// ---------- small helpers ----------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function byId(id) {
  return document.getElementById(id);
}

function isNum(value) {
  return typeof value === "number" && Number.isFinite(value);
}

function fmt(value, digits = 1, suffix = "") {
  return isNum(value) ? `${value.toFixed(digits)}${suffix}` : "–";
}

function fmtInt(value) {
  return isNum(value) ? Math.round(value).toLocaleString("en-US") : "–";
}

function clockTime(date) {
  return date.toLocaleTimeString("en-GB", { hour12: false });
}

function wsUrl(path) {
  const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${window.location.host}${path}`;
}

function cssToken(text) {
  return String(text || "unknown").toLowerCase().replace(/[^a-z0-9-]/g, "");
}

async function loadConfig() {
  const config = { ...DEFAULT_CONFIG };
  try {
    const answer = await fetch("dashboard-config.json", { cache: "no-store" });
    if (answer.ok) Object.assign(config, await answer.json());
  } catch (error) {
    // Served without the config file: the defaults are enough to run.
  }
  const fromQuery = Number.parseFloat(new URLSearchParams(window.location.search).get("poll"));
  if (Number.isFinite(fromQuery) && fromQuery > 0) config.poll_interval_s = fromQuery;
  config.poll_interval_s = Math.max(0.2, Number(config.poll_interval_s) || DEFAULT_CONFIG.poll_interval_s);
  if (!Array.isArray(config.services)) config.services = DEFAULT_CONFIG.services;
  return config;
}

// ---------- charts ----------

function lineChart(canvas, datasets, yTitle) {
  return new Chart(canvas, {
    type: "line",
    data: { labels: [], datasets },
    options: {
      animation: false,
      maintainAspectRatio: false,
      interaction: { mode: "index", intersect: false },
      elements: { point: { radius: 0, hitRadius: 6 }, line: { tension: 0.25, borderWidth: 2 } },
      scales: {
        x: { ticks: { color: "#8a96ad", maxTicksLimit: 7, maxRotation: 0 }, grid: { color: "#222c42" } },
        y: {
          beginAtZero: true,
          suggestedMax: 1,
          title: { display: true, text: yTitle, color: "#8a96ad" },
          ticks: { color: "#8a96ad" },
          grid: { color: "#222c42" },
        },
      },
      plugins: { legend: { labels: { color: "#c4ccd8", boxWidth: 12 } } },
    },
  });
}

class ChartHistory {
  // What the charts show: one live point per poll for the last five minutes and, before them, the load
  // balancer's remembered history (history.js), as far back as the chosen range (5 min or 1 h).
  constructor(charts) {
    this.charts = charts;
    this.times = [];
    this.values = [];
    this.past = [];
    this.rangeMs = HISTORY_MS;
  }

  push(when, valuesPerChart) {
    this.times.push(when.getTime());
    this.values.push(valuesPerChart);
    while (this.times.length > MAX_POINTS || (this.times.length && when.getTime() - this.times[0] > HISTORY_MS)) {
      this.times.shift();
      this.values.shift();
    }
    this.draw(when.getTime());
  }

  // `points`: [{ t, values }] oldest first, values as push() takes them.
  showPast(points, rangeMs) {
    this.past = points;
    this.rangeMs = rangeMs;
    this.draw(Math.max(Date.now(), this.times.at(-1) ?? 0));
  }

  draw(now) {
    const from = now - this.rangeMs;
    const firstLive = this.times.length ? this.times[0] : Infinity;
    const shown = this.past.filter((p) => p.t >= from && p.t < firstLive);
    this.times.forEach((t, k) => {
      if (t >= from) shown.push({ t, values: this.values[k] });
    });
    this.charts.forEach((chart, i) => {
      chart.data.labels = shown.map((p) => clockTime(new Date(p.t)));
      chart.data.datasets.forEach((dataset, j) => {
        dataset.data = shown.map((p) => p.values[i][j] ?? null);
      });
      chart.update("none");
    });
    document.body.dataset.chartPoints = String(shown.length);
  }
}

// ---------- reading /stats ----------

function lbLatency(lb) {
  return lb.latency_ms || lb.latency || (lb.requests && lb.requests.latency_ms) || {};
}

function serviceStatus(name, entry) {
  if (entry.error || entry.service_status === "offline" || entry.service_status === "timeout") {
    return entry.service_status === "timeout" ? "timeout" : "offline";
  }
  if (entry.service_status === "degraded") return "degraded";
  if (name === "load-balancer") {
    const healthy = !entry.status || entry.status === "healthy" || entry.status === "ok";
    return healthy ? "online" : "degraded";
  }
  return entry.service_status === "online" ? "online" : "degraded";
}

function reasons(entry) {
  const found = [];
  if (entry.error) found.push(String(entry.error));
  if (Array.isArray(entry.degraded_reasons)) found.push(...entry.degraded_reasons.map(String));
  if (entry.db && entry.db.status && entry.db.status !== "ok") {
    found.push(`database ${entry.db.status}${entry.db.error ? `: ${entry.db.error}` : ""}`);
  }
  if (entry.cache && entry.cache.reason) found.push(`cache: ${entry.cache.reason}`);
  if (entry.reason) found.push(String(entry.reason));
  // A service with several replicas is online while one is: say which ones are not.
  if (Array.isArray(entry.replicas) && entry.replicas.length > 1) {
    for (const replica of entry.replicas.filter((r) => r.service_status !== "online")) {
      found.push(`replica ${replica.url} ${replica.service_status}`);
    }
  }
  return found;
}

function orderedServices(stats, order) {
  // `alias_of` marks the original system's keys (auth, user_service, ...): the same services under their old names.
  const names = Object.keys(stats).filter((k) => stats[k] && typeof stats[k] === "object" && !Array.isArray(stats[k])
    && !stats[k].alias_of);
  const known = order.filter((n) => names.includes(n));
  return known.concat(names.filter((n) => !order.includes(n)).sort());
}

// ---------- rendering ----------

function metric(label, value) {
  return el("div", { className: "metric" }, el("span", { className: "metric-label", text: label }),
    el("span", { className: "metric-value", text: value }));
}

function serviceCard(name, entry, docsUrl) {
  const status = serviceStatus(name, entry);
  const requests = entry.requests || {};
  const latency = name === "load-balancer" ? lbLatency(entry) : requests.latency_ms || {};
  const rps = isNum(requests.requests_per_second) ? requests.requests_per_second : entry.requests_per_second;
  const third = name === "load-balancer"
    ? metric("success", fmt(entry.success_rate, 1, "%"))
    : metric("errors", isNum(requests.errors) ? `${fmtInt(requests.errors)} / ${fmtInt(requests.total)}` : "–");
  const why = reasons(entry);
  const down = status === "offline" || status === "timeout";
  return el("article", { className: `card status-${status}`, id: `card-${name}`, "data-service": name, "data-status": status },
    el("div", { className: "card-head" },
      el("span", { className: "card-name", text: name }),
      el("span", { className: `pill pill-${status}`, text: status })),
    down ? null : el("div", { className: "metrics" },
      // The balancer's card counts everything it proxied (page loads, polls and API), the header real API traffic only.
      metric(name === "load-balancer" ? "req/s, all traffic" : "req/s", fmt(rps, 2)), metric("p95", fmt(latency.p95, 1, " ms")), third),
    why.length ? el("p", { className: "reason", text: why.join(" · ") }) : null,
    el("div", { className: "card-foot" },
      el("span", { text: isNum(entry.uptime_s) ? `up ${formatUptime(entry.uptime_s)}` : entry.version || "" }),
      docsUrl ? el("a", { href: docsUrl, target: "_blank", rel: "noopener", text: "API docs" }) : null));
}

function formatUptime(seconds) {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function renderCards(stats, config) {
  const names = orderedServices(stats, config.services);
  const cards = names.map((n) => serviceCard(n, stats[n], config.api_docs[n]));
  byId("service-cards").replaceChildren(...cards);
  const down = cards.filter((c) => ["offline", "timeout"].includes(c.dataset.status)).length;
  const degraded = cards.filter((c) => c.dataset.status === "degraded").length;
  const parts = [`${names.length - down - degraded} online`];
  if (degraded) parts.push(`${degraded} degraded`);
  if (down) parts.push(`${down} down`);
  byId("services-summary").textContent = parts.join(" · ");
}

function renderKpis(lb) {
  const latency = lbLatency(lb);
  byId("kpi-rps").textContent = fmt(lb.requests_per_second, 2);
  byId("kpi-success").textContent = fmt(lb.success_rate, 1, " %");
  byId("kpi-avg").textContent = fmt(lb.avg_response_time_ms, 1, " ms");
  byId("kpi-p95").textContent = fmt(latency.p95, 1, " ms");
  byId("kpi-total").textContent = fmtInt(lb.total_requests);
  const sockets = lb.open_websockets ?? lb.websockets;
  byId("kpi-ws").textContent = isNum(sockets) ? fmtInt(sockets) : sockets && isNum(sockets.open) ? fmtInt(sockets.open) : "–";
}

function renderBadge(lb) {
  const badge = byId("traffic-badge");
  if (!lb) {
    badge.textContent = "NO DATA";
    badge.className = "badge badge-unknown";
    return;
  }
  // IDLE stays until the load balancer itself sees real traffic again: the badge only mirrors has_real_traffic.
  const active = lb.has_real_traffic === true || lb.state === "ACTIVE";
  badge.textContent = active ? "ACTIVE" : "IDLE";
  badge.className = `badge ${active ? "badge-active" : "badge-idle"}`;
}

function kvList(pairs) {
  return el("dl", { className: "kv" }, pairs.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function renderDataPanel(user) {
  const panel = byId("data-panel");
  if (!user) {
    panel.replaceChildren(el("p", { className: "muted", text: "user-service is not part of this suite's /stats." }));
    return;
  }
  const status = serviceStatus("user-service", user);
  if (status === "offline" || status === "timeout") {
    panel.replaceChildren(el("p", { className: "reason", text: `user-service is ${status}: ${user.error || "no answer"}` }));
    return;
  }
  const db = user.db || {};
  const cache = user.cache || {};
  const dbBlock = el("div", { className: "data-block", id: "data-db" },
    el("h3", {}, "Database", el("span", { className: `pill pill-${cssToken(db.status)}`, text: db.status || "unknown" })),
    kvList([
      ["backend", db.backend || "–"],
      ["ping", fmt(db.latency_ms, 2, " ms")],
      ["users", fmtInt(user.users)],
      ...(db.error ? [["error", db.error]] : []),
    ]));
  const cacheBlock = el("div", { className: "data-block", id: "data-cache" },
    el("h3", {}, "Cache", el("span", { className: `pill pill-${cssToken(cache.status)}`, text: cache.status || "unknown" })),
    kvList([
      ["backend", cache.backend || "–"],
      ["hit ratio", isNum(cache.hit_ratio) ? `${(cache.hit_ratio * 100).toFixed(1)} %` : "–"],
      ["hits / misses", `${fmtInt(cache.hits)} / ${fmtInt(cache.misses)}`],
      ...(cache.reason ? [["reason", cache.reason]] : []),
    ]));
  panel.replaceChildren(dbBlock, cacheBlock);
}

// ---------- showing /stats, pushed (stats-stream.js) or polled ----------

class StatsView {
  constructor(config, history) {
    this.config = config;
    this.history = history;
    this.updates = 0;
  }

  // One answer from the load balancer (or `problem`, why there is none); `how` says how figures arrive.
  show(stats, problem, when, how) {
    this.updates += 1;
    // Tests and people watching the page can tell how many answers it has drawn.
    document.body.dataset.polls = String(this.updates);
    const lb = stats && stats["load-balancer"];
    const banner = byId("lb-banner");
    banner.hidden = !problem;
    banner.textContent = problem ? `${problem}. The figures below are the last ones seen.` : "";
    byId("poll-status").textContent = problem ? `no answer at ${clockTime(when)}` : `updated ${clockTime(when)} · ${how}`;
    renderBadge(lb);
    if (!stats) return;
    renderCards(stats, this.config);
    renderDataPanel(stats["user-service"]);
    if (lb) {
      renderKpis(lb);
      const latency = lbLatency(lb);
      this.history.push(when, [[lb.requests_per_second], [latency.p50, latency.p95]]);
    }
  }
}

class StatsPoller {
  // The fallback when the stream is refused: one poll at a time, `onPoll(count)` after each.
  constructor(config, view) {
    this.config = config;
    this.view = view;
    this.polls = 0;
    this.running = false;
    this.generation = 0;
    this.timer = null;
    this.onPoll = () => {};
  }

  start(onPoll = () => {}) {
    this.onPoll = onPoll;
    if (this.running) return;
    this.running = true;
    // A loop still awaiting an answer from before a stop() must not carry on beside the new one.
    this.generation += 1;
    this.loop(this.generation);
  }

  stop() {
    this.running = false;
    clearTimeout(this.timer);
  }

  async loop(generation) {
    // One poll at a time: the next one is scheduled only after this one has finished.
    await this.pollOnce();
    if (!this.running || generation !== this.generation) return;
    this.onPoll(this.polls);
    if (this.running) this.timer = setTimeout(() => this.loop(generation), this.config.poll_interval_s * 1000);
  }

  async pollOnce() {
    const when = new Date();
    let stats = null;
    let problem = null;
    try {
      // X-Heartbeat: the dashboard's own poll, left out of the Slow requests panel.
      const answer = await fetch("/stats", {
        cache: "no-store",
        headers: { "X-Heartbeat": "true" },
        signal: AbortSignal.timeout(STATS_TIMEOUT_MS),
      });
      if (answer.ok) stats = await answer.json();
      else problem = `the load balancer answered /stats with HTTP ${answer.status}`;
    } catch (error) {
      problem = error.name === "TimeoutError" ? "the load balancer did not answer /stats in time" : "the load balancer is unreachable";
    }
    this.polls += 1;
    if (!this.running) return;
    const every = `every ${this.config.poll_interval_s} s`;
    this.view.show(stats, problem && `${problem}; retrying ${every}`, when, `${every} (polling)`);
  }
}

// ---------- WebSocket heartbeat (keeps the load balancer ACTIVE) ----------

class Heartbeat {
  constructor(button, label) {
    this.button = button;
    this.label = label;
    this.on = false;
    this.socket = null;
    this.sendTimer = null;
    this.reconnectTimer = null;
    button.addEventListener("click", () => (this.on ? this.stop() : this.start()));
  }

  start() {
    this.on = true;
    this.connect();
    this.render();
  }

  connect() {
    const socket = new WebSocket(wsUrl("/api/ws-heartbeat"));
    this.socket = socket;
    socket.addEventListener("open", () => {
      socket.send("hb");
      this.sendTimer = setInterval(() => socket.send("hb"), HEARTBEAT_EVERY_MS);
      this.render();
    });
    socket.addEventListener("close", () => {
      if (socket !== this.socket) return;
      clearInterval(this.sendTimer);
      this.socket = null;
      if (this.on) this.reconnectTimer = setTimeout(() => this.connect(), HEARTBEAT_RECONNECT_MS);
      this.render();
    });
  }

  stop() {
    this.on = false;
    clearTimeout(this.reconnectTimer);
    clearInterval(this.sendTimer);
    const socket = this.socket;
    this.socket = null;
    if (socket) socket.close(1000, "heartbeat off");
    this.render();
  }

  render() {
    const connected = Boolean(this.socket && this.socket.readyState === WebSocket.OPEN);
    this.button.setAttribute("aria-pressed", String(this.on));
    this.button.dataset.connected = String(connected);
    this.label.textContent = !this.on ? "Heartbeat OFF" : connected ? "Heartbeat ON" : "Heartbeat reconnecting…";
  }
}

// ---------- cluster-monitor: clusters and events over /ws/clusters ----------

function clusterCard(cluster) {
  const nodes = Array.isArray(cluster.nodes) ? cluster.nodes : [];
  const ready = nodes.filter((n) => n.status === "Ready").length;
  const pods = isNum(cluster.pods) ? cluster.pods : Array.isArray(cluster.podList) ? cluster.podList.length : null;
  const status = cluster.status || "unknown";
  return el("div", { className: "cluster", "data-cluster": cluster.id || cluster.name },
    el("div", { className: "cluster-head" },
      el("strong", { text: cluster.name || cluster.id || "cluster" }),
      el("span", { className: `pill pill-${cssToken(status)}`, text: status })),
    el("p", { className: "cluster-meta",
      text: [cluster.region, `${ready}/${nodes.length} nodes ready`, pods === null ? null : `${pods} pods`]
        .filter(Boolean).join(" · ") }),
    el("div", { className: "nodes" }, nodes.map((n) => el("span", {
      className: `node${n.status === "Ready" ? "" : " not-ready"}`,
      title: [n.roles, n.version, n.internalIP].filter(Boolean).join(" · "),
      text: n.name,
    }))));
}

function eventItem(event) {
  const when = event.timestamp ? new Date(event.timestamp) : null;
  const type = cssToken(event.type || "info");
  return el("li", {},
    el("time", { text: when && !Number.isNaN(when.getTime()) ? clockTime(when) : "" }),
    el("span", { className: `event-type event-${type}`, text: type }),
    el("span", { text: event.message || "" }));
}

class ClusterFeed {
  constructor() {
    this.events = [];
    this.retryMs = 2000;
    this.socket = null;
  }

  connect() {
    const socket = new WebSocket(wsUrl("/ws/clusters"));
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.retryMs = 2000;
      byId("clusters-status").textContent = "cluster-monitor · live";
    });
    socket.addEventListener("message", (message) => this.handle(message.data));
    socket.addEventListener("close", () => {
      byId("clusters-status").textContent = "cluster-monitor · reconnecting";
      if (!byId("clusters-panel").querySelector(".cluster")) {
        byId("clusters-panel").replaceChildren(el("p", { className: "reason",
          text: `cluster-monitor is unavailable (no /ws/clusters); retrying in ${Math.round(this.retryMs / 1000)} s.` }));
      }
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, CLUSTERS_RECONNECT_MAX_MS);
    });
  }

  handle(raw) {
    let message;
    try {
      message = JSON.parse(raw);
    } catch (error) {
      return;
    }
    if (message.type === "clusters" && Array.isArray(message.data)) {
      const cards = message.data.map(clusterCard);
      byId("clusters-panel").replaceChildren(...(cards.length ? cards : [el("p", { className: "muted", text: "no clusters" })]));
    } else if (message.type === "events" && Array.isArray(message.data)) {
      this.events = message.data.slice(-MAX_EVENTS);
      this.renderEvents();
    } else if (message.type === "event" && message.data) {
      this.events.push(message.data);
      if (this.events.length > MAX_EVENTS) this.events.splice(0, this.events.length - MAX_EVENTS);
      this.renderEvents();
    }
  }

  renderEvents() {
    const newestFirst = this.events.slice().reverse().map(eventItem);
    byId("events-feed").replaceChildren(...newestFirst);
    byId("events-count").textContent = `${this.events.length} recent`;
  }
}

// ---------- edge-config: devices ----------

async function pollEdgeDevices() {
  const panel = byId("edge-panel");
  const summary = byId("edge-summary");
  try {
    // X-Heartbeat: the dashboard's own polling is monitoring, not real traffic; it must not keep the badge ACTIVE.
    const answer = await fetch("/api/edge/devices", {
      cache: "no-store",
      headers: { "X-Heartbeat": "true" },
      signal: AbortSignal.timeout(STATS_TIMEOUT_MS),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(`HTTP ${answer.status}${body.detail ? `: ${body.detail}` : ""}`);
    const devices = Array.isArray(body.devices) ? body.devices : [];
    const total = body.total ?? devices.length;
    summary.textContent = `${fmtInt(total)} device${total === 1 ? "" : "s"} · ${fmtInt(body.healthy)} healthy · ${fmtInt(body.unhealthy)} unhealthy`;
    if (!devices.length) {
      panel.replaceChildren(el("p", { className: "muted", text: "No edge devices registered yet." }));
    } else {
      panel.replaceChildren(el("table", { id: "edge-table" },
        el("thead", {}, el("tr", {}, ["device", "type", "address", "status", "last seen"].map((h) => el("th", { text: h })))),
        el("tbody", {}, devices.map((d) => el("tr", {},
          el("td", { text: d.device_id }),
          el("td", { text: d.device_type || "–" }),
          el("td", { text: d.ip_address ? `${d.ip_address}:${d.port ?? ""}` : "–" }),
          el("td", { title: d.error || "" }, el("span", { className: `pill pill-${cssToken(d.status)}`, text: d.status || "unknown" })),
          el("td", { text: d.last_seen ? clockTime(new Date(d.last_seen)) : "–" }))))));
    }
  } catch (error) {
    summary.textContent = "edge-config";
    const reason = error.name === "TimeoutError" ? "no answer in time" : error.message;
    panel.replaceChildren(el("p", { className: "reason", text: `edge-config is unavailable (${reason}).` }));
  }
  setTimeout(pollEdgeDevices, EDGE_EVERY_MS);
}

// ---------- ops-mcp: the diagnosis an assistant reads, for a person ----------

function evidenceText(evidence) {
  return Object.entries(evidence || {})
    .filter(([, value]) => value !== null && value !== undefined)
    .map(([key, value]) => `${key}: ${typeof value === "object" ? JSON.stringify(value) : value}`)
    .join(" · ");
}

function findingItem(finding) {
  return el("li", { className: `finding finding-${cssToken(finding.severity)}`, "data-severity": finding.severity, "data-subject": finding.subject },
    el("div", { className: "finding-head" },
      el("span", { className: `pill pill-${finding.severity === "critical" ? "offline" : "degraded"}`, text: finding.severity }),
      el("span", { className: "finding-problem", text: finding.problem })),
    el("p", { className: "finding-evidence", text: evidenceText(finding.evidence) }),
    el("p", { className: "finding-next", text: `Next: ${finding.next_step}` }));
}

async function pollDiagnosis() {
  const panel = byId("diagnosis-panel");
  const summary = byId("diagnosis-summary");
  try {
    const answer = await fetch("/api/ops/diagnosis", {
      cache: "no-store",
      headers: { "X-Heartbeat": "true" },
      signal: AbortSignal.timeout(STATS_TIMEOUT_MS),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(`HTTP ${answer.status}${body.detail ? `: ${body.detail}` : ""}`);
    const findings = Array.isArray(body.findings) ? body.findings : [];
    panel.dataset.healthy = String(findings.length === 0);
    summary.textContent = findings.length ? `${findings.length} finding${findings.length === 1 ? "" : "s"}` : "nothing wrong";
    panel.replaceChildren(findings.length
      ? el("ol", { id: "diagnosis-findings", className: "findings" }, findings.map(findingItem))
      : el("p", { className: "muted", text: body.summary || "Nothing wrong." }));
  } catch (error) {
    delete panel.dataset.healthy;
    summary.textContent = "ops-mcp";
    const reason = error.name === "TimeoutError" ? "no answer in time" : error.message;
    panel.replaceChildren(el("p", { className: "reason", text: `the diagnosis is unavailable (${reason}).` }));
  }
  setTimeout(pollDiagnosis, DIAGNOSIS_EVERY_MS);
}

// ---------- start ----------

function renderDocsLinks(config) {
  const links = Object.entries(config.api_docs).map(([name, url]) =>
    el("li", {}, el("a", { href: url, target: "_blank", rel: "noopener", text: name })));
  byId("docs-links").replaceChildren(...(links.length ? links : [el("li", { className: "muted", text: "not configured" })]));
}

async function main() {
  const config = await loadConfig();
  renderDocsLinks(config);
  const history = new ChartHistory([
    lineChart(byId("rps-chart"), [
      { label: "requests/s", data: [], borderColor: "#5b9cff", backgroundColor: "rgba(91,156,255,0.15)", fill: true },
    ], "req/s"),
    lineChart(byId("latency-chart"), [
      { label: "p50", data: [], borderColor: "#2fbf71", backgroundColor: "rgba(47,191,113,0.1)" },
      { label: "p95", data: [], borderColor: "#f0b429", backgroundColor: "rgba(240,180,41,0.1)" },
    ], "ms"),
  ]);
  new Heartbeat(byId("toggle-ws-heartbeat-btn"), byId("heartbeat-label")).render();
  const view = new StatsView(config, history);
  new StatsFeed(view, new StatsPoller(config, view)).start();
  new SuiteHistory(history, document.querySelectorAll("#chart-ranges button")).start();
  new ClusterFeed().connect();
  pollEdgeDevices();
  pollDiagnosis();
  pollAlerts();
}

document.addEventListener("DOMContentLoaded", main);
