"""Start a service's app on its host and port: one entry point for FastAPI and aiohttp apps alike."""

import asyncio
import contextlib
import gc
import logging

import uvloop
from aiohttp import web

from .logs import configure_logging
from .settings import ServiceSettings

log = logging.getLogger("titanium.runner")

# Connections the kernel queues before accept(): aiohttp's default of 128 overflowed when 512 clients connected at
# once (wrk -c512; SYNs dropped and retried after 1 s, a p99 of 750 ms). uvicorn's default is 2048.
LISTEN_BACKLOG = 2048


def serve(app, settings: ServiceSettings) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting and let in-flight requests finish (bounded). Fewer
    young-generation collections, and what start-up built frozen out of the collector's way."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    log.info("%s starting on %s:%d (env=%s)", settings.service_name, settings.host, settings.port, settings.env)
    gc.set_threshold(*GC_THRESHOLDS)
    freeze_after_start_up(app)
    if isinstance(app, web.Application):
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=None,
            shutdown_timeout=settings.shutdown_timeout_s,
            keepalive_timeout=60.0,
            backlog=LISTEN_BACKLOG,
        )
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
