"""The proxy core's upstream client against real servers on loopback: aiohttp for well-behaved upstreams, raw
asyncio servers for the answers a real upstream sometimes gives (interim 100, no length, garbage, a dropped
keep-alive connection, silence)."""

import asyncio
import contextlib
import hashlib
import json
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from api_gateway.settings import GatewaySettings
from load_balancer.settings import LoadBalancerSettings
from tests.support.servers import AppServer, body_digest, free_port, serving
from titanium_common.upstream_client import (
    MAX_HEAD_BYTES,
    UpstreamBroken,
    UpstreamClient,
    UpstreamTimeout,
    UpstreamUnreachable,
    check_upstream_url,
)

MIB = 1024 * 1024


async def echo(request: web.Request) -> web.Response:
    return web.json_response(
        {
            "method": request.method,
            "target": request.raw_path,
            "host": request.headers.get("Host"),
            "framing": request.headers.get("Transfer-Encoding") or request.headers.get("Content-Length"),
            "custom": request.headers.getall("X-Custom", []),
            **await body_digest(request),
        },
        headers=[("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")],
    )


async def big(request: web.Request) -> web.StreamResponse:
    """16 MiB, chunked (no declared length)."""
    response = web.StreamResponse()
    await response.prepare(request)
    for _ in range(16):
        await response.write(b"x" * MIB)
    return response


async def no_content(request: web.Request) -> web.Response:
    return web.Response(status=204)


async def sized(request: web.Request) -> web.Response:
    return web.Response(body=b"0123456789")


@pytest.fixture
async def upstream() -> AsyncIterator[str]:
    app = web.Application(client_max_size=64 * MIB)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/big", big)
    app.router.add_get("/empty", no_content)
    app.router.add_get("/sized", sized)
    async with serving(app) as url:
        yield url


RawHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


@contextlib.asynccontextmanager
async def raw_upstream(handler: RawHandler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server running `handler(reader, writer, connection_number)`; yields its URL and the connections."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections) + 1)
        try:
            await handler(reader, writer, len(connections))
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def read_head(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


@pytest.fixture
async def client() -> AsyncIterator[UpstreamClient]:
    async with UpstreamClient(connect_s=1.0, response_s=0.5) as client:
        yield client


async def test_a_small_answer_keeps_its_headers_and_the_connection_is_reused(upstream, client):
    headers = [(b"X-Custom", b"one"), (b"X-Custom", b"two")]
    for _ in range(3):
        response = await client.request("GET", upstream, "/echo/a%2Fb?x=1&y=%20", headers)
        body = await response.read()
        response.release()
        assert response.status == 200 and response.reason == "OK"
        assert [v for n, v in response.headers if n.lower() == b"set-cookie"] == [b"a=1", b"b=2"]
    seen = json.loads(body)
    assert seen["target"] == "/echo/a%2Fb?x=1&y=%20"
    assert seen["host"] == upstream.removeprefix("http://")
    assert seen["custom"] == ["one", "two"]
    assert seen["framing"] is None
    assert client.open_connections == 1


async def test_request_bodies_are_sent_with_a_length_or_chunked(upstream, client):
    payload = bytes(range(256)) * 4096

    async def parts():
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    expected = hashlib.sha256(payload).hexdigest()
    for content_length, framing in ((len(payload), str(len(payload))), (None, "chunked")):
        response = await client.request("PUT", upstream, "/echo/up", [], parts(), content_length)
        seen = json.loads(await response.read())
        response.release()
        assert (seen["size"], seen["sha256"], seen["framing"]) == (len(payload), expected, framing)
    # A POST with no body says so, so that no upstream waits for one.
    response = await client.request("POST", upstream, "/echo/none", [])
    seen = json.loads(await response.read())
    response.release()
    assert (seen["framing"], seen["size"]) == ("0", 0)


async def test_a_big_answer_streams_with_bounded_buffering(upstream, client):
    response = await client.request("GET", upstream, "/big", [])
    assert response.content_length is None
    total = 0
    async for chunk in response.chunks():
        if total == 0:
            await asyncio.sleep(0.3)  # a slow reader: the upstream must be paused, not buffered in full
            assert response._buffered < 2 * MIB
        total += len(chunk)
    response.release()
    assert total == 16 * MIB


async def test_head_204_and_304_answers_have_no_body(upstream, client):
    response = await client.request("HEAD", upstream, "/sized", [])
    assert response.bodyless and await response.read() == b""
    assert (b"Content-Length", b"10") in response.headers
    response.release()
    response = await client.request("GET", upstream, "/empty", [])
    assert response.status == 204 and response.bodyless
    response.release()
    response = await client.request("GET", upstream, "/sized", [])
    assert await response.read() == b"0123456789"
    response.release()


async def test_an_interim_100_is_skipped_and_a_body_until_close_is_read_whole():
    async def answer(reader, writer, _n):
        await read_head(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nX-Kind: close-delimited\r\n\r\nuntil")
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(b" the end")

    async with raw_upstream(answer) as (url, _), UpstreamClient() as client:
        response = await client.request("GET", url, "/", [])
        assert (response.status, response.until_close) == (200, True)
        assert await response.read() == b"until the end"
        response.release()


async def test_an_invalid_answer_or_a_dropped_body_is_broken():
    async def answer(reader, writer, n):
        await read_head(reader)
        if n == 1:
            writer.write(b"SMTP ready\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part")
        await writer.drain()

    async with raw_upstream(answer) as (url, _), UpstreamClient() as client:
        with pytest.raises(UpstreamBroken, match="invalid HTTP answer"):
            await client.request("GET", url, "/", [])
        response = await client.request("GET", url, "/", [])
        with pytest.raises(UpstreamBroken, match="connection closed"):
            await response.read()
        response.release()
        await asyncio.sleep(0)
        assert client.open_connections == 0


async def test_bytes_after_a_complete_answer_keep_the_answer_but_not_the_connection():
    async def answer(reader, writer, _n):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nX-First: yes\r\nContent-Length: 2\r\n\r\nok")
        writer.write(b"HTTP/1.1 500 Nobody Asked\r\nX-Second: yes\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(answer) as (url, connections), UpstreamClient() as client:
        for _ in range(2):
            response = await client.request("GET", url, "/", [])
            assert (response.status, response.headers[0], await response.read()) == (200, (b"X-First", b"yes"), b"ok")
            response.release()
        assert connections == [1, 2]


def keep_alive_once(reset: bool = False) -> RawHandler:
    """Answers the first request of each connection, then drops the connection when the next one arrives
    (an upstream whose keep-alive timer fired just as the request was sent); `reset`: with an RST, as the kernel
    does when the upstream closes with the request unread ("connection reset by peer")."""

    async def answer(reader, writer, n):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%d" % (len(str(n)), n))
        await writer.drain()
        await read_head(reader)
        if reset:
            writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    return answer


async def test_a_reused_connection_the_upstream_dropped_is_replaced_for_a_safe_request():
    async with raw_upstream(keep_alive_once()) as (url, connections), UpstreamClient() as client:
        first = await client.request("GET", url, "/", [])
        assert await first.read() == b"1"
        first.release()
        second = await client.request("GET", url, "/", [])
        assert await second.read() == b"2"  # answered on a new connection, the caller never saw the drop
        second.release()
        assert connections == [1, 2]


async def test_a_small_post_on_a_connection_reset_as_it_went_out_is_sent_again():
    """The rare `502 ... connection reset by peer` under load: a POST went out on a pooled connection that the
    upstream was closing, with nothing of an answer back. With its body in bytes it is sent again on a new one."""
    async with raw_upstream(keep_alive_once(reset=True)) as (url, connections), UpstreamClient() as client:
        first = await client.request("GET", url, "/", [])
        assert await first.read() == b"1"
        first.release()
        second = await client.request("POST", url, "/", [], b'{"title": "t"}')
        assert await second.read() == b"2"
        second.release()
        assert connections == [1, 2]

        async def streamed():
            yield b"part"

        # A streamed body is gone once sent: never sent twice, the failure is the caller's to answer.
        with pytest.raises(UpstreamBroken, match=r"reset|closed"):
            await client.request("POST", url, "/", [], streamed())


async def test_silence_is_a_timeout_before_and_during_the_answer():
    async def answer(reader, writer, n):
        await read_head(reader)
        if n == 2:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nstart")
            await writer.drain()
        if n == 3:  # answers once the whole (slow) upload is in
            await reader.readuntil(b"0\r\n\r\n")
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        await asyncio.sleep(5)

    async with raw_upstream(answer) as (url, _), UpstreamClient(response_s=0.3) as client:
        with pytest.raises(UpstreamTimeout, match=r"no answer within 0\.3 s"):
            await client.request("GET", url, "/", [])
        response = await client.request("GET", url, "/", [])
        with pytest.raises(UpstreamTimeout, match=r"no data for 0\.3 s"):
            await response.read()
        response.release()

        async def slow_upload():
            for _ in range(3):
                await asyncio.sleep(0.2)  # 0.6 s of upload is not the upstream's delay; its silence after it is
                yield b"x"

        response = await client.request("POST", url, "/", [], slow_upload())
        assert await response.read() == b"ok"
        response.release()
        with pytest.raises(UpstreamTimeout, match=r"no answer within 0\.3 s"):
            await client.request("POST", url, "/", [], slow_upload())


async def test_a_kept_connection_times_out_each_wait_from_its_own_start():
    """One connection, one timer: answers that each come well within response_s, over a span longer than it, are
    never cut off by an earlier request's deadline; the silence that follows still is."""
    answered = 6

    async def answer(reader, writer, n):
        for _ in range(answered):
            await read_head(reader)
            await asyncio.sleep(0.1)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
        await read_head(reader)
        await asyncio.sleep(5)

    async with raw_upstream(answer) as (url, connections), UpstreamClient(response_s=0.3) as client:
        for _ in range(answered):
            response = await client.request("GET", url, "/", [])
            assert await response.read() == b"ok"
            response.release()
        with pytest.raises(UpstreamTimeout, match=r"no answer within 0\.3 s"):
            await client.request("GET", url, "/", [])
        assert connections == [1]


async def test_a_refused_connect_is_unreachable(client):
    with pytest.raises(UpstreamUnreachable, match="cannot connect"):
        await client.request("GET", f"http://127.0.0.1:{free_port()}", "/", [])
    assert client.open_connections == 0


async def test_the_connection_limit_queues_then_times_out():
    release = asyncio.Event()

    async def answer(reader, writer, n):
        while True:
            await read_head(reader)
            await release.wait()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with (
        raw_upstream(answer) as (url, connections),
        UpstreamClient(connect_s=0.3, response_s=5.0, limit=1) as client,
    ):
        held = asyncio.create_task(client.request("GET", url, "/", []))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamTimeout, match="no free connection"):
            await client.request("GET", url, "/", [])
        queued = asyncio.create_task(client.request("GET", url, "/", []))
        await asyncio.sleep(0.05)
        release.set()
        for task in (held, queued):
            response = await task
            assert await response.read() == b"ok"
            response.release()
        assert connections == [1]
        # Another origin at the limit takes the slot of the idle connection, which is closed for it.
        async with raw_upstream(answer) as (other_url, other_connections):
            response = await client.request("GET", other_url, "/", [])
            assert await response.read() == b"ok"
            response.release()
            assert other_connections == [1]
            assert client.open_connections == 1


async def test_idle_connections_are_closed_after_idle_s(upstream):
    async with UpstreamClient(idle_s=0.2) as client:
        response = await client.request("GET", upstream, "/sized", [])
        await response.read()
        response.release()
        assert client.open_connections == 1
        await asyncio.sleep(0.6)
        assert client.open_connections == 0


async def test_close_ends_requests_in_flight():
    async def answer(reader, writer, _n):
        await read_head(reader)
        await asyncio.sleep(5)

    client = UpstreamClient(response_s=5.0)
    async with raw_upstream(answer) as (url, _):
        pending = asyncio.create_task(client.request("GET", url, "/", []))
        await asyncio.sleep(0.05)
        await client.close()
        with pytest.raises(UpstreamBroken):
            await pending
        assert client.open_connections == 0


async def test_an_ipv6_upstream_gets_a_bracketed_host(client):
    if not _bindable_ipv6():
        pytest.skip("no IPv6 loopback")
    app = web.Application()
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    async with AppServer(app, host="::1") as server:
        response = await client.request("GET", f"http://[::1]:{server.port}", "/echo/x", [])
        assert json.loads(await response.read())["host"] == f"[::1]:{server.port}"
        response.release()


def _bindable_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


async def test_an_answer_head_over_the_limit_is_broken():
    async def answer(reader, writer, n):
        await read_head(reader)
        writer.write(b"HTTP/1.1 200 OK\r\n")
        if n == 1:  # one huge header
            writer.write(b"X-Big: " + b"a" * (MAX_HEAD_BYTES + 10) + b"\r\n\r\n")
        elif n == 2:  # many small ones
            writer.write(b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n")
        else:  # a head that never ends
            for _ in range(40):
                writer.write(b"X-More: " + b"b" * 4000 + b"\r\n")
                await writer.drain()
        await writer.drain()
        await asyncio.sleep(1)

    async with raw_upstream(answer) as (url, _), UpstreamClient(response_s=2) as client:
        for _ in range(3):
            with pytest.raises(UpstreamBroken, match="over"):
                await client.request("GET", url, "/", [])


async def test_an_upload_the_upstream_stops_reading_times_out():
    async def answer(reader, writer, n):
        await read_head(reader)
        await asyncio.sleep(5)  # reads nothing of the body

    async def endless():
        while True:
            yield b"x" * 65536

    async with raw_upstream(answer) as (url, _), UpstreamClient(response_s=0.3) as client:
        with pytest.raises(UpstreamTimeout, match=r"took no request body for 0\.3 s"):
            await client.request("POST", url, "/", [], endless())
        await asyncio.sleep(0.05)  # the aborted transport reports its loss on the next loop turns
        assert client.open_connections == 0


async def test_a_host_name_is_resolved_once_per_ttl(upstream, monkeypatch):
    port = int(upstream.rsplit(":", 1)[1])
    loop = asyncio.get_running_loop()
    lookups = []
    real = loop.getaddrinfo

    async def counted(host, *args, **kwargs):
        lookups.append(host)
        return await real(host, *args, **kwargs)

    monkeypatch.setattr(loop, "getaddrinfo", counted)
    async with UpstreamClient(dns_ttl_s=0.5, idle_s=0.01) as client:
        for _ in range(3):
            response = await asyncio.gather(*(client.request("GET", f"http://localhost:{port}", "/sized", [])
                                              for _ in range(4)))  # fmt: skip
            for each in response:
                assert await each.read() == b"0123456789"
                each.release()
        assert lookups == ["localhost"]  # 12 requests, concurrent ones included: one lookup
        await asyncio.sleep(0.6)
        again = await client.request("GET", f"http://localhost:{port}", "/sized", [])
        again.release()
        assert lookups == ["localhost", "localhost"]


def test_https_upstreams_are_refused_at_start_up():
    with pytest.raises(ValueError, match="http:// URLs only"):
        check_upstream_url("https://example.com")
    with pytest.raises(ValueError):
        LoadBalancerSettings(gateway_urls="https://127.0.0.1:8000")
    with pytest.raises(ValueError):
        GatewaySettings(blog_service_url="https://blog:8003")
    assert check_upstream_url("http://[::1]:8000") == "http://[::1]:8000"
