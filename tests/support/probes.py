"""Requests an attacker sends that no HTTP client would, and what the suite's servers must answer to them: the
aiohttp servers' parser refusals (the proxies, the dashboard) in the suite's JSON error shape; any bytes in a path
(static files, routes, proxies) answered without a server error."""

import json
from dataclasses import dataclass
from urllib.parse import quote_from_bytes

from hypothesis import strategies as st

# Every byte, percent-encoded, for a path segment.
ENCODED_BYTES = [f"%{byte:02X}" for byte in range(256)]
# Any bytes at all, percent-encoded: NUL, invalid UTF-8, slashes, dots, names too long for a file system.
encoded_segments = st.binary(min_size=1, max_size=300).map(lambda raw: quote_from_bytes(raw, safe=""))


def check_no_server_error(raw_path: str, status: int, body: bytes) -> None:
    """An answer to any bytes in a path: a file, a redirect or a JSON 4xx in the suite's shape, never a 5xx."""
    assert status < 500, (raw_path, status, body[:300])
    if status >= 400:
        assert "detail" in json.loads(body), (raw_path, body[:300])


@dataclass(frozen=True)
class Malformed:
    name: str
    wire: bytes
    status: int
    # Bytes of the request that must not come back in the answer.
    marker: bytes


MALFORMED_REQUESTS = [
    Malformed("a 100 KB URL", b"GET /api/" + b"U" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, b"UUUUUUUU"),
    Malformed(
        "a 40 KB header",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"H" * 40_000 + b"\r\n\r\n",
        431,
        b"HHHHHHHH",
    ),
    Malformed(
        "500 headers",
        b"GET /api/health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-Many-%d: v\r\n" % i for i in range(500)) + b"\r\n",
        431,
        b"X-Many-",
    ),
    Malformed(
        "Content-Length with Transfer-Encoding",
        b"POST /api/posts HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        b"chunked",
    ),
    Malformed("a \\xff byte in the path", b"GET /api/\xffsecret HTTP/1.1\r\nHost: x\r\n\r\n", 400, b"secret"),
    Malformed(
        "a NUL in a header", b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00nulvalue\r\n\r\n", 400, b"nulvalue"
    ),
    Malformed("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03handshake\r\n\r\n", 400, b"handshake"),
]


def check_json_refusal(answer: bytes, probe: Malformed) -> dict:
    """The answer (read until the server closed the connection) is `probe.status` in the suite's error shape and
    repeats nothing of the request; returns its body."""
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0].split(b" ")[1] == str(probe.status).encode(), (probe.name, answer[:300])
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines[1:])}
    assert headers[b"content-type"].startswith(b"application/json"), (probe.name, head)
    assert probe.marker not in answer, (probe.name, answer[:300])
    document = json.loads(body)
    # No trace: the request was never read far enough to have one.
    assert set(document) == {"detail", "request_id", "trace_id"} and document["detail"], document
    assert headers[b"x-request-id"].decode() == document["request_id"]
    return document


async def check_every_encoded_byte(fetch, place: str) -> None:
    """`place` (a path with one `{}`) with every byte percent-encoded in it: `await fetch(raw_path)` gives
    `(status, body)`, never a server error."""
    for byte in ENCODED_BYTES:
        raw_path = place.format(byte)
        check_no_server_error(raw_path, *await fetch(raw_path))
