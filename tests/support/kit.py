"""The kit's endpoints as the load balancer and Prometheus read them, for any service's app: FastAPI apps are driven
in-process through their lifespan, aiohttp apps are served on a loopback port."""

import contextlib
from collections.abc import AsyncIterator

import httpx
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from tests.support.servers import serving


@contextlib.asynccontextmanager
async def kit_client(app) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of a running `app` (its lifespan or start-up done)."""
    if isinstance(app, web.Application):
        async with serving(app) as url, httpx.AsyncClient(base_url=url) as client:
            yield client
        return
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        yield client


async def check_kit_endpoints(app, service: str) -> dict:
    """/health, /ready, /stats and /metrics answer as the kit promises; returns the service's own /stats figures."""
    async with kit_client(app) as client:
        health = await client.get("/health", headers={"X-Request-ID": "kit-check-1"})
        assert health.status_code == 200
        assert health.headers["X-Request-ID"] == "kit-check-1"
        assert health.json()["service"] == service
        assert (await client.get("/ready")).status_code == 200
        stats = (await client.get("/stats")).json()
        # The load balancer's /stats is the whole suite's, with its own figures under its name.
        own = stats[service] if service == "load-balancer" else stats
        assert own["service"] == service
        assert own["service_status"] in ("online", "degraded")
        assert set(own["requests"]) >= {"total", "errors", "requests_per_second", "latency_ms"}
        metrics = await client.get("/metrics")
        names = {family.name for family in text_string_to_metric_families(metrics.text)}
        assert {"http_requests", "http_request_duration_seconds"} <= names
        return own
