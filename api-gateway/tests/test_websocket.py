"""/ws/* is relayed both ways; a quiet socket outlives the 2 s response timeout; a dead upstream is a 502."""

import asyncio

import aiohttp

from tests.support.servers import free_port

# Longer than the 2 s upstream response timeout: the cluster feed is quiet for 5 s between pushes.
QUIET_S = 2.5


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
