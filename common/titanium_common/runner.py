"""Start a service's app on its host and port: one entry point for FastAPI and aiohttp apps alike."""

import logging

from aiohttp import web

from .logs import configure_logging
from .settings import ServiceSettings

log = logging.getLogger("titanium.runner")


def serve(app, settings: ServiceSettings) -> None:
    """Serve until SIGINT/SIGTERM, then stop accepting and let in-flight requests finish (bounded)."""
    configure_logging(settings.service_name, settings.log_level, settings.log_format)
    log.info("%s starting on %s:%d (env=%s)", settings.service_name, settings.host, settings.port, settings.env)
    if isinstance(app, web.Application):
        web.run_app(
            app,
            host=settings.host,
            port=settings.port,
            access_log=None,
            print=None,
            shutdown_timeout=settings.shutdown_timeout_s,
            keepalive_timeout=60.0,
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
