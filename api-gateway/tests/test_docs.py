"""/api/docs through the gateway: the suite page, its assets from the installed package, and a real FastAPI
service's own /docs and /openapi.json read through its pool."""

import aiohttp
from fastapi import APIRouter

from api_gateway.main import create_app
from api_gateway.settings import GatewaySettings
from tests.support.servers import free_port, serving
from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.settings import ServiceSettings

router = APIRouter()


@router.get("/api/users/count")
async def count() -> int:
    return 3


async def test_the_suite_page_and_a_service_docs_through_the_gateway():
    service = create_fastapi_app(
        ServiceSettings(env="test", service_name="user-service"), title="users", routers=[router]
    )
    down = f"http://127.0.0.1:{free_port()}"
    async with serving(service) as users:
        settings = GatewaySettings(env="test", user_service_url=users, blog_service_url=down)
        async with (
            serving(create_app(settings)) as gateway,
            aiohttp.ClientSession(gateway) as http,
        ):
            async with http.get("/api/docs") as page:
                assert page.status == 200
                html = await page.text()
            for name in ("auth-service", "user-service", "blog-service", "cluster-monitor", "edge-config", "ops-mcp"):
                assert f'"url": "docs/{name}/openapi.json"' in html
            assert "cdn" not in html.lower()
            async with http.get("/api/docs/assets/swagger-ui-bundle.js") as asset:
                assert asset.status == 200
                assert len(await asset.read()) > 100_000
            async with http.get("/api/docs/user-service/openapi.json") as document:
                assert document.status == 200
                assert "/api/users/count" in (await document.json())["paths"]
            async with http.get("/api/docs/user-service/docs") as own:
                assert own.status == 200
                assert 'href="docs/assets/swagger-ui.css"' in await own.text()
            async with http.get("/api/docs/user-service/docs/assets/swagger-ui.css") as css:
                assert css.status == 200
            for path, status in (
                ("/api/docs/user-service/internal/x", 404),
                ("/api/docs/user-service/docs/assets/x/swagger-ui.css", 404),
                ("/api/docs/assets/index.html", 404),
                ("/api/docs/nobody/openapi.json", 404),
                ("/api/docs/blog-service/openapi.json", 502),
            ):
                async with http.get(path) as answer:
                    assert answer.status == status, (path, await answer.text())
                    assert "detail" in await answer.json()
