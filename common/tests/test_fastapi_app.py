import secrets
import time

import httpx
import pytest
from fastapi import APIRouter, HTTPException
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel

from titanium_common.fastapi_app import create_fastapi_app
from titanium_common.settings import ServiceSettings

router = APIRouter()


class Item(BaseModel):
    name: str
    size: int


@router.get("/api/items/{item_id}")
async def get_item(item_id: int) -> dict:
    if item_id == 0:
        raise HTTPException(404, "item 0 not found")
    if item_id == 13:
        raise RuntimeError("boom")
    return {"id": item_id}


@router.post("/api/items", status_code=201)
async def create_item(item: Item) -> Item:
    return item


@pytest.fixture
async def client():
    app = create_fastapi_app(ServiceSettings(service_name="demo", env="test"), title="demo", routers=[router])

    async def broken_dependency():
        raise ConnectionError("db down")

    app.state.kit.add_readiness_check("db", broken_dependency)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


async def test_request_id_is_echoed_or_generated(client):
    given = await client.get("/api/items/1", headers={"X-Request-ID": "given-1"})
    assert given.headers["X-Request-ID"] == "given-1"
    generated = await client.get("/api/items/1")
    assert len(generated.headers["X-Request-ID"]) == 32


async def test_errors_have_one_shape(client):
    missing = await client.get("/api/items/0", headers={"X-Request-ID": "r-404"})
    assert missing.status_code == 404
    assert missing.json() == {
        "detail": "item 0 not found",
        "request_id": "r-404",
        "trace_id": missing.headers["X-Trace-Id"],
    }
    invalid = await client.post("/api/items", json={"name": "x"})
    assert invalid.status_code == 422
    assert invalid.json()["detail"][0]["loc"] == ["body", "size"]
    crashed = await client.get("/api/items/13", headers={"X-Request-ID": "r-500"})
    assert crashed.status_code == 500
    assert crashed.json() == {
        "detail": "internal server error",
        "request_id": "r-500",
        "trace_id": crashed.headers["X-Trace-Id"],
    }
    assert crashed.headers["X-Request-ID"] == "r-500"
    unknown = await client.get("/nowhere")
    assert unknown.status_code == 404 and "request_id" in unknown.json()


async def test_readiness_reports_the_failing_dependency(client):
    answer = await client.get("/ready")
    assert answer.status_code == 503
    assert answer.json()["checks"] == {"db": "error: db down"}
    assert (await client.get("/health")).status_code == 200


async def test_stats_count_traffic_but_not_probes(client):
    for _ in range(3):
        await client.get("/api/items/1")
    await client.get("/api/items/13")
    await client.get("/health")
    stats = (await client.get("/stats")).json()
    assert stats["service"] == "demo"
    assert stats["requests"]["total"] == 4
    assert stats["requests"]["errors"] == 1
    assert stats["requests"]["requests_per_second"] == 0.4
    assert stats["requests"]["latency_ms"]["p99"] > 0


async def test_metrics_label_routes_by_template(client):
    await client.get("/api/items/1")
    await client.get("/api/items/2")
    text = (await client.get("/metrics")).text
    samples = [s for f in text_string_to_metric_families(text) if f.name == "http_requests" for s in f.samples]
    routes = {s.labels["route"]: s.value for s in samples if s.name == "http_requests_total"}
    assert routes["/api/items/{item_id}"] == 2
    assert not any(r == "/api/items/1" for r in routes)


async def test_stats_provider_can_degrade(client):
    kit = client._transport.app.state.kit

    async def cache_state():
        return {"service_status": "degraded", "cache": {"backend": "none"}}

    kit.add_stats_provider(cache_state)
    stats = (await client.get("/stats")).json()
    assert stats["service_status"] == "degraded"
    assert stats["cache"] == {"backend": "none"}


async def test_head_is_get_without_the_body(client):
    got = await client.get("/api/items/7")
    head = await client.head("/api/items/7", headers={"X-Request-ID": "head-1"})
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert head.headers["X-Request-ID"] == "head-1"
    assert (await client.head("/api/items")).status_code == 405
    metrics = (await client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    heads = [s for s in families["http_requests"].samples if s.labels.get("method") == "HEAD"]
    assert any(s.labels["route"] == "/api/items/{item_id}" and s.labels["status"] == "200" for s in heads)


async def test_metrics_report_each_dependency_as_its_check_finds_it(client):
    app = client._transport.app
    answers = {"redis": True}

    async def redis_check():
        return answers["redis"]

    app.state.kit.add_dependency_check("redis", redis_check)

    async def dependencies() -> dict[str, float]:
        text = (await client.get("/metrics")).text
        (family,) = [f for f in text_string_to_metric_families(text) if f.name == "titanium_dependency_up"]
        return {s.labels["dependency"]: s.value for s in family.samples}

    assert await dependencies() == {"db": 0.0, "redis": 1.0}
    answers["redis"] = False
    assert await dependencies() == {"db": 0.0, "redis": 0.0}
    # A dependency check is not a readiness check: only the database makes /ready fail.
    assert (await client.get("/ready")).json()["checks"] == {"db": "error: db down"}


async def test_a_monitoring_read_is_marked_on_its_span(client):
    user, poll = secrets.token_hex(16), secrets.token_hex(16)
    # Only this test's requests: the process's buffer holds other tests' (slower) ones too.
    since = time.time()
    for trace_id, extra in ((user, {}), (poll, {"X-Heartbeat": "true"})):
        headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01", **extra}
        assert (await client.get("/api/items/1", headers=headers)).status_code == 200
    roots = (await client.get("/internal/traces", params={"limit": 200, "since": since})).json()["roots"]
    marked = {root["trace_id"]: root["monitoring"] for root in roots if root["trace_id"] in (user, poll)}
    assert marked == {user: False, poll: True}


def test_the_services_routes_and_the_kits_join_the_apps_own_list_in_that_order():
    """Not included as routers: FastAPI matches an included router's routes twice per request."""
    app = create_fastapi_app(ServiceSettings(service_name="demo", env="test"), title="demo", routers=[router])
    paths = [route.path for route in app.routes]
    assert not [route for route in app.routes if hasattr(route, "original_router")]
    assert paths.index("/api/items/{item_id}") < paths.index("/api/items") < paths.index("/health")


def test_a_service_route_that_would_answer_a_kit_path_is_refused_at_creation():
    greedy, other_method = APIRouter(), APIRouter()

    @greedy.get("/{anything}")
    async def anything(anything: str) -> dict:
        return {"got": anything}

    @other_method.post("/ready")
    async def ready_by_post() -> dict:
        return {}

    settings = ServiceSettings(service_name="demo", env="test")
    with pytest.raises(ValueError, match=r"demo: service routes would answer the kit's GET /health, GET /ready, "):
        create_fastapi_app(settings, title="demo", routers=[greedy])
    # Another method on a kit path leaves the kit's GET to the kit.
    app = create_fastapi_app(settings, title="demo", routers=[other_method])
    assert [sorted(r.methods) for r in app.routes if getattr(r, "path", None) == "/ready"] == [["POST"], ["GET"]]
