import asyncio
import time

import pytest
from aiohttp import web

from tests.support.servers import serving
from titanium_common.auth_client import MAX_CACHE_TTL_S, TokenVerifier, token_verifier
from titanium_common.http_client import create_client_session
from titanium_common.revocations import UNSURE_MAX_AGE_S, RevocationFeed


@pytest.fixture
async def auth_double():
    """A real aiohttp server answering /api/auth/verify with a chosen expiry, counting calls."""
    state = {"calls": 0, "exp": int(time.time()) + 3600}

    async def verify(request: web.Request) -> web.Response:
        state["calls"] += 1
        if request.headers.get("Authorization") == "Bearer bad":
            return web.json_response({"detail": "token expired"}, status=401)
        return web.json_response({"valid": True, "sub": "7", "username": "u", "role": "user", "exp": state["exp"]})

    app = web.Application()
    app.router.add_get("/api/auth/verify", verify)
    async with serving(app) as url:
        yield url, state


async def test_results_are_cached_at_most_30_s_and_never_past_expiry(auth_double):
    url, state = auth_double
    session = create_client_session()
    verifier = TokenVerifier(session, url, cache_ttl_s=3600)
    assert verifier.cache_ttl_s == MAX_CACHE_TTL_S
    identity = await verifier.verify("good")
    assert (identity.user_id, identity.username) == (7, "u")
    await verifier.verify("good")
    assert state["calls"] == 1
    state["exp"] = int(time.time())  # a token that expires now is never served from the cache
    await verifier.verify("soon")
    await verifier.verify("soon")
    assert state["calls"] == 3
    await session.close()


async def test_rejections_are_401_and_a_dead_auth_service_503(auth_double):
    from starlette.exceptions import HTTPException

    url, _ = auth_double
    session = create_client_session()
    with pytest.raises(HTTPException) as rejected:
        await TokenVerifier(session, url).verify("bad")
    assert (rejected.value.status_code, rejected.value.detail) == (401, "token expired")
    with pytest.raises(HTTPException) as down:
        await TokenVerifier(session, "http://127.0.0.1:1").verify("any")
    assert down.value.status_code == 503 and "auth-service" in down.value.detail
    await session.close()


async def test_without_a_revocation_feed_an_answer_is_kept_at_most_a_second(auth_double, monkeypatch):
    url, state = auth_double
    session = create_client_session()
    verifier = TokenVerifier(session, url)
    await verifier.verify("good")
    await verifier.verify("good")
    assert state["calls"] == 1
    later = time.time() + UNSURE_MAX_AGE_S
    monkeypatch.setattr(time, "time", lambda: later)
    await verifier.verify("good")
    assert state["calls"] == 2
    await session.close()


async def test_a_revocation_heard_over_redis_drops_the_users_answers(auth_double, redis_target):
    url, state = auth_double
    channel = redis_target.prefix + "revoked"
    async with token_verifier(url, redis_url=redis_target.url, revocation_channel=channel) as verifier:
        for _ in range(50):
            if verifier.feed.listening:
                break
            await asyncio.sleep(0.05)
        assert verifier.feed.listening
        await verifier.verify("good")
        # Listening, the answer is kept past a second.
        assert verifier.feed.max_age_s(verifier.cache_ttl_s) == MAX_CACHE_TTL_S
        publisher = RevocationFeed(redis_target.url, channel)
        await publisher.publish("8")  # another user: kept
        await publisher.publish("7")
        for _ in range(50):
            if not verifier._cache:
                break
            await asyncio.sleep(0.02)
        await verifier.verify("good")
        assert state["calls"] == 2
        await publisher.close()


async def test_an_answer_overtaken_by_a_revocation_is_not_cached(auth_double):
    url, state = auth_double
    session = create_client_session()
    verifier = TokenVerifier(session, url)
    original = session.get

    def revoke_while_asking(*args, **kwargs):
        verifier.forget("7")
        return original(*args, **kwargs)

    session.get = revoke_while_asking
    await verifier.verify("good")
    await verifier.verify("good")
    assert state["calls"] == 2
    await session.close()


async def test_require_role_is_403_for_another_role_and_401_without_a_token(auth_double):
    from starlette.exceptions import HTTPException
    from starlette.requests import Request

    def request(token: str | None) -> Request:
        headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
        return Request({"type": "http", "headers": headers})

    url, _ = auth_double
    session = create_client_session()
    verifier = TokenVerifier(session, url)
    assert (await verifier.require_role(request("good"), "user", "admin")).username == "u"
    with pytest.raises(HTTPException) as other_role:
        await verifier.require_role(request("good"), "admin")
    assert other_role.value.status_code == 403
    with pytest.raises(HTTPException) as anonymous:
        await verifier.require_role(request(None), "admin")
    assert anonymous.value.status_code == 401
    await session.close()


async def test_a_revocation_that_cannot_be_announced_is_kept_for_a_retry():
    feed = RevocationFeed("redis://127.0.0.1:1/0", "unused")
    heard = []
    feed.add_listener(heard.append)
    await feed.publish(5)
    assert heard == ["5"]  # this process forgets the user at once
    assert "5" in feed._unsent and feed._retry_task is not None
    assert feed.max_age_s(MAX_CACHE_TTL_S) == UNSURE_MAX_AGE_S  # not listening: caches keep a second at most
    await feed.close()
