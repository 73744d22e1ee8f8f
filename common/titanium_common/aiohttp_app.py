"""App factory for the aiohttp services (load balancer, gateway): request id, errors, health, stats, metrics."""

import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

import aiohttp
from aiohttp import hdrs, web
from aiohttp.web_urldispatcher import UrlMappingMatchInfo
from yarl import URL

from .errors import error_body
from .http_client import client_session_context
from .logs import REQUEST_ID_HEADER, accept_request_id, request_id_var
from .observability import METRICS_CONTENT_TYPE, UNMATCHED_ROUTE, ServiceKit
from .settings import ServiceSettings
from .tracing import (
    MONITORING_HEADER,
    TRACE_ID_HEADER,
    UNTRACED_PATHS,
    BadTraceQuery,
    ProxySpan,
    buffer_listing,
    buffer_trace,
    is_monitoring,
    proxy_trace_id_var,
)
from .upstream_client import UpstreamClient

KIT = web.AppKey("titanium_kit", ServiceKit)
CLIENT = web.AppKey("titanium_client", aiohttp.ClientSession)
# The proxies' client for relayed WebSockets: a pool of its own, so that long-lived sockets never hold the
# connections that health checks and the app's own calls need.
WEBSOCKET_CLIENT = web.AppKey("titanium_websocket_client", aiohttp.ClientSession)
# The proxies' client for forwarded HTTP requests (WebSocket relays and the app's own calls use CLIENT).
UPSTREAM = web.AppKey("titanium_upstream_client", UpstreamClient)
REQUEST_ID = web.RequestKey("request_id", str)
# The request's light span (absent on probes and scrapes), and the pool and replica a proxied request went to.
TRACE = web.RequestKey("trace_span", ProxySpan)
PROXIED_TO = web.RequestKey("proxied_to", tuple)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
# A proxy's catch-all route (add_proxy_route).
PROXY_ROUTE = web.AppKey("titanium_proxy_route", web.AbstractRoute)
# Headers of an HTTP error that a client still needs in a JSON error response.
_KEPT_ERROR_HEADERS = ("Allow", "Retry-After", "Location")

log = logging.getLogger("titanium.http")


def json_error(status: int, detail: object, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response(error_body(detail), status=status, headers=headers)


def _route_template(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED_ROUTE


def without_dot_segments(target: str) -> str:
    """`target` (path and query, as sent) with its `.` and `..` segments resolved (RFC 3986 5.2.4), percent-encoded
    dots included, so that a path is routed and forwarded as what it names: `/api/users/../../internal/x` is
    `/internal/x`, and never reaches an upstream that would resolve it differently."""
    path, sep, query = target.partition("?")
    kept: list[str] = []
    segments = path.split("/")[1:]
    for index, segment in enumerate(segments):
        dots = segment.replace("%2e", ".").replace("%2E", ".")
        last = index == len(segments) - 1
        if dots == ".":
            if last:
                kept.append("")
        elif dots == "..":
            if kept:
                kept.pop()
            if last:
                kept.append("")
        else:
            kept.append(segment)
    return "/" + "/".join(kept) + sep + query


def has_dot_segments(target: str) -> bool:
    path = target.partition("?")[0]
    return "/." in path or ("%2" in path and "/%2e" in path.lower())


def _observability(resolve_dot_segments: bool):
    @web.middleware
    async def observability_middleware(request: web.Request, handler) -> web.StreamResponse:
        """Request id, trace span, error shape, metrics and access line for every request; on a proxy, first the
        path's dot segments resolved (here rather than in a middleware of its own: each one is a coroutine more
        per request). The request id and the trace id go on the answer here, not in an on_response_prepare signal
        (a few µs per request on the proxies): a handler that prepares its own response calls echo_request_id
        before prepare()."""
        if resolve_dot_segments:
            target = request.raw_path
            if has_dot_segments(target):
                clean = without_dot_segments(target)
                if clean != target:
                    request = request.clone(rel_url=URL(clean, encoded=True))
        rid = accept_request_id(request.headers.get(REQUEST_ID_HEADER))
        request[REQUEST_ID] = rid
        token = request_id_var.set(rid)
        kit = request.app[KIT]
        path = request.path
        span = trace_token = None
        if path not in UNTRACED_PATHS and kit.tracing.enabled:
            headers = request.headers
            span = request[TRACE] = kit.tracing.start_proxy_span(headers.get("traceparent"), headers.get("tracestate"))
            # Not a request to list among the slow ones: a monitoring read says so; a WebSocket stays open as long as
            # its page does, so its duration is no request's latency.
            span.monitoring = (
                is_monitoring(headers.get(MONITORING_HEADER)) or headers.get("Upgrade", "").lower() == "websocket"
            )
            trace_token = proxy_trace_id_var.set(span.trace_hex)
        started = time.perf_counter()
        status = 500
        try:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                if exc.status < 400:
                    response = exc
                else:
                    detail = f"not found: {path}" if exc.status == 404 else exc.reason
                    kept = {h: exc.headers[h] for h in _KEPT_ERROR_HEADERS if h in exc.headers}
                    response = json_error(exc.status, detail, kept)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, path)
                response = json_error(500, "internal server error")
            status = response.status
            if not response.prepared:
                response_headers = response.headers
                response_headers.setdefault(REQUEST_ID_HEADER, rid)
                if span is not None:
                    response_headers.setdefault(TRACE_ID_HEADER, span.trace_hex)
            return response
        finally:
            elapsed = time.perf_counter() - started
            route = _route_template(request)
            kit.observe(request.method, route, path, status, elapsed)
            kit.access_log.record(request.method, path, request.rel_url, status, elapsed)
            if span is not None:
                _end_span(kit, request, span, route, status)
                proxy_trace_id_var.reset(trace_token)
            request_id_var.reset(token)

    return observability_middleware


def _end_span(kit: ServiceKit, request: web.Request, span: ProxySpan, route: str, status: int) -> None:
    if not span.sampled:
        return
    method = request.method
    proxied = request.get(PROXIED_TO)
    if proxied is not None:
        # Named by where it went ("GET api-gateway"): a span name of its own per path would be unbounded.
        facts = (method, request.path, status, route, *proxied)
        name = f"{method} {proxied[0]}"
    else:
        facts = (method, request.path, status, route, None, None)
        name = f"{method} {route}"
    kit.tracing.end_proxy_span(span, name, facts, status >= 500)


def echo_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """X-Request-ID on a response the handler prepares itself (a stream, a WebSocket): the middleware sets it on
    every other answer. Kept if the response already carries one (a proxied answer echoing it)."""
    response.headers.setdefault(REQUEST_ID_HEADER, request[REQUEST_ID])
    span = request.get(TRACE)
    if span is not None:
        response.headers.setdefault(TRACE_ID_HEADER, span.trace_hex)


def mark_monitoring(request: web.Request) -> None:
    """This request's span is a monitoring read whatever its headers say: a route for the suite's own watchers
    that a browser opens as an EventSource, which cannot send MONITORING_HEADER."""
    span = request.get(TRACE)
    if span is not None:
        span.monitoring = True


async def health(request: web.Request) -> web.Response:
    return web.json_response(request.app[KIT].health())


async def ready(request: web.Request) -> web.Response:
    ok, body = await request.app[KIT].ready()
    return web.json_response(body, status=200 if ok else 503)


async def stats(request: web.Request) -> web.Response:
    return web.json_response(await request.app[KIT].stats())


async def metrics(request: web.Request) -> web.Response:
    response = web.Response(body=await request.app[KIT].scrape())
    response.headers["Content-Type"] = METRICS_CONTENT_TYPE
    return response


async def traces(request: web.Request) -> web.Response:
    """This replica's recent traces, for ops-mcp."""
    try:
        query = request.query
        return web.json_response(buffer_listing(request.app[KIT].tracing, query.get("since"), query.get("limit")))
    except BadTraceQuery as exc:
        return json_error(400, str(exc))


async def trace_spans(request: web.Request) -> web.Response:
    try:
        return web.json_response(buffer_trace(request.app[KIT].tracing, request.match_info["trace_id"]))
    except BadTraceQuery as exc:
        return json_error(400, str(exc))


def create_aiohttp_app(
    settings: ServiceSettings,
    *,
    distribution: str | None = None,
    client_max_size: int = 1024**2,
    own_stats_route: bool = False,
    trace_guard=None,
    resolve_dot_segments: bool = False,
) -> web.Application:
    """An aiohttp app with the kit wired in; `own_stats_route` leaves GET /stats to the service. `trace_guard`
    (a handler wrapper) protects the trace buffer's routes on an app that the public reaches directly.
    `resolve_dot_segments` (the proxies): a request whose path has `.` or `..` segments is routed, and forwarded,
    as the path they resolve to."""
    app = web.Application(middlewares=[_observability(resolve_dot_segments)], client_max_size=client_max_size)
    app[KIT] = ServiceKit(settings, distribution)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    if not own_stats_route:
        app.router.add_get("/stats", stats)
    guard = trace_guard or (lambda handler: handler)
    app.router.add_get("/internal/traces", guard(traces))
    app.router.add_get("/internal/traces/{trace_id}", guard(trace_spans))
    return app


def add_proxy_route(app: web.Application, handler: Handler) -> None:
    """A proxy's catch-all: every path no other route of the app claims goes to `handler`. The kit's server
    (`request_handler`) sends those requests straight through the app's middlewares to the handler; aiohttp's router
    and per-request chain building cost a proxy about a tenth of its CPU per request (load-tests/README.md)."""
    app[PROXY_ROUTE] = app.router.add_route("*", "/{tail:.*}", handler)


class _ProxyDispatch:
    """The server's handler on a proxy: a request that only the catch-all route can match skips the router and goes
    through the app's middlewares, composed once, to the catch-all's handler; every other request (a route of the
    app's own, a path that is percent-encoded or has dot segments, an `Expect` header) takes aiohttp's usual way.
    Which paths the app's own routes claim is read from its frozen router once, so no list is kept by hand."""

    def __init__(self, app: web.Application) -> None:
        route = app[PROXY_ROUTE]
        exact: set[str] = set()
        prefixes: list[str] = []
        for resource in app.router.resources():
            if resource is route.resource:
                continue
            info = resource.get_info()
            if "path" in info:
                exact.add(info["path"])
            elif "formatter" in info:
                prefixes.append(info["formatter"].partition("{")[0])
            else:
                raise TypeError(f"a proxy app cannot tell which paths {resource!r} claims")
        self._exact = frozenset(exact)
        self._prefixes = tuple(prefixes)
        # The match every request of the catch-all gets: its route (for the metrics' route template) and the app.
        match_info = UrlMappingMatchInfo({}, route)
        match_info.add_app(app)
        match_info.freeze()
        self._match_info = match_info
        # The app's whole middleware chain (the kit's observability step first, then e.g. the gateway's CORS),
        # composed once instead of per request.
        handler = route.handler
        for middleware in reversed(app.middlewares):
            if getattr(middleware, "__middleware_version__", None) != 1:
                raise TypeError(f"a proxy app's middleware {middleware!r} is not a @web.middleware")
            handler = partial(middleware, handler=handler)
        self._chain = handler
        self._routed = app._handle

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        path = request.rel_url.raw_path
        if (
            "%" in path
            or "/." in path
            or path in self._exact
            or path.startswith(self._prefixes)
            or hdrs.EXPECT in request.headers
        ):
            return await self._routed(request)
        request._match_info = self._match_info
        return await self._chain(request)


def request_handler(app: web.Application) -> Handler:
    """What the server calls for each request of a frozen app: a proxy's dispatch, or aiohttp's own."""
    return _ProxyDispatch(app) if PROXY_ROUTE in app else app._handle


def attach_client_session(
    app: web.Application, key: web.AppKey[aiohttp.ClientSession] = CLIENT, **session_options
) -> None:
    """Give the app the kit's shared client session at `app[key]` (`app[CLIENT]`), open while the app runs."""

    async def lifetime(app: web.Application):
        async for session in client_session_context(**session_options):
            app[key] = session
            yield

    app.cleanup_ctx.append(lifetime)


def attach_upstream_client(app: web.Application, **client_options) -> None:
    """Give a proxy app the proxy core's upstream client at `app[UPSTREAM]`, closed when the app stops."""

    async def lifetime(app: web.Application):
        app[UPSTREAM] = client = UpstreamClient(**client_options)
        yield
        await client.close()

    app.cleanup_ctx.append(lifetime)
