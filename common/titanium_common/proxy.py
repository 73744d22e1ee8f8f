"""The proxy core shared by the load balancer and the gateway: header rules, streaming, upstream errors."""

import logging
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .aiohttp_app import REQUEST_ID, json_error
from .logs import REQUEST_ID_HEADER

log = logging.getLogger("titanium.proxy")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
# Bodies up to this size are read whole: one write is cheaper than a stream for small answers.
SMALL_BODY_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024


def _connection_tokens(headers) -> set[str]:
    return {t.strip().lower() for t in headers.get("Connection", "").split(",") if t.strip()}


def upstream_request_headers(request: web.Request) -> CIMultiDict[str]:
    """The client's headers minus hop-by-hop ones, plus X-Forwarded-* and the request id."""
    dropped = HOP_BY_HOP | _connection_tokens(request.headers) | {"host"}
    headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in dropped)
    peer = request.remote or ""
    earlier = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{earlier}, {peer}" if earlier else peer
    headers["X-Forwarded-Proto"] = request.headers.get("X-Forwarded-Proto", request.scheme)
    headers["X-Forwarded-Host"] = request.headers.get("X-Forwarded-Host", request.host)
    headers[REQUEST_ID_HEADER] = request[REQUEST_ID]
    return headers


def downstream_response_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    dropped = HOP_BY_HOP | _connection_tokens(upstream.headers)
    return CIMultiDict((k, v) for k, v in upstream.headers.items() if k.lower() not in dropped)


class LimitedBody:
    """The request body as a stream that stops past `max_bytes` (a chunked upload has no length to check)."""

    def __init__(self, request: web.Request, max_bytes: int) -> None:
        self.request = request
        self.max_bytes = max_bytes
        self.exceeded = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.request.content.iter_chunked(CHUNK_BYTES):
            seen += len(chunk)
            if seen > self.max_bytes:
                self.exceeded = True
                raise ValueError("request body too large")
            yield chunk


def upstream_url(base_url: str, request: web.Request) -> URL:
    """The same path and query on the upstream, byte for byte (no rewriting, no re-encoding)."""
    return URL(base_url.rstrip("/") + request.raw_path, encoded=True)


async def proxy_http(
    request: web.Request,
    session: aiohttp.ClientSession,
    upstream_name: str,
    base_url: str,
    *,
    max_body_bytes: int,
) -> web.StreamResponse:
    """Forward one HTTP request and stream the answer back; upstream failures become 502/504 naming it."""
    if request.content_length is not None and request.content_length > max_body_bytes:
        return json_error(413, f"request body over {max_body_bytes} bytes")
    body = LimitedBody(request, max_body_bytes) if request.body_exists else None
    response: web.StreamResponse | None = None
    try:
        async with session.request(
            request.method,
            upstream_url(base_url, request),
            headers=upstream_request_headers(request),
            data=body.__aiter__() if body else None,
            allow_redirects=False,
        ) as upstream:
            headers = downstream_response_headers(upstream)
            length = upstream.content_length
            if length is not None and length <= SMALL_BODY_BYTES:
                payload = await upstream.read()
                headers.popall("Content-Length", None)
                return web.Response(status=upstream.status, reason=upstream.reason, body=payload, headers=headers)
            response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
            await response.prepare(request)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response
    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
        # The client hung up mid-response: normal traffic for a proxy, not an error worth a traceback.
        log.debug("client went away during %s %s: %s", request.method, request.path, exc)
        if response is not None:
            return response
        raise
    except aiohttp.ClientConnectorError as exc:
        return json_error(502, f"upstream {upstream_name} unavailable: {exc.os_error or exc}")
    except TimeoutError:
        if response is not None:
            log.warning("upstream %s stalled mid-response on %s", upstream_name, request.path)
            return response
        return json_error(504, f"upstream {upstream_name} timed out")
    except aiohttp.ClientError as exc:
        if body is not None and body.exceeded:
            return json_error(413, f"request body over {max_body_bytes} bytes")
        if response is not None:
            log.warning("upstream %s broke mid-response on %s: %s", upstream_name, request.path, exc)
            return response
        return json_error(502, f"upstream {upstream_name} failed: {exc}")
