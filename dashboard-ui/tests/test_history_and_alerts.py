"""The charts start from the balancer's remembered hour (history.js) and offer 5 m and 1 h; the alerts panel
(alerts.js) lists what fires and says "alerts unavailable" when it cannot know. In Debian's Chromium against the
stand-in load balancer of test_page.py. (With the real suite, Prometheus and Alertmanager: tests/system.)"""

import time

from tests.support.browser import screenshot

from .test_page import stand_in  # noqa: F401 - the fixture

RESOLUTION_S = 10


def hour_of_points() -> list[dict]:
    """One point per 10 s for the last hour: a ramp of RPS (the newest is 360) so each one can be recognised."""
    last = int(time.time() // RESOLUTION_S) - 1
    return [
        {
            "at": "",
            "timestamp": (last - 359 + i) * RESOLUTION_S,
            "requests_per_second": float(i + 1),
            "success_rate": 100.0,
            "latency_ms": {"p50": 2.0, "p95": 9.0},
            "open_sockets": 1,
        }
        for i in range(360)
    ]


async def rps_values(page) -> list:
    return await page.evaluate("Chart.getChart(document.getElementById('rps-chart')).data.datasets[0].data")


async def test_charts_open_full_from_the_history_and_switch_between_five_minutes_and_an_hour(stand_in, browser_page):  # noqa: F811
    page, log = browser_page
    stand_in.history["points"] = hour_of_points()
    await page.goto(stand_in.url + "/")
    await page.wait_for_function("() => document.body.dataset.historyPoints === '360'")
    # Five minutes: the newest remembered points (the top of the ramp), not the older ones.
    shown = await rps_values(page)
    assert {340.0, 360.0} <= set(shown) and 300.0 not in shown
    assert "every balancer replica" in await page.inner_text("#history-status")
    await page.click("#chart-ranges button[data-range-s='3600']")
    await page.wait_for_function("() => document.body.dataset.chartRange === '3600'")
    shown = await rps_values(page)
    assert {10.0, 180.0, 360.0} <= set(shown)
    assert await page.get_attribute("#chart-ranges button[data-range-s='3600']", "aria-pressed") == "true"
    await screenshot(page, "dashboard-history-1h")
    # A reload starts full again (the history is the balancer's, not the page's).
    await page.reload()
    await page.wait_for_function("() => document.body.dataset.historyPoints === '360'")
    assert 360.0 in await rps_values(page)
    await page.click("#chart-ranges button[data-range-s='300']")
    assert 180.0 not in await rps_values(page)
    assert log.errors == []


async def test_history_unavailable_leaves_the_live_charts(stand_in, browser_page):  # noqa: F811
    page, _ = browser_page
    stand_in.history_status = 503
    await page.goto(stand_in.url + "/")
    await page.wait_for_function("() => document.getElementById('history-status').textContent.includes('unavailable')")
    await page.wait_for_function("() => Number(document.body.dataset.chartPoints || 0) >= 2")


async def test_alerts_panel_lists_what_fires_and_says_when_it_cannot_know(stand_in, browser_page):  # noqa: F811
    page, _ = browser_page
    stand_in.alerts["alerts"] = [
        {
            "name": "TitaniumTargetDown",
            "severity": "page",
            "service": "user-service",
            "instance": "127.0.0.1:8002",
            "summary": "user-service replica 127.0.0.1:8002 is down",
            "description": "Prometheus could not scrape user-service",
            "runbook_url": "docs/runbooks.md#titaniumtargetdown",
            "starts_at": "2026-12-04T06:00:00Z",
            "labels": {},
        }
    ]
    await page.goto(stand_in.url + "/")
    await page.wait_for_selector("#alerts-panel[data-state='firing']")
    text = await page.inner_text("#alerts-panel")
    assert "TitaniumTargetDown: user-service replica 127.0.0.1:8002 is down" in text
    assert "docs/runbooks.md#titaniumtargetdown" in text
    assert await page.inner_text("#alerts-summary") == "1 firing"
    await screenshot(page, "dashboard-alerts-firing")
    # Alertmanager down (ops-mcp says so), then ops-mcp itself down: the panel says so, the page goes on.
    stand_in.alerts = {
        "available": False,
        "source": "x",
        "error": "alerts unavailable: connection refused",
        "alerts": [],
    }
    await page.reload()
    await page.wait_for_selector("#alerts-panel[data-state='unavailable']")
    assert await page.inner_text("#alerts-panel") == "alerts unavailable: connection refused"
    stand_in.alerts_status = 502
    await page.reload()
    await page.wait_for_function("() => document.getElementById('alerts-panel').textContent.includes('HTTP 502')")
    assert "alerts unavailable" in await page.inner_text("#alerts-panel")
    await page.wait_for_selector("#card-api-gateway")  # the rest of the page is unaffected
    await screenshot(page, "dashboard-alerts-unavailable")
