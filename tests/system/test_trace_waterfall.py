"""The dashboard's Slow requests panel and trace waterfall in Debian's Chromium, against the real suite."""

import secrets
import time

import httpx

from tests.support.browser import screenshot
from tests.support.polling import eventually

from .conftest import ADMIN, gateway_routes_to_blog_again

# What the open dashboard reads by itself, again and again (or holds open): its own monitoring, not requests.
DASHBOARD_POLLS = ("/stats", "/stats/history", "/stats/stream", "/api/ws-heartbeat", "/api/edge/devices")


def is_dashboard_poll(path: str) -> bool:
    return path in DASHBOARD_POLLS or path.startswith("/api/ops/")


async def open_dashboard_signed_in(page, suite) -> None:
    await page.goto(suite.url("load-balancer") + "/")
    # Traces are admin-only: the panel asks to sign in first.
    await page.wait_for_selector("#trace-login:not([hidden])")
    await page.fill("#trace-login input[name=username]", ADMIN[0])
    await page.fill("#trace-login input[name=password]", ADMIN[1])
    await page.click("#trace-login button[type=submit]")
    await page.wait_for_selector("#trace-login", state="hidden")


async def traced_login(client: httpx.AsyncClient) -> tuple[str, httpx.Response]:
    """A login through the balancer with the caller's own trace id: balancer, gateway, auth, user, database."""
    trace_id = secrets.token_hex(16)
    answer = await client.post(
        "/api/auth/login",
        json={"username": ADMIN[0], "password": ADMIN[1]},
        headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
    )
    assert answer.status_code == 200, answer.text
    return trace_id, answer


async def test_slow_requests_open_a_waterfall_of_the_whole_request(suite, browser_page):
    page, log = browser_page
    await open_dashboard_signed_in(page, suite)

    async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=30) as client:
        trace_id, _ = await traced_login(client)
    # A row of the panel (it polls every 10 s) opens its waterfall. Which requests are the slowest depends on what
    # the suite served before (other tests share it), so the login's own tree is opened by its id.
    first_row = page.locator(".slow-row").first
    await first_row.wait_for(timeout=30_000)
    clicked = await first_row.get_attribute("data-trace-id")
    await first_row.click()
    await page.wait_for_selector(f"#waterfall[data-trace-id='{clicked}'] #waterfall-rows .wf-row")
    await page.fill("#trace-open input[name=trace_id]", trace_id)
    await page.click("#trace-open button[type=submit]")
    await page.wait_for_selector(f"#waterfall[data-trace-id='{trace_id}'] #waterfall-rows .wf-row")

    rows = await page.eval_on_selector_all(
        "#waterfall-rows .wf-row",
        """rows => rows.map(r => ({
            service: r.dataset.service,
            depth: Number(r.dataset.depth),
            error: r.dataset.error,
            colour: getComputedStyle(r.querySelector('.wf-bar')).backgroundColor,
            width: r.querySelector('.wf-bar').getBoundingClientRect().width,
        }))""",
    )
    services = {r["service"] for r in rows}
    assert {"load-balancer", "api-gateway", "auth-service", "user-service"} <= services
    names = await page.eval_on_selector_all("#waterfall-rows .wf-name", "spans => spans.map(s => s.textContent)")
    assert any(name.startswith("SELECT") for name in names), f"no database query among {names}"
    # One bar per span, indented by parent: the balancer's is the root, the password check's query is deep.
    assert rows[0]["service"] == "load-balancer" and rows[0]["depth"] == 0
    assert max(r["depth"] for r in rows) >= 4
    # Coloured by service: one colour each, different services different colours.
    colours = {r["service"]: r["colour"] for r in rows}
    assert all(colours[r["service"]] == r["colour"] for r in rows)
    assert len(set(colours.values())) == len(colours)
    assert all(r["width"] > 0 for r in rows) and all(r["error"] == "false" for r in rows)
    await screenshot(page, "trace-waterfall")
    assert log.errors == []


async def test_a_failed_request_opens_with_its_failing_hops_marked(suite, browser_page):
    page, log = browser_page
    await open_dashboard_signed_in(page, suite)
    # A real failure: blog-service is stopped, so the gateway cannot answer /api/posts. The error body names the
    # trace, as a user's bug report would.
    suite.stop_service("blog-service")
    try:
        async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=30) as client:
            failed = await client.get("/api/posts")
    finally:
        suite.start_service("blog-service")
    assert failed.status_code in (502, 503, 504), failed.text
    trace_id = failed.json()["trace_id"]
    assert trace_id == failed.headers["X-Trace-Id"]
    await gateway_routes_to_blog_again(suite)

    await page.fill("#trace-open input[name=trace_id]", trace_id)
    await page.click("#trace-open button[type=submit]")
    await page.wait_for_selector("#waterfall-rows .wf-row")
    rows = await page.eval_on_selector_all(
        "#waterfall-rows .wf-row",
        """rows => rows.map(r => ({
            service: r.dataset.service,
            error: r.dataset.error,
            marked: r.classList.contains('wf-row-error'),
            marker: Boolean(r.querySelector('.wf-error')),
            outline: getComputedStyle(r.querySelector('.wf-bar')).outlineStyle,
        }))""",
    )
    failing = [r for r in rows if r["error"] == "true"]
    # Both proxies answered the 5xx: each of their spans is an error, marked by class, a ✕ and an outlined bar.
    assert {"load-balancer", "api-gateway"} <= {r["service"] for r in failing}, rows
    assert rows[0]["service"] == "load-balancer" and rows[0]["error"] == "true"
    assert all(r["marked"] and r["marker"] and r["outline"] == "solid" for r in failing), failing
    assert all(not r["marked"] and not r["marker"] for r in rows if r["error"] == "false")
    markers = page.locator("#waterfall-rows .wf-row-error .wf-error")
    assert await markers.count() == len(failing)
    for index in range(len(failing)):
        assert await markers.nth(index).is_visible()
    await screenshot(page, "trace-waterfall-error")
    # Chromium logs the dashboard's own failed reads while blog-service was down; nothing else may go wrong.
    assert log.page_errors == [] and log.csp_violations == []


async def test_the_dashboards_own_polls_are_left_out_of_slow_requests(suite, browser_page):
    page, log = browser_page
    since = time.time()
    polls: dict[str, str] = {}
    trace_listings: list[int] = []

    def note_poll(response) -> None:
        path = response.url.removeprefix(suite.url("load-balancer")).split("?")[0]
        # Playwright gives header names in lower case.
        if is_dashboard_poll(path) and "x-trace-id" in response.headers:
            polls[response.headers["x-trace-id"]] = path
        if path == "/api/ops/traces" and response.ok:
            trace_listings.append(response.status)

    # Every traced answer to the page carries its trace id: the dashboard's polls are known by theirs.
    page.on("response", note_poll)
    await open_dashboard_signed_in(page, suite)

    async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=30) as client:
        trace_id, answer = await traced_login(client)
        # The panel lists anew after the login (it polls every 10 s); by then the page has polled ops-mcp's
        # diagnosis, alerts and traces, edge devices and /stats.
        listings = len(trace_listings)
        await eventually(lambda: len(trace_listings) > listings, 30)
        polled = set(polls.values())
        assert {"/api/ops/traces", "/api/ops/diagnosis"} <= polled, polled
        headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}

        # The polls were traced (their trees are there) ...
        async def some_poll_is_traced():
            for poll in list(polls):
                if (await client.get(f"/api/ops/traces/{poll}", headers=headers)).status_code == 200:
                    return poll
            return None

        await eventually(some_poll_is_traced)
        # ... but not listed: only requests people made.
        listed = await client.get("/api/ops/traces", params={"slowest": 100, "since": since}, headers=headers)
        assert listed.status_code == 200
        requests = listed.json()["requests"]
        listed_ids = {r["trace_id"] for r in requests}
        assert trace_id in listed_ids
        assert not listed_ids & set(polls), [r for r in requests if r["trace_id"] in polls]
    panel = await page.eval_on_selector_all(".slow-row", "rows => rows.map(r => r.dataset.traceId)")
    assert not set(panel) & set(polls)
    assert log.errors == []
