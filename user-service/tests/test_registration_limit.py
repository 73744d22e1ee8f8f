"""Registrations per client address: a burst, then a slow rate; past it 429 with Retry-After. Shared by the
replicas through Redis; without Redis each replica limits on its own and /stats says so."""

import asyncio

import httpx
import pytest

from tests.support.servers import serving
from user_service.main import create_app

BURST = 3


@pytest.fixture
def limited(identity_settings):
    user, auth = identity_settings
    user.registration_burst = BURST
    user.registration_interval_s = 60.0
    return user, auth


def account(name: str) -> dict:
    return {"username": name, "email": f"{name}@example.com", "password": "password-123"}


def from_address(address: str) -> dict[str, str]:
    # The load balancer and the gateway each append to X-Forwarded-For: the client is the second-to-last entry.
    return {"X-Forwarded-For": f"{address}, 10.0.0.1"}


async def register(client: httpx.AsyncClient, url: str, name: str, address: str, path: str = "/api/users"):
    return await client.post(f"{url}{path}", json=account(name), headers=from_address(address))


async def test_one_address_gets_its_burst_then_429_with_retry_after(limited, identity):
    url, client = identity.user_url, identity.client
    for i in range(BURST - 1):
        assert (await register(client, url, f"spam{i}", "203.0.113.5")).status_code == 201
    # The original system's path draws on the same allowance.
    assert (await register(client, url, "spamorig", "203.0.113.5", "/api/register")).status_code == 201
    refused = await register(client, url, "spam-last", "203.0.113.5")
    assert refused.status_code == 429
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "too many registrations" in refused.json()["detail"]
    assert (await register(client, url, "spam-orig2", "203.0.113.5", "/api/register")).status_code == 429
    # Another address is not affected.
    assert (await register(client, url, "neighbour", "198.51.100.7")).status_code == 201


async def test_a_burst_sent_at_once_gets_exactly_the_allowance(limited, identity):
    answers = await asyncio.gather(
        *(register(identity.client, identity.user_url, f"rush{i}", "203.0.113.9") for i in range(20))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] * BURST + [429] * (20 - BURST)


async def test_the_allowance_is_shared_by_the_replicas(limited, identity):
    second = create_app(limited[0])
    async with serving(second) as other_url:
        assert (await register(identity.client, identity.user_url, "rep1", "203.0.113.20")).status_code == 201
        assert (await register(identity.client, other_url, "rep2", "203.0.113.20")).status_code == 201
        assert (await register(identity.client, identity.user_url, "rep3", "203.0.113.20")).status_code == 201
        assert (await register(identity.client, other_url, "rep4", "203.0.113.20")).status_code == 429
        stats = (await identity.client.get(f"{other_url}/stats")).json()
    assert stats["registration_limit"] == {"backend": "redis"}


@pytest.mark.parametrize("redis_url", ["", "redis://127.0.0.1:1/0"], ids=["absent", "down"])
async def test_without_redis_each_replica_still_limits_and_says_so(limited, redis_url):
    settings = limited[0].model_copy(update={"redis_url": redis_url})
    async with serving(create_app(settings)) as url, httpx.AsyncClient(timeout=30) as client:
        statuses = [(await register(client, url, f"solo{i}", "203.0.113.30")).status_code for i in range(BURST + 1)]
        stats = (await client.get(f"{url}/stats")).json()
    assert statuses == [201] * BURST + [429]
    assert stats["registration_limit"]["backend"] == "memory"
    assert "each replica limits on its own" in stats["registration_limit"]["reason"]
