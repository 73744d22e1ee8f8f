"""The suite's API docs through the load balancer, in Debian's Chromium: the selector lists every FastAPI
service, and each service's page shows every operation of its OpenAPI document; a service's own /docs works there
too. Everything comes from the suite itself (no CDN)."""

import httpx

from tests.support.browser import screenshot
from titanium_common.api_docs import DOCUMENTED_SERVICES

METHODS = ("get", "put", "post", "delete", "patch")


async def _operations_of(client: httpx.AsyncClient, service: str) -> set[tuple[str, str]]:
    document = (await client.get(f"/api/docs/{service}/openapi.json")).raise_for_status().json()
    return {(method.upper(), path) for path, item in document["paths"].items() for method in item if method in METHODS}


async def _shown_operations(page) -> set[tuple[str, str]]:
    await page.wait_for_selector(".opblock", timeout=20_000)
    pairs = await page.eval_on_selector_all(
        ".opblock",
        "blocks => blocks.map(b => [b.querySelector('.opblock-summary-method').textContent,"
        " b.querySelector('.opblock-summary-path').getAttribute('data-path')])",
    )
    return {(method, path) for method, path in pairs}


async def test_the_docs_page_lists_every_service_operation(suite, browser_page):
    page, log = browser_page
    base = suite.url("load-balancer")
    seen_on_the_page = {}
    async with httpx.AsyncClient(base_url=base) as client:
        await page.goto(f"{base}/api/docs")
        await page.wait_for_selector("select#select", timeout=20_000)
        options = await page.eval_on_selector_all("select#select option", "os => os.map(o => o.textContent)")
        assert options == list(DOCUMENTED_SERVICES)
        for service in DOCUMENTED_SERVICES:
            expected = await _operations_of(client, service)
            assert expected, service
            await page.goto(f"{base}/api/docs?urls.primaryName={service}")
            await page.wait_for_function(
                f"() => document.querySelector('.info .title') && document.querySelector('select#select').value"
                f".endsWith('docs/{service}/openapi.json')",
                timeout=20_000,
            )
            shown = await _shown_operations(page)
            assert shown == expected, service
            seen_on_the_page[service] = len(shown)
        await screenshot(page, "api-docs")

        await page.goto(f"{base}/api/docs/blog-service/docs")
        assert await _shown_operations(page) == await _operations_of(client, "blog-service")
    assert log.errors == []
    assert all(count > 0 for count in seen_on_the_page.values())
