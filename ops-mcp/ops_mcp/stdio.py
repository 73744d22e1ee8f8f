"""`python -m ops_mcp.stdio` (or `ops-mcp-stdio`): the MCP server on stdin/stdout for a desktop assistant, asking a
running suite's `/api/ops/*` at TITANIUM_URL (the service itself: `python -m ops_mcp`)."""

import contextlib
import logging
import sys
from collections.abc import AsyncIterator

from titanium_common.http_client import create_client_session

from .remote import RemoteOperations
from .settings import StdioSettings
from .tools import build_server


def run_stdio(settings: StdioSettings | None = None) -> None:
    settings = settings or StdioSettings()
    backend: list[RemoteOperations] = []

    @contextlib.asynccontextmanager
    async def lifespan(server) -> AsyncIterator[dict]:
        # Inside the event loop the SDK runs the server in.
        session = create_client_session(response_s=settings.titanium_timeout_s, pass_request_id=False)
        backend.append(RemoteOperations(settings, session))
        try:
            yield {}
        finally:
            await session.close()

    build_server(lambda: backend[0], lifespan=lifespan).run("stdio")


def main() -> None:
    settings = StdioSettings()
    # stdout carries the protocol: every log line goes to stderr.
    logging.basicConfig(stream=sys.stderr, level=settings.log_level)
    run_stdio(settings)


if __name__ == "__main__":
    main()
