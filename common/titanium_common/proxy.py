"""The proxy core shared by the load balancer and the gateway: header rules, streaming, upstream errors."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, MutableSet

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from .aiohttp_app import REQUEST_ID, TRACE, echo_request_id, json_error
from .logs import REQUEST_ID_HEADER
from .upstream_client import (
    Header,
    UpstreamBroken,
    UpstreamClient,
    UpstreamResponse,
    UpstreamTimeout,
)

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
# The client's WebSocket handshake headers: the upstream handshake is a new one, made by the aiohttp client.
WEBSOCKET_HANDSHAKE = frozenset(
    {"sec-websocket-key", "sec-websocket-version", "sec-websocket-extensions", "sec-websocket-protocol"}
)
# Close codes that must never be sent on the wire (RFC 6455 7.4.1); a relay sends 1000 in their place.
_UNSENDABLE_CLOSE_CODES = frozenset({1005, 1006, 1015})
WEBSOCKET_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
# Bodies up to this size are read whole: one write is cheaper than a stream for small answers.
SMALL_BODY_BYTES = 64 * 1024
CHUNK_BYTES = 64 * 1024
# nginx's status for "the client closed the request": never seen by the client, it keeps such requests out of
# the 5xx (upstream failure) figures.
CLIENT_CLOSED_REQUEST = 499
# A client that stops reading a streamed answer for this long is cut off, so it cannot hold the handler and an
# upstream connection for ever (as a write timeout on the server would).
CLIENT_WRITE_TIMEOUT_S = 10.0
# A client that sends nothing of a body it announced for this long is cut off (408), so that it cannot hold the
# handler and an upstream connection with a short body.
BODY_READ_TIMEOUT_S = 10.0


# What never goes upstream: hop-by-hop headers; Host and the body's framing, which the upstream client sets;
# Expect, which the proxy has answered itself (the body is sent without waiting); and the X-Forwarded-*, request
# id and trace context headers, which the proxy sets anew (the trace context names the proxy's span as parent).
_NOT_UPSTREAM = frozenset(
    name.encode()
    for name in HOP_BY_HOP
    | {"host", "content-length", "expect", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"}
    | {REQUEST_ID_HEADER.lower(), "traceparent", "tracestate"}
)
_NOT_DOWNSTREAM = frozenset(name.encode() for name in HOP_BY_HOP)
# A small answer is sent whole, with a Content-Length of its own.
_NOT_DOWNSTREAM_WHOLE = _NOT_DOWNSTREAM | {b"content-length"}
_WEBSOCKET_HANDSHAKE = frozenset(name.encode() for name in WEBSOCKET_HANDSHAKE)
# Connection values that name nothing beyond the hop-by-hop set: the common case skips the token parsing.
_PLAIN_CONNECTION = frozenset({"keep-alive", "close", "upgrade", "Keep-Alive", "Close", "Upgrade"})
_PLAIN_CONNECTION_BYTES = frozenset(value.encode() for value in _PLAIN_CONNECTION)


def _connection_tokens(headers) -> set[str]:
    return {t.strip().lower() for t in headers.get("Connection", "").split(",") if t.strip()}


def _text(raw: bytes) -> str:
    # The decoding aiohttp's own parser uses, so that a header passes through byte for byte.
    return raw.decode("utf-8", "surrogateescape")


def _raw(text: str) -> bytes:
    return text.encode("utf-8", "surrogateescape")


def upstream_request_headers(request: web.Request) -> list[Header]:
    """The client's headers minus hop-by-hop ones (and those the Connection header names), plus X-Forwarded-*,
    the request id and the trace context, as raw name/value pairs in the client's order."""
    incoming = request.headers
    dropped = _NOT_UPSTREAM
    connection = incoming.get("Connection")
    if connection is not None and connection not in _PLAIN_CONNECTION:
        dropped = dropped | {_raw(token) for token in _connection_tokens(incoming)}
    headers = [(name, value) for name, value in request.raw_headers if name.lower() not in dropped]
    peer = request.remote or ""
    earlier = incoming.get("X-Forwarded-For")
    headers += (
        (b"X-Forwarded-For", _raw(f"{earlier}, {peer}" if earlier else peer)),
        (b"X-Forwarded-Proto", _raw(incoming.get("X-Forwarded-Proto") or request.scheme)),
        (b"X-Forwarded-Host", _raw(incoming.get("X-Forwarded-Host") or request.host)),
        (b"X-Request-ID", _raw(request[REQUEST_ID])),
    )
    span = request.get(TRACE)
    if span is not None:
        headers.append((b"traceparent", span.traceparent.encode()))
        if span.tracestate:
            headers.append((b"tracestate", span.tracestate.encode()))
    return headers


def downstream_response_headers(
    upstream: UpstreamResponse, always_dropped: frozenset[bytes] = _NOT_DOWNSTREAM
) -> CIMultiDict[str]:
    """The upstream's headers minus `always_dropped` and whatever its Connection header names."""
    dropped = always_dropped
    connection = upstream.connection
    if connection is not None and connection not in _PLAIN_CONNECTION_BYTES:
        dropped = dropped | {token.strip() for token in connection.lower().split(b",")}
    # _text() inlined: a function call per name and per value showed in the balancer's profile.
    return CIMultiDict(
        [
            (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
            for name, value in upstream.headers
            if name.lower() not in dropped
        ]
    )


class ClientBodyStalled(Exception):
    """The client sent no part of its request body for the body read timeout."""


class LimitedBody:
    """The request body as a stream that stops past `max_bytes` (a chunked upload has no length to check) and
    when the client sends nothing of it for `read_timeout_s`."""

    def __init__(self, request: web.Request, max_bytes: int, read_timeout_s: float = BODY_READ_TIMEOUT_S) -> None:
        self.request = request
        self.max_bytes = max_bytes
        self.read_timeout_s = read_timeout_s
        self.exceeded = False
        self.started = False
        self.client_gone = False
        self.stalled = False
        self.payload: bytes | None = None

    async def read_all(self) -> bytes:
        """The whole body (a small one, with a declared length): bytes can be sent again, a stream cannot."""
        if self.payload is None:
            self.payload = b"".join([chunk async for chunk in self])
        return self.payload

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.started = True
        seen = 0
        chunks = self.request.content.iter_chunked(CHUNK_BYTES)
        while True:
            try:
                async with asyncio.timeout(self.read_timeout_s):
                    chunk = await chunks.__anext__()
            except StopAsyncIteration:
                return
            except TimeoutError:
                self.stalled = True
                raise ClientBodyStalled(f"no request body data for {self.read_timeout_s:g} s") from None
            except (ConnectionResetError, aiohttp.ClientConnectionResetError):
                self.client_gone = True
                raise
            seen += len(chunk)
            if seen > self.max_bytes:
                self.exceeded = True
                raise ValueError("request body too large")
            yield chunk


def upstream_url(base_url: str, request: web.Request) -> URL:
    """The same path and query on the upstream, byte for byte (no rewriting, no re-encoding)."""
    return URL(base_url.rstrip("/") + request.raw_path, encoded=True)


class ClientStalled(Exception):
    """The client took no data for CLIENT_WRITE_TIMEOUT_S."""


async def _write_to_client(response: web.StreamResponse, chunk: bytes) -> None:
    try:
        async with asyncio.timeout(CLIENT_WRITE_TIMEOUT_S):
            await response.write(chunk)
    except TimeoutError:
        raise ClientStalled from None


def body_too_large(request: web.Request, max_body_bytes: int) -> web.Response | None:
    """The 413 answer for a declared length over the limit (a chunked body is checked while it streams)."""
    if request.content_length is not None and request.content_length > max_body_bytes:
        return json_error(413, f"request body over {max_body_bytes} bytes")
    return None


def _failed_before_answer(
    request: web.Request, upstream_name: str, body: LimitedBody | None, exc: Exception
) -> web.Response:
    if body is not None and body.exceeded:
        return json_error(413, f"request body over {body.max_bytes} bytes")
    if body is not None and body.stalled:
        log.info("client sent no body for %g s on %s %s: cut off", body.read_timeout_s, request.method, request.path)
        refused = json_error(408, f"request body: no data for {body.read_timeout_s:g} s")
        refused.force_close()
        return refused
    if body is not None and body.client_gone:
        log.debug("client went away during the upload of %s %s", request.method, request.path)
        return web.Response(status=CLIENT_CLOSED_REQUEST)
    return json_error(502, f"upstream {upstream_name} failed: {exc}")


async def forward_http(
    request: web.Request,
    client: UpstreamClient,
    upstream_name: str,
    base_url: str,
    body: LimitedBody | None,
) -> web.StreamResponse:
    """One attempt at one upstream. Raises UpstreamUnreachable if it cannot connect, UpstreamTimeout or
    UpstreamBroken if it gave no answer (the caller decides what follows); a failure on the client's side, or one
    after the answer began, is answered here. A small body with a declared length is read first, so that it can be
    sent again (see UpstreamClient)."""
    payload: bytes | LimitedBody | None = body
    try:
        if body is not None and request.content_length is not None and request.content_length <= SMALL_BODY_BYTES:
            payload = await body.read_all()
        upstream = await client.request(
            request.method,
            base_url,
            request.raw_path,
            upstream_request_headers(request),
            payload,
            request.content_length if body is not None else None,
        )
    except (ClientBodyStalled, ConnectionResetError, aiohttp.ClientConnectionResetError, ValueError) as exc:
        if body is None or not (body.stalled or body.client_gone or body.exceeded):
            raise
        return _failed_before_answer(request, upstream_name, body, exc)
    except UpstreamBroken as exc:
        if body is not None and (body.exceeded or body.stalled or body.client_gone):
            return _failed_before_answer(request, upstream_name, body, exc)
        raise
    response: web.StreamResponse | None = None
    try:
        if upstream.bodyless:
            # HEAD, 204, 304: the upstream's Content-Length (of the body a GET would get) passes unchanged.
            headers = downstream_response_headers(upstream)
            return web.Response(status=upstream.status, reason=upstream.reason, headers=headers)
        length = upstream.content_length
        if length is not None and length <= SMALL_BODY_BYTES:
            payload = await upstream.read()
            headers = downstream_response_headers(upstream, _NOT_DOWNSTREAM_WHOLE)
            return web.Response(status=upstream.status, reason=upstream.reason, body=payload, headers=headers)
        headers = downstream_response_headers(upstream)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        echo_request_id(request, response)
        await response.prepare(request)
        async for chunk in upstream.chunks():
            await _write_to_client(response, chunk)
        await response.write_eof()
        return response
    except ClientStalled:
        log.info("client stopped reading %s %s: cut off", request.method, request.path)
        if request.transport is not None:
            request.transport.abort()
        return response
    except (ConnectionResetError, aiohttp.ClientConnectionResetError) as exc:
        # The client hung up mid-response: normal traffic for a proxy, not an error worth a traceback.
        log.debug("client went away during %s %s: %s", request.method, request.path, exc)
        if response is not None:
            return response
        raise
    except UpstreamTimeout:
        if response is not None:
            log.warning("upstream %s stalled mid-response on %s", upstream_name, request.path)
            return response
        return json_error(504, f"upstream {upstream_name} timed out")
    except UpstreamBroken as exc:
        if response is not None:
            log.warning("upstream %s broke mid-response on %s: %s", upstream_name, request.path, exc)
            return response
        return _failed_before_answer(request, upstream_name, body, exc)
    finally:
        upstream.release()


def is_websocket_upgrade(request: web.Request) -> bool:
    return request.headers.get("Upgrade", "").lower() == "websocket" and "upgrade" in _connection_tokens(
        request.headers
    )


async def _relay_frames(source, sink) -> tuple[int, str] | None:
    """Copy frames from one side to the other until `source` closes; returns its close code and reason."""
    while True:
        msg = await source.receive()
        try:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await sink.send_str(msg.data)
            elif msg.type is aiohttp.WSMsgType.BINARY:
                await sink.send_bytes(msg.data)
            elif msg.type is aiohttp.WSMsgType.PING:
                await sink.ping(msg.data)
            elif msg.type is aiohttp.WSMsgType.PONG:
                await sink.pong(msg.data)
            elif msg.type is aiohttp.WSMsgType.CLOSE:
                return msg.data, msg.extra or ""
            else:  # CLOSING, CLOSED or ERROR: the source is gone without a close frame
                return None
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            return None


async def _stop(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
        await task


async def _finish_relay(up: asyncio.Task, down: asyncio.Task, client_ws, upstream_ws) -> None:
    first = up if up.done() else down if down.done() else None
    # Stop the other direction before closing: a close() racing a pending receive() sends 1000, not our code.
    for task in (up, down):
        if task is not first:
            await _stop(task)
    closed = first.result() if first is not None and not first.cancelled() and first.exception() is None else None
    code, reason = aiohttp.WSCloseCode.GOING_AWAY, b"peer went away"
    if closed is not None:
        code, text = closed
        if code is None or code in _UNSENDABLE_CLOSE_CODES:
            code = aiohttp.WSCloseCode.OK
        reason = text.encode()[:123]
    # The side that closed first was answered by aiohttp already (close() is then a no-op); the other gets its code.
    for ws in (upstream_ws, client_ws):
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.close(code=code, message=reason)


async def proxy_websocket(
    request: web.Request,
    session: aiohttp.ClientSession,
    upstream_name: str,
    base_url: str,
    *,
    max_msg_size: int = WEBSOCKET_MAX_MESSAGE_BYTES,
    open_sockets: MutableSet[web.WebSocketResponse] | None = None,
) -> web.StreamResponse:
    """Relay a WebSocket upgrade both ways: text, binary, ping/pong and close codes.

    The upstream handshake happens first, so a refused upstream is a plain 502/504 JSON answer, not a socket that
    opens and dies. `open_sockets` (optional) holds the client side while it is open, for a shutdown that closes
    them with 1001.
    """
    if not web.WebSocketResponse().can_prepare(request).ok:
        return json_error(400, "invalid WebSocket upgrade request")
    headers = CIMultiDict(
        (_text(name), _text(value))
        for name, value in upstream_request_headers(request)
        if name.lower() not in _WEBSOCKET_HANDSHAKE
    )
    protocols = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()]
    try:
        upstream_ws = await session.ws_connect(
            upstream_url(base_url, request),
            headers=headers,
            protocols=protocols,
            autoping=False,
            max_msg_size=max_msg_size,
        )
    except aiohttp.WSServerHandshakeError as exc:
        status = exc.status if 400 <= exc.status < 600 else 502
        return json_error(status, f"upstream {upstream_name} refused the WebSocket upgrade: {exc.status} {exc.message}")
    except aiohttp.ClientConnectorError as exc:
        return json_error(502, f"upstream {upstream_name} unavailable: {exc.os_error or exc}")
    except TimeoutError:
        return json_error(504, f"upstream {upstream_name} timed out")
    except aiohttp.ClientError as exc:
        return json_error(502, f"upstream {upstream_name} failed: {exc}")

    # The client gets the subprotocol the upstream chose, and nothing else.
    client_ws = web.WebSocketResponse(
        protocols=(upstream_ws.protocol,) if upstream_ws.protocol else (),
        autoping=False,
        max_msg_size=max_msg_size,
    )
    echo_request_id(request, client_ws)
    try:
        await client_ws.prepare(request)
    except (ConnectionResetError, aiohttp.ClientConnectionResetError):
        await upstream_ws.close()
        raise
    if open_sockets is not None:
        open_sockets.add(client_ws)
    up = asyncio.create_task(_relay_frames(client_ws, upstream_ws))
    down = asyncio.create_task(_relay_frames(upstream_ws, client_ws))
    try:
        await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
    finally:
        # Also on cancellation (a server that cancels handlers when the client drops): the side that closed
        # first decides the code sent to the other side.
        await _finish_relay(up, down, client_ws, upstream_ws)
        if open_sockets is not None:
            open_sockets.discard(client_ws)
    return client_ws


async def close_websockets(open_sockets: MutableSet[web.WebSocketResponse]) -> None:
    """For on_shutdown: tell every open client socket the server is going away (1001)."""
    await asyncio.gather(
        *(ws.close(code=aiohttp.WSCloseCode.GOING_AWAY, message=b"server shutdown") for ws in list(open_sockets)),
        return_exceptions=True,
    )
