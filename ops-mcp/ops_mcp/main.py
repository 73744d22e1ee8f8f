import asyncio
import contextlib
from collections.abc import Callable

from fastapi import FastAPI
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp
from mcp.server.transport_security import TransportSecuritySettings
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from titanium_common.auth_client import TokenVerifier, settings_token_verifier
from titanium_common.errors import error_body
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.http_client import create_client_session
from titanium_common.loops import stop_tasks
from titanium_common.runner import serve

from . import api
from .access import admin_identity
from .operations import SERVICES_READ, LiveOperations
from .reader import SuiteReader, caller_authorization
from .sampler import Sampler
from .settings import OpsSettings
from .tools import build_server

MCP_PATH = "/mcp"


class AdminOnly:
    """The MCP endpoint behind an admin bearer token (checked by auth-service on every call, cached briefly)."""

    def __init__(self, app: ASGIApp, verifier: Callable[[], TokenVerifier]) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        try:
            await admin_identity(self.verifier(), request)
        except HTTPException as exc:
            response = JSONResponse(error_body(exc.detail), status_code=exc.status_code, headers=exc.headers)
            await response(scope, receive, send)
            return
        token = caller_authorization.set(request.headers.get("Authorization"))
        try:
            await self.app(scope, receive, send)
        finally:
            caller_authorization.reset(token)


def create_app(settings: OpsSettings | None = None) -> FastAPI:
    settings = settings or OpsSettings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        session = create_client_session(response_s=settings.lb_stats_timeout_s)
        reader = SuiteReader(session, settings.service_urls(), settings.read_timeout_s)
        sampler = Sampler(reader, SERVICES_READ, keep=settings.samples_kept, lb_timeout_s=settings.lb_stats_timeout_s)
        app.state.sampler = sampler
        app.state.operations = LiveOperations(reader, sampler, settings)
        sampling = asyncio.create_task(sampler.run(settings.sample_interval_s), name="suite sampler")
        try:
            async with (
                settings_token_verifier(settings) as app.state.verifier,
                mcp.session_manager.run(),
            ):
                yield
        finally:
            await stop_tasks([sampling])
            await session.close()

    app = create_fastapi_app(settings, title="ops-mcp", distribution="ops-mcp", routers=[api.router], lifespan=lifespan)
    mcp = build_server(lambda: app.state.operations, version=app.state.kit.version)
    # Stateless JSON answers: every MCP call is one POST answered in full (through the gateway's response
    # timeout, across replicas, no session to keep). No DNS-rebinding check: every call needs a bearer token,
    # which a page in a browser cannot add to a request to another origin. (Called for the session manager it
    # builds; its own Starlette app is not used: the route below mounts the handler behind the admin check.)
    mcp.streamable_http_app(
        stateless_http=True,
        json_response=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    endpoint = AdminOnly(StreamableHTTPASGIApp(mcp.session_manager), lambda: app.state.verifier)
    app.router.routes.append(Route(MCP_PATH, endpoint=endpoint, methods=["GET", "POST", "DELETE"]))
    app.state.mcp = mcp
    return app


def main() -> None:
    settings = OpsSettings()
    serve(create_app(settings), settings)


if __name__ == "__main__":
    main()
