"""Start a service's app on its host and port: one entry point for FastAPI and aiohttp apps alike."""

import asyncio
import contextlib
import gc
import logging
import os
import signal
import time
import traceback

import uvloop
from aiohttp import http_exceptions, web
from aiohttp.web_protocol import RequestHandler

from .aiohttp_app import request_handler
from .errors import error_body
from .logs import REQUEST_ID_HEADER, configure_logging, new_request_id
from .settings import ServiceSettings

log = logging.getLogger("titanium.runner")

# Connections the kernel queues before accept(): aiohttp's default of 128 overflowed when 512 clients connected at
# once (wrk -c512; SYNs dropped and retried after 1 s, a p99 of 750 ms). uvicorn's default is 2048.
LISTEN_BACKLOG = 2048
KEEPALIVE_TIMEOUT_S = 60.0
# One header line may be this long (aiohttp's default is 8190 bytes): a W3C tracestate of 10 KB from a client is
# dropped by the tracing, not refused with a 400 before it.
MAX_FIELD_BYTES = 32 * 1024


class HeaderTimedRequestHandler(RequestHandler):
    """aiohttp's connection handler with a bound on reading a request's line and headers, which aiohttp lacks: from
    the connection's opening, and from the first byte of each later request, the head must be complete within
    `header_timeout_s`, else the connection is closed (silently, as Go's ReadHeaderTimeout does: bytes written
    now could be taken for the answer to a request still being read). A head that arrives whole (the common case)
    arms no timer."""

    __slots__ = ("_head_timer", "_header_timeout_s")

    def __init__(self, manager, *, header_timeout_s: float, **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._head_timer = self._loop.call_later(self._header_timeout_s, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None
        elif (
            self._head_timer is None
            and not self._request_in_progress
            and not self._messages
            and self._payload_parser is None
            and not self._upgraded
        ):
            # The first bytes of a new request's head, and not all of it.
            self._head_timer = self._loop.call_later(self._header_timeout_s, self._head_timed_out)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport is not None and not self._request_in_progress:
            self.force_close()

    def handle_error(
        self, request, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """aiohttp's answer to a request its parser refused (or that failed outside every handler): its plain text
        repeats the request's bytes and its log is a traceback. Here it is the suite's JSON error shape, 414 or 431
        where they apply, and one WARNING line that names the peer and the reason, never the bytes."""
        if not isinstance(exc, http_exceptions.HttpProcessingError):
            return super().handle_error(request, status, exc, message)
        status, reason = refusal_of(exc)
        log.warning("refused a request from %s: %d %s", request.remote, status, reason)
        rid = new_request_id()
        response = web.json_response(error_body(reason, rid), status=status, headers={REQUEST_ID_HEADER: rid})
        response.force_close()
        return response


# What a refusal says: a fixed text per kind, as aiohttp's own messages quote the refused bytes.
_REFUSALS: tuple[tuple[type[http_exceptions.HttpProcessingError], str], ...] = (
    (http_exceptions.BadHttpMethod, "invalid method in the request line"),
    (http_exceptions.BadStatusLine, "invalid request line"),
    (http_exceptions.InvalidURLError, "invalid character in the request target"),
    (http_exceptions.InvalidHeader, "invalid header"),
    (http_exceptions.TransferEncodingError, "invalid Transfer-Encoding"),
    (http_exceptions.ContentLengthError, "invalid Content-Length"),
)
# aiohttp's parser limits (max_line_size, max_field_size, max_headers): what the 414 and 431 refusals say.
_MAX_LINE_BYTES = 8190
_MAX_HEADERS = 128


def _raised_in(exc: BaseException, function: str) -> bool:
    # Cython names its frames with the module: "aiohttp._http_parser.cb_on_url".
    return any(frame.name.rpartition(".")[2] == function for frame in traceback.extract_tb(exc.__traceback__))


def refusal_of(exc: http_exceptions.HttpProcessingError) -> tuple[int, str]:
    """Status and reason for a request the parser refused: 414 for a request target over the line limit, 431 for
    a header over the field limit or too many headers, else 400."""
    if isinstance(exc, http_exceptions.LineTooLong):
        # aiohttp's parser raises the same error for the request target and for a header's name or value: where
        # it was raised (the C parser's URL callback) or what it says (the pure-Python parser) tells which.
        if _raised_in(exc, "cb_on_url") or exc.args[:1] == ("Status line is too long",):
            return 414, f"request target over {_MAX_LINE_BYTES} bytes"
        return 431, f"request header over {MAX_FIELD_BYTES} bytes"
    text = exc.message if isinstance(exc.message, str) else ""
    if text.startswith("Too many headers"):
        return 431, f"more than {_MAX_HEADERS} request headers"
    for kind, reason in _REFUSALS:
        if isinstance(exc, kind):
            return 400, reason
    if text.startswith("Transfer-Encoding can't be present with Content-Length"):
        return 400, "both Content-Length and Transfer-Encoding (a request smuggling pattern)"
    if text.startswith("Duplicate"):
        return 400, "a header that may appear once appears twice"
    return 400, "malformed HTTP request"


class _HeaderTimedServer(web.Server):
    def __init__(self, *args, header_timeout_s: float, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout_s = header_timeout_s

    def __call__(self) -> RequestHandler:
        return HeaderTimedRequestHandler(self, loop=self._loop, header_timeout_s=self.header_timeout_s, **self._kwargs)


class HeaderTimedAppRunner(web.AppRunner):
    """web.AppRunner whose connections are HeaderTimedRequestHandler's, and whose requests go to the kit's
    `request_handler` (a proxy's catch-all without aiohttp's router)."""

    def __init__(self, app: web.Application, *, header_timeout_s: float, **kwargs) -> None:
        super().__init__(app, **kwargs)
        self._kwargs["header_timeout_s"] = header_timeout_s

    async def _make_server(self) -> web.Server:
        header_timeout_s = self._kwargs.pop("header_timeout_s")
        server = await super()._make_server()
        self._kwargs["header_timeout_s"] = header_timeout_s
        return _HeaderTimedServer(
            request_handler(self._app),
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            header_timeout_s=header_timeout_s,
            **server._kwargs,
        )


async def _serve_aiohttp(app: web.Application, settings: ServiceSettings, header_timeout_s: float) -> None:
    runner = HeaderTimedAppRunner(
        app,
        header_timeout_s=header_timeout_s,
        access_log=None,
        keepalive_timeout=KEEPALIVE_TIMEOUT_S,
        shutdown_timeout=settings.shutdown_timeout_s,
        max_field_size=MAX_FIELD_BYTES,
    )
    await runner.setup()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    try:
        await web.TCPSite(runner, settings.host, settings.port, backlog=LISTEN_BACKLOG).start()
        await stopping.wait()
    finally:
        if not await stop_within(runner, settings.shutdown_timeout_s):
            # What is stuck ignores cancellation too: asyncio.run would wait for it, and the orchestrator would
            # SIGKILL a process whose log does not say why. The log does now.
            logging.shutdown()
            os._exit(1)


# Closing pools, client sessions, background tasks and stores once the requests are drained. Drain + this stays
# under Compose's stop_grace_period and Kubernetes' terminationGracePeriodSeconds for the default drain (10 s).
CLEANUP_BUDGET_S = 3.0


def waiting_in(task: asyncio.Task) -> str:
    """Where a task waits: its chain of awaited coroutines, innermost last, with the innermost's file and line."""
    names, frame = [], None
    awaited = task.get_coro()
    while awaited is not None and (frame_of := getattr(awaited, "cr_frame", None)) is not None:
        names.append(awaited.cr_code.co_name)
        frame = frame_of
        awaited = awaited.cr_await
    if frame is None:
        return task.get_name()
    return f"{' > '.join(names)} ({frame.f_code.co_filename}:{frame.f_lineno})"


async def stop_within(runner: web.AppRunner, drain_s: float) -> bool:
    """runner.cleanup(): stop accepting, let in-flight requests finish for up to `drain_s` (then cancel them), run
    the app's shutdown and cleanup hooks. Bounded as a whole, because aiohttp may wait `drain_s` twice (for a
    handler, then for it to honour the cancel) and a hook may wait on a dependency: past drain_s +
    CLEANUP_BUDGET_S, where the stop and every other task wait is logged and False returned. Each stop says when
    it began and what it took, so that a slow one can be told from a hung one."""
    started = time.monotonic()
    open_connections = len(runner.server.connections) if runner.server is not None else 0
    log.info("stopping: no new connections; %d open, given up to %g s to finish", open_connections, drain_s)
    cleanup = asyncio.create_task(runner.cleanup(), name="stop")
    budget_s = drain_s + CLEANUP_BUDGET_S
    done, _ = await asyncio.wait({cleanup}, timeout=budget_s)
    if not done:
        others = [t for t in asyncio.all_tasks() if t not in (cleanup, asyncio.current_task())]
        log.error(
            "stop overran %g s, waiting in %s; other tasks: %s",
            budget_s,
            waiting_in(cleanup),
            "; ".join(sorted(waiting_in(t) for t in others)) or "none",
        )
        cleanup.cancel()
        return False
    cleanup.result()
    log.info("stopped in %.2f s", time.monotonic() - started)
    return True


# sysexits.h's EX_CONFIG: the configuration is wrong, not the program.
EXIT_CONFIG = 78


def refuse_placeholder_secrets(settings: ServiceSettings) -> None:
    """`cp .env.example .env` without editing it must not give a running suite whose secrets everyone knows: outside
    development, a placeholder secret is logged (naming the variable to change) and the process exits."""
    problems = settings.placeholder_secrets()
    for problem in problems:
        if settings.is_development:
            log.warning("%s (allowed in development only)", problem)
        else:
            log.critical("refusing to start: %s", problem)
    if problems and not settings.is_development:
        raise SystemExit(EXIT_CONFIG)


def serve(app, settings: ServiceSettings) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting and let in-flight requests finish (bounded). Fewer
    young-generation collections, and what start-up built frozen out of the collector's way."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    refuse_placeholder_secrets(settings)
    log.info("%s starting on %s:%d (env=%s)", settings.service_name, settings.host, settings.port, settings.env)
    gc.set_threshold(*GC_THRESHOLDS)
    freeze_after_start_up(app)
    if isinstance(app, web.Application):
        header_timeout_s = getattr(settings, "header_read_timeout_s", KEEPALIVE_TIMEOUT_S)
        asyncio.run(_serve_aiohttp(app, settings, header_timeout_s))
        return
    import uvicorn

    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_timeout_s),
        timeout_keep_alive=60,
    )


# A request makes many short-lived objects that reference counting frees anyway: collecting the youngest
# generation every 10,000 allocations instead of 700 costs less CPU (a few %, load-tests/bench_load_balancer.py),
# for a little more memory held by cycles between collections.
GC_THRESHOLDS = (10_000, 10, 10)


def _freeze_start_up_objects() -> None:
    # What start-up built (modules, routes, models, pools) lives as long as the process: full collections need not
    # walk it again and again. Unfrozen, a FastAPI service's full collections took 50-230 ms each under load, the
    # whole of its p99 (load-tests/README.md).
    gc.collect()
    gc.freeze()


def freeze_after_start_up(app) -> None:
    """Freeze what start-up built once the app's own start-up is done (aiohttp's on_startup, FastAPI's lifespan)."""
    if isinstance(app, web.Application):

        async def freeze(_: web.Application) -> None:
            _freeze_start_up_objects()

        app.on_startup.append(freeze)
        return
    lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan_then_freeze(asgi_app):
        async with lifespan(asgi_app) as state:
            _freeze_start_up_objects()
            yield state

    app.router.lifespan_context = lifespan_then_freeze


def serve_proxy(app: web.Application, settings: ServiceSettings) -> None:
    """serve() for the aiohttp proxies (load balancer, gateway) on uvloop (about 10 % less CPU per request than the
    default loop, load-tests/bench_*.py; uvicorn picks uvloop by itself)."""
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    serve(app, settings)
