"""The one rule for request bodies, on every FastAPI service (docs/request-bodies.md):

- A body is JSON. `Content-Type: application/json` (or `application/<anything>+json`) says so; a body without a
  Content-Type, or with curl's default `application/x-www-form-urlencoded` (the original edge server's documented
  `curl -d` examples send it), is read as the JSON it is. Any other type is 415, before the route runs.
- Unknown fields are refused (422, `extra_forbidden`), except where a field is the caller's own data (an edge device
  config's extra keys): each request model says `extra="forbid"`, and a contract test reads the OpenAPI documents.
- A body over the service's limit is 413, declared or not (a chunked body is counted as it arrives).
"""

from fastapi import HTTPException
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .errors import error_body

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Read as JSON: no Content-Type at all, or curl's default for `-d`.
_READ_AS_JSON = (b"", b"application/x-www-form-urlencoded")
NOT_JSON = "send the body as JSON (Content-Type: application/json)"


def _is_json(media_type: bytes) -> bool:
    main, _, sub = media_type.partition(b"/")
    return main == b"application" and (sub == b"json" or sub.endswith(b"+json"))


class JsonBodies:
    """Pure ASGI, inside the kit's observability middleware (a refused body still gets a request id and counts)."""

    def __init__(self, app: ASGIApp, max_body_bytes: int | None = None) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        await JSONResponse(error_body(detail), status_code=status)(scope, receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        limit = self.max_body_bytes
        if length is not None and not length.isdigit():
            await self._refuse(scope, receive, send, 400, "invalid Content-Length")
            return
        if limit is not None and length is not None and int(length) > limit:
            await self._refuse(scope, receive, send, 413, f"request body over {limit} bytes")
            return
        has_body = (length is not None and int(length) > 0) or b"transfer-encoding" in headers
        media_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if has_body and not _is_json(media_type):
            if media_type not in _READ_AS_JSON:
                await self._refuse(scope, receive, send, 415, f"{NOT_JSON}, not {media_type.decode('latin-1')!r}")
                return
            kept = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            scope = {**scope, "headers": [*kept, (b"content-type", b"application/json")]}
        if limit is None:
            await self.app(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # An HTTPException: FastAPI passes it on from a body read (anything else becomes its 400).
                    raise HTTPException(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, counted, send)
