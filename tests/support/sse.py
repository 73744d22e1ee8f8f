"""Reading a Server-Sent Events stream in tests, as a browser's EventSource parses it (fields per event, comments
kept apart so that a test can see the heartbeat)."""

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class ServerSentEvent:
    data: str = ""
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


async def sse_events(answer: aiohttp.ClientResponse) -> AsyncIterator[ServerSentEvent]:
    """Each event (a block ending in an empty line) with at least a data, retry or comment line."""
    event = ServerSentEvent()
    data: list[str] = []
    async for raw in answer.content:
        line = raw.decode().rstrip("\r\n")
        if line == "":
            event.data = "\n".join(data)
            if data or event.retry is not None or event.comments:
                yield event
            event, data = ServerSentEvent(), []
        elif line.startswith(":"):
            event.comments.append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            elif name == "id":
                event.id = value
            elif name == "retry":
                event.retry = int(value)


async def stats_events(answer: aiohttp.ClientResponse, count: int) -> list[dict[str, Any]]:
    """The next `count` /stats documents on a stream (heartbeats and the retry line skipped)."""
    found: list[dict[str, Any]] = []
    async for event in sse_events(answer):
        if event.data:
            found.append(event.json())
            if len(found) == count:
                break
    return found
