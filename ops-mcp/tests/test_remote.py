"""The stdio server's backend against a stand-in of the suite's public face: it logs in with the configured admin,
logs in again when a token is refused, and turns a refusal into a message the assistant can read."""

import contextlib
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from ops_mcp.remote import RemoteOperations, SuiteUnavailable
from ops_mcp.settings import StdioSettings
from tests.support.servers import serving
from titanium_common.http_client import create_client_session


class StandInSuite:
    """Issues a new token per login; `revoked` tokens get 401 from /api/ops/*."""

    def __init__(self) -> None:
        self.logins = 0
        self.revoked: set[str] = set()
        self.app = web.Application()
        self.app.router.add_post("/api/auth/login", self.login)
        self.app.router.add_get("/api/ops/nodes", self.nodes)

    async def login(self, request: web.Request) -> web.Response:
        body = await request.json()
        if body != {"username": "admin", "password": "secret-password"}:
            return web.json_response({"detail": "invalid username or password"}, status=401)
        self.logins += 1
        return web.json_response({"access_token": f"token-{self.logins}", "token_type": "bearer", "expires_in": 900})

    async def nodes(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token.startswith("token-") or token in self.revoked:
            return web.json_response({"detail": "invalid token"}, status=401)
        return web.json_response({"items": [{"name": "node-1", "seen_with": token}], "total": 1})


@contextlib.asynccontextmanager
async def remote(suite: StandInSuite, **credentials) -> AsyncIterator[RemoteOperations]:
    async with serving(suite.app) as url, create_client_session() as session:
        yield RemoteOperations(StdioSettings(titanium_url=url, **credentials), session)


async def test_logs_in_once_and_again_when_the_token_is_refused():
    suite = StandInSuite()
    async with remote(suite, titanium_username="admin", titanium_password="secret-password") as ops:
        assert (await ops.nodes()).items[0]["seen_with"] == "token-1"
        assert (await ops.nodes()).items[0]["seen_with"] == "token-1"
        suite.revoked.add("token-1")
        assert (await ops.nodes()).items[0]["seen_with"] == "token-2"
        assert suite.logins == 2


async def test_a_refused_token_or_wrong_password_is_said_plainly():
    suite = StandInSuite()
    async with remote(suite, titanium_token="forged") as ops:
        with pytest.raises(SuiteUnavailable, match="HTTP 401: invalid token"):
            await ops.nodes()
    async with remote(suite, titanium_username="admin", titanium_password="wrong-password") as ops:
        with pytest.raises(SuiteUnavailable, match="invalid username or password"):
            await ops.nodes()
    async with remote(suite) as ops:
        with pytest.raises(SuiteUnavailable, match="TITANIUM_TOKEN"):
            await ops.nodes()
