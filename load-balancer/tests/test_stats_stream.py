"""GET /stats/stream: /stats pushed as Server-Sent Events, one build per interval for every viewer, a comment
heartbeat, a cap with 503 + Retry-After, slow viewers dropped, not counted as traffic, ended on shutdown."""

import asyncio
import socket

import aiohttp
from aiohttp import web

from load_balancer.main import create_app
from tests.support.polling import eventually
from tests.support.servers import AppServer
from tests.support.sse import ServerSentEvent, sse_events, stats_events


async def open_stream(http: aiohttp.ClientSession, url: str) -> aiohttp.ClientResponse:
    answer = await http.get(f"{url}/stats/stream")
    assert answer.status == 200, await answer.text()
    return answer


async def stream_figures(http: aiohttp.ClientSession, url: str) -> dict:
    async with http.get(f"{url}/stats") as answer:
        return (await answer.json())["load-balancer"]["stats_stream"]


async def the_same_later_event(streams: list[aiohttp.ClientResponse]) -> list[dict]:
    """One event that every stream received, as each received it: every stream gets every event after it joined,
    so two events after the newest first one all streams saw is one they all get, however long opening took."""
    readers = [sse_events(stream) for stream in streams]

    async def next_numbered(reader) -> ServerSentEvent:
        while not (event := await anext(reader)).id:
            pass
        return event

    target = max([int((await next_numbered(r)).id) for r in readers]) + 2

    async def numbered(reader) -> dict:
        while int((event := await next_numbered(reader)).id) < target:
            pass
        assert int(event.id) == target
        return event.json()

    return await asyncio.gather(*(numbered(r) for r in readers))


async def test_every_viewer_gets_the_same_events_from_one_fan_out_per_interval(
    servers, start_lb, backend_app, lb_settings
):
    gateway = await servers(backend_app("api-gateway"))
    # A backlog no busy test reader reaches: dropping slow viewers is another test's subject.
    settings = lb_settings(
        gateway_urls=[gateway.url], stats_push_interval_s=0.3, stats_cache_ttl_s=0.1, stats_stream_backlog=1000
    )
    lb = await start_lb(settings)
    async with aiohttp.ClientSession() as http:
        streams = [await open_stream(http, lb.url) for _ in range(20)]
        assert streams[0].headers["Content-Type"] == "text/event-stream"
        assert streams[0].headers["Cache-Control"] == "no-cache"
        last = await the_same_later_event(streams)
        for stream in streams:
            stream.close()

    # Every viewer was handed the very same document (one build), and each build was one fan-out.
    assert all(doc == last[0] for doc in last)
    newest = last[0]["load-balancer"]
    assert newest["stats_stream"]["open"] == 20
    assert newest["stats_stream"]["interval_s"] == 0.3
    # The document counts the events before itself; its own build was one more fan-out.
    assert newest["stats_fanouts"] == newest["stats_stream"]["events"] + 1
    assert newest["stats_stream"]["events"] >= 2
    assert last[0]["api-gateway"]["service"] == "api-gateway"
    assert {"auth", "user_service", "blog_service", "database", "cache"} <= set(last[0])


async def test_each_balancer_replica_builds_once_per_interval_for_all_of_its_viewers(
    servers, start_lb, backend_app, lb_settings
):
    gateway = await servers(backend_app("api-gateway"))
    settings = lb_settings(
        gateway_urls=[gateway.url], stats_push_interval_s=0.2, stats_cache_ttl_s=0.05, stats_stream_backlog=1000
    )
    replicas = [await start_lb(settings), await start_lb(settings)]
    async with aiohttp.ClientSession() as http:
        streams = {lb.url: [await open_stream(http, lb.url) for _ in range(8)] for lb in replicas}
        for url, opened in streams.items():
            seen = await the_same_later_event(opened)
            newest = seen[0]["load-balancer"]
            assert all(doc == seen[0] for doc in seen), url
            assert newest["stats_stream"]["open"] == 8
            assert newest["stats_fanouts"] == newest["stats_stream"]["events"] + 1, url
        for opened in streams.values():
            for stream in opened:
                stream.close()


async def test_a_new_viewer_gets_the_latest_event_at_once_and_the_retry_delay(start_lb, lb_settings):
    lb = await start_lb(lb_settings(stats_push_interval_s=30))
    async with aiohttp.ClientSession() as http:
        first = await open_stream(http, lb.url)
        await stats_events(first, 1)
        second = await open_stream(http, lb.url)
        events = sse_events(second)
        greeting = await anext(events)
        assert greeting.retry == 30_000
        latest = await anext(events)  # the event the first viewer had: no 30 s wait
        assert latest.id == "1"
        assert "load-balancer" in latest.json()
        first.close()
        second.close()


async def test_comment_heartbeat_between_events(start_lb, lb_settings):
    lb = await start_lb(lb_settings(stats_push_interval_s=60, stats_stream_heartbeat_s=0.2))
    async with aiohttp.ClientSession() as http:
        stream = await open_stream(http, lb.url)
        ids, comments = [], []
        async for event in sse_events(stream):
            if event.id:
                ids.append(event.id)
            comments += event.comments
            if comments.count("heartbeat") >= 3:
                break
        stream.close()
    assert ids == ["1"]  # the heartbeats came in the minute before the second event


async def test_beyond_the_cap_503_with_retry_after_and_a_freed_place_is_taken_again(start_lb, lb_settings):
    lb = await start_lb(lb_settings(stats_push_interval_s=0.1, stats_stream_max_clients=2))
    async with aiohttp.ClientSession() as http:
        first, second = await open_stream(http, lb.url), await open_stream(http, lb.url)
        async with http.get(f"{lb.url}/stats/stream") as refused:
            assert refused.status == 503
            assert refused.headers["Retry-After"] == "10"
            assert "at most 2" in (await refused.json())["detail"]
        first.close()

        async def admitted() -> bool:
            answer = await http.get(f"{lb.url}/stats/stream")
            if answer.status == 200:
                answer.close()
                return True
            answer.release()
            return False

        # The place is freed at the next event written to the closed connection.
        await eventually(admitted, 10)
        figures = await stream_figures(http, lb.url)
        assert figures["refused"] >= 1
        second.close()


async def test_a_viewer_that_stops_reading_is_dropped_and_the_others_go_on(servers, start_lb, lb_settings):
    async def big_stats(request: web.Request) -> web.Response:
        return web.json_response({"service": "api-gateway", "service_status": "online", "padding": "x" * 100_000})

    big = web.Application()
    big.router.add_get("/stats", big_stats)
    big.router.add_get("/health", big_stats)
    gateway = await servers(big)
    lb = await start_lb(
        lb_settings(gateway_urls=[gateway.url], stats_push_interval_s=0.1, stats_cache_ttl_s=0, stats_stream_backlog=8)
    )
    # A viewer that asks for the stream and never reads a byte, with a small receive buffer.
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.setblocking(False)
    await asyncio.get_running_loop().sock_connect(stalled, ("127.0.0.1", lb.port))
    stalled.send(b"GET /stats/stream HTTP/1.1\r\nHost: lb\r\n\r\n")
    received = 0

    async def read_everything(answer: aiohttp.ClientResponse) -> None:
        nonlocal received
        while chunk := await answer.content.readany():
            received += len(chunk)

    try:
        async with aiohttp.ClientSession() as http:
            reader = await open_stream(http, lb.url)
            reading = asyncio.create_task(read_everything(reader))

            async def dropped() -> bool:
                return (await stream_figures(http, lb.url))["dropped"] >= 1

            await eventually(dropped, 30)
            assert (await stream_figures(http, lb.url))["open"] == 1
            so_far = received
            await eventually(lambda: received > so_far + 200_000, 10)  # the reader is still served
            assert not reading.done()
            reading.cancel()
            reader.close()
    finally:
        stalled.close()


async def test_streams_are_not_traffic(start_lb, lb_settings):
    lb = await start_lb(lb_settings(stats_push_interval_s=0.1))
    async with aiohttp.ClientSession() as http:
        stream = await open_stream(http, lb.url)
        events = await stats_events(stream, 5)
        stream.close()
    own = events[-1]["load-balancer"]
    assert own["has_real_traffic"] is False
    assert own["state"] == "IDLE"
    assert own["total_requests"] == 0
    assert own["requests"]["total"] == 0  # the balancer's own count leaves /stats and its stream out


async def test_shutdown_ends_open_streams_cleanly(lb_settings):
    server = await AppServer(create_app(lb_settings(stats_push_interval_s=60))).start()
    try:
        async with aiohttp.ClientSession() as http:
            stream = await open_stream(http, server.url)
            events = sse_events(stream)
            assert (await anext(events)).retry == 60_000
            assert (await anext(events)).id == "1"
            await server.stop()
            # The stream ends with the chunked terminator (a clean end, else the read raises), and nothing more.
            assert [event async for event in events] == []
    finally:
        await server.stop()
