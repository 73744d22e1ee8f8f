"""The `/ws/clusters` hub: every client has a bounded queue (oldest dropped), so a slow one never blocks the rest."""

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from starlette.websockets import WebSocket

from titanium_common.clock import utc_iso

log = logging.getLogger("cluster_monitor.feed")


def message(kind: str, data: Any) -> str:
    """The feed's envelope, as the original cluster dashboard reads it: {"type", "data", "timestamp"}."""
    return json.dumps({"type": kind, "data": data, "timestamp": utc_iso()}, default=str)


class FeedClient:
    def __init__(self, websocket: WebSocket, queue_size: int) -> None:
        self.websocket = websocket
        self.queue: deque[str] = deque(maxlen=queue_size)
        self.dropped = 0
        self._wakeup = asyncio.Event()

    def offer(self, text: str) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(text)
        self._wakeup.set()

    async def pump(self, send_timeout_s: float) -> None:
        """Send queued messages until the client cannot take one within the timeout (then it is dead)."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self.queue:
                async with asyncio.timeout(send_timeout_s):
                    await self.websocket.send_text(self.queue.popleft())


class FeedHub:
    def __init__(self, queue_size: int = 64, send_timeout_s: float = 10.0) -> None:
        self.queue_size = queue_size
        self.send_timeout_s = send_timeout_s
        self.clients: set[FeedClient] = set()
        self.sent_total = 0
        self.dropped_total = 0

    def publish(self, kind: str, data: Any) -> None:
        if not self.clients:
            return
        text = message(kind, data)
        for client in self.clients:
            client.offer(text)
        self.sent_total += 1

    async def serve(self, websocket: WebSocket, greeting: list[str]) -> None:
        """Run one client until it leaves or stops reading; `greeting` goes first (clusters, then events)."""
        await websocket.accept()
        client = FeedClient(websocket, self.queue_size)
        for text in greeting:
            client.offer(text)
        self.clients.add(client)
        pump = asyncio.create_task(client.pump(self.send_timeout_s))
        listen = asyncio.create_task(self._listen(websocket))
        try:
            done, _ = await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
            if pump in done and isinstance(pump.exception(), TimeoutError):
                log.info("closing a WebSocket client that stopped reading")
        finally:
            self.clients.discard(client)
            self.dropped_total += client.dropped
            for task in (pump, listen):
                task.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await websocket.close()

    @staticmethod
    async def _listen(websocket: WebSocket) -> None:
        """Incoming messages are ignored; this only notices the client leaving."""
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass
