"""GET /stats fan-out: every service's own /stats, fetched in parallel, each bounded by a timeout."""

import asyncio
from typing import Any

import aiohttp


async def fetch_stats(session: aiohttp.ClientSession, url: str, timeout_s: float) -> dict[str, Any]:
    """That service's /stats, or `{"service_status": "offline"|"timeout", "error"}`: never raises."""
    try:
        async with asyncio.timeout(timeout_s), session.get(f"{url}/stats") as answer:
            if answer.status != 200:
                return {"service_status": "offline", "error": f"/stats answered HTTP {answer.status}", "url": url}
            body = await answer.json(content_type=None)
    except TimeoutError:
        return {"service_status": "timeout", "error": f"no answer within {timeout_s:g} s", "url": url}
    except aiohttp.ClientConnectorError as exc:
        return {"service_status": "offline", "error": str(exc.os_error or exc), "url": url}
    except (aiohttp.ClientError, ValueError) as exc:
        return {"service_status": "offline", "error": str(exc) or type(exc).__name__, "url": url}
    if not isinstance(body, dict):
        return {"service_status": "offline", "error": "/stats did not answer a JSON object", "url": url}
    return body


async def fetch_all(session: aiohttp.ClientSession, targets: dict[str, str], timeout_s: float) -> dict[str, Any]:
    """name → URL in, name → that service's /stats (or its failure) out; takes at most about `timeout_s`."""
    answers = await asyncio.gather(*(fetch_stats(session, url, timeout_s) for url in targets.values()))
    return dict(zip(targets, answers, strict=True))
