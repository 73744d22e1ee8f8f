// A test page that reads the load balancer's /stats the way the original system's dashboard did: the keys it knew,
// the fields it looked at, and what it then showed. Written for the tests, not taken from that page.
"use strict";

const ORIGINAL_KEYS = [
  ["api-gateway", "API Gateway"],
  ["auth", "Auth Service"],
  ["user_service", "User Service"],
  ["blog_service", "Blog Service"],
  ["database", "Database"],
  ["cache", "Cache"],
];
const EVERY_MS = 1000;

function isUp(entry) {
  return entry.status === "healthy" || entry.service_status === "online";
}

function show(id, text) {
  document.getElementById(id).textContent = text;
}

function listServices(states) {
  const items = states.map(({ name, online }) => {
    const item = document.createElement("li");
    item.dataset.name = name;
    item.dataset.online = String(online);
    item.textContent = `${name}: ${online ? "Online" : "Offline"}`;
    return item;
  });
  document.getElementById("services").replaceChildren(...items);
}

function render(stats) {
  if (!stats) {
    show("overall", "DISCONNECTED");
    listServices([{ name: "Load Balancer", online: false }]);
    return;
  }
  const lb = stats["load-balancer"] || {};
  // The balancer answered, so it is up; every other service counts if its key is there.
  const states = [{ name: "Load Balancer", online: true }];
  for (const [key, name] of ORIGINAL_KEYS) {
    if (stats[key]) states.push({ name, online: isUp(stats[key]) });
  }
  listServices(states);
  const up = states.filter((s) => s.online).length;
  show("active", `${up}/${states.length}`);
  // IDLE stays while the balancer sees no real traffic (the original page then overwrote it at once; not here).
  if (lb.has_real_traffic !== true) show("overall", "IDLE");
  else if (up < states.length) show("overall", "DEGRADED");
  else if ((lb.success_rate ?? 100) < 95) show("overall", "WARNING");
  else show("overall", "HEALTHY");
  show("rps", (lb.requests_per_second || 0).toFixed(1));
  show("avg", `${(lb.avg_response_time_ms_lifetime ?? lb.avg_response_time_ms ?? 0).toFixed(1)}ms`);
  show("db", stats.database && stats.database.status === "healthy" ? "ONLINE" : "OFFLINE");
  show("cache", stats.cache && stats.cache.status === "healthy" ? "ONLINE" : "OFFLINE");
}

async function poll() {
  let stats = null;
  try {
    const answer = await fetch("/stats", { cache: "no-store" });
    if (answer.ok) stats = await answer.json();
  } catch (error) {
    // Shown as DISCONNECTED below.
  }
  render(stats);
  setTimeout(poll, EVERY_MS);
}

document.addEventListener("DOMContentLoaded", poll);
