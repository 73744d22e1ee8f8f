"""The proxy core's HTTP/1.1 client: keep-alive connections per upstream origin, answers parsed by httptools
(llhttp, the parser uvicorn uses), bodies streamed both ways with flow control.

Why not aiohttp's ClientSession on this path: it is most of a proxied request's cost. On this kind of machine an
aiohttp server alone spends about 22 µs of CPU per small request, the minimal aiohttp proxy of
load-tests/bench_load_balancer.py about 95 µs, the same proxy on this client about 35 µs; the load balancer went
from about 110 to 65 µs per request with it. Everything else (WebSocket relays, health checks, the /stats fan-out,
service-to-service calls) keeps the kit's aiohttp session.
"""

import asyncio
import collections
import contextlib
import ipaddress
import socket
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from urllib.parse import urlsplit

import httptools

Header = tuple[bytes, bytes]

# Methods whose requests carry no body by convention; every other one gets an explicit `Content-Length: 0`
# when it has none, so that an upstream never waits for a body or answers 411.
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "CONNECT", "DELETE"})
# Streamed answers: reading from the upstream pauses above HIGH buffered bytes and resumes below LOW.
_BUFFER_HIGH_BYTES = 512 * 1024
_BUFFER_LOW_BYTES = 128 * 1024
# An answer's status line and headers may not exceed this (aiohttp's and nginx's limits are of this order).
MAX_HEAD_BYTES = 64 * 1024
MAX_HEADERS = 256
# uvloop's timers fire to the millisecond: a deadline this close counts as reached.
_TIMER_RESOLUTION_S = 0.001


def check_upstream_url(url: str) -> str:
    """`url` if the proxy core can forward to it, else ValueError (at start-up, not on the first request).
    Only plain http: TLS to upstreams is not implemented (inside the suite TLS ends at the edge)."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"upstream {url!r}: the proxy core forwards to http:// URLs only (https is not supported)")
    parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    return url


class UpstreamError(Exception):
    """The upstream did not give a complete answer."""


class UpstreamUnreachable(UpstreamError):
    """Connecting to the upstream failed: nothing was sent, so another replica may take the request."""


class UpstreamTimeout(UpstreamError):
    """The upstream sent nothing for `response_s` while an answer (or the rest of one) was awaited."""


class UpstreamBroken(UpstreamError):
    """The connection dropped, or the upstream's answer was not valid HTTP/1.1."""


class UpstreamResponse:
    """One answer: status, reason and raw headers once the head is in; the body by `read()` or `chunks()`.
    `release()` (always, when done with it) keeps the connection for the next request if it can be reused."""

    __slots__ = (
        "_buffered",
        "_chunks",
        "_complete",
        "_connection",
        "_error",
        "_waiter",
        "bodyless",
        "connection",
        "content_length",
        "headers",
        "reason",
        "reusable",
        "status",
        "until_close",
    )

    def __init__(self, connection: "_Connection") -> None:
        self._connection = connection
        self.status = 0
        self.reason = ""
        self.headers: list[Header] = []
        self.content_length: int | None = None
        # The Connection header's value, for the hop-by-hop headers it may name.
        self.connection: bytes | None = None
        # An answer that has no body whatever its headers say: to HEAD, or a 204 or 304.
        self.bodyless = False
        # No length and not chunked: the body ends when the upstream closes the connection.
        self.until_close = False
        self.reusable = False
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: UpstreamError | None = None
        self._waiter: asyncio.Future | None = None

    # Called by the connection.
    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > _BUFFER_HIGH_BYTES:
            self._connection.pause_reading()
        self._wake()

    def _finish(self, reusable: bool) -> None:
        self._complete = True
        self.reusable = reusable
        self._wake()

    def _fail(self, error: UpstreamError) -> None:
        if self._complete or self._error is not None:
            return
        self._error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self, timeout_s: float | None, message: str) -> None:
        """Until the connection brings news (the head, data, the end, a failure); `timeout_s` None sets no deadline."""
        connection = self._connection
        self._waiter = waiter = connection.loop.create_future()
        if timeout_s is not None:
            connection.set_deadline(timeout_s, message)
        try:
            await waiter
        finally:
            connection.deadline = None
            self._waiter = None

    def _time_out(self, message: str) -> None:
        if self._waiter is None or self._waiter.done():
            return  # news arrived as the time ran out; the waiter has yet to see it
        self._fail(UpstreamTimeout(message))
        self._connection.abort()

    # The caller's side.
    async def read(self) -> bytes:
        """The whole body (for small answers)."""
        chunks = self._chunks
        if self._complete and len(chunks) == 1:  # usual for a small answer: it came with its head
            self._buffered = 0
            return chunks.popleft()
        parts = [chunk async for chunk in self.chunks()]
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; each wait for data is bounded by the client's `response_s`."""
        timeout_s = self._connection.origin.client.response_s
        chunks = self._chunks
        while True:
            if chunks:
                chunk = chunks.popleft()
                self._buffered -= len(chunk)
                if self._buffered < _BUFFER_LOW_BYTES:
                    self._connection.resume_reading()
                yield chunk
            elif self._complete:
                return
            elif self._error is not None:
                raise self._error
            else:
                await self._wait(timeout_s, "no data for")

    def release(self) -> None:
        self._connection.done_with(self)


class _Connection(asyncio.Protocol):
    """One keep-alive connection to an origin: one request at a time, its answer parsed as bytes arrive."""

    def __init__(self, origin: "_Origin") -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: UpstreamResponse | None = None
        # What the current request's method forbids: a HEAD answer has a length but no body.
        self.head_only = False
        self.lost = False
        self.received = False
        # Bytes of the answer's head so far (bounded by MAX_HEAD_BYTES); None once the head is complete.
        self.head_bytes: int | None = 0
        self.header_bytes = 0
        self.idle_since = 0.0
        self.sender: asyncio.Task | None = None
        self._reading_paused = False
        self._writing_paused = False
        self._drain: asyncio.Future | None = None
        # When the wait in progress times out (loop time), and what its timeout says; None while nothing is awaited.
        # One timer per connection checks it: a request moves the deadline, it never creates or cancels a timer
        # (a timer per request was a few percent of the balancer's CPU).
        self.deadline: float | None = None
        self._deadline_timeout_s = 0.0
        self._deadline_message = ""
        self._deadline_timer: asyncio.TimerHandle | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None:
            # Bytes nobody asked for: the connection's framing can no longer be trusted.
            self.abort()
            return
        self.received = True
        if self.head_bytes is not None:
            self.head_bytes += len(data)
            if self.head_bytes - len(data) > MAX_HEAD_BYTES:  # still no end of the head before these bytes
                response._fail(UpstreamBroken(f"answer head over {MAX_HEAD_BYTES} bytes"))
                self.abort()
                return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            response._fail(exc.__context__ if isinstance(exc.__context__, UpstreamError) else UpstreamBroken(str(exc)))
            self.abort()
        except httptools.HttpParserError as exc:
            response._fail(UpstreamBroken(f"invalid HTTP answer: {exc}"))
            self.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        self.origin.forget(self)
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_exception(UpstreamBroken("connection closed while sending"))
        response = self.response
        if response is None:
            return
        if response.until_close and response.status and exc is None:
            response._finish(reusable=False)
        else:
            response._fail(UpstreamBroken(f"connection closed: {exc}" if exc else "connection closed"))

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        drain = self._drain
        if drain is not None and not drain.done():
            drain.set_result(None)

    # httptools callbacks
    def on_message_begin(self) -> None:
        if self.response._complete:
            # More bytes after a complete answer, to a request never sent: stop here, keep the answer.
            raise UpstreamBroken("data after the end of the answer")
        self.response.headers = []
        self.header_bytes = 0

    def on_status(self, reason: bytes) -> None:
        self.response.reason = reason.decode("latin-1")

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.response.headers
        headers.append((name, value))
        self.header_bytes += len(name) + len(value) + 4
        if len(headers) > MAX_HEADERS or self.header_bytes > MAX_HEAD_BYTES:
            raise UpstreamBroken(f"answer headers over {MAX_HEADERS} or {MAX_HEAD_BYTES} bytes")

    def on_headers_complete(self) -> None:
        response = self.response
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            return  # an interim answer (100 Continue, 103 Early Hints): the real one follows
        self.head_bytes = None
        response.status = status
        framed = False
        for name, value in response.headers:
            lower = name.lower()
            if lower == b"content-length":
                response.content_length = int(value)
                framed = True
            elif lower == b"transfer-encoding":
                framed = True
            elif lower == b"connection":
                response.connection = value
        bodyless = self.head_only or status in (204, 304)
        response.until_close = not framed and not bodyless
        response.bodyless = bodyless
        response._wake()
        if self.head_only:
            # llhttp cannot be told that this answer has no body; the connection is not reused after it.
            response._finish(reusable=False)

    def on_body(self, body: bytes) -> None:
        self.response._feed(body)

    def on_message_complete(self) -> None:
        response = self.response
        if response.status == 0:
            return  # the end of an interim answer
        response._finish(reusable=self.parser.should_keep_alive())

    # The client's side
    def pause_reading(self) -> None:
        if not self._reading_paused and not self.lost:
            self._reading_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._reading_paused and not self.lost:
            self._reading_paused = False
            self.transport.resume_reading()

    async def drain(self) -> None:
        """Until the upstream takes what was written; it must take some within `response_s` (an upload deadline)."""
        if self.lost:
            raise UpstreamBroken("connection closed while sending")
        if self._writing_paused:
            self._drain = asyncio.get_running_loop().create_future()
            timeout_s = self.origin.client.response_s
            try:
                async with asyncio.timeout(timeout_s):
                    await self._drain
            except TimeoutError:
                raise UpstreamTimeout(f"upstream took no request body for {timeout_s} s") from None
            finally:
                self._drain = None

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def set_deadline(self, timeout_s: float, message: str) -> None:
        """The current wait fails with UpstreamTimeout("<message> <timeout_s> s") unless news comes within
        `timeout_s`; the wait's end clears `deadline`."""
        self.deadline = deadline = self.loop.time() + timeout_s
        self._deadline_timeout_s = timeout_s
        self._deadline_message = message
        if self._deadline_timer is None and not self.lost:
            self._deadline_timer = self.loop.call_at(deadline, self._check_deadline)

    def _check_deadline(self) -> None:
        self._deadline_timer = None
        deadline = self.deadline
        if deadline is None:
            return  # nothing awaited: the next wait arms the timer again
        if deadline - self.loop.time() > _TIMER_RESOLUTION_S:
            self._deadline_timer = self.loop.call_at(deadline, self._check_deadline)
            return
        self.deadline = None
        if self.response is not None:
            self.response._time_out(f"{self._deadline_message} {self._deadline_timeout_s} s")

    def start(self, request_head: bytes, head_only: bool) -> UpstreamResponse:
        self.response = response = UpstreamResponse(self)
        self.head_only = head_only
        self.received = False
        self.head_bytes = 0
        self.transport.write(request_head)
        return response

    def done_with(self, response: UpstreamResponse) -> None:
        """The caller is finished with `response`: keep the connection if the exchange ended cleanly."""
        if self.response is not response:
            return
        sender = self.sender
        sending = sender is not None and not sender.done()
        if sending:
            sender.cancel()
        self.sender = None
        self.response = None
        reusable = response._complete and response.reusable and not response._chunks
        if reusable and not sending and not self.lost and not self.transport.is_closing():
            self.origin.client.connection_reusable(self)
        else:
            self.abort()


class _Origin:
    """The idle connections to one scheme://host:port."""

    def __init__(self, client: "UpstreamClient", base_url: str) -> None:
        parts = urlsplit(check_upstream_url(base_url))
        self.client = client
        self.host = parts.hostname
        self.port = parts.port or 80
        try:
            literal = ipaddress.ip_address(self.host)
        except ValueError:
            literal = None
        # An IPv6 literal keeps its brackets in Host (RFC 9110 7.2, RFC 3986 3.2.2); a name is IDNA-encoded.
        host = f"[{self.host}]" if literal is not None and literal.version == 6 else self.host
        port = "" if self.port == 80 else f":{self.port}"
        self.host_header = (host + port).encode("ascii" if literal is not None else "idna")
        # Resolved addresses and when they expire (an IP literal never does).
        self._addresses: list[tuple[int, str]] = [] if literal is None else [(0, self.host)]
        self._expires = float("inf") if literal is not None else 0.0
        self._resolving: asyncio.Future | None = None
        self.idle: list[_Connection] = []

    def take_idle(self, now: float) -> "_Connection | None":
        idle = self.idle
        while idle:
            connection = idle.pop()  # the most recently used: the least likely to have been closed by the upstream
            if now - connection.idle_since < self.client.idle_s and not connection.transport.is_closing():
                return connection
            connection.abort()
        return None

    def keep(self, connection: _Connection) -> None:
        connection.idle_since = asyncio.get_running_loop().time()
        self.idle.append(connection)

    def forget(self, connection: _Connection) -> None:
        if connection in self.idle:
            self.idle.remove(connection)
        self.client.connection_closed(connection)

    async def addresses(self) -> list[tuple[int, str]]:
        """The host's addresses, resolved at most once per `dns_ttl_s` (one lookup for concurrent callers)."""
        loop = asyncio.get_running_loop()
        if loop.time() < self._expires:
            return self._addresses
        if self._resolving is None:
            self._resolving = loop.create_future()
            try:
                infos = await loop.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
                self._addresses = [(family, info[0]) for family, _, _, _, info in infos]
                self._expires = loop.time() + self.client.dns_ttl_s
                self._resolving.set_result(None)
            except OSError as exc:
                self._resolving.set_exception(UpstreamUnreachable(f"cannot resolve {self.host}: {exc.strerror or exc}"))
            finally:
                resolving, self._resolving = self._resolving, None
            resolving.result()
            return self._addresses
        await asyncio.shield(self._resolving)
        return self._addresses

    def forget_addresses(self) -> None:
        if self._expires != float("inf"):
            self._expires = 0.0

    async def connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        error = "no address"
        try:
            async with asyncio.timeout(self.client.connect_s):
                for family, address in await self.addresses():
                    try:
                        _, connection = await loop.create_connection(
                            lambda: _Connection(self), address, self.port, family=family
                        )
                    except OSError as exc:
                        error = str(exc.strerror or exc)
                        continue
                    self.client.connections.add(connection)
                    return connection
        except TimeoutError:
            raise UpstreamUnreachable(f"connect to {self.host}:{self.port} timed out") from None
        # Every address failed: the next connect looks the name up again (the replica may have moved).
        self.forget_addresses()
        raise UpstreamUnreachable(f"cannot connect to {self.host}:{self.port}: {error}")


class UpstreamClient:
    """Keep-alive HTTP/1.1 connections to any number of upstream origins, at most `limit` open at once.

    Timeouts: `connect_s` for a TCP connect, `response_s` for each wait for data once the request is sent (the
    answer's head, then every part of its body) and for each wait for the upstream to take more of an upload,
    idle connections closed after `idle_s`. Host names are resolved at most once per `dns_ttl_s`.
    """

    def __init__(
        self,
        *,
        connect_s: float = 1.0,
        response_s: float = 2.0,
        idle_s: float = 30.0,
        limit: int = 256,
        dns_ttl_s: float = 10.0,
    ) -> None:
        self.connect_s = connect_s
        self.response_s = response_s
        self.idle_s = idle_s
        self.dns_ttl_s = dns_ttl_s
        self.limit = limit
        self.open_connections = 0
        self.connections: set[_Connection] = set()
        self._origins: dict[str, _Origin] = {}
        # Requests waiting at the limit, first come first served: each gets a connection of its origin handed over,
        # or None (a slot reserved for it to open a new connection).
        self._waiters: collections.deque[tuple[_Origin, asyncio.Future]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    def origin(self, base_url: str) -> _Origin:
        origin = self._origins.get(base_url)
        if origin is None:
            origin = self._origins[base_url] = _Origin(self, base_url)
        return origin

    async def request(
        self,
        method: str,
        base_url: str,
        target: str,
        headers: Iterable[Header],
        body: bytes | AsyncIterable[bytes] | None = None,
        content_length: int | None = None,
    ) -> UpstreamResponse:
        """Send one request and return once the answer's head is in (its body then follows).

        `headers` are end-to-end headers without Host, Content-Length or Transfer-Encoding: the client sets those.
        A body is bytes (sent with the head) or a stream (sent chunked unless `content_length` is given).

        A connection reused from the pool that ends before a single byte of the answer came back is the upstream
        closing it just as the request went out (its keep-alive timer, or a close after an answer that said
        keep-alive); such a request is sent again once on a new connection if it can be: no body or a body in
        bytes. A streamed body is gone once sent and is never sent twice.
        """
        if self._closed:
            raise UpstreamBroken("client closed")
        origin = self.origin(base_url)
        replayable = body is None or isinstance(body, bytes)
        if isinstance(body, bytes):
            content_length = len(body)
        head = self._request_head(method, target, origin.host_header, headers, body, content_length)
        if isinstance(body, bytes):
            head += body
        head_only = method == "HEAD"
        may_resend = replayable
        fresh = False
        while True:
            # An idle connection is taken without a coroutine of its own (the usual case on a busy proxy).
            connection = None if fresh else origin.take_idle(asyncio.get_running_loop().time())
            if connection is not None:
                reused = True
            else:
                connection, reused = await self._open_or_wait(origin)
            response = connection.start(head, head_only)
            if not replayable:
                connection.sender = asyncio.get_running_loop().create_task(
                    self._send_body(connection, response, body, chunked=content_length is None)
                )
            try:
                await self._await_head(connection, response)
            except UpstreamBroken:
                response.release()
                if may_resend and reused and not connection.received:
                    may_resend, fresh = False, True
                    continue
                raise
            except BaseException:
                response.release()
                raise
            return response

    @staticmethod
    def _request_head(
        method: str,
        target: str,
        host: bytes,
        headers: Iterable[Header],
        body: bytes | AsyncIterable[bytes] | None,
        content_length: int | None,
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\nHost: ".encode("utf-8", "surrogateescape"), host, b"\r\n"]
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        if content_length is not None:
            lines.append(b"Content-Length: %d\r\n" % content_length)
        elif body is not None:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        elif method not in _BODYLESS_METHODS:
            lines.append(b"Content-Length: 0\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    async def _await_head(self, connection: _Connection, response: UpstreamResponse) -> None:
        # With a body, the clock starts once the body is sent (a slow upload is not a slow upstream).
        timeout_s = None if connection.sender is not None else self.response_s
        while not response.status and response._error is None:
            await response._wait(timeout_s, "no answer within")
        if not response.status:
            raise response._error

    async def _send_body(
        self, connection: _Connection, response: UpstreamResponse, body: AsyncIterable[bytes], *, chunked: bool
    ) -> None:
        write = connection.transport.write
        try:
            async for chunk in body:
                if not chunk:
                    continue
                if chunked:
                    write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                else:
                    write(chunk)
                await connection.drain()
            if chunked:
                write(b"0\r\n\r\n")
        except asyncio.CancelledError:
            raise
        except UpstreamTimeout as exc:
            response._fail(exc)
            connection.abort()
            return
        except Exception as exc:
            # The client's side failed (gone, or over the size limit): the upstream must not take half a body.
            response._fail(UpstreamBroken(f"request body not sent: {exc}"))
            connection.abort()
            return
        if not response.status and response._waiter is not None and not connection.lost:
            connection.set_deadline(self.response_s, "no answer within")

    async def _open_or_wait(self, origin: _Origin) -> tuple[_Connection, bool]:
        """With no idle connection to `origin`: a new one, or one handed over at the limit (reused: True)."""
        if self.open_connections < self.limit and not self._someone_waits():
            self.open_connections += 1
        else:
            # At the limit: another origin's idle connection gives up its slot (connection_closed passes it on).
            self._close_an_idle_connection(origin)
            handed_over = await self._wait_turn(origin)
            if handed_over is not None:
                return handed_over, True
        # A slot is ours: open a connection in it.
        try:
            connection = await origin.connect()
        except BaseException:
            self.connection_closed(None)
            raise
        return connection, False

    async def _wait_turn(self, origin: _Origin) -> "_Connection | None":
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        entry = (origin, waiter)
        self._waiters.append(entry)
        # The wait for a free connection is part of connecting: a pool held by a hung upstream answers its callers
        # within connect_s instead of queueing them behind the hung requests.
        timer = loop.call_later(self.connect_s, self._waited_too_long, waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())  # granted just as the caller went away: pass it on
            raise
        finally:
            timer.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(entry)

    def _waited_too_long(self, waiter: asyncio.Future) -> None:
        if not waiter.done():
            waiter.set_exception(UpstreamTimeout(f"no free connection within {self.connect_s} s ({self.limit} busy)"))

    def _give_back(self, granted: "_Connection | None") -> None:
        if granted is None:
            self.connection_closed(None)
        else:
            self.connection_reusable(granted)

    def _close_an_idle_connection(self, wanted_by: _Origin) -> None:
        for origin in self._origins.values():
            if origin is not wanted_by and origin.idle:
                origin.idle.pop(0).abort()
                return

    def _someone_waits(self) -> bool:
        return any(not waiter.done() for _, waiter in self._waiters)

    def _next_waiter(self, origin: _Origin | None = None) -> asyncio.Future | None:
        """The first live waiter (for `origin` only, if given), taken off the queue."""
        for entry in self._waiters:
            if entry[1].done():
                continue
            if origin is None or entry[0] is origin:
                self._waiters.remove(entry)
                return entry[1]
        return None

    def connection_reusable(self, connection: _Connection) -> None:
        """A connection whose exchange ended cleanly: to the first request waiting for its origin, else idle (or
        closed, when requests for other origins wait for its slot)."""
        if self._waiters:
            waiter = self._next_waiter(connection.origin)
            if waiter is not None:
                waiter.set_result(connection)
                return
            if self._someone_waits():
                connection.abort()
                return
        connection.origin.keep(connection)
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_s, self._sweep)

    def connection_closed(self, connection: _Connection | None) -> None:
        """A connection's slot is free: it goes to the first waiting request, or back to the pool's count."""
        self.connections.discard(connection)
        waiter = self._next_waiter() if self._waiters else None
        if waiter is not None:
            waiter.set_result(None)
        else:
            self.open_connections -= 1

    def _sweep(self) -> None:
        """Close connections idle for longer than `idle_s`; runs while any connection is idle."""
        self._sweeper = None
        now = asyncio.get_running_loop().time()
        for origin in self._origins.values():
            idle, origin.idle = origin.idle, []
            for connection in idle:
                if now - connection.idle_since < self.idle_s:
                    origin.idle.append(connection)
                else:
                    connection.abort()
        if any(origin.idle for origin in self._origins.values()) and not self._closed:
            self._sweeper = asyncio.get_running_loop().call_later(self.idle_s, self._sweep)

    async def __aenter__(self) -> "UpstreamClient":
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection; requests in flight fail with UpstreamBroken."""
        self._closed = True
        for _, waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(UpstreamBroken("client closed"))
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for connection in list(self.connections):
            connection.abort()
        # Let the transports report connection_lost before the loop goes away.
        await asyncio.sleep(0)
