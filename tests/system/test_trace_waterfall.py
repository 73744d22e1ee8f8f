"""The dashboard's Slow requests panel and trace waterfall in Debian's Chromium, against the real suite."""

import secrets

import httpx

from tests.support.browser import screenshot

from .conftest import ADMIN


async def test_slow_requests_open_a_waterfall_of_the_whole_request(suite, browser_page):
    page, log = browser_page
    await page.goto(suite.url("load-balancer") + "/")
    # Traces are admin-only: the panel asks to sign in first.
    await page.wait_for_selector("#trace-login:not([hidden])")
    await page.fill("#trace-login input[name=username]", ADMIN[0])
    await page.fill("#trace-login input[name=password]", ADMIN[1])
    await page.click("#trace-login button[type=submit]")
    await page.wait_for_selector("#trace-login", state="hidden")

    # A login through the balancer, with the caller's own trace id: balancer, gateway, auth, user, database.
    trace_id = secrets.token_hex(16)
    async with httpx.AsyncClient(base_url=suite.url("load-balancer"), timeout=30) as client:
        answer = await client.post(
            "/api/auth/login",
            json={"username": ADMIN[0], "password": ADMIN[1]},
            headers={"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"},
        )
        assert answer.status_code == 200
    row = f".slow-row[data-trace-id='{trace_id}']"
    # The panel polls every 10 s.
    await page.wait_for_selector(row, timeout=30_000)
    await page.click(row)
    await page.wait_for_selector("#waterfall-rows .wf-row")

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
