"""Identity through the load balancer of the real suite: revoked tokens stop within a second, refresh tokens
rotate, logins under load get an answer in time, and the login throttle holds without locking owners out."""

import asyncio
import time
import uuid

import httpx
import pytest

from tests.system.conftest import ADMIN

PASSWORD = "correct horse battery"
# Revocation must be seen everywhere within this long after the call that revoked returned.
REVOCATION_BOUND_S = 1.0


def client(suite, address: str = "127.0.0.1") -> httpx.AsyncClient:
    """A client of the load balancer connecting from `address` (any 127.x.y.z is this host: a way to be
    another client address without another machine)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    limits = httpx.Limits(max_connections=100)
    return httpx.AsyncClient(base_url=suite.url("load-balancer"), transport=transport, timeout=30, limits=limits)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(lb: httpx.AsyncClient, username: str | None = None) -> tuple[int, str]:
    username = username or f"u{uuid.uuid4().hex[:10]}"
    while True:
        answer = await lb.post(
            "/api/users", json={"username": username, "email": f"{username}@example.com", "password": PASSWORD}
        )
        if answer.status_code != 503:
            break
        await asyncio.sleep(int(answer.headers["Retry-After"]))  # busy hashing: come back as told
    assert answer.status_code == 201, answer.text
    return answer.json()["id"], username


async def login(lb: httpx.AsyncClient, username: str, password: str = PASSWORD) -> dict:
    answer = await lb.post("/api/auth/login", json={"username": username, "password": password})
    assert answer.status_code == 200, answer.text
    return answer.json()


async def writes(lb: httpx.AsyncClient, token: str) -> int:
    answer = await lb.post("/api/posts", json={"title": "t", "content": "c"}, headers=bearer(token))
    return answer.status_code


async def refused_within_bound(lb: httpx.AsyncClient, token: str, revoked_at: float) -> float:
    """Seconds after `revoked_at` until both the verify endpoint and a blog write refuse `token`."""
    while True:
        verify = (await lb.get("/api/auth/verify", headers=bearer(token))).status_code
        write = await writes(lb, token)
        elapsed = time.monotonic() - revoked_at
        if verify == 401 and write == 401:
            return elapsed
        assert elapsed < REVOCATION_BOUND_S, f"still accepted {elapsed:.2f} s after revocation ({verify}, {write})"
        await asyncio.sleep(0.02)


async def _delete(lb, user_id, session, admin):
    return await lb.delete(f"/api/users/{user_id}", headers=bearer(session["access_token"]))


async def _demote(lb, user_id, session, admin):
    return await lb.patch(f"/api/users/{user_id}", json={"role": "user"}, headers=bearer(admin))


async def _log_out(lb, user_id, session, admin):
    return await lb.post(
        "/api/auth/logout", json={"refresh_token": session["refresh_token"]}, headers=bearer(session["access_token"])
    )


async def _change_password(lb, user_id, session, admin):
    change = {"password": "another long password"}
    return await lb.patch(f"/api/users/{user_id}", json=change, headers=bearer(session["access_token"]))


REVOCATIONS = {"deleted": _delete, "demoted": _demote, "logged out": _log_out, "password changed": _change_password}


@pytest.mark.parametrize("change", REVOCATIONS)
async def test_a_token_is_refused_within_a_second_after(suite, change):
    async with client(suite) as lb:
        admin = (await login(lb, *ADMIN))["access_token"]
        user_id, username = await register(lb)
        if change == "demoted":
            promoted = await lb.patch(f"/api/users/{user_id}", json={"role": "admin"}, headers=bearer(admin))
            assert promoted.status_code == 200
        session = await login(lb, username)
        # The blog-service's verify cache and auth-service's state cache hold this token now.
        assert await writes(lb, session["access_token"]) == 201
        assert await writes(lb, session["access_token"]) == 201
        answer = await REVOCATIONS[change](lb, user_id, session, admin)
        revoked_at = time.monotonic()
        assert answer.status_code in (200, 204), answer.text
        await refused_within_bound(lb, session["access_token"], revoked_at)


async def test_refresh_rotates_and_a_reused_refresh_token_revokes_the_family(suite):
    async with client(suite) as lb:
        _, username = await register(lb)
        first = await login(lb, username)
        rotated = await lb.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
        assert rotated.status_code == 200, rotated.text
        second = rotated.json()
        assert second["refresh_token"] != first["refresh_token"]
        assert await writes(lb, second["access_token"]) == 201

        reused = await lb.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
        revoked_at = time.monotonic()
        assert reused.status_code == 401
        after = await lb.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
        assert after.status_code == 401
        await refused_within_bound(lb, second["access_token"], revoked_at)


async def test_fifty_concurrent_correct_logins_get_no_504(suite):
    async with client(suite) as lb:
        users = []
        for _ in range(50):
            users.append((await register(lb))[1])

        async def log_in(username: str) -> list[int]:
            """Every status on the way to a token: a busy answer says when to come back."""
            statuses = []
            while True:
                answer = await lb.post("/api/auth/login", json={"username": username, "password": PASSWORD})
                statuses.append(answer.status_code)
                if answer.status_code != 503:
                    return statuses
                assert "Retry-After" in answer.headers, answer.text  # busy, and says when to come back
                await asyncio.sleep(int(answer.headers["Retry-After"]))

        journeys = await asyncio.gather(*(log_in(u) for u in users))
    statuses = [s for journey in journeys for s in journey]
    assert 504 not in statuses
    assert [journey[-1] for journey in journeys] == [200] * 50, statuses
    assert set(statuses) <= {200, 503}


async def test_thirty_concurrent_wrong_passwords_get_at_most_the_limit_checked(suite):
    async with client(suite) as owner, client(suite, "127.0.0.3") as guesser:
        _, username = await register(owner)
        answers = await asyncio.gather(
            *(guesser.post("/api/auth/login", json={"username": username, "password": "guess"}) for _ in range(30))
        )
    statuses = [a.status_code for a in answers]
    assert statuses.count(401) <= 5  # LOGIN_FAILURES_PER_USER
    assert statuses.count(401) + statuses.count(429) == 30
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)


async def test_a_strangers_failures_do_not_stop_the_owner_logging_in_from_another_address(suite):
    async with client(suite, "127.0.0.4") as owner, client(suite, "127.0.0.2") as stranger:
        _, username = await register(owner)
        for _ in range(12):
            answer = await stranger.post("/api/auth/login", json={"username": username, "password": "guess"})
            assert answer.status_code in (401, 429)
        held_off = await stranger.post("/api/auth/login", json={"username": username, "password": PASSWORD})
        assert held_off.status_code == 429
        assert (await login(owner, username))["access_token"]


async def test_the_original_login_path_keeps_its_shape_when_throttled(suite):
    async with client(suite, "127.0.0.5") as lb:
        _, username = await register(lb)
        for _ in range(5):
            await lb.post("/api/login", json={"username": username, "password": "guess"})
        throttled = await lb.post("/api/login", json={"username": username, "password": PASSWORD})
    assert throttled.status_code == 429
    assert throttled.json()["status"] == "failed" and throttled.json()["message"]
