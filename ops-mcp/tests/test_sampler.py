"""The sampler's balancer figures: a read that failed (the balancer not up yet at start-up) is read again when
someone asks, once for every caller waiting, instead of being reported for a whole sampling interval."""

import asyncio

import aiohttp
from aiohttp import web

from ops_mcp.reader import SuiteReader
from ops_mcp.sampler import Sampler
from tests.support.servers import free_port, serving


def balancer_app(reads: list[int]) -> web.Application:
    async def stats(request: web.Request) -> web.Response:
        reads.append(1)
        await asyncio.sleep(0.1)  # long enough for the callers below to wait together
        return web.json_response({"load-balancer": {"service_status": "online", "requests": 7}})

    app = web.Application()
    app.router.add_get("/stats", stats)
    return app


async def test_a_balancer_that_came_up_after_the_first_read_is_read_again_once_when_asked():
    port, reads = free_port(), []
    async with aiohttp.ClientSession() as session:
        urls = {"load-balancer": f"http://127.0.0.1:{port}", "cluster-monitor": f"http://127.0.0.1:{free_port()}"}
        sampler = Sampler(SuiteReader(session, urls, 2.0), [], keep=10, lb_timeout_s=2.0)
        await sampler.sample_once()
        assert sampler.balancer_or_failure()["service_status"] == "offline"
        async with serving(balancer_app(reads), port=port):
            await asyncio.gather(*(sampler.caught_up() for _ in range(5)))
            assert sampler.balancer_or_failure() == {"service_status": "online", "requests": 7}
            assert len(reads) == 1
            await sampler.caught_up()  # good figures: nothing is read again
            assert len(reads) == 1
