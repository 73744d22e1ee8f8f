"""/ws/* is relayed both ways; a quiet socket outlives the 2 s response timeout; a dead upstream is a 502; one
client holds at most its share of relayed sockets, from a pool apart from the requests'."""

import asyncio
import base64
import contextlib

import aiohttp

from tests.support.servers import free_port

# Longer than the 2 s upstream response timeout: the cluster feed is quiet for 5 s between pushes.
QUIET_S = 2.5
# An upgrade request sent as a plain GET, to read the refusal's status and headers.
UPGRADE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
}


async def test_websocket_relays_both_ways_and_survives_quiet_periods(gateway):
    url = gateway.make_url("/ws/clusters")
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers={"X-Request-ID": "ws-1"}) as ws:
        hello = await ws.receive_json(timeout=5)
        assert hello == {"type": "hello", "service": "cluster-monitor", "request_id": "ws-1"}
        async with http.get(gateway.make_url("/stats")) as r:
            figures = (await r.json())["upstreams"]["cluster-monitor"]
        assert figures["websockets_open"] == 1
        await ws.send_str("ping-1")
        assert await ws.receive_str(timeout=5) == "echo:ping-1"
        await ws.send_bytes(b"\x00\x01\x02")
        assert await ws.receive_bytes(timeout=5) == b"\x02\x01\x00"
        await asyncio.sleep(QUIET_S)
        await ws.send_str("after a quiet while")
        assert await ws.receive_str(timeout=5) == "echo:after a quiet while"
        await ws.close(code=4000, message=b"done")
        # The gateway finishes its side just after the close handshake.
        async with asyncio.timeout(5):
            while figures["websockets_open"]:
                await asyncio.sleep(0.02)
                async with http.get(gateway.make_url("/stats")) as r:
                    figures = (await r.json())["upstreams"]["cluster-monitor"]
    assert (figures["websockets_total"], figures["requests"]) == (1, 0)


async def test_websocket_to_a_refused_upstream_is_502_naming_it(start_gateway):
    gateway = await start_gateway(cluster_monitor_url=f"http://127.0.0.1:{free_port()}")
    async with aiohttp.ClientSession() as http:
        try:
            async with http.ws_connect(gateway.make_url("/ws/clusters")):
                raise AssertionError("the upgrade should have been refused")
        except aiohttp.WSServerHandshakeError as exc:
            assert exc.status == 502
        async with http.get(gateway.make_url("/stats")) as r:
            figures = (await r.json())["upstreams"]["cluster-monitor"]
    assert (figures["websockets_open"], figures["websockets_total"], figures["unavailable"]) == (0, 1, 1)


def from_client(address: str) -> dict[str, str]:
    # What the load balancer in front writes: the client's address, appended to X-Forwarded-For.
    return {"X-Forwarded-For": address}


async def hold_sockets(stack: contextlib.AsyncExitStack, http, url, clients: list[str]) -> None:
    """One relayed socket open for each of `clients` until `stack` closes, each past its upstream's hello."""
    for client in clients:
        ws = await stack.enter_async_context(http.ws_connect(url, headers=from_client(client)))
        assert (await ws.receive_json(timeout=5))["type"] == "hello"


async def test_one_client_cannot_take_every_relayed_socket_and_the_dashboard_feed_survives(start_gateway):
    # The request pool is as small as the stranger's share: relayed sockets no longer come out of it.
    gateway = await start_gateway(websocket_max_per_client=4, upstream_pool_size=4)
    url = gateway.make_url("/ws/clusters")
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await hold_sockets(stack, http, url, ["203.0.113.9"] * 4)
        # The stranger's next socket is refused at once, without an upstream connection, and says when to retry;
        # a forged X-Forwarded-For entry before the load balancer's does not make another client of it.
        for forged in ("203.0.113.9", "198.51.100.1, 203.0.113.9"):
            async with http.get(url, headers={**from_client(forged), **UPGRADE}) as refused:
                assert refused.status == 503
                assert refused.headers["Retry-After"] == "5"
                assert "too many open WebSockets from this client" in (await refused.json())["detail"]
        # The dashboard (another client) still gets its live feed, and requests still get answers.
        async with http.ws_connect(url, headers=from_client("192.0.2.7")) as feed:
            assert (await feed.receive_json(timeout=5))["type"] == "hello"
            await feed.send_str("still here")
            assert await feed.receive_str(timeout=5) == "echo:still here"
        for _ in range(8):
            async with http.get(gateway.make_url("/api/clusters")) as r:
                assert r.status == 200
        async with http.get(gateway.make_url("/stats")) as r:
            figures = (await r.json())["websockets"]
        assert (figures["open"], figures["clients"], figures["refused"]) == (4, 1, 2)


async def test_the_total_of_relayed_sockets_is_bounded_too(start_gateway):
    gateway = await start_gateway(websocket_max_per_client=4, websocket_max_total=3)
    url = gateway.make_url("/ws/clusters")
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(aiohttp.ClientSession())
        await hold_sockets(stack, http, url, [f"192.0.2.{n}" for n in range(3)])
        async with http.get(url, headers={**from_client("192.0.2.99"), **UPGRADE}) as refused:
            assert refused.status == 503 and "at most 3" in (await refused.json())["detail"]
    # Closed sockets give their places back.
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=from_client("192.0.2.99")) as ws:
        assert (await ws.receive_json(timeout=5))["type"] == "hello"
