"""Bodies stream through both ways; one over the limit is refused with 413 before or while it streams."""

import hashlib

import aiohttp

LIMIT = 1024 * 1024


async def test_large_download_streams_through(gateway, stream_digest):
    size = 48 * 1024 * 1024 + 5
    digest = hashlib.sha256()
    received = 0
    headers = {"X-Test-Stream": str(size)}
    async with aiohttp.ClientSession() as http, http.get(gateway.make_url("/api/pods"), headers=headers) as r:
        assert r.status == 200
        assert r.headers.get("Transfer-Encoding") == "chunked"
        async for chunk in r.content.iter_any():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.hexdigest() == stream_digest(size)


async def test_chunked_upload_under_the_limit_streams_through(start_gateway):
    gateway = await start_gateway(max_body_bytes=LIMIT)
    payload = bytes(range(256)) * (LIMIT // 256)

    async def chunks():
        for start in range(0, len(payload), 64 * 1024):
            yield payload[start : start + 64 * 1024]

    async with aiohttp.ClientSession() as http, http.post(gateway.make_url("/api/posts"), data=chunks()) as r:
        body = await r.json()
    assert r.status == 200
    assert body["body_bytes"] == len(payload)
    assert body["body_sha256"] == hashlib.sha256(payload).hexdigest()


async def test_declared_length_over_the_limit_is_413(start_gateway):
    gateway = await start_gateway(max_body_bytes=LIMIT)
    async with aiohttp.ClientSession() as http, http.post(gateway.make_url("/api/posts"), data=b"x" * (LIMIT + 1)) as r:
        assert r.status == 413
        body = await r.json()
    assert body["detail"] == f"request body over {LIMIT} bytes"
    assert body["request_id"] == r.headers["X-Request-ID"]


async def test_chunked_upload_over_the_limit_is_413(start_gateway):
    gateway = await start_gateway(max_body_bytes=LIMIT)

    async def chunks():
        for _ in range(LIMIT // (64 * 1024) + 4):
            yield b"y" * 64 * 1024

    async with aiohttp.ClientSession() as http:
        async with http.put(gateway.make_url("/api/edge/config/dev-1"), data=chunks()) as r:
            assert r.status == 413
            assert (await r.json())["detail"] == f"request body over {LIMIT} bytes"
        # The gateway is fine afterwards.
        async with http.get(gateway.make_url("/api/edge/devices")) as r:
            assert r.status == 200
