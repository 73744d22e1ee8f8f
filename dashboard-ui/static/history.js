// The last hour the load balancer remembers (GET /stats/history: 10 s points, suite-wide with Redis): the charts
// start from it when the page opens, so they are never blank after a reload, and the 5 m / 1 h buttons choose how
// far back they reach. Reading it is not traffic.
"use strict";

const HISTORY_WINDOW_S = 3600;
const HISTORY_REFRESH_MS = 30000;
const HISTORY_TIMEOUT_MS = 5000;

class SuiteHistory {
  constructor(chartHistory, buttons) {
    this.charts = chartHistory;
    this.buttons = Array.from(buttons);
    this.points = [];
    this.rangeS = 300;
  }

  start() {
    for (const button of this.buttons) {
      button.addEventListener("click", () => this.choose(Number(button.dataset.rangeS)));
    }
    this.load();
  }

  choose(rangeS) {
    this.rangeS = rangeS;
    for (const button of this.buttons) button.setAttribute("aria-pressed", String(Number(button.dataset.rangeS) === rangeS));
    document.body.dataset.chartRange = String(rangeS);
    this.show();
  }

  show() {
    this.charts.showPast(this.points, this.rangeS * 1000);
  }

  async load() {
    const status = document.getElementById("history-status");
    try {
      const answer = await fetch(`/stats/history?window=${HISTORY_WINDOW_S}`, {
        cache: "no-store",
        headers: { "X-Heartbeat": "true" },
        signal: AbortSignal.timeout(HISTORY_TIMEOUT_MS),
      });
      if (!answer.ok) throw new Error(`HTTP ${answer.status}`);
      const body = await answer.json();
      this.points = body.points.map((p) => ({
        t: p.timestamp * 1000,
        values: [[p.requests_per_second], [p.latency_ms.p50, p.latency_ms.p95]],
      }));
      document.body.dataset.historyPoints = String(this.points.length);
      const scope = body.scope === "suite" ? "every balancer replica" : "this balancer replica";
      status.textContent = `history: ${this.points.length} points of ${body.resolution_s} s from ${scope}`;
    } catch (error) {
      // The live points still come; only the past is missing.
      status.textContent = `history unavailable (${error.name === "TimeoutError" ? "no answer in time" : error.message})`;
    }
    this.show();
    setTimeout(() => this.load(), HISTORY_REFRESH_MS);
  }
}
