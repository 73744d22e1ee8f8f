"""Fixtures every test folder shares."""

import os
import shutil
import tempfile

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

# A service built with default settings would keep its SQLite files in DATA_DIR: never the developer's `.data/`.
_TEST_DATA_DIR = tempfile.mkdtemp(prefix="titanium-test-data-")
os.environ["DATA_DIR"] = _TEST_DATA_DIR


def pytest_unconfigure(config):
    shutil.rmtree(_TEST_DATA_DIR, ignore_errors=True)


# Shared fixtures live in tests/support/ (databases, Redis, the Kubernetes API double); register them here.
pytest_plugins: list[str] = [
    # servers first: the other plugins import it.
    "tests.support.servers",
    "tests.support.databases",
    "tests.support.browser",
    "tests.support.kubernetes",
]


async def _check_kit_endpoints(app) -> dict:
    """Drive an ASGI app's kit endpoints the way the load balancer and Prometheus do; returns its /stats."""
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://test") as client,
    ):
        health = await client.get("/health", headers={"X-Request-ID": "kit-check-1"})
        assert health.status_code == 200
        assert health.headers["X-Request-ID"] == "kit-check-1"
        assert (await client.get("/ready")).status_code == 200
        stats = (await client.get("/stats")).json()
        assert stats["service_status"] in ("online", "degraded")
        assert set(stats["requests"]) >= {"total", "errors", "requests_per_second", "latency_ms"}
        metrics = await client.get("/metrics")
        names = {family.name for family in text_string_to_metric_families(metrics.text)}
        assert {"http_requests", "http_request_duration_seconds"} <= names
        return stats


@pytest.fixture
def check_kit_endpoints():
    return _check_kit_endpoints
