"""A property of the proxy core's upstream client: whatever an upstream sends, split however TCP delivers it,
the client's outcome is what the bytes say. Answers framed by length, chunked or until close; cut short
anywhere; or with a malformed head. Each one is sent in random pieces by a raw server on loopback."""

import asyncio
import contextlib
import re
from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from titanium_common.upstream_client import UpstreamBroken, UpstreamClient


@dataclass
class Answer:
    wire: bytes  # what the upstream sends before closing
    status: int
    body: bytes
    # What the bytes say: "complete", "broken" (cut short or invalid: UpstreamBroken somewhere).
    verdict: str


@st.composite
def answers(draw) -> Answer:
    status = draw(st.sampled_from([200, 201, 202, 400, 404, 418, 500, 503]))
    body = draw(st.binary(max_size=3000))
    framing = draw(st.sampled_from(["length", "chunked", "close"]))
    head = b"HTTP/1.1 %d Reason\r\nX-Thing: %d\r\n" % (status, len(body))
    if framing == "length":
        wire = head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    elif framing == "chunked":
        wire, rest = head + b"Transfer-Encoding: chunked\r\n\r\n", body
        while rest:
            size = draw(st.integers(1, max(1, len(rest))))
            extension = draw(st.sampled_from([b"", b";name=value"]))
            wire += b"%x%s\r\n%s\r\n" % (size, extension, rest[:size])
            rest = rest[size:]
        wire += b"0\r\n\r\n"
    else:
        wire = head + b"Connection: close\r\n\r\n" + body
    head_end = wire.index(b"\r\n\r\n") + 4
    fate = draw(st.sampled_from(["whole", "whole", "cut", "malformed"]))
    if fate == "cut":
        cut = draw(st.integers(0, len(wire) - 1))
        if framing == "close" and cut >= head_end:
            # Until close, a shorter body is simply the body.
            return Answer(wire[:cut], status, wire[head_end:cut], "complete")
        return Answer(wire[:cut], status, body, "broken")
    if fate == "malformed":
        damage = draw(st.sampled_from([b"HTTP/1.1 2x0 OK\r\n", b"HTTP/9\r\n", b"\x00\x01garbage\r\n"]))
        spot = draw(st.sampled_from(["start", "header"]))
        if spot == "start":
            return Answer(damage + wire, status, body, "broken")
        return Answer(head + b"Bad Header Without Colon\r\n" + wire[len(head) :], status, body, "broken")
    return Answer(wire, status, body, "complete")


async def _serve(answer: Answer, pieces: list[int]):
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.readuntil(b"\r\n\r\n")
            rest, sizes = answer.wire, iter(pieces)
            while rest:
                size = next(sizes, len(rest))
                writer.write(rest[:size])
                rest = rest[size:]
                await writer.drain()
                await asyncio.sleep(0)  # separate segments, as often as the loop allows
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(answer=answers(), pieces=st.lists(st.integers(1, 700), max_size=12))
async def test_every_answer_is_read_as_its_bytes_say(answer: Answer, pieces: list[int]):
    server = await _serve(answer, pieces)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        async with UpstreamClient(connect_s=2, response_s=2) as client:
            try:
                response = await client.request("GET", url, "/", [])
                try:
                    body = await response.read()
                finally:
                    response.release()
            except UpstreamBroken:
                assert answer.verdict == "broken", answer
                return
            assert answer.verdict == "complete", answer
            assert (response.status, body) == (answer.status, answer.body)
            # The header as sent (an answer cut short until close says the full length, yet is complete).
            assert dict(response.headers)[b"X-Thing"] == re.search(rb"X-Thing: (\d+)", answer.wire)[1]
    finally:
        server.close()
        await server.wait_closed()
