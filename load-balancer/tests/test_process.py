"""What only the real `python -m load_balancer` process shows: memory while 50 MB stream through it, and a
graceful stop on SIGTERM, and what its log says about requests its parser refuses."""

import asyncio
import hashlib
import signal

import aiohttp

from tests.support.polling import eventually
from tests.support.probes import MALFORMED_REQUESTS, check_json_refusal
from tests.support.servers import raw_exchange

MB = 1024 * 1024
BODY_BYTES = 50 * MB
# Streaming keeps a few 64 KiB chunks and socket buffers in flight; holding the body would add 50 MB.
MAX_RSS_GROWTH = 20 * MB


class PeakRss:
    """Samples a process's RSS in the background while a transfer runs."""

    def __init__(self, process) -> None:
        self.process = process
        self.peak = process.rss_bytes()
        self._task: asyncio.Task | None = None

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.rss_bytes())
            await asyncio.sleep(0.01)

    async def __aenter__(self) -> "PeakRss":
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self.peak = max(self.peak, self.process.rss_bytes())


async def test_50_mb_stream_both_ways_with_bounded_memory(servers, backend_app, lb_process):
    gateway = await servers(backend_app("gw"))
    lb = await lb_process({"GATEWAY_URLS": gateway.url, "DASHBOARD_URLS": gateway.url})
    block = bytes(range(256)) * 4096  # 1 MiB
    expected = hashlib.sha256()
    for _ in range(BODY_BYTES // len(block)):
        expected.update(block)

    async def upload():
        for _ in range(BODY_BYTES // len(block)):
            yield block

    async with aiohttp.ClientSession() as http:
        for _ in range(20):  # warm up: pools, first allocations
            async with http.post(f"{lb.url}/api/warm", data=b"w" * 100_000) as r:
                assert r.status == 200
        baseline = lb.rss_bytes()
        async with PeakRss(lb) as up, http.post(f"{lb.url}/api/upload", data=upload()) as r:
            seen = await r.json()
        assert (seen["size"], seen["sha256"]) == (BODY_BYTES, expected.hexdigest())
        async with PeakRss(lb) as down, http.get(f"{lb.url}/download?bytes={BODY_BYTES}") as r:
            assert r.status == 200
            received = 0
            async for chunk in r.content.iter_chunked(256 * 1024):
                received += len(chunk)
                # A slow reader: the balancer must wait for it, not buffer the rest.
                await asyncio.sleep(0.0005)
        assert received == BODY_BYTES
    assert up.peak - baseline < MAX_RSS_GROWTH, f"upload grew RSS by {(up.peak - baseline) / MB:.1f} MB"
    assert down.peak - baseline < MAX_RSS_GROWTH, f"download grew RSS by {(down.peak - baseline) / MB:.1f} MB"


async def test_sigterm_lets_in_flight_requests_finish_and_closes_sockets(servers, backend_app, lb_process):
    gateway = await servers(backend_app("gw"))
    lb = await lb_process({"GATEWAY_URLS": gateway.url, "SHUTDOWN_TIMEOUT_S": "5", "LOG_LEVEL": "INFO"})
    async with aiohttp.ClientSession() as http:
        heartbeat = await http.ws_connect(f"{lb.url}/api/ws-heartbeat")
        slow = asyncio.create_task(http.get(f"{lb.url}/api/slow?s=1.5"))
        await asyncio.sleep(0.5)
        lb.proc.send_signal(signal.SIGTERM)
        closing = await heartbeat.receive(timeout=5)
        assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, aiohttp.WSCloseCode.GOING_AWAY)
        answer = await slow
        assert answer.status == 200
        assert (await answer.json())["slept"] is True
        assert await asyncio.wait_for(lb.proc.wait(), 10) == 0
    # The log says when the stop began and what it took.
    output = lb.output()
    assert "stopping: no new connections; 2 open" in output and "stopped in " in output, output
    async with aiohttp.ClientSession() as http:
        try:
            async with http.get(f"{lb.url}/health"):
                raise AssertionError("a stopped balancer must not answer")
        except aiohttp.ClientConnectorError:
            pass


async def test_requests_the_parser_refuses_get_json_errors_and_one_warning_line_each(lb_process):
    """The real process's log (LOG_LEVEL=WARNING): one line per refused request, no traceback, no request bytes."""
    lb = await lb_process({})
    for probe in MALFORMED_REQUESTS:
        check_json_refusal(await raw_exchange(lb.port, probe.wire), probe)
    output = await eventually(
        lambda: (text := lb.output()).count("refused a request") == len(MALFORMED_REQUESTS) and text
    )
    assert "Traceback" not in output and "ERROR" not in output, output
    for probe in MALFORMED_REQUESTS:
        assert probe.marker.decode("latin-1") not in output


async def test_sigterm_ends_open_stats_streams_cleanly(lb_process):
    lb = await lb_process({"STATS_PUSH_INTERVAL_S": "60", "SHUTDOWN_TIMEOUT_S": "30"})
    async with aiohttp.ClientSession() as http, http.get(f"{lb.url}/stats/stream") as stream:
        assert stream.status == 200
        first = await stream.content.readuntil(b"\n\n")
        assert first.startswith(b"retry: 60000")
        assert (await stream.content.readuntil(b"\n\n")).startswith(b"id: 1\ndata: {")
        lb.proc.send_signal(signal.SIGTERM)
        # The stream ends with its terminating chunk (a reset would raise here), and the process exits well before
        # its 30 s drain bound would have cut the stream.
        assert await asyncio.wait_for(stream.content.read(), 10) == b""
        await asyncio.wait_for(lb.proc.wait(), 10)
