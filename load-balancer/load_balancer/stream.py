"""GET /stats/stream: the /stats document pushed as Server-Sent Events.

Each balancer replica has one broadcaster. While at least one stream is open it builds the /stats document once every
STATS_PUSH_INTERVAL_S (through the same single-flight fan-out as /stats), encodes it once, and hands the same bytes to
every open stream: a thousand viewers cost the services, and the balancer's fan-out, what one costs. A comment line
goes out after STATS_STREAM_HEARTBEAT_S without an event, so that idle proxies keep the stream open.

A viewer's stream holds at most STATS_STREAM_BACKLOG events that its connection has not yet taken; one more and the
viewer is dropped (its connection closed), never buffered without bound: every event is the same bytes object, so
what a slow viewer costs is its socket's buffers. Beyond STATS_STREAM_MAX_CLIENTS open streams, 503 with Retry-After
(the dashboard then polls /stats). Like /stats, streams are not real traffic and are not counted as requests.
"""

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from titanium_common.aiohttp_app import echo_request_id, json_error, mark_monitoring
from titanium_common.loops import stop_tasks

log = logging.getLogger("load_balancer.stream")

# What a refused viewer is told to wait before trying again.
RETRY_AFTER_S = 10
HEARTBEAT = b": heartbeat\n\n"
STREAM_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    # nginx and similar proxies would otherwise hold the events back in their buffers.
    "X-Accel-Buffering": "no",
}


def encode_event(number: int, document: dict[str, Any]) -> bytes:
    # json.dumps escapes newlines inside strings, so the document is one `data:` line.
    return b"id: %d\ndata: %s\n\n" % (number, json.dumps(document, separators=(",", ":")).encode())


class Viewer:
    """One open stream: the events its connection has not yet taken (None: the stream ends)."""

    __slots__ = ("queue", "transport")

    def __init__(self, backlog: int, transport: asyncio.BaseTransport | None) -> None:
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue(maxsize=backlog)
        self.transport = transport

    def end(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queue.put_nowait(None)


class StatsBroadcaster:
    def __init__(
        self,
        build: Callable[[], Awaitable[dict[str, Any]]],
        *,
        interval_s: float,
        heartbeat_s: float,
        max_streams: int,
        backlog: int,
    ) -> None:
        self.build = build
        self.interval_s = interval_s
        self.heartbeat_s = heartbeat_s
        self.max_streams = max_streams
        self.backlog = backlog
        self.viewers: set[Viewer] = set()
        self.events = 0
        self.dropped = 0
        self.refused = 0
        self._latest: bytes | None = None
        self._task: asyncio.Task | None = None
        self._closed = False

    def figures(self) -> dict[str, Any]:
        return {
            "interval_s": self.interval_s,
            "open": len(self.viewers),
            "max_open": self.max_streams,
            "events": self.events,
            "dropped": self.dropped,
            "refused": self.refused,
        }

    def admit(self, transport: asyncio.BaseTransport | None) -> tuple[Viewer, bytes] | None:
        """A new viewer and what to send it first (the reconnection delay and the latest event), or None when the
        streams are at their cap."""
        if self._closed or len(self.viewers) >= self.max_streams:
            self.refused += 1
            return None
        viewer = Viewer(self.backlog, transport)
        self.viewers.add(viewer)
        # Taken now, with the viewer added: whatever is published from here on goes into its queue, never twice.
        greeting = b"retry: %d\n\n" % round(self.interval_s * 1000) + (self._latest or b"")
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        return viewer, greeting

    def leave(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)

    def _drop(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        self.dropped += 1
        log.info("dropped a /stats/stream viewer that fell %d events behind", self.backlog)
        if viewer.transport is not None:
            viewer.transport.abort()
        viewer.end()

    def _publish(self, chunk: bytes) -> None:
        for viewer in list(self.viewers):
            try:
                viewer.queue.put_nowait(chunk)
            except asyncio.QueueFull:
                self._drop(viewer)

    async def _next_event(self) -> None:
        try:
            document = await self.build()
        except Exception:  # a failed round is logged; the stream goes on with the next one
            log.exception("building the /stats document for the stream failed")
            return
        self.events += 1
        self._latest = encode_event(self.events, document)
        self._publish(self._latest)

    async def _run(self) -> None:
        """Events on a fixed grid while anyone watches; a round that overran skips the ticks it missed."""
        loop = asyncio.get_running_loop()
        due = last_sent = loop.time()
        try:
            while self.viewers:
                now = loop.time()
                if now >= due:
                    await self._next_event()
                    last_sent = loop.time()
                    due += self.interval_s
                    if due <= last_sent:
                        due = last_sent + self.interval_s
                elif now - last_sent >= self.heartbeat_s:
                    self._publish(HEARTBEAT)
                    last_sent = now
                await asyncio.sleep(max(0.0, min(due, last_sent + self.heartbeat_s) - loop.time()))
        finally:
            # The next first viewer starts afresh rather than with an event from before the pause.
            self._latest = None

    async def close(self) -> None:
        """Shutdown: every stream ends, so that draining does not wait for them."""
        self._closed = True
        for viewer in list(self.viewers):
            viewer.end()
        self.viewers.clear()
        await stop_tasks([self._task])


BROADCASTER = web.AppKey("stats_broadcaster", StatsBroadcaster)


async def stats_stream(request: web.Request) -> web.StreamResponse:
    # A viewer's stream lasts as long as its page: not a slow request.
    mark_monitoring(request)
    broadcaster = request.app[BROADCASTER]
    admitted = broadcaster.admit(request.transport)
    if admitted is None:
        return json_error(
            503,
            f"too many open /stats streams (at most {broadcaster.max_streams}): poll /stats, or retry later",
            {"Retry-After": str(RETRY_AFTER_S)},
        )
    viewer, greeting = admitted
    response = web.StreamResponse(headers=STREAM_HEADERS)
    echo_request_id(request, response)
    try:
        await response.prepare(request)
        await response.write(greeting)
        while (chunk := await viewer.queue.get()) is not None:
            await response.write(chunk)
    except ConnectionError:
        pass  # the viewer went away (or was dropped): found at the next write
    finally:
        broadcaster.leave(viewer)
    return response


def attach_stats_stream(app: web.Application, broadcaster: StatsBroadcaster) -> None:
    app[BROADCASTER] = broadcaster

    async def end_streams(app: web.Application) -> None:
        await broadcaster.close()

    app.on_shutdown.append(end_streams)
    app.router.add_get("/stats/stream", stats_stream, allow_head=False)
