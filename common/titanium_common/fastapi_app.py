"""App factory for the FastAPI services: request id, errors, health, stats, metrics."""

import logging
import re
import time
from collections.abc import Iterable
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api_docs import asset_path, swagger_page
from .bodies import JsonBodies
from .browser_security import add_browser_security_headers
from .contracts import ErrorBody, Health, Readiness, ServiceStats
from .errors import ServiceError, error_body
from .logs import REQUEST_ID_HEADER, accept_request_id, request_id_var
from .observability import METRICS_CONTENT_TYPE, UNMATCHED_ROUTE, ServiceKit
from .settings import ServiceSettings
from .tracing import (
    TRACE_ID_HEADER,
    UNTRACED_PATHS,
    BadTraceQuery,
    buffer_listing,
    buffer_trace,
    is_monitoring,
)

log = logging.getLogger("titanium.http")

# The largest id a service's tables hold: a 32-bit INTEGER column on PostgreSQL (SQLite's go further). A path id or
# an offset past it is refused as invalid (422) before the database sees it, where it would be an overflow (500).
MAX_ROW_NUMBER = 2**31 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_NUMBER)]


def _route_template(scope: Scope) -> str:
    route = scope.get("route")
    if route is not None:
        return route.path
    for candidate in getattr(scope.get("app"), "routes", ()):
        match, _ = candidate.matches(scope)
        if match is Match.FULL:
            return getattr(candidate, "path", UNMATCHED_ROUTE)
    return UNMATCHED_ROUTE


class ObservabilityMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware overhead): request id in, request id and trace id out, the request's
    SERVER span (current while the service works on it), one access line, metrics."""

    def __init__(self, app: ASGIApp, kit: ServiceKit) -> None:
        self.app = app
        self.kit = kit
        self.tracing = kit.tracing if kit.tracing.enabled else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"]
        if method == "HEAD":
            # FastAPI routes GET only: HEAD is the GET answer without its body (RFC 9110 9.3.2). A copy, because
            # the server reads its own scope to know that no body may be sent.
            scope = {**scope, "method": "GET"}
        incoming = traceparent = tracestate = heartbeat = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
            elif name == b"traceparent":
                traceparent = value.decode("latin-1")
            elif name == b"tracestate":
                tracestate = value.decode("latin-1")
            elif name == b"x-heartbeat":
                heartbeat = value.decode("latin-1")
        rid = accept_request_id(incoming)
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        token = request_id_var.set(rid)
        path = scope["path"]
        span = None
        if self.tracing is not None and path not in UNTRACED_PATHS:
            span, span_token = self.tracing.start_server_span(
                traceparent, tracestate, method, scope, is_monitoring(heartbeat)
            )
            trace_id = span.trace_hex
        else:
            trace_id = None
        # For the error handler of an unhandled exception, which runs outside this middleware.
        state["trace_id"] = trace_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                if REQUEST_ID_HEADER not in headers:
                    headers.append(REQUEST_ID_HEADER, rid)
                if trace_id is not None and TRACE_ID_HEADER not in headers:
                    headers.append(TRACE_ID_HEADER, trace_id)
            elif method == "HEAD" and message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(scope)
            self.kit.observe(method, route, path, status, elapsed)
            if span is not None:
                self.tracing.end_server_span(span, span_token, method, route, status)
            query = scope.get("query_string", b"")
            shown = f"{path}?{query.decode('latin-1')}" if query else path
            self.kit.access_log.record(method, path, shown, status, elapsed)
            request_id_var.reset(token)


def _request_id(request: Request) -> str:
    return request.scope.get("state", {}).get("request_id", "-")


def _error_response(
    request: Request, status: int, detail: Any, headers: dict | None = None, extra: dict | None = None
) -> JSONResponse:
    rid = _request_id(request)
    trace_id = request.scope.get("state", {}).get("trace_id")
    merged = {**(headers or {}), REQUEST_ID_HEADER: rid}
    if trace_id is not None:
        merged[TRACE_ID_HEADER] = trace_id
    return JSONResponse(error_body(detail, rid, trace_id) | (extra or {}), status_code=status, headers=merged)


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return _error_response(request, exc.status_code, exc.detail, exc.headers)


async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
    return _error_response(request, exc.status_code, exc.detail, extra=exc.extra)


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = jsonable_encoder(exc.errors(), exclude={"input", "ctx", "url"})
    return _error_response(request, 422, errors)


async def _unhandled_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(request, 500, "internal server error")


def _kit_router(kit: ServiceKit) -> APIRouter:
    router = APIRouter(tags=["service"])

    @router.get("/health")
    async def health() -> Health:
        return Health(**kit.health())

    @router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness, "description": "not ready"}})
    async def ready() -> JSONResponse:
        ok, body = await kit.ready()
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/stats")
    async def stats() -> ServiceStats:
        return ServiceStats(**await kit.stats())

    @router.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(swagger_page(f"{kit.service} API", "docs/assets/", [(kit.service, "openapi.json")]))

    @router.get("/docs/assets/{name}", include_in_schema=False)
    async def docs_asset(name: str) -> FileResponse:
        path = asset_path(name)
        if path is None:
            raise StarletteHTTPException(404, f"no docs asset {name}")
        return FileResponse(path)

    @router.get("/internal/traces", include_in_schema=False)
    async def traces(since: str | None = None, limit: str | None = None) -> dict[str, Any]:
        """This replica's recent traces (ops-mcp assembles them across services); never routed from outside."""
        try:
            return buffer_listing(kit.tracing, since, limit)
        except BadTraceQuery as exc:
            raise StarletteHTTPException(400, str(exc)) from exc

    @router.get("/internal/traces/{trace_id}", include_in_schema=False)
    async def trace_spans(trace_id: str) -> dict[str, Any]:
        try:
            return buffer_trace(kit.tracing, trace_id)
        except BadTraceQuery as exc:
            raise StarletteHTTPException(400, str(exc)) from exc

    @router.get("/metrics", response_class=PlainTextResponse, responses={200: {"content": {METRICS_CONTENT_TYPE: {}}}})
    async def metrics() -> Response:
        return Response(await kit.scrape(), media_type=METRICS_CONTENT_TYPE)

    return router


def _openapi_with_error_bodies(app: FastAPI):
    """FastAPI documents validation errors as its own `HTTPValidationError`; the kit answers them (and every other
    error) as `ErrorBody`, so the document says so. A route that reads a body also answers 400 when the body cannot
    be read as JSON at all (not UTF-8), before any validation: that is declared too."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = generate()
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas["ErrorBody"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        error_ref = {"$ref": "#/components/schemas/ErrorBody"}
        error_content = {"application/json": {"schema": error_ref}}
        for operations in document.get("paths", {}).values():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    responses["422"]["content"] = error_content
                if "requestBody" in operation:
                    responses.setdefault("400", {"description": "the body is not JSON", "content": error_content})
        app.openapi_schema = document
        return document

    return openapi


def _shadowed(service_routes: list, kit_routes: list) -> list[str]:
    """The kit's routes (`GET /health`) that one of the service's, tried first, would answer instead."""
    shadowed = []
    for kit_route in kit_routes:
        sample = re.sub(r"{[^}]*}", "x", kit_route.path)
        for route in service_routes:
            methods = getattr(route, "methods", None)
            if route.path_regex.match(sample) and (methods is None or methods & kit_route.methods):
                shadowed.append(f"{'/'.join(sorted(kit_route.methods))} {kit_route.path}")
                break
    return shadowed


def create_fastapi_app(
    settings: ServiceSettings,
    *,
    title: str,
    distribution: str | None = None,
    routers: Iterable[APIRouter] = (),
    lifespan=None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """A FastAPI app with the kit wired in; the kit is at `app.state.kit`. Bodies follow the suite's one rule
    (titanium_common.bodies), and over `max_body_bytes` are 413."""
    kit = ServiceKit(settings, distribution)
    # The kit serves /docs itself, with Swagger UI from an installed package (FastAPI's own loads it from a CDN).
    # FastAPI's own telemetry (spans for each request, dependency, endpoint and serialisation, once a tracer
    # provider is set) is off: the kit's middleware makes the request's SERVER span, at a fraction of the cost
    # (load-tests/bench_user_chain.py --tracing), and the instrumented database, Redis and HTTP clients the rest.
    app = FastAPI(
        title=title,
        version=kit.version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.kit = kit
    app.state.settings = settings
    app.add_middleware(JsonBodies, max_body_bytes=max_body_bytes)
    # Added last, so outermost: a refused body still gets a request id and counts.
    app.add_middleware(ObservabilityMiddleware, kit=kit)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(Exception, _unhandled_error)
    # The service's routes first: FastAPI tries routes in order, each at a cost, and the API is what is hot (the
    # kit's /health, /metrics and the like are read a few times a minute), so no service route may shadow a kit
    # path. The routes join the app's own list rather than being included: FastAPI 0.165 keeps an included router
    # as a branch that is matched twice per request (once to choose it, once inside it), a quarter of a cached
    # read's CPU. Our routers carry no include-time options (their prefix and tags are already in each route).
    kit_routes = _kit_router(kit).routes
    service_routes = [route for router in routers for route in router.routes]
    shadowed = _shadowed(service_routes, kit_routes)
    if shadowed:
        raise ValueError(f"{settings.service_name}: service routes would answer the kit's {', '.join(shadowed)}")
    app.router.routes.extend(service_routes + kit_routes)
    app.openapi = _openapi_with_error_bodies(app)
    return app


class BrowserPageFiles(StaticFiles):
    """StaticFiles for a browser page (a service's SPA): every file carries the suite's browser security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        add_browser_security_headers(response.headers)
        return response
