"""A stranger cannot lock an account's owner out (OWASP's guidance on lock-out): other parties' failures never touch
a client that logged in to the account before (its address, its device cookie), and the account-wide limit slows
unknown clients to a bounded rate instead of refusing everyone."""

import asyncio

import httpx
import pytest

from auth_service.devices import COOKIE_NAME, DeviceCookies
from auth_service.throttle import Attempt, LoginThrottle
from tests.support.polling import eventually

PASSWORD = "password-123"
PER_ACCOUNT = 12
INTERVAL_S = 0.5


@pytest.fixture
def slowed(identity_settings):
    user, auth = identity_settings
    auth.login_failures_per_account = PER_ACCOUNT
    auth.login_account_interval_s = INTERVAL_S
    return user, auth


def at(address: str) -> dict[str, str]:
    # The load balancer and the gateway each append to X-Forwarded-For: the client is the second-to-last entry.
    return {"X-Forwarded-For": f"{address}, 10.0.0.1"}


async def log_in(client: httpx.AsyncClient, identity, username: str, password: str, address: str) -> httpx.Response:
    body = {"username": username, "password": password}
    return await client.post(f"{identity.auth_url}/api/auth/login", json=body, headers=at(address))


async def strangers_guess(identity, username: str, count: int, first_octet: int = 172) -> None:
    """`count` wrong passwords, each from an address of its own (what 240 loopback addresses did), a few at once."""
    async with httpx.AsyncClient(timeout=30) as strangers:
        for start in range(0, count, 8):
            await asyncio.gather(
                *(
                    log_in(strangers, identity, username, f"guess-{i}", f"{first_octet}.16.{i // 250}.{i % 250 + 1}")
                    for i in range(start, min(start + 8, count))
                )
            )


async def test_strangers_everywhere_never_lock_the_owner_out(slowed, identity):
    await identity.register("owner")
    async with httpx.AsyncClient(timeout=30) as laptop, httpx.AsyncClient(timeout=30) as new_phone:
        assert (await log_in(laptop, identity, "owner", PASSWORD, "192.0.2.10")).status_code == 200
        assert laptop.cookies.get(COOKIE_NAME)
        await strangers_guess(identity, "owner", 2 * PER_ACCOUNT + 6)

        # The owner's device cookie, even from an address never seen: its own allowance, at once.
        assert (await log_in(laptop, identity, "owner", PASSWORD, "198.51.100.77")).status_code == 200
        # The address the owner logged in from before, without the cookie: its own allowance, at once.
        assert (await log_in(new_phone, identity, "owner", PASSWORD, "192.0.2.10")).status_code == 200
        new_phone.cookies.clear()

        # A client never seen, at an address never seen: slowed down to the account's bounded rate, never locked.
        async def owner_from_a_new_place() -> bool:
            answer = await log_in(new_phone, identity, "owner", PASSWORD, "203.0.113.200")
            if answer.status_code == 429:
                assert int(answer.headers["Retry-After"]) <= max(1, INTERVAL_S)
            return answer.status_code == 200

        await eventually(owner_from_a_new_place, timeout_s=10.0, every_s=INTERVAL_S / 2)


async def test_the_account_wide_limit_is_a_rate_not_a_refusal(slowed, identity):
    await identity.register("target")
    await strangers_guess(identity, "target", PER_ACCOUNT)
    async with httpx.AsyncClient(timeout=30) as guesser:
        answers = await asyncio.gather(
            *(log_in(guesser, identity, "target", "wrong", f"100.64.0.{i}") for i in range(1, 11))
        )
    statuses = sorted(a.status_code for a in answers)
    # Ten guesses at once from ten new addresses: one is checked, the others wait for a slot of the rate.
    assert statuses == [401] + [429] * 9
    assert all(int(a.headers["Retry-After"]) <= max(1, INTERVAL_S) for a in answers if a.status_code == 429)


async def test_a_device_cookie_keeps_its_allowance_behind_a_strangers_address(slowed, identity):
    """A shared address (an office, a phone network): a stranger there exhausts the address and the pair; the owner's
    device, which logged in before, still logs in."""
    await identity.register("colleague")
    async with httpx.AsyncClient(timeout=30) as owner, httpx.AsyncClient(timeout=30) as stranger:
        assert (await log_in(owner, identity, "colleague", PASSWORD, "192.0.2.50")).status_code == 200
        for i in range(25):
            await log_in(stranger, identity, "colleague", f"guess-{i}", "192.0.2.50")
        assert (await log_in(stranger, identity, "colleague", PASSWORD, "192.0.2.50")).status_code == 429
        assert (await log_in(owner, identity, "colleague", PASSWORD, "192.0.2.50")).status_code == 200


async def test_a_cookie_is_worth_nothing_forged_or_for_another_account(slowed, identity):
    await identity.register("alice")
    await identity.register("bob")
    async with httpx.AsyncClient(timeout=30) as alice:
        assert (await log_in(alice, identity, "alice", PASSWORD, "192.0.2.60")).status_code == 200
        # Alice's cookie, guessing at Bob's account: counted as any stranger (held off after the pair's 5).
        statuses = [(await log_in(alice, identity, "bob", f"g{i}", "192.0.2.61")).status_code for i in range(7)]
        assert statuses == [401] * 5 + [429] * 2
        alice.cookies.set(COOKIE_NAME, "forged." + "0" * 64, domain="127.0.0.1", path="/api")
        assert (await log_in(alice, identity, "bob", "g", "192.0.2.61")).status_code == 429


async def test_a_devices_own_failures_hold_only_that_device_off(slowed, identity):
    await identity.register("carol")
    async with httpx.AsyncClient(timeout=30) as device, httpx.AsyncClient(timeout=30) as elsewhere:
        assert (await log_in(device, identity, "carol", PASSWORD, "192.0.2.70")).status_code == 200
        statuses = [(await log_in(device, identity, "carol", f"g{i}", "192.0.2.70")).status_code for i in range(6)]
        assert statuses == [401] * 5 + [429]
        assert (await log_in(elsewhere, identity, "carol", PASSWORD, "192.0.2.71")).status_code == 200


def test_device_cookies_are_bound_to_their_account_and_key():
    cookies = DeviceCookies("s" * 48, 3600)
    cookie = cookies.issue("Dana")
    device = cookies.device_of(cookie, "dana")
    assert device and cookie.startswith(device + ".")
    assert cookies.issue("dana", device) == cookie  # the device keeps its id at its next login
    assert cookies.device_of(cookie, "erin") is None
    assert DeviceCookies("t" * 48, 3600).device_of(cookie, "dana") is None
    assert cookies.device_of(None, "dana") is None and cookies.device_of("x" * 500, "dana") is None


@pytest.mark.parametrize("redis_url", ["redis", "", "redis://127.0.0.1:1/0"], ids=["redis", "absent", "down"])
async def test_the_slow_down_admits_one_unknown_client_per_interval(redis_target, redis_url):
    url = redis_target.url if redis_url == "redis" else redis_url
    throttle = LoginThrottle(
        url, redis_target.prefix, per_user=5, per_address=20, per_account=2, window_s=60, backoff_base_s=1.0,
        backoff_max_s=300.0, account_interval_s=0.3, known_client_ttl_s=3600,
    )  # fmt: skip
    owner = await throttle.admit("frank", "192.0.2.1")
    await throttle.succeeded(owner)
    for address in ("10.1.0.1", "10.1.0.2"):
        await throttle.failed(await throttle.admit("frank", address))
    assert isinstance(await throttle.admit("frank", "10.1.0.3"), Attempt)  # the slot of this interval
    assert await throttle.admit("frank", "10.1.0.4") == 1  # the next slot: in 0.3 s, shown as a whole second
    assert isinstance(await throttle.admit("frank", "192.0.2.1"), Attempt)  # the owner's address: not slowed

    async def next_slot():
        return isinstance(await throttle.admit("frank", "10.1.0.5"), Attempt)

    await eventually(next_slot, timeout_s=5.0, every_s=0.1)
    await throttle.close()
