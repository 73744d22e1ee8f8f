"""The real suite, started by the same launcher as `make run`, on free ports and private data."""

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.support.servers import free_port
from titanium_dev.suite import SERVICES, Suite

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"
# An admin account (edge-config writes) and a collector token (cluster-monitor pushes) for the system tests.
ADMIN = ("admin", "system-admin-password")
COLLECTOR_TOKEN = "system-collector-token"


@pytest.fixture(scope="session")
def suite(tmp_path_factory):
    OUTPUT.mkdir(exist_ok=True)
    ports = {spec.name: free_port() for spec in SERVICES}
    with (
        open(OUTPUT / "system-suite.log", "w") as log,
        Suite(
            ports=ports,
            data_dir=tmp_path_factory.mktemp("data"),
            echo=log,
            extra_env={
                "ADMIN_USERNAME": ADMIN[0],
                "ADMIN_PASSWORD": ADMIN[1],
                "COLLECTOR_TOKENS": COLLECTOR_TOKEN,
                # Every system test registers its accounts from this machine's one address (the limit itself is
                # proven by user-service's own tests).
                "REGISTRATION_BURST": "100000",
                # test_request_path finds each request's line in every hop's log.
                "ACCESS_LOG": "every",
            },
        ) as running,
    ):
        yield running


async def gateway_routes_to_blog_again(suite, within_s: float = 15.0) -> None:
    """The gateway re-admits a replica at its next health check; later tests expect the suite whole again."""
    async with httpx.AsyncClient(base_url=suite.url("load-balancer")) as client:
        for _ in range(int(within_s / 0.2)):
            if (await client.get("/api/posts")).status_code == 200:
                return
            await asyncio.sleep(0.2)
    raise AssertionError(f"blog-service not reachable through the gateway {within_s:.0f} s after its restart")
