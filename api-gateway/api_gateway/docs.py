"""The suite's API docs at /api/docs: one Swagger UI page with a selector over every service's OpenAPI, and each
service's own /docs and /openapi.json under /api/docs/<service>/ (read from a healthy replica of that service)."""

import asyncio

import aiohttp
from aiohttp import web

from titanium_common.aiohttp_app import json_error
from titanium_common.api_docs import DOCUMENTED_SERVICES, asset_path, swagger_page

from .upstreams import Upstreams

UPSTREAMS = web.AppKey("docs_upstreams", Upstreams)
READ_TIMEOUT_S = 2.0


async def suite_docs(request: web.Request) -> web.Response:
    documents = [
        (name, f"docs/{name}/openapi.json") for name in DOCUMENTED_SERVICES if name in request.app[UPSTREAMS].by_name
    ]
    return web.Response(text=swagger_page("Titanium API", "docs/assets/", documents), content_type="text/html")


async def docs_asset(request: web.Request) -> web.StreamResponse:
    path = asset_path(request.match_info["name"])
    if path is None:
        return json_error(404, f"no docs asset {request.match_info['name']}")
    return web.FileResponse(path)


def _service_path(rest: str) -> bool:
    """Only the docs pages, their assets and the OpenAPI document are read from a service here."""
    return rest in ("docs", "openapi.json") or (rest.startswith("docs/assets/") and "/" not in rest[12:])


async def service_docs(request: web.Request) -> web.Response:
    name, rest = request.match_info["service"], request.match_info["rest"]
    upstream = request.app[UPSTREAMS].by_name.get(name)
    if upstream is None or name not in DOCUMENTED_SERVICES or not _service_path(rest):
        return json_error(404, f"no route for {request.path}")
    replica = upstream.replicas.pick()
    if replica is None:
        return json_error(503, f"upstream {name} unavailable: no healthy replica")
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            async with upstream.session.get(f"{replica.url}/{rest}") as answer:
                body = await answer.read()
                content_type = answer.headers.get("Content-Type", "application/octet-stream")
                status = answer.status
    except TimeoutError:
        return json_error(504, f"upstream {name} timed out")
    except aiohttp.ClientError as exc:
        return json_error(502, f"upstream {name} failed: {exc.__class__.__name__}")
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


def add_routes(app: web.Application, upstreams: Upstreams) -> None:
    app[UPSTREAMS] = upstreams
    app.router.add_get("/api/docs", suite_docs)
    app.router.add_get("/api/docs/assets/{name}", docs_asset)
    app.router.add_get("/api/docs/{service}/{rest:.+}", service_docs)
