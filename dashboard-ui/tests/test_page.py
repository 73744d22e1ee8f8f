"""The page in Debian's Chromium against a stand-in load balancer whose /stats, WebSockets and edge answer
each test controls; everything else is proxied to the real dashboard server. (The real suite: tests/system.)"""

import asyncio
import copy
import json
from datetime import UTC, datetime

import aiohttp
import pytest
from aiohttp import web

from dashboard_ui.main import create_app
from dashboard_ui.settings import DashboardSettings
from tests.support.browser import screenshot
from tests.support.polling import eventually
from tests.support.servers import serving
from titanium_common.browser_security import BROWSER_SECURITY_HEADERS
from titanium_common.catalog import CATALOGUE

POLL_S = 0.3


def service(name: str, **extra) -> dict:
    return {
        "service": name,
        "version": "0.1.0",
        "service_status": "online",
        "uptime_s": 42.0,
        "requests": {
            "total": 10,
            "errors": 1,
            "requests_per_second": 1.5,
            "latency_ms": {"p50": 2, "p95": 7, "p99": 9},
        },
    } | extra


STATS = {
    "load-balancer": {
        "requests_per_second": 0.0,
        "has_real_traffic": False,
        "state": "IDLE",
        "total_requests": 1234,
        "success_rate": 99.5,
        "avg_response_time_ms": 3.25,
        "status": "healthy",
        "latency": {"p50": 1.5, "p95": 6.5, "p99": 9.0},
        "open_websockets": 2,
    },
    "api-gateway": service(
        "api-gateway",
        replicas=[
            {"url": "http://127.0.0.1:8000", "service_status": "online", "stats": service("api-gateway")},
            {"url": "http://127.0.0.1:8010", "service_status": "timeout", "stats": {"service_status": "timeout"}},
        ],
    ),
    "auth-service": service("auth-service"),
    "user-service": service(
        "user-service",
        users=3,
        db={"status": "ok", "backend": "sqlite", "latency_ms": 0.4},
        cache={"backend": "redis", "status": "ok", "hits": 8, "misses": 2, "hit_ratio": 0.8},
    ),
    "blog-service": {"service_status": "offline", "error": "connection refused: 127.0.0.1:8003"},
    "cluster-monitor": service("cluster-monitor", service_status="degraded", degraded_reasons=["metrics API down"]),
    "edge-config": {"service_status": "timeout", "error": "no answer within 2 s"},
    # The original system's keys, which the balancer keeps beside Titanium's own: no cards of their own.
    "auth": {"service_status": "online", "alias_of": "auth-service"},
    "database": {"status": "healthy", "backend": "sqlite", "alias_of": "user-service.db"},
    "timestamp": "2026-11-23T02:00:00Z",
}
CLUSTERS = [
    {
        "id": "local",
        "name": "simulated",
        "status": "ready",
        "pods": 7,
        "region": "lab",
        "nodes": [
            {"name": "node-1", "status": "Ready", "roles": "control-plane", "version": "v1.31"},
            {"name": "node-2", "status": "NotReady", "roles": "worker", "version": "v1.31"},
        ],
        "podList": [],
    }
]
EVENTS = [{"type": "critical", "message": "node-2 is NotReady", "timestamp": "2026-11-23T01:59:00Z"}]
DEVICES = {
    "devices": [
        {
            "device_id": "edge-01",
            "device_type": "raspberry-pi",
            "ip_address": "10.0.0.5",
            "port": 9100,
            "reload_port": 9101,
            "status": "healthy",
            "last_seen": "2026-11-23T01:59:30Z",
            "error": None,
        }
    ],
    "total": 1,
    "healthy": 1,
    "unhealthy": 0,
}
DIAGNOSIS = {
    "healthy": False,
    "summary": "1 finding(s), 1 critical: blog-service is offline: its /stats does not answer.",
    "findings": [
        {
            "severity": "critical",
            "subject": "blog-service",
            "problem": "blog-service is offline: its /stats does not answer",
            "evidence": {"service_status": "offline", "error": "connection refused: 127.0.0.1:8003"},
            "next_step": "Start blog-service.",
        }
    ],
    "checked": [],
    "timestamp": "2026-11-23T02:00:00Z",
}


class StandInLoadBalancer:
    """Just enough of the load balancer's face for the page; the page's own files come from the real server."""

    def __init__(self, dashboard_url: str) -> None:
        self.dashboard_url = dashboard_url
        self.stats = copy.deepcopy(STATS)
        self.stats_delay_s = 0.0
        self.stats_status = 200
        self.in_flight = 0
        self.most_in_flight = 0
        self.stats_requests = 0
        # /stats/stream: served (an event every POLL_S) or refused with 503, as the balancer at its cap does.
        self.stream = True
        self.stream_requests = 0
        self.stream_generation = 0
        self.edge_status = 200
        self.edge_headers: list[str | None] = []
        self.clusters_ws = True
        self.heartbeats: list[str] = []
        self.heartbeat_sockets: list[web.WebSocketResponse] = []
        self.app = web.Application()
        self.app.router.add_get("/stats", self.get_stats)
        self.app.router.add_get("/stats/stream", self.stats_stream)
        self.app.router.add_get("/api/ws-heartbeat", self.heartbeat)
        self.app.router.add_get("/ws/clusters", self.clusters)
        self.app.router.add_get("/api/edge/devices", self.devices)
        self.app.router.add_get("/api/ops/diagnosis", self.diagnosis)
        # What ops-mcp and the balancer answer the history and alerts panels (test_history_and_alerts.py sets them).
        self.history: dict = {"window_s": 3600, "resolution_s": 10.0, "scope": "suite", "points": []}
        self.history_status = 200
        self.alerts: dict = {"available": True, "source": "http://alertmanager", "error": None, "alerts": []}
        self.alerts_status = 200
        self.app.router.add_get("/stats/history", self.get_history)
        self.app.router.add_get("/api/ops/alerts", self.get_alerts)
        # The order of the service cards the page is served (None: the real server's, the catalogue's).
        self.service_order: list[str] | None = None
        self.app.router.add_get("/dashboard-config.json", self.dashboard_config)
        self.app.router.add_get("/{tail:.*}", self.to_dashboard)

    async def get_stats(self, request: web.Request) -> web.Response:
        self.stats_requests += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.stats_delay_s)
            if self.stats_status != 200:
                return web.json_response({"detail": "stand-in failure"}, status=self.stats_status)
            return web.json_response(self.stats)
        finally:
            self.in_flight -= 1

    async def stats_stream(self, request: web.Request) -> web.StreamResponse:
        self.stream_requests += 1
        if not self.stream:
            return web.json_response({"detail": "too many open streams"}, status=503, headers={"Retry-After": "10"})
        generation = self.stream_generation
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b"retry: 300\n\n")
        try:
            while generation == self.stream_generation:
                await response.write(f"data: {json.dumps(self.stats)}\n\n".encode())
                await asyncio.sleep(POLL_S)
        except ConnectionError:
            pass
        return response

    def end_streams(self) -> None:
        """Every open stream ends (as when a balancer replica goes away)."""
        self.stream_generation += 1

    async def heartbeat(self, request: web.Request) -> web.WebSocketResponse:
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        self.heartbeat_sockets.append(socket)
        async for message in socket:
            self.heartbeats.append(message.data)
            await socket.send_str("ok")
        return socket

    async def clusters(self, request: web.Request) -> web.StreamResponse:
        if not self.clusters_ws:
            return web.json_response({"detail": "no route"}, status=404)
        socket = web.WebSocketResponse()
        await socket.prepare(request)
        now = datetime.now(UTC).isoformat()
        await socket.send_json({"type": "clusters", "data": CLUSTERS, "timestamp": now})
        await socket.send_json({"type": "events", "data": EVENTS, "timestamp": now})
        await socket.send_json(
            {"type": "event", "data": {"type": "success", "message": "node-2 is Ready", "timestamp": now}}
        )
        async for _ in socket:
            pass
        return socket

    async def devices(self, request: web.Request) -> web.Response:
        self.edge_headers.append(request.headers.get("X-Heartbeat"))
        if self.edge_status != 200:
            return web.json_response({"detail": "edge-config: connection refused"}, status=self.edge_status)
        return web.json_response(DEVICES)

    async def diagnosis(self, request: web.Request) -> web.Response:
        return web.json_response(DIAGNOSIS)

    async def get_history(self, request: web.Request) -> web.Response:
        if self.history_status != 200:
            return web.json_response({"detail": "stand-in failure"}, status=self.history_status)
        return web.json_response(self.history)

    async def get_alerts(self, request: web.Request) -> web.Response:
        if self.alerts_status != 200:
            return web.json_response({"detail": "ops-mcp: connection refused"}, status=self.alerts_status)
        return web.json_response(self.alerts)

    async def dashboard_config(self, request: web.Request) -> web.Response:
        async with aiohttp.ClientSession() as session, session.get(self.dashboard_url + "/dashboard-config.json") as a:
            config = await a.json()
        if self.service_order is not None:
            config["services"] = self.service_order
        return web.json_response(config)

    async def to_dashboard(self, request: web.Request) -> web.Response:
        async with (
            aiohttp.ClientSession() as session,
            session.get(self.dashboard_url + request.rel_url.raw_path_qs) as answer,
        ):
            # The page runs under the dashboard server's own security headers (its CSP above all).
            kept = {name: answer.headers[name] for name in BROWSER_SECURITY_HEADERS if name in answer.headers}
            return web.Response(
                body=await answer.read(),
                status=answer.status,
                content_type=answer.content_type,
                charset=answer.charset,
                headers=kept,
            )


@pytest.fixture
async def stand_in():
    settings = DashboardSettings(poll_interval_s=POLL_S)
    async with serving(create_app(settings)) as dashboard_url:
        lb = StandInLoadBalancer(dashboard_url)
        async with serving(lb.app) as lb.url:
            yield lb


async def polls(page) -> int:
    return int(await page.evaluate("document.body.dataset.polls || '0'"))


async def wait_polls(page, n: int) -> None:
    start = await polls(page)
    await page.wait_for_function(f"() => Number(document.body.dataset.polls || 0) >= {start + n}", timeout=10_000)


async def test_every_panel_shows_what_stats_and_the_services_say(stand_in, browser_page):
    page, log = browser_page
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#card-edge-config")
    await page.wait_for_selector("#edge-table")
    await page.wait_for_selector("[data-cluster=local]")

    assert await card_order(page) == [n for n in STATS if n != "timestamp" and "alias_of" not in STATS[n]]
    assert await page.get_attribute("#card-api-gateway", "data-status") == "online"
    assert await page.get_attribute("#card-blog-service", "data-status") == "offline"
    assert "connection refused" in await page.inner_text("#card-blog-service")
    assert await page.get_attribute("#card-edge-config", "data-status") == "timeout"
    assert "no answer within 2 s" in await page.inner_text("#card-edge-config")
    assert await page.get_attribute("#card-cluster-monitor", "data-status") == "degraded"
    assert "metrics API down" in await page.inner_text("#card-cluster-monitor")
    gateway = await page.inner_text("#card-api-gateway")
    assert "replica http://127.0.0.1:8010 timeout" in gateway  # online while one of its replicas is
    assert "1.50" in gateway
    assert "7.0 ms" in gateway
    assert "1 / 10" in gateway

    assert await page.inner_text("#kpi-success") == "99.5 %"
    assert await page.inner_text("#kpi-avg") == "3.3 ms"
    assert await page.inner_text("#kpi-p95") == "6.5 ms"
    assert await page.inner_text("#kpi-total") == "1,234"
    assert await page.inner_text("#kpi-ws") == "2"
    assert await page.inner_text("#traffic-badge") == "IDLE"
    assert "sqlite" in await page.inner_text("#data-db")
    assert "80.0 %" in await page.inner_text("#data-cache")
    assert "edge-01" in await page.inner_text("#edge-table")
    assert set(stand_in.edge_headers) == {"true"}
    assert "1/2 nodes ready" in await page.inner_text("#clusters-panel")
    feed = await page.locator("#events-feed li").all_inner_texts()
    assert "node-2 is Ready" in feed[0]
    assert "node-2 is NotReady" in feed[1]
    assert await page.locator("#docs-links a").count() == 6
    assert await page.locator("#docs-links a").first.get_attribute("href") == "/api/docs?urls.primaryName=auth-service"
    finding = page.locator('#diagnosis-findings li[data-subject="blog-service"]')
    await finding.wait_for()
    assert "connection refused: 127.0.0.1:8003" in await finding.inner_text()
    assert "Next: Start blog-service." in await finding.inner_text()
    await screenshot(page, "dashboard-stand-in")
    assert log.errors == []


async def card_order(page) -> list[str]:
    return await page.locator("#service-cards .card").evaluate_all("cards => cards.map(c => c.dataset.service)")


async def test_the_cards_follow_the_order_the_server_gives(stand_in, browser_page):
    page, log = browser_page
    listed = [n for n in STATS if n != "timestamp" and "alias_of" not in STATS[n]]
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#card-edge-config")
    assert await card_order(page) == [n for n in CATALOGUE.names() if n in listed]

    # A service the catalogue lists first, one the order does not know (last, by name), the rest reversed.
    stand_in.stats["toy-service"] = service("toy-service")
    stand_in.stats["a-newcomer"] = service("a-newcomer")
    stand_in.service_order = ["toy-service", *reversed(CATALOGUE.names())]
    await page.reload()
    await page.wait_for_selector("#card-a-newcomer")
    assert await card_order(page) == ["toy-service", *reversed(listed), "a-newcomer"]
    assert log.errors == []


async def test_badge_follows_has_real_traffic_and_idle_stays(stand_in, browser_page):
    page, log = browser_page
    await page.goto(stand_in.url + "/")
    await page.wait_for_function("() => document.querySelector('#traffic-badge').textContent === 'IDLE'")
    stand_in.stats["load-balancer"] |= {"has_real_traffic": True, "state": "ACTIVE", "requests_per_second": 4.2}
    await page.wait_for_function("() => document.querySelector('#traffic-badge').textContent === 'ACTIVE'")
    stand_in.stats["load-balancer"] |= {"has_real_traffic": False, "state": "IDLE", "requests_per_second": 0.0}
    await page.wait_for_function("() => document.querySelector('#traffic-badge').textContent === 'IDLE'")
    for _ in range(3):
        await wait_polls(page, 1)
        assert await page.inner_text("#traffic-badge") == "IDLE"
    rps = await page.evaluate("Chart.getChart('rps-chart').data.datasets[0].data")
    assert 4.2 in rps
    assert rps[-1] == 0.0
    assert log.errors == []


async def test_polls_never_overlap(stand_in, browser_page):
    page, _ = browser_page
    stand_in.stream = False
    stand_in.stats_delay_s = 1.0
    await page.goto(stand_in.url + "/")
    await page.wait_for_function("() => Number(document.body.dataset.polls || 0) >= 3", timeout=15_000)
    assert stand_in.most_in_flight == 1


async def test_heartbeat_toggle_sends_hb_reconnects_and_stops(stand_in, browser_page):
    page, log = browser_page
    await page.goto(stand_in.url + "/")
    button = page.locator("#toggle-ws-heartbeat-btn")
    assert await button.get_attribute("aria-pressed") == "false"
    await button.click()
    await page.wait_for_function("() => document.querySelector('#heartbeat-label').textContent === 'Heartbeat ON'")
    await eventually(lambda: "hb" in stand_in.heartbeats, 5)

    await stand_in.heartbeat_sockets[0].close()  # a drop: the page reconnects about 2 s later
    await eventually(lambda: len(stand_in.heartbeat_sockets) == 2, 10)
    await page.wait_for_function("() => document.querySelector('#heartbeat-label').textContent === 'Heartbeat ON'")

    await button.click()
    await page.wait_for_function("() => document.querySelector('#heartbeat-label').textContent === 'Heartbeat OFF'")
    await eventually(lambda: stand_in.heartbeat_sockets[1].closed, 5)
    await asyncio.sleep(2.5)
    assert len(stand_in.heartbeat_sockets) == 2  # OFF means no reconnect
    assert log.errors == []


async def test_panels_of_missing_services_say_so_and_the_rest_keeps_working(stand_in, browser_page):
    page, _ = browser_page
    stand_in.stream = False
    stand_in.edge_status = 502
    stand_in.clusters_ws = False
    del stand_in.stats["user-service"]
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#card-api-gateway")
    await page.wait_for_function("() => document.querySelector('#edge-panel').textContent.includes('unavailable')")
    await page.wait_for_function("() => document.querySelector('#clusters-panel').textContent.includes('unavailable')")
    assert "HTTP 502" in await page.inner_text("#edge-panel")
    assert "not part of" in await page.inner_text("#data-panel")

    stand_in.stats_status = 502
    await page.wait_for_selector("#lb-banner:not([hidden])")
    assert await page.inner_text("#traffic-badge") == "NO DATA"
    assert await page.locator("#card-api-gateway").count() == 1  # the last figures stay on screen
    await screenshot(page, "dashboard-stand-in-failures")
    stand_in.stats_status = 200
    await page.wait_for_selector("#lb-banner", state="hidden")


async def test_chart_history_is_bounded(stand_in, browser_page):
    page, _ = browser_page
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#card-api-gateway")
    lengths = await page.evaluate(
        """() => {
            const fake = () => ({ data: { labels: [], datasets: [{ data: [] }] }, update() {} });
            const byCount = new ChartHistory([fake()]);
            const start = Date.now();
            for (let i = 0; i < 1500; i++) byCount.push(new Date(start + i * 10), [[i]]);
            const byAge = new ChartHistory([fake()]);
            for (let i = 0; i < 400; i++) byAge.push(new Date(start + i * 2000), [[i]]);
            return [byCount.times.length, byCount.charts[0].data.datasets[0].data.length,
                    byAge.times.length, byAge.charts[0].data.labels.length];
        }"""
    )
    assert lengths[0] == lengths[1] == 1000
    assert lengths[2] == lengths[3] == 151  # five minutes of 2 s points, both ends included


async def test_the_page_runs_under_its_csp_and_an_inline_script_is_blocked(stand_in, browser_page):
    page, log = browser_page
    answer = await page.goto(stand_in.url + "/")
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    await page.wait_for_selector("#card-api-gateway")
    await page.wait_for_function("() => document.querySelector('#clusters-panel').textContent.includes('node-2')")
    assert log.errors == []
    # What an injected script would be: refused by the policy, and seen by the tests' violation collector.
    await page.evaluate(
        """() => { const s = document.createElement('script'); s.textContent = 'window.__injected = 1';
                   document.body.append(s); }"""
    )
    await eventually(lambda: log.csp_violations, 5)
    assert await page.evaluate("window.__injected") is None
    assert "script-src" in log.csp_violations[0]


async def test_the_page_takes_the_pushed_stream_and_does_not_poll(stand_in, browser_page):
    page, log = browser_page
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#card-api-gateway")
    assert await page.evaluate("document.body.dataset.statsSource") == "stream"
    stand_in.stats["load-balancer"] |= {"has_real_traffic": True, "state": "ACTIVE", "requests_per_second": 7.5}
    await page.wait_for_function("() => document.querySelector('#traffic-badge').textContent === 'ACTIVE'")
    assert await page.inner_text("#kpi-rps") == "7.50"
    assert "live" in await page.inner_text("#poll-status")
    assert stand_in.stats_requests == 0
    assert stand_in.stream_requests == 1

    stand_in.end_streams()  # a drop: EventSource reconnects by itself after the server's retry delay
    await eventually(lambda: stand_in.stream_requests == 2, 10)
    stand_in.stats["load-balancer"] |= {"has_real_traffic": False, "state": "IDLE", "requests_per_second": 0.0}
    await page.wait_for_function("() => document.querySelector('#traffic-badge').textContent === 'IDLE'")
    await page.wait_for_selector("#lb-banner", state="hidden")
    assert stand_in.stats_requests == 0
    assert log.errors == []


async def test_a_refused_stream_falls_back_to_polling_and_the_stream_is_tried_again(stand_in, browser_page):
    page, _ = browser_page
    stand_in.stream = False
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#card-api-gateway")
    await page.wait_for_function("() => document.body.dataset.statsSource === 'polling'")
    await eventually(lambda: stand_in.stats_requests >= 2, 10)
    assert "(polling)" in await page.inner_text("#poll-status")
    stand_in.stats["load-balancer"] |= {"has_real_traffic": True, "state": "ACTIVE"}
    await page.wait_for_function("() => document.querySelector('#traffic-badge').textContent === 'ACTIVE'")
    refused = stand_in.stream_requests
    assert refused >= 1

    # Every tenth poll tries the stream again; once it is served, polling stops.
    stand_in.stream = True
    await page.wait_for_function("() => document.body.dataset.statsSource === 'stream'", timeout=15_000)
    assert stand_in.stream_requests > refused
    await wait_polls(page, 2)
    polled = stand_in.stats_requests
    await wait_polls(page, 3)
    assert stand_in.stats_requests == polled
