"""The balancer is the suite's public edge: unlike the services' (never routed from outside), its trace buffer is
read with an admin token only, checked by auth-service (ops-mcp passes its caller's token on)."""

import asyncio
from collections.abc import Awaitable, Callable

import aiohttp
from aiohttp import web

from titanium_common.aiohttp_app import CLIENT, json_error
from titanium_common.settings import split_list

VERIFY_TIMEOUT_S = 1.5

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def admin_only(auth_service_urls: str) -> Callable[[Handler], Handler]:
    verify_url = split_list(auth_service_urls)[0].rstrip("/") + "/api/auth/verify"

    def guard(handler: Handler) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            authorization = request.headers.get("Authorization", "")
            if not authorization.lower().startswith("bearer "):
                return json_error(401, "an admin bearer token is required", {"WWW-Authenticate": "Bearer"})
            try:
                async with (
                    asyncio.timeout(VERIFY_TIMEOUT_S),
                    request.app[CLIENT].get(verify_url, headers={"Authorization": authorization}) as answer,
                ):
                    status, body = answer.status, await answer.json(content_type=None)
            except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
                return json_error(503, f"auth-service unavailable: {type(exc).__name__}")
            if status == 401:
                return json_error(401, "invalid token", {"WWW-Authenticate": "Bearer"})
            if status != 200 or not isinstance(body, dict):
                return json_error(503, f"auth-service answered {status}")
            if body.get("role") != "admin":
                return json_error(403, "traces need the admin role")
            return await handler(request)

        return guarded

    return guard
