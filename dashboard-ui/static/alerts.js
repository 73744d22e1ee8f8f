// The alerts firing in Alertmanager, as ops-mcp reads them (GET /api/ops/alerts): pages first, each with its
// service, summary and runbook. Alertmanager not set up or not answering (or ops-mcp down): the panel says
// "alerts unavailable" and why; nothing else on the page depends on it.
"use strict";

const ALERTS_EVERY_MS = 10000;
const ALERTS_TIMEOUT_MS = 5000;

function alertItem(alert) {
  const where = alert.instance ? `${alert.service} (${alert.instance})` : alert.service;
  return el("li", { className: `alert alert-${cssToken(alert.severity)}` },
    el("div", { className: "finding-head" },
      el("span", { className: `pill pill-${alert.severity === "page" ? "offline" : "degraded"}`, text: alert.severity }),
      el("span", { className: "finding-problem", text: `${alert.name}: ${alert.summary}` })),
    el("p", { className: "finding-evidence", text: `${where} · since ${clockTime(new Date(alert.starts_at))}` }),
    el("p", { className: "finding-next", text: alert.runbook_url ? `Runbook: ${alert.runbook_url}` : alert.description }));
}

function showAlertsUnavailable(panel, summary, reason) {
  panel.dataset.state = "unavailable";
  summary.textContent = "alerts unavailable";
  panel.replaceChildren(el("p", { className: "reason", text: reason }));
}

async function pollAlerts() {
  const panel = byId("alerts-panel");
  const summary = byId("alerts-summary");
  try {
    const answer = await fetch("/api/ops/alerts", {
      cache: "no-store",
      headers: { "X-Heartbeat": "true" },
      signal: AbortSignal.timeout(ALERTS_TIMEOUT_MS),
    });
    const body = await answer.json().catch(() => ({}));
    if (!answer.ok) throw new Error(`HTTP ${answer.status}${body.detail ? `: ${body.detail}` : ""}`);
    const alerts = Array.isArray(body.alerts) ? body.alerts : [];
    if (!body.available) {
      showAlertsUnavailable(panel, summary, body.error || "alerts unavailable");
    } else if (!alerts.length) {
      panel.dataset.state = "quiet";
      summary.textContent = "none firing";
      panel.replaceChildren(el("p", { className: "muted", text: "No alert is firing." }));
    } else {
      panel.dataset.state = "firing";
      summary.textContent = `${alerts.length} firing`;
      panel.replaceChildren(el("ol", { id: "alerts-list", className: "findings" }, alerts.map(alertItem)));
    }
  } catch (error) {
    const reason = error.name === "TimeoutError" ? "no answer in time" : error.message;
    showAlertsUnavailable(panel, summary, `alerts unavailable (${reason}).`);
  }
  setTimeout(pollAlerts, ALERTS_EVERY_MS);
}
