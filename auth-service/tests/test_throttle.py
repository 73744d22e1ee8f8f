"""Failed-login throttling: atomic, per (user, address), per address and per user, with back-off."""

import asyncio

import pytest

from auth_service.throttle import Attempt, LoginThrottle

LIMITS = {"per_user": 5, "per_address": 20, "per_account": 100, "window_s": 60}


def throttle_on(redis_url: str, prefix: str, **changes) -> LoginThrottle:
    options = LIMITS | {"backoff_base_s": 1.0, "backoff_max_s": 300.0, "account_interval_s": 2.0} | changes
    options.setdefault("known_client_ttl_s", 3600)
    return LoginThrottle(redis_url, prefix, **options)


def login(identity, username: str, password: str, address: str):
    # tests/support/identity.py's auth-service trusts two proxies: the second-to-last entry is the client.
    headers = {"X-Forwarded-For": f"{address}, 10.0.0.1"}
    return identity.client.post(
        f"{identity.auth_url}/api/auth/login", json={"username": username, "password": password}, headers=headers
    )


async def test_concurrent_wrong_passwords_get_at_most_the_limit_checked(identity):
    await identity.register("target")
    answers = await asyncio.gather(*(login(identity, "target", "wrong-guess", "5.5.5.5") for _ in range(30)))
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) == LIMITS["per_user"]
    assert statuses.count(429) == 30 - LIMITS["per_user"]
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)


async def test_a_strangers_failures_do_not_stop_the_owner_elsewhere(identity):
    await identity.register("owner")
    for _ in range(12):
        await login(identity, "owner", "stranger-guess", "6.6.6.6")
    assert (await login(identity, "owner", "password-123", "6.6.6.6")).status_code == 429
    assert (await login(identity, "owner", "password-123", "7.7.7.7")).status_code == 200


async def test_429_on_the_original_path_carries_status_and_message(identity):
    await identity.register("oldclient")
    url = f"{identity.auth_url}/api/login"
    headers = {"X-Forwarded-For": "8.8.4.4, 10.0.0.1"}
    for _ in range(LIMITS["per_user"]):
        await identity.client.post(url, json={"username": "oldclient", "password": "wrong"}, headers=headers)
    throttled = await identity.client.post(url, json={"username": "oldclient", "password": "x"}, headers=headers)
    assert throttled.status_code == 429
    body = throttled.json()
    assert body["status"] == "failed" and body["message"] == body["detail"]
    assert int(throttled.headers["Retry-After"]) >= 1


async def test_failed_logins_per_address_are_throttled(identity):
    url = f"{identity.auth_url}/api/auth/login"
    spoof = {"X-Forwarded-For": "6.6.6.6, 10.0.0.9, 10.0.0.1"}  # the client forged the first entry
    for i in range(20):
        assert (
            await identity.client.post(url, json={"username": f"u{i}", "password": "x"}, headers=spoof)
        ).status_code == 401
    nine = {"X-Forwarded-For": "7.7.7.7, 10.0.0.9, 10.0.0.1"}
    assert (await identity.client.post(url, json={"username": "v", "password": "x"}, headers=nine)).status_code == 429
    elsewhere = {"X-Forwarded-For": "10.0.0.8, 10.0.0.1"}
    assert (
        await identity.client.post(url, json={"username": "v", "password": "x"}, headers=elsewhere)
    ).status_code == 401


@pytest.mark.parametrize("redis_url", ["redis", "", "redis://127.0.0.1:1/0"], ids=["redis", "absent", "down"])
async def test_back_off_doubles_and_a_success_starts_afresh(redis_target, redis_url):
    url = redis_target.url if redis_url == "redis" else redis_url
    throttle = throttle_on(url, redis_target.prefix, per_user=2, backoff_base_s=0.2)
    first = await throttle.admit("grace", "1.1.1.1")
    second = await throttle.admit("grace", "1.1.1.1")
    assert isinstance(first, Attempt) and isinstance(second, Attempt)
    assert await throttle.admit("grace", "1.1.1.1") == 1  # held off (0.2 s, shown as a whole second)
    await asyncio.sleep(0.25)
    third = await throttle.admit("grace", "1.1.1.1")  # one more try after the wait, then twice as long
    assert isinstance(third, Attempt)
    await asyncio.sleep(0.25)
    assert not isinstance(await throttle.admit("grace", "1.1.1.1"), Attempt)
    await asyncio.sleep(0.2)
    fourth = await throttle.admit("grace", "1.1.1.1")
    assert isinstance(fourth, Attempt)
    await throttle.succeeded(fourth)
    assert isinstance(await throttle.admit("grace", "1.1.1.1"), Attempt)
    await throttle.close()


async def test_counters_are_shared_through_redis(redis_target):
    replicas = [throttle_on(redis_target.url, redis_target.prefix, per_user=2) for _ in range(2)]
    assert isinstance(await replicas[0].admit("erin", "1.1.1.1"), Attempt)
    assert isinstance(await replicas[1].admit("erin", "1.1.1.1"), Attempt)
    assert not isinstance(await replicas[0].admit("erin", "1.1.1.1"), Attempt)
    assert isinstance(await replicas[1].admit("erin", "2.2.2.2"), Attempt)
    for throttle in replicas:
        await throttle.close()


async def test_an_attempt_that_was_not_checked_does_not_count(redis_target):
    throttle = throttle_on(redis_target.url, redis_target.prefix, per_user=2)
    for _ in range(5):
        attempt = await throttle.admit("henry", "1.1.1.1")
        assert isinstance(attempt, Attempt)
        await throttle.not_checked(attempt)
    await throttle.close()


async def test_many_people_behind_one_address_log_in_at_once(redis_target):
    throttle = throttle_on(redis_target.url, redis_target.prefix, per_address=3)
    attempts = [await throttle.admit(f"person{i}", "9.9.9.9") for i in range(30)]
    assert all(isinstance(a, Attempt) for a in attempts)
    for attempt in attempts[:3]:
        await throttle.failed(attempt)
    assert not isinstance(await throttle.admit("person99", "9.9.9.9"), Attempt)
    await throttle.close()


async def test_redis_failing_mid_burst_grants_no_fresh_allowance(private_redis):
    throttle = throttle_on(private_redis.url, "t:", per_user=3, per_address=3)
    for _ in range(2):  # two of the pair's three attempts
        attempt = await throttle.admit("ivy", "1.1.1.1")
        assert isinstance(attempt, Attempt)
        await throttle.failed(attempt)
    for name in ("jack", "kate", "liam"):  # all three of an address's failures
        await throttle.failed(await throttle.admit(name, "4.4.4.4"))
    private_redis.stop()
    # This process counted what Redis counted.
    assert isinstance(await throttle.admit("ivy", "1.1.1.1"), Attempt)
    assert not isinstance(await throttle.admit("ivy", "1.1.1.1"), Attempt)
    assert not isinstance(await throttle.admit("mia", "4.4.4.4"), Attempt)
    assert "Redis unavailable" in throttle.redis_problem
    await throttle.close()
