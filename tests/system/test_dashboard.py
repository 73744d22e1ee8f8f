"""The dashboard in Debian's Chromium against the real suite, through the load balancer: what a person sees."""

import asyncio

import httpx

from tests.support.browser import screenshot
from titanium_dev.suite import SERVICES

from .conftest import gateway_routes_to_blog_again

SERVICE_CARDS = [spec.name for spec in SERVICES if spec.name not in ("load-balancer", "dashboard-ui")]
# The real traffic window is 10 s; the dashboard polls every 2 s. Waits allow for both plus a loaded machine.
WINDOW_WAIT_MS = 25_000


async def badge_is(page, text: str, timeout_ms: int = WINDOW_WAIT_MS) -> None:
    await page.wait_for_function(
        f"() => document.querySelector('#traffic-badge').textContent === '{text}'", timeout=timeout_ms
    )


async def polls_so_far(page) -> int:
    return int(await page.evaluate("Number(document.body.dataset.polls || 0)"))


async def test_cards_traffic_badge_and_rps_chart(suite, browser_page):
    page, log = browser_page
    await page.goto(suite.url("load-balancer") + "/")
    for name in SERVICE_CARDS:
        await page.wait_for_selector(f"#card-{name}[data-status=online], #card-{name}[data-status=degraded]")
    await badge_is(page, "IDLE")

    async with httpx.AsyncClient(base_url=suite.url("load-balancer")) as client:
        for _ in range(60):
            await client.get("/api/posts")
    await badge_is(page, "ACTIVE", timeout_ms=10_000)
    await page.wait_for_function(
        "() => Math.max(...Chart.getChart('rps-chart').data.datasets[0].data) > 1", timeout=10_000
    )
    await screenshot(page, "dashboard-active")

    await badge_is(page, "IDLE")
    assert log.errors == []


async def test_heartbeat_keeps_the_badge_active_without_other_traffic(suite, browser_page):
    page, log = browser_page
    await page.goto(suite.url("load-balancer") + "/")
    await badge_is(page, "IDLE")
    await page.click("#toggle-ws-heartbeat-btn")
    assert await page.get_attribute("#toggle-ws-heartbeat-btn", "aria-pressed") == "true"
    await badge_is(page, "ACTIVE", timeout_ms=10_000)
    async with httpx.AsyncClient() as client:
        stats = (await client.get(suite.url("load-balancer") + "/stats")).json()["load-balancer"]
    assert stats["open_websockets"] >= 1
    # Longer than the 10 s window: only the heartbeat's "hb" every 5 s keeps it ACTIVE.
    for _ in range(6):
        await asyncio.sleep(2.5)
        assert await page.inner_text("#traffic-badge") == "ACTIVE"
    await page.click("#toggle-ws-heartbeat-btn")
    await badge_is(page, "IDLE")
    assert log.errors == []


async def test_a_stopped_service_turns_red_within_two_polls_and_the_rest_stay_green(suite, browser_page):
    page, log = browser_page
    await page.goto(suite.url("load-balancer") + "/")
    await page.wait_for_selector("#card-blog-service[data-status=online]")
    # From this thread: a child started from a worker thread is stopped when that thread ends (PR_SET_PDEATHSIG).
    suite.stop_service("blog-service")
    try:
        stopped_at = await polls_so_far(page)
        await page.wait_for_selector("#card-blog-service[data-status=offline]", timeout=15_000)
        assert await polls_so_far(page) - stopped_at <= 2
        for name in SERVICE_CARDS:
            if name != "blog-service":
                assert await page.get_attribute(f"#card-{name}", "data-status") in ("online", "degraded"), name
        await screenshot(page, "dashboard-service-down")
    finally:
        suite.start_service("blog-service")
    await page.wait_for_selector("#card-blog-service[data-status=online]", timeout=15_000)
    await gateway_routes_to_blog_again(suite)
    # The failed /stats fetch is a handled state on the page, not a console error.
    assert log.errors == []


async def test_the_page_takes_the_balancers_pushed_stream(suite, browser_page):
    page, log = browser_page
    await page.goto(suite.url("load-balancer") + "/")
    await page.wait_for_function("() => document.body.dataset.statsSource === 'stream'", timeout=15_000)
    await page.wait_for_selector("#card-api-gateway[data-status=online]")
    updates = await polls_so_far(page)
    await page.wait_for_function(f"() => Number(document.body.dataset.polls) >= {updates + 2}", timeout=15_000)
    assert "live" in await page.inner_text("#poll-status")
    async with httpx.AsyncClient() as client:
        own = (await client.get(suite.url("load-balancer") + "/stats")).json()["load-balancer"]
    assert own["stats_stream"]["open"] >= 1
    assert own["stats_stream"]["events"] >= 3
    assert log.errors == []
