import time

import pytest
from aiohttp import web

from titanium_common.auth_client import MAX_CACHE_TTL_S, TokenVerifier
from titanium_common.http_client import create_client_session


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
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}", state
    await runner.cleanup()


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
