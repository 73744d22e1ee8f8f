"""The gateway's replica pools are the kit's, configured by the same settings as the load balancer's: a replica that
stops is ejected passively after EJECT_AFTER_FAILURES refused connects, or by its active /health checks every
HEALTH_CHECK_INTERVAL_S (UNHEALTHY_AFTER_CHECKS in a row), traffic goes on on the other one, and it is re-admitted
once it answers again."""

import aiohttp
import pytest

from tests.support.polling import eventually

from .conftest import upstream_app


async def user_replicas(http: aiohttp.ClientSession, gateway) -> list[dict]:
    """The user-service pool's members as the gateway's /stats shows them, in the configured order."""
    async with http.get(gateway.make_url("/stats")) as answer:
        return (await answer.json())["upstreams"]["user-service"]["replicas"]["members"]


async def send(http: aiohttp.ClientSession, gateway, count: int) -> None:
    """`count` GETs to user-service, every one of which must succeed."""
    for _ in range(count):
        async with http.get(gateway.make_url("/api/users")) as answer:
            assert answer.status == 200


@pytest.mark.parametrize("eject_after_failures", [1, 4])
async def test_a_stopped_replica_is_ejected_after_the_configured_connect_failures(
    servers, upstreams, start_gateway, eject_after_failures
):
    a = await servers(upstream_app("user-service", upstreams))
    b = await servers(upstream_app("user-service", upstreams))
    # No active check runs during the test: only the passive ejection can take the replica out.
    gateway = await start_gateway(
        user_service_url=f"{a.url},{b.url}",
        eject_after_failures=eject_after_failures,
        health_check_interval_s=3600,
        balance_strategy="round-robin",
    )
    async with aiohttp.ClientSession() as http:
        await send(http, gateway, 4)
        assert [r["requests"] for r in await user_replicas(http, gateway)] == [2, 2]
        await b.stop()
        # Each GET whose connect to b was refused is retried on a: nothing fails.
        await send(http, gateway, 4 * eject_after_failures)
        _, dead = await user_replicas(http, gateway)
    assert (dead["url"], dead["healthy"], dead["connect_failures"]) == (b.url, False, eject_after_failures)


async def test_a_replica_killed_without_traffic_is_ejected_by_its_checks_and_readmitted(
    servers, upstreams, start_gateway
):
    a = await servers(upstream_app("user-service", upstreams))
    b = await servers(upstream_app("user-service", upstreams))
    # Passive ejection is out of reach: what ejects b here is its failed /health checks.
    gateway = await start_gateway(
        user_service_url=f"{a.url},{b.url}",
        health_check_interval_s=0.1,
        health_check_timeout_s=0.5,
        unhealthy_after_checks=2,
        eject_after_failures=1000,
    )
    async with aiohttp.ClientSession() as http:

        async def replica_b(healthy: bool) -> dict | None:
            replica = (await user_replicas(http, gateway))[1]
            return replica if replica["healthy"] is healthy else None

        await b.stop()
        ejected = await eventually(lambda: replica_b(healthy=False))
        assert ejected["connect_failures"] == 0 and ejected["last_error"].startswith("/health failed")
        await send(http, gateway, 6)
        assert (await user_replicas(http, gateway))[1]["requests"] == ejected["requests"], "no request tries b"
        await b.start()
        readmitted = await eventually(lambda: replica_b(healthy=True))
        await send(http, gateway, 6)
        assert (await user_replicas(http, gateway))[1]["requests"] > readmitted["requests"]
